"""The yearly run as one function: rules -> input -> decide -> allocate -> controls -> workbook.

Stages are pure functions from values to values; this module wires them in the documented order (the
rule file is checked before any workbook is read) and builds the `Protokoll` rows. The CLI only parses
arguments, calls `run` and maps errors to exit codes.
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .allocate import allocate, decide
from .controls import Control, run_controls
from .engine import durable_version
from .inputs import read_input
from .model import Allocation, Rulebook
from .problems import Problem, RuleFileError
from .rulebook import check_columns, load_rulebook

__all__ = ["RunResult", "compute", "run", "protocol_rows"]


@dataclass(frozen=True, slots=True)
class RunResult:
    allocation: Allocation
    controls: tuple[Control, ...]
    warnings: tuple[Problem, ...]
    output: Path | None


def compute(input_path: str | Path, rules_path: str | Path) -> tuple[Allocation, list[Control], list[Problem]]:
    """Everything but writing: returns the allocation, its controls and the warnings."""
    rulebook, warnings = load_rulebook(rules_path)
    book = read_input(input_path)
    column_problems = check_columns(rulebook, book)
    if column_problems:
        raise RuleFileError(column_problems)
    decisions = decide(rulebook, book)
    allocation = allocate(rulebook, book, decisions)
    controls = run_controls(allocation)
    return allocation, controls, warnings


def protocol_rows(allocation: Allocation, rulebook: Rulebook, started: _dt.datetime) -> list[tuple[str, object]]:
    book = allocation.book
    total = sum(item.deficit for item in allocation.items)
    from .money import cents_to_decimal

    return [
        ("Werkzeug", f"allocation {__version__}"),
        ("durable_rules", durable_version()),
        ("Python", platform.python_version()),
        ("Kreis", book.parameters.district),
        ("Haushaltsjahr", book.parameters.year),
        ("Rundung", book.parameters.rounding),
        ("Eingabe-Arbeitsmappe", Path(book.path).name),
        ("SHA-256 Eingabe", book.sha256),
        ("Regeldatei", rulebook.path),
        ("SHA-256 Regeldatei", rulebook.sha256),
        ("Regeldatei gültig", f"{rulebook.valid_from}–{rulebook.valid_to}"),
        ("Trefferstrategie", rulebook.hit_policy),
        ("Kostenpositionen", len(allocation.items)),
        ("Gemeinden", len(book.municipalities)),
        ("Summe verteilt (€)", cents_to_decimal(total)),
        ("Laufzeitpunkt (UTC)", started.strftime("%Y-%m-%d %H:%M:%S")),
    ]


def run(input_path: str | Path, rules_path: str | Path, output_path: str | Path) -> RunResult:
    """The yearly run: compute, then write the workbook atomically."""
    from .report import write_workbook

    started = _dt.datetime.now(_dt.timezone.utc)
    allocation, controls, warnings = compute(input_path, rules_path)
    write_workbook(output_path, allocation, controls, protocol_rows(allocation, allocation.rulebook, started))
    return RunResult(allocation, tuple(controls), tuple(warnings), Path(output_path))
