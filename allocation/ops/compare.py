"""Comparisons: scenarios side by side, and one budget year against another.

Scenarios (`allocation compare INPUT.xlsx --rules A.yaml --rules B.yaml ...`): each scenario is a rule file
with an optional label and an optional input workbook of its own (default: INPUT.xlsx). Every scenario is
computed exactly as a yearly run (`pipeline.compute`, controls included); the comparison puts each
municipality's totals side by side with the difference to the first scenario (the reference) in € and
in Hebesatz points (difference ÷ Umlagegrundlagen × 100, the reference's bases), the totals per route,
the items whose route or deficit changed, and every scenario's findings.

Year over year (`allocation compare OUT_2022.xlsx OUT_2023.xlsx`): reads two output workbooks (their
`Uebersicht` and `Protokoll` sheets, the format `report` writes) and shows per municipality the change
in € and in %, and per route the change of its share of the municipality's total, in percentage points.
Where both workbooks have an `Umlagen` sheet (a rule file with `levies:`), the sheet `Wirkungen` shows per
levy and municipality the old and new base, rate and amount, the change, its base effect and rate effect
(`stages.decompose`) and the change in words; this compares any two stages of a levy year as well.

`compare_scenarios` and `year_over_year` are pure; `read_result`, `run_scenarios` and the writers are the
I/O edges. Percentages and points are rounded for display by `money`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from ..calc.findings import finding_total
from ..calc.stages import Effects, decompose, describe
from ..core.model import ROUTE_LABELS, ROUTES, Allocation, same_district
from ..core.money import (ROUNDING_UNITS, cents_from_decimal, cents_to_decimal, decimal_from_cell, format_eur,
                          fraction_to_decimal, percent_points)
from ..core.problems import InputError, Location, Problem

if TYPE_CHECKING:
    from ..runs.readback import Earlier

__all__ = [
    "Scenario",
    "ScenarioResult",
    "MunicipalityComparison",
    "ItemMove",
    "ScenarioComparison",
    "ResultSummary",
    "YearRow",
    "run_scenarios",
    "compare_scenarios",
    "write_scenario_comparison",
    "read_result",
    "read_pair",
    "year_over_year",
    "write_year_comparison",
    "LevyLine",
    "EffectRow",
    "levy_effects",
    "EFFECT_SHEET",
    "COMPARE_SHEETS",
    "YEAR_SHEETS",
]

COMPARE_SHEETS = ("Vergleich", "Wege", "Verschiebungen", "Hinweise", "Szenarien")  # + Umlagen with `levies:`
YEAR_SHEETS = ("Vergleich", "Wege", "Jahre")
EFFECT_SHEET = "Wirkungen"  # after YEAR_SHEETS, only when both workbooks have an `Umlagen` sheet
STATUTE = "Hebesatz der Haushaltssatzung"  # `Umlagen` column Berechnung of a line computed from a rate
ABSENT = "—"


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    input_path: str
    rules_path: str


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    allocation: Allocation


@dataclass(frozen=True, slots=True)
class MunicipalityComparison:
    ags: str
    name: str
    base: int  # cents, of the reference scenario
    routes: tuple[Mapping[str, int], ...]  # per scenario: route -> cents
    totals: tuple[int, ...]  # per scenario, cents

    def difference(self, index: int) -> int:
        """Scenario `index` minus the reference (scenario 0), cents."""
        return self.totals[index] - self.totals[0]

    def points(self, index: int) -> Decimal | None:
        """The difference in Hebesatz points: difference ÷ base × 100 (4 decimals)."""
        return percent_points(self.difference(index), self.base)


@dataclass(frozen=True, slots=True)
class ItemMove:
    item_id: str
    label: str
    category: str
    routes: tuple[str | None, ...]  # per scenario: route id, None if the item is absent
    rules: tuple[str | None, ...]
    deficits: tuple[int | None, ...]

    @property
    def moved(self) -> bool:
        """The item takes different routes (or exists only in some scenarios)."""
        return len(set(self.routes)) > 1

    @property
    def changed(self) -> bool:
        return self.moved or len(set(self.deficits)) > 1


@dataclass(frozen=True, slots=True)
class ScenarioComparison:
    results: tuple[ScenarioResult, ...]
    municipalities: tuple[MunicipalityComparison, ...]
    items: tuple[ItemMove, ...]
    notes: tuple[str, ...]

    def row(self, ags: str) -> MunicipalityComparison:
        return next(m for m in self.municipalities if m.ags == ags)


def run_scenarios(scenarios: Sequence[Scenario]) -> list[ScenarioResult]:
    """Compute every scenario as a yearly run (no workbook written). Raises the first scenario's errors."""
    from ..runs.pipeline import compute

    results = []
    for scenario in scenarios:
        allocation, _controls, _warnings = compute(scenario.input_path, scenario.rules_path, offers_override=False)
        results.append(ScenarioResult(scenario, allocation))
    return results


def compare_scenarios(results: Sequence[ScenarioResult]) -> ScenarioComparison:
    """Side by side, the first scenario as reference. Raises InputError if the municipalities differ."""
    reference = results[0].allocation.book
    expected = {m.ags for m in reference.municipalities}
    problems = []
    notes = []
    for result in results[1:]:
        book = result.allocation.book
        found = {m.ags for m in book.municipalities}
        if found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            problems.append(Problem(
                "compare-municipalities-differ", Location(book.path, "Gemeinden"),
                f'Szenario "{result.scenario.label}" hat andere Gemeinden als "{results[0].scenario.label}"',
                found=f"fehlt: {', '.join(missing) or '-'}; zusätzlich: {', '.join(extra) or '-'}",
                expected=f"die {len(expected)} Gemeinden aus {reference.path}",
                hint="nur Szenarien desselben Kreises vergleichen: Kopien einer Eingabe-Arbeitsmappe verwenden"))
            continue
        bases = {m.ags: m.base for m in book.municipalities}
        changed = [m.ags for m in reference.municipalities if bases[m.ags] != m.base]
        if changed:
            notes.append(f'Szenario "{result.scenario.label}" hat andere Umlagegrundlagen für {", ".join(changed)}; '
                         f'Hebesatz-Punkte beziehen sich auf die Grundlagen von "{results[0].scenario.label}"')
        if book.parameters.year != reference.parameters.year:
            notes.append(f'Szenario "{result.scenario.label}" ist Haushaltsjahr {book.parameters.year}, '
                         f'die Referenz {reference.parameters.year}')
    if problems:
        raise InputError(problems)
    all_totals = [result.allocation.totals() for result in results]
    rows = []
    for m in sorted(reference.municipalities, key=lambda m: m.ags):
        routes = tuple(totals[m.ags] for totals in all_totals)
        rows.append(MunicipalityComparison(m.ags, m.name, m.base, routes, tuple(sum(r.values()) for r in routes)))
    _refuse_beyond_cells(rows, reference, [result.scenario.label for result in results])
    order: list[str] = []
    details: dict[str, tuple[str, str]] = {}
    for result in results:
        for item in result.allocation.items:
            if item.item.id not in details:
                order.append(item.item.id)
                details[item.item.id] = (item.item.label, item.item.category)
    moves = []
    for item_id in order:
        found_items = [next((i for i in r.allocation.items if i.item.id == item_id), None) for r in results]
        moves.append(ItemMove(item_id, *details[item_id],
                              tuple(i.rule.route if i else None for i in found_items),
                              tuple(i.rule.id if i else None for i in found_items),
                              tuple(i.deficit if i else None for i in found_items)))
    return ScenarioComparison(tuple(results), tuple(rows), tuple(moves), tuple(notes))


def _refuse_beyond_cells(rows: Sequence[MunicipalityComparison], reference, labels: Sequence[str]) -> None:
    """Each scenario's run fits its cells (`calc.bounds`); a difference between two of them (a payment against a
    refund) or the sum of the differences may not: `compare-total-too-large` (exit 3) before anything is written."""
    from ..calc.bounds import Figures

    figures, sources = Figures("compare-total-too-large"), {m.ags: m.source for m in reference.municipalities}
    hint = "die Szenarien prüfen; ein Unterschied dieser Größe lässt sich nicht auf den Cent genau ausweisen"
    for index, label in enumerate(labels[1:], start=1):
        for row in rows:
            figures.check(row.difference(index), sources[row.ags],
                          f"Vergleich, Differenz {label} − {labels[0]} für {row.name} ({row.ags})", hint)
        for what, cents in ((f"Summe {label}", sum(row.totals[index] for row in rows)),
                            (f"Differenz {label} − {labels[0]}", sum(row.difference(index) for row in rows))):
            figures.check(cents, Location(reference.path, "Gemeinden"), f"Vergleich, Zeile Summe, {what}", hint)
    if figures.problems:
        raise InputError(figures.problems)


def _eur(cents: int | None) -> Decimal | str:
    return ABSENT if cents is None else cents_to_decimal(cents)


def levy_columns(results: Sequence[ScenarioResult]) -> list[str]:
    """The levy names of all scenarios (rule files with `levies:`), in first appearance."""
    names: list[str] = []
    for result in results:
        names += [levy.levy.name for levy in result.allocation.levies if levy.levy.name not in names]
    return names


def _levies_sheet(book, comparison: ScenarioComparison) -> None:
    """`Umlagen` (only where a scenario has `levies:`): per municipality and scenario what each levy charges
    (statute mode: base × rate; derived: the exact split), by the levy's name, so scenarios that finance items
    through different levies or rates stand side by side."""
    from ..workbook.report import EUR, Sheet

    names = levy_columns(comparison.results)
    if not names:
        return
    sheet = Sheet(book, "Umlagen", ["AGS", "Gemeinde", "Szenario", *names, "Summe der Umlagen"],
                  [None, None, None, *[EUR] * (len(names) + 1)])
    per_scenario = []
    for result in comparison.results:
        by_id = result.allocation.levy_totals()
        ids = {levy.levy.name: levy.levy.id for levy in result.allocation.levies}
        per_scenario.append((result.scenario.label, by_id, ids))
    for row in comparison.municipalities:
        for label, by_id, ids in per_scenario:
            amounts = [by_id.get(row.ags, {}).get(ids[name], 0) if name in ids else None for name in names]
            sheet.append([row.ags, row.name, label, *[ABSENT if a is None else cents_to_decimal(a) for a in amounts],
                          cents_to_decimal(sum(a for a in amounts if a is not None))])
    sheet.finish()


def write_scenario_comparison(path: str | Path, comparison: ScenarioComparison) -> None:
    from ..workbook.report import write_book

    write_book(path, lambda book: _scenario_sheets(book, comparison))


def _scenario_sheets(book, comparison: ScenarioComparison) -> None:
    from ..workbook.report import EUR, POINTS, Sheet

    results = comparison.results
    labels = [r.scenario.label for r in results]
    headers = ["AGS", "Gemeinde", "Umlagegrundlagen", *[f"Summe {label}" for label in labels]]
    formats: list[str | None] = [None, None, EUR, *[EUR] * len(labels)]
    for label in labels[1:]:
        headers += [f"Differenz {label} − {labels[0]} (€)", f"Differenz {label} − {labels[0]} (Hebesatz-Punkte)"]
        formats += [EUR, POINTS]
    sheet = Sheet(book, "Vergleich", headers, formats)
    for row in comparison.municipalities:
        values: list[object] = [row.ags, row.name, cents_to_decimal(row.base), *map(cents_to_decimal, row.totals)]
        for index in range(1, len(results)):
            points = row.points(index)
            values += [cents_to_decimal(row.difference(index)), points if points is not None else ""]
        sheet.append(values)
    base_total = sum(row.base for row in comparison.municipalities)
    totals = [sum(row.totals[i] for row in comparison.municipalities) for i in range(len(results))]
    values = ["Summe", "", cents_to_decimal(base_total), *map(cents_to_decimal, totals)]
    for index in range(1, len(results)):
        difference = totals[index] - totals[0]
        points = percent_points(difference, base_total)
        values += [cents_to_decimal(difference), points if points is not None else ""]
    sheet.append(values, bold=True)
    sheet.finish()

    sheet = Sheet(book, "Wege", ["AGS", "Gemeinde", "Szenario", *[ROUTE_LABELS[r] for r in ROUTES], "Summe"],
                  [None, None, None, *[EUR] * (len(ROUTES) + 1)])
    for row in comparison.municipalities:
        for label, routes, total in zip(labels, row.routes, row.totals):
            sheet.append([row.ags, row.name, label, *[cents_to_decimal(routes[r]) for r in ROUTES],
                          cents_to_decimal(total)])
    sheet.finish()

    headers = ["ID", "Bezeichnung", "Kategorie"]
    for label in labels:
        headers += [f"Weg {label}", f"Regel {label}", f"Defizit {label}"]
    headers += ["Weg verschoben", "Änderung"]
    sheet = Sheet(book, "Verschiebungen", headers, [None] * 3 + [None, None, EUR] * len(labels) + [None, None])
    for move in comparison.items:
        values = [move.item_id, move.label, move.category]
        for route, rule, deficit in zip(move.routes, move.rules, move.deficits):
            values += [ROUTE_LABELS[route] if route else ABSENT, rule or ABSENT, _eur(deficit)]
        change = " → ".join(f"{label}: {ROUTE_LABELS[route] if route else 'nicht vorhanden'}"
                            for label, route in zip(labels, move.routes)) if move.moved else ""
        if not move.moved and move.changed:
            change = "gleicher Weg, anderes Defizit"
        values += ["ja" if move.moved else "nein", change]
        sheet.append(values)
    sheet.finish()

    from ..workbook.report import FINDING_KINDS

    sheet = Sheet(book, "Hinweise", ["Szenario", "Art", "AGS", "Gemeinde", "Kategorie",
                                     "Eigene Kosten (Trägerkommune)", "Umlageanteil für die Leistung an andere",
                                     "Gesamt", "Angerechnet (credit_hosts)", "Hinweis"],
                  [None] * 5 + [EUR] * 4 + [None])
    for result in results:
        for finding in result.allocation.findings:
            sheet.append([result.scenario.label, FINDING_KINDS.get(finding.code, finding.code), finding.ags,
                          finding.name, finding.category, cents_to_decimal(finding.own_cost),
                          cents_to_decimal(finding.levy_share), cents_to_decimal(finding_total(finding)),
                          cents_to_decimal(finding.credit), finding.message])
    for note in comparison.notes:
        sheet.append(["", "Hinweis zum Vergleich", "", "", "", "", "", "", "", note])
    sheet.finish()

    _levies_sheet(book, comparison)
    sheet = Sheet(book, "Szenarien", ["Nr", "Szenario", "Eingabe-Arbeitsmappe", "SHA-256 Eingabe", "Regeldatei",
                                      "SHA-256 Regeldatei", "Kreis", "Haushaltsjahr", "Summe verteilt"],
                  [None] * 8 + [EUR])
    for number, result in enumerate(results, start=1):
        inputs, rulebook = result.allocation.book, result.allocation.rulebook
        sheet.append([number, result.scenario.label, inputs.path, inputs.sha256, rulebook.path, rulebook.sha256,
                      inputs.parameters.district, inputs.parameters.year,
                      cents_to_decimal(sum(item.deficit for item in result.allocation.items))])
    sheet.finish(autofilter=False)


# --- year over year --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LevyLine:
    """One row of an output's `Umlagen` sheet: a levy's line for one municipality."""

    levy: str  # the levy's name as in the sheet
    ags: str
    name: str
    base: Fraction  # cents: Bemessungsgrundlage × Faktor (extent) where the levy has one
    rate: Decimal | None  # percent; None if the line has no single statute rate (derived, or rates per component)
    amount: int  # cents


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What year-over-year needs from an output workbook."""

    path: str
    district: str
    year: int
    names: Mapping[str, str]  # AGS -> Gemeinde
    routes: Mapping[str, Mapping[str, int]]  # AGS -> route -> cents (routes absent in the workbook are 0)
    levy_lines: tuple[LevyLine, ...] = ()  # the `Umlagen` sheet's lines; () without that sheet
    has_levies: bool = False  # the workbook has an `Umlagen` sheet
    unit: int = 1  # rounding unit in cents (Protokoll `Rundung`)


@dataclass(frozen=True, slots=True)
class YearRow:
    ags: str
    name: str
    before: Mapping[str, int] | None  # route -> cents; None if the municipality is absent that year
    after: Mapping[str, int] | None

    @property
    def total_before(self) -> int | None:
        return None if self.before is None else sum(self.before.values())

    @property
    def total_after(self) -> int | None:
        return None if self.after is None else sum(self.after.values())

    @property
    def change(self) -> int | None:
        if self.before is None or self.after is None:
            return None
        return self.total_after - self.total_before

    @property
    def change_percent(self) -> Decimal | None:
        """Change ÷ previous total × 100, 2 decimals; None without a previous total."""
        if self.change is None:
            return None
        return percent_points(self.change, self.total_before, 2)

    def share(self, route: str, after: bool) -> Fraction | None:
        """The route's share of the municipality's total that year (0..1), None if there is no total."""
        routes = self.after if after else self.before
        if routes is None or sum(routes.values()) == 0:
            return None
        return Fraction(routes.get(route, 0), sum(routes.values()))

    def share_change_points(self, route: str) -> Decimal | None:
        """Change of the route's share, in percentage points (4 decimals)."""
        before, after = self.share(route, False), self.share(route, True)
        if before is None or after is None:
            return None
        return fraction_to_decimal((after - before) * 100, 4)


def _not_output(path: str, sheet: str | None, message: str, found: str | None = None) -> InputError:
    return InputError([Problem("compare-not-an-output", Location(path, sheet), message, found=found,
                               expected="eine Ergebnis-Arbeitsmappe von `allocation run` (Blätter Uebersicht und "
                                        "Protokoll)",
                               hint="zwei von `allocation run` geschriebene Ergebnis-Arbeitsmappen angeben oder für "
                                    "Szenarien --rules verwenden")])


def read_result(source: "str | Path | Earlier") -> ResultSummary:
    """Read an output workbook's Uebersicht and Protokoll, as read and checked by `readback.read_output` (or a
    path: then its bounds alone are checked). Raises InputError (compare-*)."""
    import openpyxl

    from ..runs.readback import Earlier, output_bytes
    from ..workbook.safety import DAMAGED_WORKBOOK

    source = source if isinstance(source, Earlier) else output_bytes(source, "compare-unreadable")
    path = str(source.path)

    def unreadable(error: Exception, sheet: str | None = None) -> InputError:
        return InputError([Problem("compare-unreadable", Location(path, sheet), "Die Arbeitsmappe lässt sich nicht lesen",
                                   found=type(error).__name__ + (f": {error}"[:200] if str(error) else ""),
                                   expected="eine Ergebnis-Arbeitsmappe (.xlsx)",
                                   hint="den Pfad prüfen; ist die Datei beschädigt, den Lauf wiederholen")])

    try:
        workbook = openpyxl.load_workbook(source.stream(), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a file that is no workbook
        raise unreadable(error) from None
    try:
        for sheet in ("Uebersicht", "Protokoll"):
            if sheet not in workbook.sheetnames:
                raise _not_output(path, None, f"Blatt {sheet} fehlt", found=", ".join(workbook.sheetnames))
        sheet = "Protokoll"
        try:  # read-only sheets parse as they stream: a damaged part fails here, not at opening
            protocol_rows = list(workbook["Protokoll"].iter_rows(min_row=2, values_only=True))
            sheet = "Uebersicht"
            rows = list(workbook["Uebersicht"].iter_rows(values_only=True))
            sheet = "Umlagen"
            levy_rows = (list(workbook["Umlagen"].iter_rows(values_only=True)) if "Umlagen" in workbook.sheetnames
                         else None)
        except DAMAGED_WORKBOOK as error:
            raise unreadable(error, sheet) from None
    finally:
        workbook.close()
    protocol = {row[0]: row[1] if len(row) > 1 else None for row in protocol_rows if row and row[0] is not None}
    year = protocol.get("Haushaltsjahr")
    if isinstance(year, bool) or not isinstance(year, (int, float)) or not math.isfinite(year) or int(year) != year:
        raise _not_output(path, "Protokoll", "Das Protokoll nennt kein Haushaltsjahr", found=repr(year))
    header = [str(h) if h is not None else "" for h in rows[0]] if rows else []
    labels = {label: route for route, label in ROUTE_LABELS.items()}
    if header[:2] != ["AGS", "Gemeinde"] or "Summe" not in header:
        raise _not_output(path, "Uebersicht", "Die Uebersicht hat nicht die erwarteten Spaltenüberschriften", found=", ".join(header))
    route_columns = {index: labels[h] for index, h in enumerate(header) if h in labels}
    # a run with `levies:` has one column per levy (its name) between Umlagegrundlagen and Summe: kept by name
    first = header.index("Umlagegrundlagen") + 1 if "Umlagegrundlagen" in header else 2
    route_columns.update({index: header[index] for index in range(first, header.index("Summe"))
                          if index not in route_columns and header[index]})
    names: dict[str, str] = {}
    routes: dict[str, dict[str, int]] = {}
    problems = []
    for number, row in enumerate(rows[1:], start=2):
        ags = str(row[0]) if row[0] is not None else ""
        if ags == "Summe" or not ags:
            continue
        names[ags] = str(row[1] or "")
        routes[ags] = {route: 0 for route in ROUTES} | {column: 0 for column in route_columns.values()}
        for index, route in route_columns.items():
            value = row[index] if index < len(row) else None
            try:
                routes[ags][route] = cents_from_decimal(decimal_from_cell(0 if value is None else value))
            except ValueError:
                problems.append(Problem("compare-bad-cell", Location(path, "Uebersicht", number, index + 1),
                                        f"{header[index]} von {ags} ist kein Betrag", found=repr(value),
                                        expected="ein Betrag in Euro",
                                        hint="die Arbeitsmappe so verwenden, wie `allocation run` sie geschrieben hat"))
    lines = _levy_lines(path, levy_rows, problems) if levy_rows is not None else ()
    if problems:
        raise InputError(problems)
    unit = ROUNDING_UNITS.get(str(protocol.get("Rundung") or "Cent"), 1)
    return ResultSummary(path, str(protocol.get("Kreis") or ""), int(year), names, routes, lines,
                         levy_rows is not None, unit)


def read_pair(first: str | Path, second: str | Path) -> tuple[ResultSummary, ResultSummary]:
    """Two output workbooks to compare year over year (or stage by stage), each through `readback.read_output`:
    within bounds, matching its manifest (else exit 7), and the second of the first one's district
    (`compare-other-district`, exit 3). Their years may be the same (stages: warning `compare-same-year`)."""
    from ..runs.readback import Relation, read_output

    before = read_output(first, "compare-unreadable", missing_code="compare-not-an-output")
    after = read_output(second, "compare-unreadable", Relation(district=before.district, label="Die zweite "
                                                                "Ergebnis-Arbeitsmappe"),
                        mismatch_code="compare-other-district", missing_code="compare-not-an-output")
    return read_result(before), read_result(after)


def _levy_lines(path: str, rows: list[tuple], problems: list[Problem]) -> tuple[LevyLine, ...]:
    """The municipality lines of an `Umlagen` sheet (totals, need and difference rows are skipped)."""
    header = [str(h) if h is not None else "" for h in rows[0]] if rows else []
    needed = ("Umlage", "AGS", "Gemeinde", "Bemessungsgrundlage", "Satz (%)", "Betrag", "Berechnung")
    if any(name not in header for name in needed):
        raise _not_output(path, "Umlagen", "Das Blatt Umlagen hat nicht die erwarteten Spaltenüberschriften",
                          found=", ".join(header))
    column = {name: header.index(name) for name in needed}
    factor_column = header.index("Faktor (extent)") if "Faktor (extent)" in header else None
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        row = tuple(row) + (None,) * (len(header) - len(row))
        ags = row[column["AGS"]]
        if not isinstance(ags, str) or not (ags.isascii() and ags.isdigit()):
            continue  # Summe, Umlagebedarf, Aufkommen − Bedarf

        def number_at(name: str, index: int) -> Decimal | None:
            value = row[index]
            try:
                return decimal_from_cell(value)
            except ValueError:
                problems.append(Problem("compare-bad-cell", Location(path, "Umlagen", number, index + 1),
                                        f"{name} von {ags} ist keine Zahl", found=repr(value), expected="eine Zahl",
                                        hint="die Arbeitsmappe so verwenden, wie `allocation run` sie geschrieben hat"))
                return None

        base = number_at("Bemessungsgrundlage", column["Bemessungsgrundlage"])
        amount = number_at("Betrag", column["Betrag"])
        factor = number_at("Faktor (extent)", factor_column) if factor_column is not None and \
            row[factor_column] not in (None, "") else Decimal(1)
        rate_cell = row[column["Satz (%)"]]
        statute = row[column["Berechnung"]] == STATUTE and isinstance(rate_cell, (int, float)) \
            and not isinstance(rate_cell, bool)
        if base is None or amount is None or factor is None:
            continue
        try:
            cents = cents_from_decimal(amount)
        except ValueError:
            problems.append(Problem("compare-bad-cell", Location(path, "Umlagen", number, column["Betrag"] + 1),
                                    f"Betrag von {ags} ist kein Betrag in Euro", found=repr(row[column["Betrag"]]),
                                    expected="ein Betrag in Euro mit höchstens zwei Nachkommastellen",
                                    hint="die Arbeitsmappe so verwenden, wie `allocation run` sie geschrieben hat"))
            continue
        lines.append(LevyLine(str(row[column["Umlage"]] or ""), ags, str(row[column["Gemeinde"]] or ""),
                              Fraction(base) * 100 * Fraction(factor),
                              decimal_from_cell(rate_cell) if statute else None, cents))
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class EffectRow:
    """One levy × municipality between two stages: amounts, and the effects where both lines have a rate."""

    levy: str
    ags: str
    name: str
    before: LevyLine | None
    after: LevyLine | None
    effects: Effects | None  # None if a side is missing or has no single statute rate

    @property
    def change(self) -> int | None:
        return None if self.before is None or self.after is None else self.after.amount - self.before.amount

    @property
    def sentence(self) -> str:
        if self.before is None:
            return f"Die {self.levy} von {self.name} ist neu: {format_eur(self.after.amount)}."
        if self.after is None:
            return f"Die {self.levy} von {self.name} entfällt (zuvor {format_eur(self.before.amount)})."
        if self.effects is None:
            change = self.change
            verb = "steigt" if change > 0 else "sinkt" if change < 0 else "bleibt unverändert"
            amount = f" um {format_eur(abs(change))}" if change else ""
            return (f"Die {self.levy} von {self.name} {verb}{amount}; ohne einheitlichen Hebesatz auf beiden Seiten "
                    "wird die Änderung nicht in Grundlagen- und Satzwirkung zerlegt.")
        return describe(self.levy, self.name, self.effects)


def levy_effects(before: ResultSummary, after: ResultSummary) -> tuple[EffectRow, ...]:
    """Per levy (in the order the workbooks list them) and municipality (AGS order): base and rate effect of the
    change. The later stage's rounding unit applies to the rate effect."""
    old = {(line.levy, line.ags): line for line in before.levy_lines}
    new = {(line.levy, line.ags): line for line in after.levy_lines}
    levies = list(dict.fromkeys([line.levy for line in before.levy_lines] + [line.levy for line in after.levy_lines]))
    rows = []
    for levy in levies:
        for ags in sorted({a for (l, a) in old if l == levy} | {a for (l, a) in new if l == levy}):
            a, b = old.get((levy, ags)), new.get((levy, ags))
            effects = None
            if a is not None and b is not None and a.rate is not None and b.rate is not None:
                effects = decompose(a.base, a.rate, a.amount, b.base, b.rate, b.amount, after.unit)
            rows.append(EffectRow(levy, ags, (b or a).name, a, b, effects))
    return tuple(rows)


def year_over_year(before: ResultSummary, after: ResultSummary) -> tuple[tuple[YearRow, ...], list[Problem]]:
    """Rows over the union of both years' municipalities (AGS order), and warnings (same year, other district)."""
    warnings = []
    if before.year == after.year:
        warnings.append(Problem("compare-same-year", Location(after.path, "Protokoll"),
                                "Beide Arbeitsmappen gehören zum selben Haushaltsjahr", found=str(after.year),
                                expected=f"ein anderes Jahr als {before.year}",
                                hint="für Szenarien eines Jahres --rules verwenden", severity="warning"))
    if not same_district(before.district, after.district):
        warnings.append(Problem("compare-other-district", Location(after.path, "Protokoll"),
                                "Die Arbeitsmappen gehören zu verschiedenen Kreisen", found=after.district,
                                expected=before.district, hint="zwei Jahre desselben Kreises vergleichen",
                                severity="warning"))
    rows = []
    for ags in sorted(set(before.routes) | set(after.routes)):
        rows.append(YearRow(ags, after.names.get(ags) or before.names.get(ags, ""), before.routes.get(ags),
                            after.routes.get(ags)))
    _refuse_changes_beyond_cells(rows, after)
    return tuple(rows), warnings


def _refuse_changes_beyond_cells(rows: Sequence[YearRow], after: ResultSummary) -> None:
    """The change between two years, per municipality and route and in total, must fit a cell like the amounts
    (a payment one year, a refund the next): `compare-total-too-large` (exit 3) before anything is written."""
    from ..calc.bounds import Figures

    figures, where = Figures("compare-total-too-large"), Location(after.path, "Uebersicht")
    hint = "die Ergebnis-Arbeitsmappen prüfen; eine Änderung dieser Größe lässt sich nicht auf den Cent genau ausweisen"
    for row in rows:
        for route in dict.fromkeys([*(row.before or {}), *(row.after or {})]):
            if row.before is not None and row.after is not None:
                figures.check(row.after.get(route, 0) - row.before.get(route, 0), where,
                              f"Vergleich, Änderung {ROUTE_LABELS.get(route, route)} für {row.name} ({row.ags})", hint)
        for what, cents in (("Summe vorher", row.total_before), ("Summe nachher", row.total_after),
                            ("Änderung", row.change)):
            if cents is not None:
                figures.check(cents, where, f"Vergleich, {what} für {row.name} ({row.ags})", hint)
    before_total = sum(r.total_before or 0 for r in rows)
    after_total = sum(r.total_after or 0 for r in rows)
    for what, cents in (("Summe vorher", before_total), ("Summe nachher", after_total),
                        ("Änderung", after_total - before_total)):
        figures.check(cents, where, f"Vergleich, Zeile Summe, {what}", hint)
    if figures.problems:
        raise InputError(figures.problems)


def _optional(value: object) -> object:
    return "" if value is None else value


def write_year_comparison(path: str | Path, before: ResultSummary, after: ResultSummary,
                          rows: Sequence[YearRow]) -> None:
    from ..workbook.report import write_book

    a, b = str(before.year), str(after.year)
    if a == b:
        a, b = f"{a} ({Path(before.path).name})", f"{b} ({Path(after.path).name})"
    write_book(path, lambda book: _year_sheets(book, before, after, rows, a, b))


def _year_sheets(book, before: ResultSummary, after: ResultSummary, rows: Sequence[YearRow], a: str, b: str) -> None:
    from ..workbook.report import EUR, POINTS, Sheet

    sheet = Sheet(book, "Vergleich", ["AGS", "Gemeinde", f"Summe {a}", f"Summe {b}", "Änderung (€)",
                                      "Änderung (%)"], [None, None, EUR, EUR, EUR, "0.00"])
    for row in rows:
        sheet.append([row.ags, row.name, _eur(row.total_before), _eur(row.total_after),
                      _eur(row.change), _optional(row.change_percent)])
    total_before = sum(r.total_before or 0 for r in rows)
    total_after = sum(r.total_after or 0 for r in rows)
    percent = percent_points(total_after - total_before, total_before, 2)
    sheet.append(["Summe", "", cents_to_decimal(total_before), cents_to_decimal(total_after),
                  cents_to_decimal(total_after - total_before), _optional(percent)], bold=True)
    sheet.finish()

    sheet = Sheet(book, "Wege", ["AGS", "Gemeinde", "Weg", f"Betrag {a}", f"Betrag {b}", "Änderung (€)",
                                 f"Anteil an der Summe {a} (%)", f"Anteil an der Summe {b} (%)",
                                 "Änderung des Anteils (Prozentpunkte)"],
                  [None, None, None, EUR, EUR, EUR, POINTS, POINTS, POINTS])
    for row in rows:
        columns = dict.fromkeys([*ROUTES, *(row.before or {}), *(row.after or {})])  # routes, then levy columns
        for route in columns:
            amount_before = row.before.get(route, 0) if row.before is not None else None
            amount_after = row.after.get(route, 0) if row.after is not None else None
            if not amount_before and not amount_after:
                continue
            share_before, share_after = row.share(route, False), row.share(route, True)
            change = None if amount_before is None or amount_after is None else amount_after - amount_before
            sheet.append([row.ags, row.name, ROUTE_LABELS.get(route, route), _eur(amount_before), _eur(amount_after),
                          _eur(change),
                          _optional(None if share_before is None else fraction_to_decimal(share_before * 100, 4)),
                          _optional(None if share_after is None else fraction_to_decimal(share_after * 100, 4)),
                          _optional(row.share_change_points(route))])
    sheet.finish()

    sheet = Sheet(book, "Jahre", ["Angabe", a, b], [None, None, None])
    sheet.append(["Ergebnis-Arbeitsmappe", before.path, after.path])
    sheet.append(["Kreis", before.district, after.district])
    sheet.append(["Haushaltsjahr", before.year, after.year])
    sheet.append(["Gemeinden", len(before.routes), len(after.routes)])
    sheet.finish(autofilter=False)
    if before.has_levies and after.has_levies:
        _effects_sheet(book, levy_effects(before, after), a, b)


def _effects_sheet(book, rows: Sequence[EffectRow], a: str, b: str) -> None:
    from ..workbook.report import EUR, Sheet

    def base(line: LevyLine | None) -> object:
        return ABSENT if line is None else fraction_to_decimal(line.base / 100, 2)

    def rate(line: LevyLine | None) -> object:
        return ABSENT if line is None else line.rate if line.rate is not None else "kein einheitlicher Satz"

    sheet = Sheet(book, EFFECT_SHEET,
                  ["Umlage", "AGS", "Gemeinde", f"Grundlage {a}", f"Grundlage {b}", f"Satz {a} (%)",
                   f"Satz {b} (%)", f"Betrag {a}", f"Betrag {b}", "Änderung (€)",
                   "Grundlagenwirkung (€) = ΔGrundlage × alter Satz", "Satzwirkung (€) = neue Grundlage × ΔSatz",
                   "Erläuterung"],
                  [None, None, None, EUR, EUR, "0.0000", "0.0000", EUR, EUR, EUR, EUR, EUR, None])
    for row in rows:
        effects = row.effects
        sheet.append([row.levy, row.ags, row.name, base(row.before), base(row.after), rate(row.before),
                      rate(row.after), _eur(row.before.amount if row.before else None),
                      _eur(row.after.amount if row.after else None), _eur(row.change),
                      _eur(effects.base_effect if effects else None), _eur(effects.rate_effect if effects else None),
                      row.sentence])
    sheet.finish()
