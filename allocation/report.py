"""Allocation -> output workbook (German sheets), written atomically. The only module that writes xlsx.

Sheets: `Uebersicht` (per municipality, with a stacked bar chart), `Einzelnachweis` (item × municipality,
with the calculation proof), `Entscheidungen` (the decision trace), `Kontrollen`, `Protokoll`.
Amounts are written as exact decimals (never floats) with `#,##0.00 €` formats. Text that Excel could
read as a formula (`= + - @`) is stored as plain text with a quote prefix. The workbook is saved to a
temporary file in the target folder, flushed to disk and renamed, so no half-written workbook can exist.
"""
from __future__ import annotations

import os
import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

from . import conditions
from .controls import Control
from .model import ROUTE_LABELS, ROUTES, Allocation, AllocationLine, ItemAllocation
from .money import cents_to_decimal, fraction_to_decimal, percent_points

__all__ = ["write_workbook", "write_atomically", "proof", "SHEET_NAMES", "safe_text", "mark_provisional",
           "PROVISIONAL_NOTE"]

SHEET_NAMES = ("Uebersicht", "Einzelnachweis", "Entscheidungen", "Kontrollen", "Protokoll", "Hinweise", "Hebesaetze")
EUR = '#,##0.00 "€"'
# Rows per sheet including the header (Excel's limit). An Einzelnachweis with more lines continues on
# sheets Einzelnachweis_2, Einzelnachweis_3, ..., each with the header row. Tests lower it to check that.
MAX_ROWS = 1_048_576
POINTS = "0.0000"
SHARE = "0.0000000000"
EXACT = "#,##0.000000"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> tuple[str, bool]:
    """Text and whether it must be protected from being read as a formula."""
    return value, value.startswith(FORMULA_START)


def _de(value: Decimal) -> str:
    """German number text: 1.234.567,891 (all given decimals kept)."""
    text = f"{value:,f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def proof(item: ItemAllocation, line: AllocationLine, name: str, unit: int) -> str:
    """The calculation proof of one line, in words a reader can recompute."""
    if line.key == 0:
        return "kein Anteil (Schlüsselwert 0 oder nicht zahlungspflichtig)"
    sign = -1 if item.deficit < 0 else 1
    floor_amount = cents_to_decimal(line.amount - sign * line.extra_units * unit)
    unit_name = "Cent" if unit == 1 else "Euro"
    key = fraction_to_decimal(line.key, 6).normalize()
    total = fraction_to_decimal(item.key_total, 6).normalize()
    text = (f"{name}: {_de(key)} ÷ {_de(total)} × {_de(cents_to_decimal(item.deficit))} € "
            f"= {_de(fraction_to_decimal(line.exact / 100, 6))} € → abgerundet {_de(floor_amount)} €")
    if line.rank is None:
        text += " (kein Rest)"
    elif line.extra_units:
        text += (f" + 1 {unit_name} aus dem Rest (Rang {line.rank} nach größtem Rest; bei gleichem Rest "
                 "entscheidet die kleinere AGS)")
    else:
        text += f" (Rest auf Rang {line.rank}: keine Resteinheit mehr übrig)"
    return f"{text} = {_de(cents_to_decimal(line.amount))} €"


def _decimal(value: Fraction, places: int) -> Decimal:
    return fraction_to_decimal(value, places)


class _Sheet:
    """A worksheet with a header row, typed writes, frozen header, auto-filter and column widths."""

    def __init__(self, workbook, title: str, headers: Sequence[str], formats: Sequence[str | None]) -> None:
        from openpyxl.styles import Alignment, Font, PatternFill

        self.ws = workbook.create_sheet(title)
        self.formats = list(formats)
        self.widths = [len(h) + 2 for h in headers]
        for c, header in enumerate(headers, start=1):
            cell = self.ws.cell(row=1, column=c, value=header)
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        self.row = 1

    def append(self, values: Iterable[object], bold: bool = False) -> None:
        from openpyxl.styles import Font

        self.row += 1
        for c, value in enumerate(values, start=1):
            cell = self.ws.cell(row=self.row, column=c)
            if isinstance(value, str):
                text, protect = safe_text(value)
                cell.value = text
                if protect:
                    cell.data_type = "s"
                    cell.quotePrefix = True
            else:
                cell.value = value
            fmt = self.formats[c - 1] if c - 1 < len(self.formats) else None
            if fmt and isinstance(value, (int, Decimal)):
                cell.number_format = fmt
            if bold:
                cell.font = Font(bold=True)
            shown = len(f"{value:,.2f}") + 3 if isinstance(value, Decimal) else len(str(value or ""))
            self.widths[c - 1] = max(self.widths[c - 1], min(shown + 1, 80))

    def finish(self, autofilter: bool = True) -> None:
        from openpyxl.utils import get_column_letter

        self.ws.freeze_panes = "A2"
        if autofilter and self.row > 1:
            self.ws.auto_filter.ref = f"A1:{get_column_letter(len(self.widths))}{self.row}"
        for c, width in enumerate(self.widths, start=1):
            self.ws.column_dimensions[get_column_letter(c)].width = width


def _uebersicht(workbook, allocation: Allocation) -> None:
    from openpyxl.chart import BarChart, Reference

    used = [route for route in ROUTES if any(item.rule.route == route for item in allocation.items)] or list(ROUTES[:1])
    headers = ["AGS", "Gemeinde", "Umlagegrundlagen", *[ROUTE_LABELS[r] for r in used], "Summe",
               "Hebesatz-Punkte (Summe ÷ Umlagegrundlagen × 100)"]
    sheet = _Sheet(workbook, "Uebersicht", headers, [None, None, EUR, *[EUR] * len(used), EUR, POINTS])
    totals = allocation.totals()
    for m in sorted(allocation.book.municipalities, key=lambda m: m.ags):
        routes = totals[m.ags]
        total = sum(routes.values())
        points = percent_points(total, m.base)
        sheet.append([m.ags, m.name, cents_to_decimal(m.base), *[cents_to_decimal(routes[r]) for r in used],
                      cents_to_decimal(total), points if points is not None else ""])
    base_total = sum(m.base for m in allocation.book.municipalities)
    grand = sum(sum(r.values()) for r in totals.values())
    points = percent_points(grand, base_total)
    sheet.append(["Summe", "", cents_to_decimal(base_total),
                  *[cents_to_decimal(sum(t[r] for t in totals.values())) for r in used],
                  cents_to_decimal(grand), points if points is not None else ""], bold=True)
    sheet.finish()
    count = len(allocation.book.municipalities)
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = "Belastung je Gemeinde nach Finanzierungsweg"
    chart.y_axis.title = "€"
    chart.y_axis.numFmt = "#,##0"
    data = Reference(sheet.ws, min_col=4, max_col=3 + len(used), min_row=1, max_row=1 + count)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(sheet.ws, min_col=2, min_row=2, max_row=1 + count))
    chart.height = max(8, 0.6 * count + 3)
    chart.width = 22
    sheet.ws.add_chart(chart, f"A{count + 5}")


def _einzelnachweis(workbook, allocation: Allocation) -> None:
    headers = ["ID", "AGS", "Gemeinde", "Regel", "Weg", "Schlüssel", "Schlüsselwert", "Schlüsselsumme",
               "Anteil (exakt)", "Betrag ungerundet", "Betrag gerundet", "Resteinheiten", "Rang (größter Rest)",
               "Nachweis"]
    formats = [None, None, None, None, None, None, "#,##0.######", "#,##0.######", SHARE, EXACT, EUR, "0", "0", None]
    sheet = _Sheet(workbook, "Einzelnachweis", headers, formats)
    names = {m.ags: m.name for m in allocation.book.municipalities}
    unit = allocation.book.parameters.unit
    part = 1
    for item in allocation.items:
        for line in sorted(item.lines, key=lambda l: l.ags):
            if sheet.row >= MAX_ROWS:  # Excel's last row: continue on Einzelnachweis_2, _3, ... (same header)
                sheet.finish()
                part += 1
                sheet = _Sheet(workbook, f"Einzelnachweis_{part}", headers, formats)
            sheet.append([item.item.id, line.ags, names[line.ags], item.rule.id, ROUTE_LABELS[item.rule.route],
                          item.key_label, _decimal(line.key, 6), _decimal(item.key_total, 6),
                          _decimal(line.share, 10), _decimal(line.exact / 100, 6), cents_to_decimal(line.amount),
                          line.extra_units, line.rank if line.rank is not None else "",
                          proof(item, line, names[line.ags], unit)])
    sheet.finish()


def _entscheidungen(workbook, allocation: Allocation) -> None:
    headers = ["ID", "Bezeichnung", "Kategorie", "Träger", "Eingabezeile", "Förderfähige Kosten", "Förderung",
               "Defizit (exakt)", "Defizit (gerundet)", "Regel", "Regeldatei:Zeile", "Weg", "Weg (Kennung)",
               "Kostenbestandteile", "Schlüssel", "Rechtsgrundlage", "Begründung (Bedingung mit Werten)",
               "Alle passenden Regeln", "Beschreibung der Regel"]
    formats = [None] * 5 + [EUR] * 4 + [None] * 10
    sheet = _Sheet(workbook, "Entscheidungen", headers, formats)
    for item in allocation.items:
        rule = item.rule
        sheet.append([item.item.id, item.item.label, item.item.category, item.item.host,
                      item.item.source.cell or "", cents_to_decimal(item.eligible), cents_to_decimal(item.item.funding),
                      cents_to_decimal(item.deficit_exact), cents_to_decimal(item.deficit), rule.id,
                      f"{rule.source.file}:{rule.source.line}", ROUTE_LABELS[rule.route], rule.route,
                      ", ".join(rule.components), item.key_label, rule.legal_basis,
                      conditions.explain(rule.when, item.item.attrs), ", ".join(item.decision.matched),
                      rule.description])
    sheet.finish()


def _kontrollen(workbook, controls: Sequence[Control]) -> None:
    sheet = _Sheet(workbook, "Kontrollen", ["Kontrolle", "ID", "Soll", "Ist", "Differenz", "Ergebnis"],
                   [None, None, EUR, EUR, EUR, None])
    for control in controls:
        is_money = not control.name.startswith("Anteile")
        show = cents_to_decimal if is_money else (lambda v: v)
        sheet.append([control.name, control.item_id or "", show(control.expected), show(control.actual),
                      show(control.difference), "OK" if control.ok else "FEHLER"])
    sheet.finish()


def _protokoll(workbook, rows: Sequence[tuple[str, object]]) -> None:
    sheet = _Sheet(workbook, "Protokoll", ["Angabe", "Wert"], [None, None])
    for key, value in rows:
        sheet.append([key, value])
    sheet.finish(autofilter=False)


FINDING_KINDS = {"double-burden": "Doppelbelastung", "host-credited": "Anrechnung (credit_hosts)"}


def _hinweise(workbook, allocation: Allocation) -> None:
    """Findings (not errors): double burdens of host municipalities and host credits."""
    sheet = _Sheet(workbook, "Hinweise", ["Art", "Kennung", "AGS", "Gemeinde", "Kategorie",
                                          "Eigene Kosten (Trägerkommune)", "Umlageanteil für die Leistung an andere",
                                          "Gesamt", "Angerechnet (credit_hosts)", "Hinweis"],
                   [None] * 5 + [EUR] * 4 + [None])
    for finding in allocation.findings:
        sheet.append([FINDING_KINDS.get(finding.code, finding.code), finding.code, finding.ags, finding.name,
                      finding.category, cents_to_decimal(finding.own_cost), cents_to_decimal(finding.levy_share),
                      cents_to_decimal(finding.own_cost + finding.levy_share), cents_to_decimal(finding.credit),
                      finding.message])
    if not allocation.findings:
        sheet.append(["keine Hinweise", "", "", "", "", "", "", "", "", "keine Doppelbelastung gefunden"])
    sheet.finish()


def _hebesaetze(workbook, allocation: Allocation) -> None:
    """Levy rates: the printed rate per levy item and what it yields, next to the exact split."""
    from .rates import levy_rates

    sheet = _Sheet(workbook, "Hebesaetze", [
        "ID", "Regel", "Weg", "AGS", "Gemeinde", "Bemessungsgrundlage", "Hebesatz exakt (%)",
        "Hebesatz gedruckt (%)", "Betrag nach gedrucktem Hebesatz", "Betrag exakte Verteilung",
        "Differenz (Hebesatz − exakt)"], [None] * 5 + [EUR, "0.0000000000", "0.0000", EUR, EUR, EUR])
    names = {m.ags: m.name for m in allocation.book.municipalities}
    for levy in levy_rates(allocation):
        exact = _decimal(levy.rate_exact, 10)
        for line in levy.lines:
            sheet.append([levy.item_id, levy.rule_id, ROUTE_LABELS[levy.route], line.ags, names[line.ags],
                          _decimal(line.base / 100, 2), exact, levy.rate, cents_to_decimal(line.at_rate),
                          cents_to_decimal(line.exact_split), cents_to_decimal(line.difference)])
        sheet.append([levy.item_id, levy.rule_id, ROUTE_LABELS[levy.route], "Summe", "Bedarf (Defizit)",
                      _decimal(levy.base_total / 100, 2), exact, levy.rate, cents_to_decimal(levy.total_at_rate),
                      cents_to_decimal(levy.need), cents_to_decimal(levy.difference)], bold=True)
    sheet.finish()


PROVISIONAL_NOTE = ("VORLÄUFIG (§ 56 Abs. 1 KrO NRW): Haushaltssatzung noch nicht in Kraft, berechnet mit den "
                    "Hebesätzen und Umlagegrundlagen des Vorjahres")


def mark_provisional(workbook, note: str = PROVISIONAL_NOTE) -> None:
    """Mark every sheet as provisional: a red note right of the header row, red tab, print header and footer.

    The note sits one column right of the last header so that the header row itself (a format contract)
    keeps its columns.
    """
    from openpyxl.styles import Font, PatternFill

    for ws in workbook.worksheets:
        column = (ws.max_column or 0) + 2
        cell = ws.cell(row=1, column=column, value=note)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="C00000")
        ws.sheet_properties.tabColor = "C00000"
        for part in (ws.oddHeader.center, ws.oddFooter.center):
            part.text = note
            part.color = "C00000"


def write_atomically(path: str | Path, save) -> None:
    """Call `save(temp_path)`, fsync, then rename over `path`; the temp file never survives a failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save(temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_workbook(path: str | Path, allocation: Allocation, controls: Sequence[Control],
                   protocol: Sequence[tuple[str, object]], provisional: str | None = None) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    _uebersicht(workbook, allocation)
    _einzelnachweis(workbook, allocation)
    _entscheidungen(workbook, allocation)
    _kontrollen(workbook, controls)
    _protokoll(workbook, protocol)
    _hinweise(workbook, allocation)
    _hebesaetze(workbook, allocation)
    if provisional:
        mark_provisional(workbook, provisional)
    write_atomically(path, workbook.save)
