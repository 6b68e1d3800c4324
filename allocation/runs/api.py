"""The Python API for analysts: `compute(input, rules)` and `run(input, rules, output)`, results as pandas frames.

Both go the one way in (`pipeline.compute` / `pipeline.run`): the same checks, the same located problems. A
failing run raises the CLI's `ProblemsError` subclass (`InputError`, `RuleFileError`, `DecisionError`,
`RefusedError`, ...), whose `.problems` are the located `Problem`s and whose `.exit_code` the CLI would exit with.

A `Result`'s frames have the columns of the workbook sheets: `.summary` (Uebersicht, one row per municipality,
without the totals row), `.lines` (Einzelnachweis), `.decisions` (Entscheidungen), `.levies` (Umlagen, the
payer rows), `.controls_frame` (Kontrollen) and `.problems` (the warnings; also `.warnings_frame`). The
records stay beside them: `.controls` and `.warnings` are tuples of `Control` and `Problem`. Amounts are exact `Decimal` euros, and every whole-cent amount column `X` has an integer column
`X_cents` beside it; an empty cell of the sheet is `None`. pandas is imported when a frame is first built,
never by `compute` or `run` (start-up time of the command line).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..calc.controls import Control
from ..core.model import Allocation, InputBook
from ..core.problems import Problem

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["Result", "compute", "run"]


@dataclass(frozen=True)
class Result:
    """One computed run: its records, and the workbook's main sheets as DataFrames (built on first access)."""

    allocation: Allocation
    controls: tuple[Control, ...]
    warnings: tuple[Problem, ...]
    output: Path | None = None

    @property
    def district(self) -> str:
        return self.allocation.book.parameters.district

    @property
    def year(self) -> int:
        return self.allocation.book.parameters.year

    @property
    def total_cents(self) -> int:
        """The deficits allocated (its meaning since the first version; also `deficits_cents`)."""
        return self.allocation.deficits

    @property
    def deficits_cents(self) -> int:
        return self.allocation.deficits

    @property
    def payable_cents(self) -> int:
        """What the members pay together (the Uebersicht Summe; with statutory levies, base × rate)."""
        return self.allocation.payable

    @cached_property
    def summary(self) -> "pandas.DataFrame":
        return _frame(*summary_rows(self.allocation))

    @cached_property
    def lines(self) -> "pandas.DataFrame":
        return _frame(*line_rows(self.allocation))

    @cached_property
    def decisions(self) -> "pandas.DataFrame":
        return _frame(*decision_rows(self.allocation))

    @cached_property
    def problems(self) -> "pandas.DataFrame":
        return _frame(*problem_rows(self.warnings))

    @property
    def warnings_frame(self) -> "pandas.DataFrame":
        """`warnings` as a frame: the same frame as `problems` (its name since the first version)."""
        return self.problems

    @cached_property
    def controls_frame(self) -> "pandas.DataFrame":
        """`controls` as a frame: the Kontrollen sheet, + `Soll_cents`, `Ist_cents`, `Differenz_cents` for the
        money controls (None for the share counts, "Anteile …")."""
        return _frame(*control_rows(self.controls))

    @cached_property
    def levies(self) -> "pandas.DataFrame":
        """The Umlagen sheet's payer rows (one per levy × payer, without the totals rows); + `*_cents` beside
        every amount column. Empty without levies."""
        return _frame(*levy_rows(self.allocation))


def _frame(columns: list[str], rows: list[list[object]]) -> "pandas.DataFrame":
    import pandas  # only here: an API user who builds a frame pays for pandas, a CLI run never does

    return pandas.DataFrame(rows, columns=columns, dtype=object)


def _table_frame(table) -> tuple[list[str], list[list[object]]]:
    """A report `Table` (the rows the workbook gets) as frame columns: empty cells None, and beside every
    amount column (format EUR) its integer `*_cents` column."""
    from ..workbook.report import EUR

    amounts = [i for i, fmt in enumerate(table.formats) if fmt == EUR and i < len(table.headers)]
    rows = []
    for row in table.rows:
        cells = [None if value == "" else value for value in row]
        rows.append(cells + [None if cells[i] is None else int(cells[i] * 100) for i in amounts])
    return table.headers + [f"{table.headers[i]}_cents" for i in amounts], rows


def summary_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Uebersicht (without its totals row), + the amounts' *_cents."""
    from ..workbook.report import uebersicht_table

    return _table_frame(uebersicht_table(allocation))


def line_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Einzelnachweis, one row per item and municipality in the sheet's order; + Betrag gerundet_cents."""
    from ..workbook.report import einzelnachweis_table

    return _table_frame(einzelnachweis_table(allocation))


def decision_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Entscheidungen, one row per cost item; + the four amounts' *_cents."""
    from ..workbook.report import entscheidungen_table

    return _table_frame(entscheidungen_table(allocation))


def control_rows(controls: tuple[Control, ...]) -> tuple[list[str], list[list[object]]]:
    """Kontrollen, one row per control; + the cents of the money controls."""
    from ..workbook.report import control_is_money, kontrollen_table

    table = kontrollen_table(controls)
    rows = [[None if value == "" else value for value in row]
            + ([c.expected, c.actual, c.difference] if control_is_money(c) else [None, None, None])
            for row, c in zip(table.rows, controls)]
    return table.headers + ["Soll_cents", "Ist_cents", "Differenz_cents"], rows


def levy_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Umlagen's payer rows; + the amounts' *_cents."""
    from ..workbook.report import umlagen_table

    return _table_frame(umlagen_table(allocation))


def problem_rows(problems: tuple[Problem, ...]) -> tuple[list[str], list[list[object]]]:
    """One row per problem: code, severity, where (file, sheet, cell, line, column), message, found, expected, fix."""
    columns = ["code", "severity", "file", "sheet", "cell", "line", "col", "message", "found", "expected", "hint"]
    return columns, [[p.code, p.severity, p.location.file, p.location.sheet, p.location.cell, p.location.line,
                      p.location.col, p.message, p.found, p.expected, p.hint] for p in problems]


def compute(input: str | Path, rules: str | Path, *, bases_from: str | Path | None = None,
            ignore_validity: str | None = None) -> Result:
    """Compute a run without writing any file. `rules` is a rule file (it must cover the workbook's Kreis and
    Haushaltsjahr unless `ignore_validity` gives a reason) or a rules folder to choose from."""
    from .pipeline import compute as compute_run

    allocation, controls, warnings = compute_run(input, rules, bases_from, ignore_validity=ignore_validity)
    return Result(allocation, tuple(controls), tuple(warnings))


def run(input: str | Path, rules: str | Path, output: str | Path, *, mode: str = "test",
        provisional: bool = False, register_dir: str | Path | None = None,
        supersede: str | Callable[[InputBook], str | None] | None = None,
        bases_from: str | Path | None = None, ignore_validity: str | None = None) -> Result:
    """Compute and write the result workbook and its manifest, exactly as `allocation run` does."""
    from .pipeline import run as run_pipeline

    result = run_pipeline(input, rules, output, mode=mode, provisional=provisional, register_dir=register_dir,
                          supersede=supersede, bases_from=bases_from, ignore_validity=ignore_validity)
    return Result(result.allocation, result.controls, result.warnings, result.output)
