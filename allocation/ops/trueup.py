"""Spitzabrechnung (true-up): what each municipality paid to the Kreis under a year's final run versus what it owes on actuals.

Paid is read from the final run's output workbook, item by item: sheet `Einzelnachweis` (and its
continuations `Einzelnachweis_2`, ...), columns `ID`, `AGS`, `Weg`, `Betrag gerundet`, exact to the cent. With
levies (the rule file's `levies:`, sheet `Umlagen`), the levy routes are what each levy's line charged (column
`Betrag` of `Umlagen`; with a statute rate that is base × rate, not the split of the items), and only direct
billing and host items come from `Einzelnachweis`. The sum per municipality must equal its `Summe` in
`Uebersicht`, and its `Protokoll` must say `Laufart: Echtlauf`. Owed is recomputed by the normal pipeline from the actual figures (an input workbook of the same
district and year) and the rule file. Difference = owed − paid: positive means the municipality pays the
difference (Nachzahlung), negative means it is refunded (Erstattung).

Only money that flows between a municipality and the Kreis is settled: the levies and direct billing. What a
host municipality bears itself (`host_bears`) never went to the Kreis, so its change is shown for information
and settled by nobody. The settlement workbook has sheets `Spitzabrechnung` (settled amounts per
municipality), `Positionen` (each municipality's difference by item and route, settled or for information)
and `Protokoll`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.model import LEVY_ROUTES, ROUTE_LABELS, same_district
from ..core.money import cents_from_decimal, cents_to_decimal, decimal_from_cell
from ..runs.readback import EarlierRefused
from ..core.problems import InputError, Location, Problem

if TYPE_CHECKING:
    from ..runs.readback import Earlier

__all__ = ["SettlementLine", "ItemLine", "Settlement", "read_paid", "settle", "write_settlement", "SHEETS",
           "SETTLED_ROUTES"]

SHEETS = ("Spitzabrechnung", "Positionen", "Protokoll")
# What a municipality pays to the Kreis; `host_bears` stays with the host and is shown for information only.
SETTLED_ROUTES = (*LEVY_ROUTES, "direct_billing")
_ROUTE_IDS = {label: route for route, label in ROUTE_LABELS.items()}
_PROOF_COLUMNS = ("ID", "AGS", "Weg", "Betrag gerundet")
HOST_NOTE = "nur zur Information (trägt die Trägerkommune selbst, keine Zahlung an den Kreis)"


def _result(difference: int) -> str:
    return "Nachzahlung" if difference > 0 else "Erstattung" if difference < 0 else "ausgeglichen"


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One municipality: the settled amounts only (levies and direct billing)."""

    ags: str
    name: str
    paid: int   # cents
    owed: int   # cents

    @property
    def difference(self) -> int:
        return self.owed - self.paid

    @property
    def result(self) -> str:
        return _result(self.difference)


@dataclass(frozen=True, slots=True)
class ItemLine:
    """One municipality × item × route: paid under the final run, owed on actuals."""

    ags: str
    name: str
    item_id: str
    route: str  # route identifier (ROUTES)
    paid: int   # cents
    owed: int   # cents

    @property
    def difference(self) -> int:
        return self.owed - self.paid

    @property
    def settled(self) -> bool:
        return self.route in SETTLED_ROUTES


@dataclass(frozen=True, slots=True)
class Settlement:
    district: str
    year: int
    lines: tuple[SettlementLine, ...]
    protocol: tuple[tuple[str, object], ...]
    items: tuple[ItemLine, ...] = ()


@dataclass(frozen=True, slots=True)
class _Paid:
    district: str
    year: int
    amounts: dict[str, tuple[str, int]]  # AGS -> (name, Summe of Uebersicht), every route
    sha256: str
    items: dict[tuple[str, str, str], int]  # (AGS, item ID, route) -> cents, from Einzelnachweis
    levies: dict[tuple[str, str], int] | None = None  # (AGS, levy name) -> cents, from Umlagen; None = no levies


def _unreadable(path: Path, error: Exception, sheet: str | None = None) -> InputError:
    found = error.strerror if isinstance(error, OSError) and error.strerror else (
        type(error).__name__ + (f": {error}"[:200] if str(error) else ""))
    return InputError([Problem("trueup-unreadable", Location(str(path), sheet), "Die Arbeitsmappe des Echtlaufs lässt "
                               "sich nicht lesen", found=found, expected="die Ergebnis-Arbeitsmappe eines Echtlaufs",
                               hint="den Pfad prüfen; ist die Datei beschädigt, die Sicherung des Echtlaufs nehmen")])


def _proof_sheets(sheetnames: list[str]) -> list[str]:
    """`Einzelnachweis`, then its continuations `Einzelnachweis_2`, `_3`, ... in number order."""
    parts = [(int(s.rpartition("_")[2]), s) for s in sheetnames
             if s.startswith("Einzelnachweis_") and s.rpartition("_")[2].isdigit()]
    return ["Einzelnachweis", *(s for _, s in sorted(parts))]


def _bad_amount(name: str, sheet: str, row: int, column: int, value: object) -> Problem:
    return Problem("trueup-bad-output", Location(name, sheet, row, column), "Der Betrag ist keine Zahl in "
                   "Cent-Genauigkeit", found=repr(value), expected="ein Betrag wie 1234.56",
                   hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben")


def _read_items(workbook, name: str, problems: list[Problem]) -> dict[tuple[str, str, str], int]:
    """(AGS, item ID, route) -> paid cents, from every Einzelnachweis sheet."""
    items: dict[tuple[str, str, str], int] = {}
    for sheet in _proof_sheets(workbook.sheetnames):
        rows = workbook[sheet].iter_rows(values_only=True)
        header = [str(h) if h is not None else "" for h in next(rows, ())]
        missing = [c for c in _PROOF_COLUMNS if c not in header]
        if missing:
            problems.append(Problem("trueup-bad-output", Location(name, sheet, 1), f"Spalten {', '.join(missing)} "
                                    "fehlen", found=", ".join(header), expected=", ".join(_PROOF_COLUMNS),
                                    hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
            continue
        id_col, ags_col, route_col, amount_col = (header.index(c) for c in _PROOF_COLUMNS)
        for r, row in enumerate(rows, start=2):
            route = _ROUTE_IDS.get(row[route_col])
            if route is None:
                problems.append(Problem("trueup-bad-output", Location(name, sheet, r, route_col + 1),
                                        "Unbekannter Finanzierungsweg", found=repr(row[route_col]),
                                        expected=", ".join(ROUTE_LABELS.values()),
                                        hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
                continue
            try:
                cents = cents_from_decimal(decimal_from_cell(row[amount_col]))
            except (ValueError, TypeError):
                problems.append(_bad_amount(name, sheet, r, amount_col + 1, row[amount_col]))
                continue
            key = (str(row[ags_col]), str(row[id_col]), route)
            items[key] = items.get(key, 0) + cents
    return items


_LEVY_COLUMNS = ("Umlage", "AGS", "Betrag")


def _read_levies(workbook, name: str, problems: list[Problem]) -> dict[tuple[str, str], int]:
    """(AGS, levy name) -> cents the levy's line charged, from sheet `Umlagen` (its sum rows have no AGS)."""
    rows = workbook["Umlagen"].iter_rows(values_only=True)
    header = [str(h) if h is not None else "" for h in next(rows, ())]
    if not set(_LEVY_COLUMNS) <= set(header):
        problems.append(Problem("trueup-bad-output", Location(name, "Umlagen", 1), "Spalten Umlage, AGS, Betrag "
                                "fehlen", found=", ".join(header), expected=", ".join(_LEVY_COLUMNS),
                                hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
        return {}
    levy_col, ags_col, amount_col = (header.index(c) for c in _LEVY_COLUMNS)
    levies: dict[tuple[str, str], int] = {}
    for r, row in enumerate(rows, start=2):
        if row[ags_col] in (None, "", "Summe"):
            continue  # the levy's Summe, Umlagebedarf and Aufkommen − Bedarf rows
        try:
            cents = cents_from_decimal(decimal_from_cell(row[amount_col]))
        except (ValueError, TypeError):
            problems.append(_bad_amount(name, "Umlagen", r, amount_col + 1, row[amount_col]))
            continue
        key = (str(row[ags_col]), str(row[levy_col]))
        levies[key] = levies.get(key, 0) + cents
    return levies


def _paid_items(paid: "_Paid", routes: dict[str, str]) -> dict[tuple[str, str, str], int]:
    """(AGS, item ID or levy name, route) -> paid cents: with levies, the levy routes' item lines give way to
    the levies' lines (what Uebersicht shows). `routes`: levy name -> route, from the rule file; a levy the
    rule file no longer has keeps the first levy route (both are settled, the label is all that differs)."""
    if paid.levies is None:
        return paid.items
    items = {key: cents for key, cents in paid.items.items() if key[2] not in LEVY_ROUTES}
    for (ags, levy), cents in paid.levies.items():
        items[(ags, levy, routes.get(levy, LEVY_ROUTES[0]))] = cents
    return items


def read_paid(source: "str | Path | Earlier") -> _Paid:
    """The final run's amounts per municipality and item, from an output workbook as read and checked by
    `readback.read_output` (or a path: then its bounds alone are checked: zip bombs, XML entities, Excel's row
    limit, since Einzelnachweis continues on Einzelnachweis_2, ...); InputError if it is not a final run's output."""
    from openpyxl import load_workbook

    from ..runs.readback import Earlier, output_bytes
    from ..workbook.safety import DAMAGED_WORKBOOK

    source = source if isinstance(source, Earlier) else output_bytes(source, "trueup-unreadable")
    path, data = source.path, source.data
    name = path.name
    try:
        workbook = load_workbook(source.stream(), read_only=True, data_only=True)
    except DAMAGED_WORKBOOK as error:
        raise _unreadable(path, error) from None
    problems: list[Problem] = []
    try:
        missing = [s for s in ("Uebersicht", "Einzelnachweis", "Protokoll") if s not in workbook.sheetnames]
        if missing:
            raise EarlierRefused([Problem("trueup-bad-output", Location(name, missing[0]),
                                      f'Blatt "{missing[0]}" fehlt: das ist keine Ergebnis-Arbeitsmappe',
                                      found=", ".join(workbook.sheetnames), expected="Uebersicht, Einzelnachweis, "
                                      "Protokoll", hint="die von `allocation run --mode final` geschriebene "
                                      "Arbeitsmappe angeben")])
        try:  # read-only sheets parse as they stream: a damaged part fails here, not at opening
            protocol = {str(r[0]): r[1] for r in workbook["Protokoll"].iter_rows(min_row=2, values_only=True)
                        if r and r[0]}
            rows = [tuple(r) for r in workbook["Uebersicht"].iter_rows(values_only=True)]
            items = _read_items(workbook, name, problems)
            levies = _read_levies(workbook, name, problems) if "Umlagen" in workbook.sheetnames else None
        except DAMAGED_WORKBOOK as error:
            raise _unreadable(path, error) from None
    finally:
        workbook.close()
    if protocol.get("Laufart") != "Echtlauf":
        problems.insert(0, Problem("trueup-not-final", Location(name, "Protokoll"), "Diese Arbeitsmappe stammt nicht "
                                   "aus einem Echtlauf", found=str(protocol.get("Laufart", "keine Laufart")),
                                   expected="Laufart Echtlauf",
                                   hint="gegen die Arbeitsmappe des registrierten Echtlaufs (--mode final) abrechnen"))
    header = [str(h) if h is not None else "" for h in rows[0]] if rows else []
    if not {"AGS", "Gemeinde", "Summe"} <= set(header):
        problems.append(Problem("trueup-bad-output", Location(name, "Uebersicht", 1), "Spalten AGS, Gemeinde, Summe "
                                "fehlen", found=", ".join(header), expected="AGS, Gemeinde, Summe",
                                hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
    if problems:
        raise EarlierRefused(problems)
    ags_col, name_col, sum_col = header.index("AGS"), header.index("Gemeinde"), header.index("Summe")
    amounts: dict[str, tuple[str, int]] = {}
    for r, row in enumerate(rows[1:], start=2):
        ags = row[ags_col]
        if ags in (None, "", "Summe"):
            continue
        try:
            total = cents_from_decimal(decimal_from_cell(row[sum_col]))
        except (ValueError, TypeError):
            problems.append(_bad_amount(name, "Uebersicht", r, sum_col + 1, row[sum_col]))
            continue
        amounts[str(ags)] = (str(row[name_col]), total)
        itemised = sum(cents for (a, _, route), cents in items.items()
                       if a == str(ags) and (levies is None or route not in LEVY_ROUTES))
        itemised += sum(cents for (a, _), cents in (levies or {}).items() if a == str(ags))
        if itemised != total:
            # the sheets of one run disagree: the file was edited, and none of them can be trusted
            source = ("Betrag der Umlagen im Blatt Umlagen plus Betrag gerundet der Direktabrechnung und "
                      "Trägerkommune im Einzelnachweis" if levies is not None else
                      "Summe der Spalte Betrag gerundet im Einzelnachweis")
            problems.append(Problem("trueup-bad-output", Location(name, "Uebersicht", r, sum_col + 1),
                                    "Die Summe passt nicht zu den Zeilen des Einzelnachweises"
                                    + (" und der Umlagen" if levies is not None else ""),
                                    found=str(cents_to_decimal(total)), expected=f"{cents_to_decimal(itemised)} "
                                    f"({source} für diese AGS)",
                                    hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
    if problems:
        raise EarlierRefused(problems)
    year = protocol.get("Haushaltsjahr")
    return _Paid(str(protocol.get("Kreis")), int(year) if isinstance(year, (int, float)) else -1, amounts,
                 hashlib.sha256(data).hexdigest(), items, levies)


def _in_force(final: "Earlier", register_dir: str | Path | None) -> None:
    """The final run to settle is the one in force: a final run (its manifest), registered, and not superseded
    by a later final run of its district and year (`trueup-superseded`, naming the run in force)."""
    from ..runs.register import in_force, installation_register

    where = Location(final.path.name, "Protokoll")
    if not final.final:
        raise EarlierRefused([Problem("trueup-not-final", where, "Diese Arbeitsmappe stammt laut ihrem Manifest nicht aus "
                                  "einem Echtlauf", found=str(final.manifest["parameters"].get("mode", "test")),
                                  expected="final (Echtlauf)",
                                  hint="gegen die Arbeitsmappe des registrierten Echtlaufs (--mode final) abrechnen")])
    folder = installation_register(register_dir)
    current, this = in_force(final, folder)
    if current is None:
        raise EarlierRefused([Problem("trueup-not-final", where, f"Im Register {folder} ist für {final.district} "
                                  f"{final.year} kein Echtlauf verzeichnet", found="kein Eintrag",
                                  expected="der Echtlauf dieser Arbeitsmappe im Register",
                                  hint="das Register der Installation angeben (--register), in dem der Echtlauf "
                                       "verzeichnet ist")])
    if not this:
        raise EarlierRefused([Problem("trueup-superseded", where, "Diese Arbeitsmappe ist nicht der Echtlauf, der in "
                                  f"Kraft ist: in Kraft ist Nr. {current.get('seq')} vom {current.get('recorded_utc')} "
                                  f"({current.get('output')})", found=f"SHA-256 {final.sha256}",
                                  expected=f"SHA-256 {current.get('output_sha256')} (Echtlauf Nr. {current.get('seq')})",
                                  hint=f"gegen {current.get('output')} abrechnen, den Echtlauf, der die früheren "
                                       "ersetzt hat")])


def settle(final_output: str | Path, actual_input: str | Path, rules: str | Path,
           register_dir: str | Path | None = None) -> Settlement:
    """Paid (final run) versus owed (recomputed from actual figures) per municipality. The final run's workbook
    is read through `readback.read_output` (bounds, its manifest's SHA-256) and must be the final run in force in
    the register (`register_dir`, default the installation's)."""
    from ..runs.pipeline import compute
    from ..runs.readback import read_output

    final = read_output(final_output, "trueup-unreadable")
    _in_force(final, register_dir)
    paid = read_paid(final)
    allocation, _controls, _warnings = compute(actual_input, rules, offers_override=False)
    book = allocation.book
    where = Location(Path(actual_input).name, "Parameter")
    problems = []
    if not same_district(book.parameters.district, paid.district) or book.parameters.year != paid.year:
        problems.append(Problem("trueup-mismatch", where, "Die Ist-Zahlen gehören zu einem anderen Kreis oder Jahr",
                                found=f"{book.parameters.district} {book.parameters.year}",
                                expected=f"{paid.district} {paid.year} (wie im Echtlauf)",
                                hint="die Ist-Zahlen desselben Kreises und Haushaltsjahres verwenden"))
    owed = _owed_items(allocation)
    names = {m.ags: m.name for m in book.municipalities}
    only_paid, only_owed = sorted(set(paid.amounts) - set(names)), sorted(set(names) - set(paid.amounts))
    if only_paid or only_owed:
        problems.append(Problem("trueup-municipalities-differ", Location(Path(actual_input).name, "Gemeinden"),
                                "Die Gemeinden im Echtlauf und in den Ist-Zahlen stimmen nicht überein",
                                found=f"nur im Echtlauf: {', '.join(only_paid) or '–'}; nur in den Ist-Zahlen: "
                                      f"{', '.join(only_owed) or '–'}", expected="dieselben AGS in beiden",
                                hint="dieselbe Gemeindeliste wie im Echtlauf verwenden"))
    if problems:
        raise InputError(problems)
    items = _item_lines(_paid_items(paid, {levy.levy.name: levy.levy.route for levy in allocation.levies}),
                        owed, names)
    settled = {ags: [0, 0] for ags in names}
    for item in items:
        if item.settled:
            settled[item.ags][0] += item.paid
            settled[item.ags][1] += item.owed
    lines = tuple(SettlementLine(ags, names[ags], *settled[ags]) for ags in sorted(names))
    _refuse_beyond_cells(lines, items, book)
    protocol = (
        ("Kreis", book.parameters.district), ("Haushaltsjahr", book.parameters.year),
        ("Echtlauf (gezahlt)", Path(final_output).name), ("SHA-256 Echtlauf", paid.sha256),
        ("Ist-Zahlen (geschuldet)", Path(actual_input).name), ("SHA-256 Ist-Zahlen", book.sha256),
        ("Regeldatei", str(rules)), ("SHA-256 Regeldatei", allocation.rulebook.sha256),
        ("Differenz", "geschuldet − gezahlt; positiv = Nachzahlung der Gemeinde, negativ = Erstattung an die Gemeinde"),
        ("Abgerechnet", "Kreisumlage, differenzierte Umlage und Direktabrechnung (Zahlungen an den Kreis); was eine "
                        "Trägerkommune selbst trägt, steht nur zur Information im Blatt Positionen"),
        ("Laufzeitpunkt (UTC)", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
    )
    return Settlement(book.parameters.district, book.parameters.year, lines, protocol, items)


def _refuse_beyond_cells(lines, items, book) -> None:
    """Paid and owed each fit a cell (two runs); their difference (a payment against a refund) and the sums of the
    settlement may not: `trueup-total-too-large` (exit 3), before anything is written."""
    from ..calc.bounds import Figures

    figures, sources = Figures("trueup-total-too-large"), {m.ags: m.source for m in book.municipalities}
    hint = "Echtlauf und Ist-Zahlen prüfen; ein Betrag dieser Größe lässt sich nicht auf den Cent genau ausweisen"
    for line in (*items, *lines):
        label = f" ({line.item_id})" if isinstance(line, ItemLine) else ""
        for what, cents in (("gezahlt", line.paid), ("geschuldet", line.owed), ("Differenz", line.difference)):
            figures.check(cents, sources.get(line.ags, Location(Path(book.path).name, "Gemeinden")),
                          f"Spitzabrechnung, {what} für {line.name} ({line.ags}){label}", hint)
    paid, owed = sum(line.paid for line in lines), sum(line.owed for line in lines)
    for what, cents in (("gezahlt", paid), ("geschuldet", owed), ("Differenz", owed - paid)):
        figures.check(cents, Location(Path(book.path).name, "Gemeinden"), f"Spitzabrechnung, Zeile Summe, {what}", hint)
    if figures.problems:
        raise InputError(figures.problems)


def _owed_items(allocation) -> dict[tuple[str, str, str], int]:
    """(AGS, item ID or levy name, route) -> owed cents, from the recomputed allocation: with levies, the levy
    routes are the levies' lines (as `Allocation.totals` and Uebersicht), the other routes the item lines."""
    owed: dict[tuple[str, str, str], int] = {}
    for levy in allocation.levies:
        for levy_line in levy.lines:
            key = (levy_line.ags, levy.levy.name, levy.levy.route)
            owed[key] = owed.get(key, 0) + levy_line.amount
    for item in allocation.items:
        if allocation.levies and item.rule.route in LEVY_ROUTES:
            continue
        for line in item.lines:
            key = (line.ags, item.item.id, item.rule.route)
            owed[key] = owed.get(key, 0) + line.amount
    return owed


def _item_lines(paid: dict[tuple[str, str, str], int], owed: dict[tuple[str, str, str], int],
                names: dict[str, str]) -> tuple[ItemLine, ...]:
    """One line per municipality × item × route present on either side; lines that are 0 on both sides (a
    municipality that neither paid nor owes for the item) are left out. An item whose route changed between
    the final run and the actuals gets one line per route."""
    keys = sorted(k for k in set(paid) | set(owed) if paid.get(k, 0) or owed.get(k, 0))
    return tuple(ItemLine(ags, names[ags], item_id, route, paid.get((ags, item_id, route), 0),
                          owed.get((ags, item_id, route), 0)) for ags, item_id, route in keys)


def write_settlement(path: str | Path, settlement: Settlement) -> None:
    from ..workbook.report import write_book

    write_book(path, lambda book: _settlement_sheets(book, settlement))


def _settlement_sheets(book, settlement: Settlement) -> None:
    from ..workbook.report import EUR, Sheet

    sheet = Sheet(book, "Spitzabrechnung", ["AGS", "Gemeinde", "Gezahlt (Echtlauf)", "Geschuldet (Ist)",
                                             "Differenz", "Ergebnis"], [None, None, EUR, EUR, EUR, None])
    for line in settlement.lines:
        sheet.append([line.ags, line.name, cents_to_decimal(line.paid), cents_to_decimal(line.owed),
                      cents_to_decimal(line.difference), line.result])
    paid = sum(l.paid for l in settlement.lines)
    owed = sum(l.owed for l in settlement.lines)
    sheet.append(["Summe", "", cents_to_decimal(paid), cents_to_decimal(owed), cents_to_decimal(owed - paid), ""],
                 bold=True)
    sheet.finish()
    _positionen(book, settlement)
    protocol = Sheet(book, "Protokoll", ["Angabe", "Wert"], [None, None])
    for key, value in settlement.protocol:
        protocol.append([key, value])
    protocol.finish(autofilter=False)


def _positionen(book, settlement: Settlement) -> None:
    """Each municipality's difference by item and route; host items for information, outside the settlement."""
    from ..workbook.report import EUR, Sheet

    sheet = Sheet(book, "Positionen", ["AGS", "Gemeinde", "ID", "Weg", "Gezahlt (Echtlauf)", "Geschuldet (Ist)",
                                       "Differenz", "Abrechnung"], [None] * 4 + [EUR] * 3 + [None])
    for line in settlement.items:  # ordered by AGS, item, route
        sheet.append([line.ags, line.name, line.item_id, ROUTE_LABELS[line.route], cents_to_decimal(line.paid),
                      cents_to_decimal(line.owed), cents_to_decimal(line.difference),
                      "abgerechnet" if line.settled else HOST_NOTE])
    sheet.finish()
