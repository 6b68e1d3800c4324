"""Every amount the output workbook writes fits one spreadsheet cell to the cent, sums included.

A single input amount is at most 9,999,999,999,999.99 € (`input-too-many-digits`: 15 significant digits with
the cents, what a cell holds exactly). The run also writes sums of them: an item's eligible costs and deficit
(`Entscheidungen`), each municipality's amounts and `Summe` and the totals row (`Uebersicht`), the totals of
`Kontrollen` and `Hinweise`, a levy item's bases and the yield of its printed rate (`Hebesaetze`), a levy's
bases, lines, revenue, need and difference (`Umlagen`). `total_problems` finds each of them beyond
9,999,999,999,999.99 € before anything is written: `input-total-too-large` (exit 3), located at what adds up (the
item's row in `Kostenpositionen`, the municipality's row in `Gemeinden`, or the sheet whose column is summed),
with the total found and the bound. Pure; amounts are int cents (Fractions where a base is weighted).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

from ..core.model import LEVY_ROUTES, ROUTE_LABELS, Allocation
from ..core.money import MAX_CELL_CENTS, fits_cell, format_eur, round_to_unit
from ..core.problems import Location, Problem
from .controls import Control
from .rates import iter_levy_rates, tolerance

__all__ = ["total_problems", "Figures", "EXPECTED"]

CODE = "input-total-too-large"
EXPECTED = f"höchstens {format_eur(MAX_CELL_CENTS)} (15 Stellen mit Cent: so viel hält eine Tabellenzelle genau)"


class Figures:
    """Amounts checked against one cell's bound, and the problems (`code`) for those beyond it. Also used by
    `compare` and `trueup` for their differences and totals."""

    def __init__(self, code: str = CODE) -> None:
        self.code = code
        self.problems: list[Problem] = []
        self.amounts: set[int] = set()  # cents reported

    def check(self, cents: int | Fraction, where: Location, what: str, hint: str) -> bool:
        """Report the figure `what` at `where` if `cents` does not fit a cell; True if it fits. An amount already
        reported is not reported again (a total of one item is also its route's and the grand total): the first,
        most specific place names it."""
        if fits_cell(cents):
            return True
        shown = cents if isinstance(cents, int) else round_to_unit(cents, 1)
        if shown not in self.amounts:
            self.amounts.add(shown)
            self.problems.append(Problem(self.code, where, f"{what}: {format_eur(shown)} ist zu groß für eine "
                                         "Tabellenzelle (auf den Cent genau)", found=format_eur(shown),
                                         expected=EXPECTED, hint=hint))
        return False


def _sheet(allocation: Allocation, sheet: str) -> Location:
    return Location(Path(allocation.book.path).name, sheet)


def total_problems(allocation: Allocation, controls: Sequence[Control] = ()) -> list[Problem]:
    """Every amount or sum the output workbook would write beyond 9,999,999,999,999.99 €, located."""
    found = Figures()
    item_hint = ("die Beträge der Zeile prüfen (in Euro, nicht in Cent? Tausendertrennzeichen?) oder die "
                 "Kostenposition auf mehrere Zeilen aufteilen")
    for item in allocation.items:
        for what, cents in (("förderfähige Kosten (Summe der Kostenbestandteile)", item.eligible),
                            ("Defizit (Kosten − Förderung)", item.deficit_exact),
                            ("Defizit (gerundet)", item.deficit)):
            if not found.check(cents, item.item.source, f"Kostenposition {item.item.id}, {what}", item_hint):
                break
    places = _places(allocation)
    _overview(allocation, found)
    _levies(allocation, found, places)
    _rates(allocation, found)
    for finding in allocation.findings:
        where = places.get(finding.ags, _sheet(allocation, "Gemeinden"))
        for what, cents in (("eigene Kosten", finding.own_cost), ("Umlageanteil", finding.levy_share),
                            ("eigene Kosten + Umlageanteil", finding.own_cost + finding.levy_share),
                            ("angerechnet", finding.credit)):
            found.check(cents, where, f"Hinweise, {finding.name} ({finding.ags}), {what}",
                        "die Beträge der Kostenpositionen dieser Leistung prüfen")
    for control in controls:  # `Kontrollen`: the totals not reported above already (by their amount)
        if control.name.startswith("Anteile"):
            continue
        for cents in (control.expected, control.actual, control.difference):
            if not found.check(cents, _sheet(allocation, "Kostenpositionen"), f"Kontrollen: {control.name}",
                               "die Beträge der Kostenpositionen prüfen; zusammen müssen sie in eine Tabellenzelle "
                               "passen"):
                break
    return found.problems


def _places(allocation: Allocation) -> dict[str, Location]:
    """AGS -> the municipality's row in `Gemeinden` (looked up once: a levy line is checked per municipality)."""
    return {m.ags: m.source for m in allocation.book.municipalities}


def _overview(allocation: Allocation, found: Figures) -> None:
    """`Uebersicht`: each municipality's amounts and Summe, the totals row (bases, each column, the grand total)."""
    totals, by_levy = allocation.totals(), allocation.levy_totals()
    names = {levy.levy.id: levy.levy.name for levy in allocation.levies}
    columns: dict[str, int] = {}
    for m in allocation.book.municipalities:
        routes = totals[m.ags]
        cells = {**{names[k]: v for k, v in by_levy[m.ags].items()},
                 **{ROUTE_LABELS[r]: v for r, v in routes.items() if not (allocation.levies and r in LEVY_ROUTES)}}
        for label, cents in cells.items():
            columns[label] = columns.get(label, 0) + cents
            found.check(cents, m.source, f"Uebersicht, {label} für {m.name} ({m.ags})",
                        "die Beträge der Kostenpositionen und die Umlagegrundlagen dieser Gemeinde prüfen")
        found.check(sum(routes.values()), m.source, f"Uebersicht, Summe für {m.name} ({m.ags})",
                    "die Beträge der Kostenpositionen und die Umlagegrundlagen dieser Gemeinde prüfen")
    sums_hint = ("die Beträge der Spalte prüfen (in Euro, nicht in Cent?); zusammen müssen sie in eine Tabellenzelle "
                 "passen")
    found.check(sum(m.base for m in allocation.book.municipalities), _sheet(allocation, "Gemeinden"),
                "Umlagegrundlagen aller Gemeinden zusammen (Uebersicht, Zeile Summe)", sums_hint)
    for label, cents in columns.items():
        found.check(cents, _sheet(allocation, "Kostenpositionen"), f"Uebersicht, Zeile Summe, {label} aller Gemeinden",
                    "die Beträge der Kostenpositionen prüfen; zusammen müssen sie in eine Tabellenzelle passen")
    found.check(sum(sum(routes.values()) for routes in totals.values()), _sheet(allocation, "Kostenpositionen"),
                "Uebersicht, Zeile Summe, Summe aller Gemeinden",
                "die Beträge der Kostenpositionen prüfen; zusammen müssen sie in eine Tabellenzelle passen")


def _levies(allocation: Allocation, found: Figures, places: dict[str, Location]) -> None:
    """`Umlagen`: per levy each line's base and amount, each component summed, base total, revenue, need, difference."""
    for levy in allocation.levies:
        name = levy.levy.name
        for line in levy.lines:
            where = places.get(line.ags) or _sheet(allocation, "Gemeinden")
            found.check(line.base, where, f"Umlagen, {name}, Bemessungsgrundlage von {line.ags}",
                        "die Bestandteile der Umlagegrundlagen dieser Gemeinde prüfen")
            found.check(line.amount, where, f"Umlagen, {name}, Betrag von {line.ags}",
                        "die Umlagegrundlagen dieser Gemeinde und den Satz prüfen")
        gemeinden = _sheet(allocation, "Gemeinden")
        hint = "die Spalte in Gemeinden prüfen (in Euro, nicht in Cent?); zusammen muss sie in eine Tabellenzelle passen"
        for column in levy.levy.base:
            parts = [part for line in levy.lines for part in line.parts if part.column == column]
            found.check(sum((p.value for p in parts), Fraction(0)), gemeinden,
                        f"Umlagen, {name}, Spalte {column} aller Zahler zusammen", hint)
            found.check(sum((p.weighted for p in parts), Fraction(0)), gemeinden,
                        f"Umlagen, {name}, Spalte {column} gewichtet, aller Zahler zusammen", hint)
        found.check(levy.base_total, gemeinden, f"Umlagen, {name}, Bemessungsgrundlagen aller Zahler zusammen",
                    hint)
        for what, cents in (("Aufkommen", levy.revenue), ("Umlagebedarf", levy.need),
                            ("Aufkommen − Bedarf", levy.difference)):
            found.check(cents, gemeinden, f"Umlagen, {name}, {what}",
                        "Umlagegrundlagen, Sätze und die Defizite der Kostenpositionen prüfen")


def _rates(allocation: Allocation, found: Figures) -> None:
    """`Hebesaetze`: per levy item the payers' bases and their total, and what the printed rate yields. The yield
    misses the need by at most `rates.tolerance`, so it is computed only for an item where that could matter."""
    unit = allocation.book.parameters.unit
    gemeinden = _sheet(allocation, "Gemeinden")
    close: set[str] = set()
    for item in allocation.items:
        if item.rule.route not in LEVY_ROUTES or item.key_total <= 0:
            continue
        found.check(item.key_total * 100, gemeinden,
                    f"Hebesaetze, {item.item.id}, Bemessungsgrundlagen aller Zahler zusammen",
                    "die Umlagegrundlagen (und den Faktor) der Zahler prüfen")
        payers = sum(1 for line in item.lines if line.key > 0)
        if not fits_cell(abs(item.deficit) + tolerance(item.deficit, payers, unit)):
            close.add(item.item.id)
    if not close:
        return
    for levy in iter_levy_rates(allocation):
        if levy.item_id in close and levy.total_at_rate is not None:
            source = next(item.item.source for item in allocation.items if item.item.id == levy.item_id)
            found.check(levy.total_at_rate, source,
                        f"Hebesaetze, {levy.item_id}, Ertrag des gedruckten Hebesatzes",
                        "die Beträge der Kostenposition prüfen")
