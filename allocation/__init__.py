"""allocation: who pays for a district's shared services, decided by auditable rules, exact to the cent.

Data flows one way (each module a stage or a thing; only `engine` imports durable_rules, only `inputs`
reads and `report` / `template` write workbooks):

    rulebook (YAML -> Rule, file:line) ─┐
    inputs   (xlsx -> InputBook)       ─┼─> allocate.decide (engine: durable_rules) -> allocate.allocate
                                        │       (money.apportion: cents, largest remainder, ties by AGS)
                                        └─> controls -> report (xlsx, atomic)        pipeline wires them;
    model: records · problems: Problem, errors, exit codes · conditions: the condition language  cli is a thin shell
"""
__version__ = "0.1.0"
