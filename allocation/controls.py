"""Checks on a finished allocation, recomputed from the lines (never from the totals they check).

Every item: allocated cents = rounded deficit, and each line within one rounding unit of its exact quota.
Grand totals: sum of deficits = sum of all lines = sum of the per-municipality totals. A failed control
is an internal error: the run stops with `InvariantViolation` and writes no workbook.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import ROUTES, Allocation
from .problems import InvariantViolation, Location, Problem

__all__ = ["Control", "run_controls"]


@dataclass(frozen=True, slots=True)
class Control:
    name: str
    item_id: str | None
    expected: int
    actual: int

    @property
    def difference(self) -> int:
        return self.actual - self.expected

    @property
    def ok(self) -> bool:
        return self.difference == 0


def run_controls(allocation: Allocation) -> list[Control]:
    unit = allocation.book.parameters.unit
    controls: list[Control] = []
    problems: list[Problem] = []
    for item in allocation.items:
        allocated = sum(line.amount for line in item.lines)
        controls.append(Control("Defizit − verteilt = 0", item.item.id, item.deficit, allocated))
        outside = sum(1 for line in item.lines if abs(line.amount - line.exact) >= unit)
        controls.append(Control("Anteile innerhalb einer Rundungseinheit des exakten Anteils", item.item.id, 0, outside))
    deficits = sum(item.deficit for item in allocation.items)
    lines = sum(line.amount for item in allocation.items for line in item.lines)
    totals = allocation.totals()
    per_municipality = sum(sum(routes.values()) for routes in totals.values())
    controls.append(Control("Summe Defizite = Summe Einzelnachweis", None, deficits, lines))
    controls.append(Control("Summe Defizite = Summe Übersicht", None, deficits, per_municipality))
    for route in ROUTES:
        expected = sum(item.deficit for item in allocation.items if item.rule.route == route)
        actual = sum(routes[route] for routes in totals.values())
        controls.append(Control(f"Summe Weg {route}", None, expected, actual))
    for control in controls:
        if not control.ok:
            problems.append(Problem("control-failed", Location(allocation.book.path),
                                    f"Kontrolle fehlgeschlagen: {control.name}" + (f" ({control.item_id})" if control.item_id else ""),
                                    found=str(control.actual), expected=str(control.expected),
                                    hint="bitte als Programmfehler melden, mit Eingabe-Arbeitsmappe und Regeldatei"))
    if problems:
        raise InvariantViolation(problems)
    return controls
