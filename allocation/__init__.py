"""allocation: who pays for a district's shared services, decided by auditable rules, exact to the cent.

The house, one folder per layer; data flows up, imports only go down (tests/test_architecture.py):

    core/       records (model), problems and exit codes, money (the only rounding), instalments, file names
    rulefiles/  located YAML, the condition language, rulebook loading and binding, rule selection,
                engine (the only importer of durable_rules), the readable rule book
    calc/       the run's pure stages: decide + allocate, levies, controls, findings, levy rates; the static
                analysis of rule files (`allocation check`)
    workbook/   safety (raw-file checks), inputs (xlsx -> InputBook, python-calamine), report (the output
                workbook, xlsxwriter), error reports, template, the overwrite guard
    runs/       pipeline (the one way into a run), manifest, register of final runs, the Python API
    ops/        commands above the run: inbox, batch, trueup, compare, explain, verify, notices, synth
    web/        the upload page;  cli/: the thin command line, one module per group of commands

Python API (`runs.api`, loaded on first use so that `import allocation` stays light): `allocation.compute(input,
rules)` and `allocation.run(input, rules, output)` return a `Result` with pandas frames; errors raise
`allocation.ProblemsError` subclasses carrying the located problems.
"""
from .core import __version__

__all__ = ["compute", "run", "Result", "ProblemsError"]


def __getattr__(name: str):
    """The API on first use (PEP 562): `import allocation` imports neither the pipeline nor pandas."""
    if name in ("compute", "run", "Result"):
        from .runs import api

        return getattr(api, name)
    if name == "ProblemsError":
        from .core.problems import ProblemsError

        return ProblemsError
    raise AttributeError(f"module 'allocation' has no attribute {name!r}")
