"""The Python API for analysts: `compute(input, rules)` and `run(input, rules, output)`, results as pandas frames.

Both go the one way in (`pipeline.compute` / `pipeline.run`): the same checks, the same located problems. A
failing run raises the CLI's `ProblemsError` subclass (`InputError`, `RuleFileError`, `DecisionError`,
`RefusedError`, ...), whose `.problems` are the located `Problem`s and whose `.exit_code` the CLI would exit with.

A `Result`'s frames have the columns of the workbook sheets: `.summary` (Uebersicht, one row per municipality,
without the totals row), `.lines` (Einzelnachweis), `.decisions` (Entscheidungen) and `.problems` (the
warnings). Amounts are exact `Decimal` euros, and every whole-cent amount column `X` has an integer column
`X_cents` beside it; an empty cell of the sheet is `None`. pandas is imported when a frame is first built,
never by `compute` or `run` (start-up time of the command line).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .controls import Control
from .model import ROUTE_LABELS, ROUTES, Allocation, InputBook
from .money import cents_to_decimal, fraction_to_decimal, percent_points
from .problems import Problem

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
        return sum(item.deficit for item in self.allocation.items)

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


def _frame(columns: list[str], rows: list[list[object]]) -> "pandas.DataFrame":
    import pandas  # only here: an API user who builds a frame pays for pandas, a CLI run never does

    return pandas.DataFrame(rows, columns=columns, dtype=object)


def _with_cents(columns: list[str], amount_columns: list[str]) -> list[str]:
    return columns + [f"{column}_cents" for column in amount_columns]


def summary_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Uebersicht: AGS, Gemeinde, Umlagegrundlagen, each route used, Summe, Hebesatz-Punkte; + *_cents."""
    used = [route for route in ROUTES if any(item.rule.route == route for item in allocation.items)] or list(ROUTES[:1])
    amounts = ["Umlagegrundlagen", *[ROUTE_LABELS[r] for r in used], "Summe"]
    columns = ["AGS", "Gemeinde", *amounts, "Hebesatz-Punkte (Summe ÷ Umlagegrundlagen × 100)"]
    totals = allocation.totals()
    rows = []
    for m in sorted(allocation.book.municipalities, key=lambda m: m.ags):
        cents = [m.base, *[totals[m.ags][r] for r in used], sum(totals[m.ags].values())]
        rows.append([m.ags, m.name, *map(cents_to_decimal, cents), percent_points(cents[-1], m.base), *cents])
    return _with_cents(columns, amounts), rows


def line_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Einzelnachweis: one row per item and municipality, in the sheet's order; + Betrag gerundet_cents."""
    from .report import proof

    columns = ["ID", "AGS", "Gemeinde", "Regel", "Weg", "Schlüssel", "Schlüsselwert", "Schlüsselsumme",
               "Anteil (exakt)", "Betrag ungerundet", "Betrag gerundet", "Resteinheiten", "Rang (größter Rest)",
               "Nachweis"]
    names = {m.ags: m.name for m in allocation.book.municipalities}
    by_ags = {m.ags: m for m in allocation.book.municipalities}
    unit = allocation.book.parameters.unit
    rows = []
    for item in allocation.items:
        total = fraction_to_decimal(item.key_total, 6)
        for line in sorted(item.lines, key=lambda l: l.ags):
            rows.append([item.item.id, line.ags, names[line.ags], item.rule.id, ROUTE_LABELS[item.rule.route],
                         item.key_label, fraction_to_decimal(line.key, 6), total, fraction_to_decimal(line.share, 10),
                         fraction_to_decimal(line.exact / 100, 6), cents_to_decimal(line.amount), line.extra_units,
                         line.rank, proof(item, line, names[line.ags], unit, by_ags), line.amount])
    return _with_cents(columns, ["Betrag gerundet"]), rows


def decision_rows(allocation: Allocation) -> tuple[list[str], list[list[object]]]:
    """Entscheidungen: one row per cost item; + the four amounts' *_cents."""
    from . import conditions

    amounts = ["Förderfähige Kosten", "Förderung", "Defizit (exakt)", "Defizit (gerundet)"]
    columns = ["ID", "Bezeichnung", "Kategorie", "Träger", "Eingabezeile", *amounts, "Regel", "Regeldatei:Zeile",
               "Weg", "Weg (Kennung)", "Kostenbestandteile", "Schlüssel", "Rechtsgrundlage",
               "Begründung (Bedingung mit Werten)", "Alle passenden Regeln", "Beschreibung der Regel"]
    rows = []
    for item in allocation.items:
        rule = item.rule
        cents = [item.eligible, item.item.funding, item.deficit_exact, item.deficit]
        rows.append([item.item.id, item.item.label, item.item.category, item.item.host, item.item.source.cell,
                     *map(cents_to_decimal, cents), rule.id, f"{rule.source.file}:{rule.source.line}",
                     ROUTE_LABELS[rule.route], rule.route, ", ".join(rule.components), item.key_label,
                     rule.legal_basis, conditions.explain(rule.when, item.item.attrs),
                     ", ".join(item.decision.matched), rule.description, *cents])
    return _with_cents(columns, amounts), rows


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
