"""allocation: who pays for a district's shared services, decided by auditable rules, exact to the cent.

Data flows one way (each module a stage or a thing; only `engine` imports durable_rules, only `inputs`
reads and `report` / `template` write workbooks):

    rulebook (YAML -> Rule, file:line) ─┐
    inputs   (xlsx -> InputBook)       ─┼─> allocate.decide (engine: durable_rules) -> allocate.allocate
                                        │       (money.apportion: cents, largest remainder, ties by AGS)
                                        └─> controls -> report (xlsx, atomic)        pipeline wires them;
    model: records · problems: Problem, errors, exit codes · conditions: the condition language  cli is a thin shell

Python API (`api`, loaded on first use so that `import allocation` stays light): `allocation.compute(input,
rules)` and `allocation.run(input, rules, output)` return a `Result` with pandas frames; errors raise
`allocation.ProblemsError` subclasses carrying the located problems.
"""
__version__ = "0.1.0"

__all__ = ["compute", "run", "Result", "ProblemsError"]


def __getattr__(name: str):
    """The API on first use (PEP 562): `import allocation` imports neither the pipeline nor pandas."""
    if name in ("compute", "run", "Result"):
        from . import api

        return getattr(api, name)
    if name == "ProblemsError":
        from .problems import ProblemsError

        return ProblemsError
    raise AttributeError(f"module 'allocation' has no attribute {name!r}")
