"""Checks on a finished allocation, recomputed from the lines (never from the totals they check).

Every item: allocated cents = rounded deficit, and each line within one rounding unit of its exact quota.
Grand totals: sum of deficits = sum of all lines = sum of the per-municipality totals. With levies, every
statute line is recomputed here from its base components and rates (its own arithmetic, rounding through
`money.round_to_unit`), a derived levy's lines must add up to its need, and the Uebersicht total is the
levies' revenue plus the other routes' deficits. A failed control is an internal error: the run stops with
`InvariantViolation` and writes no workbook.
"""
from __future__ import annotations

from dataclasses import dataclass

from fractions import Fraction

from ..core.model import LEVY_ROUTES, ROUTES, Allocation, LevyResult
from ..core.money import round_to_unit
from ..core.problems import InvariantViolation, Location, Problem

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


def _recomputed(levy: LevyResult, line, unit: int) -> int:
    """A statute line from its components: Σ value × weight ÷ 100 × rate ÷ 100 (× factor), rounded once."""
    exact = Fraction(0)
    for part in line.parts:
        rate = levy.rates.get(part.column, levy.rates.get(""))
        exact += part.value * Fraction(part.weight) * Fraction(rate) / 10_000
    return round_to_unit(exact * (line.factor if line.factor is not None else 1), unit)


def _levy_controls(allocation: Allocation, unit: int) -> list[Control]:
    controls = []
    # the Parameter sheet's Umlagebedarf rows, read here from the book itself (not from the levy stage)
    given = {entry.levy or allocation.rulebook.levies[0].id: entry.cents for entry in allocation.book.parameters.needs}
    for levy in allocation.levies:
        extra = given.get(levy.levy.id)
        plus = " + Umlagebedarf" if extra is not None else ""
        if levy.mode == "statute":
            for line in levy.lines:
                controls.append(Control(f"Umlage {levy.levy.id}: Betrag = Grundlage × Satz", line.ags,
                                        _recomputed(levy, line, unit), line.amount))
        else:
            item_lines = sum(line.amount for item in allocation.items if item.rule.levy == levy.levy.id
                             for line in item.lines)
            controls.append(Control(f"Umlage {levy.levy.id} (abgeleitet): Bedarf = Summe der Zeilen", None,
                                    levy.need, levy.revenue))
            controls.append(Control(f"Umlage {levy.levy.id} (abgeleitet): Summe der Zeilen = Einzelnachweis{plus}",
                                    None, item_lines + (extra or 0), levy.revenue))
        need = sum(item.deficit for item in allocation.items if item.rule.levy == levy.levy.id)
        controls.append(Control(f"Umlage {levy.levy.id}: Bedarf = Summe der zugewiesenen Defizite{plus}", None,
                                need + (extra or 0), levy.need))
    return controls


def run_controls(allocation: Allocation) -> list[Control]:
    unit = allocation.book.parameters.unit
    controls: list[Control] = []
    problems: list[Problem] = []
    for item in allocation.items:
        allocated = sum(line.amount for line in item.lines)
        controls.append(Control("Defizit − verteilt = 0", item.item.id, item.deficit, allocated))
        # |amount − exact| ≥ unit, in integers: amount × d − n against unit × d for exact = n / d
        outside = 0
        for line in item.lines:
            numerator, denominator = line.exact_ratio
            if abs(line.amount * denominator - numerator) >= unit * denominator:
                outside += 1
        controls.append(Control("Anteile innerhalb einer Rundungseinheit des exakten Anteils", item.item.id, 0, outside))
    deficits = sum(item.deficit for item in allocation.items)
    lines = sum(line.amount for item in allocation.items for line in item.lines)
    totals = allocation.totals()
    per_municipality = sum(sum(routes.values()) for routes in totals.values())
    controls.append(Control("Summe Defizite = Summe Einzelnachweis", None, deficits, lines))
    if allocation.levies:
        controls += _levy_controls(allocation, unit)
        revenue = sum(levy.revenue for levy in allocation.levies)
        others = sum(item.deficit for item in allocation.items if item.rule.route not in LEVY_ROUTES)
        controls.append(Control("Aufkommen der Umlagen + Defizite der übrigen Wege = Summe Übersicht", None,
                                revenue + others, per_municipality))
    else:
        controls.append(Control("Summe Defizite = Summe Übersicht", None, deficits, per_municipality))
    for route in ROUTES:
        if allocation.levies and route in LEVY_ROUTES:
            expected = sum(levy.revenue for levy in allocation.levies if levy.levy.route == route)
        else:
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
