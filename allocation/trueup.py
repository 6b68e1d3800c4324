"""Spitzabrechnung (true-up): what each municipality paid under a year's final run versus what it owes on actuals.

Paid is read from the final run's output workbook (sheet `Uebersicht`, column `Summe`, exact to the cent;
its `Protokoll` must say `Laufart: Echtlauf`). Owed is recomputed by the normal pipeline from the actual
figures (an input workbook of the same district and year) and the rule file. Difference = owed − paid:
positive means the municipality pays the difference (Nachzahlung), negative means it is refunded
(Erstattung). The settlement is its own workbook with sheets `Spitzabrechnung` and `Protokoll`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from .model import same_district
from .money import cents_from_decimal, cents_to_decimal, decimal_from_cell
from .problems import InputError, Location, Problem

__all__ = ["SettlementLine", "Settlement", "read_paid", "settle", "write_settlement", "SHEETS"]

SHEETS = ("Spitzabrechnung", "Protokoll")


@dataclass(frozen=True, slots=True)
class SettlementLine:
    ags: str
    name: str
    paid: int   # cents
    owed: int   # cents

    @property
    def difference(self) -> int:
        return self.owed - self.paid

    @property
    def result(self) -> str:
        return "Nachzahlung" if self.difference > 0 else "Erstattung" if self.difference < 0 else "ausgeglichen"


@dataclass(frozen=True, slots=True)
class Settlement:
    district: str
    year: int
    lines: tuple[SettlementLine, ...]
    protocol: tuple[tuple[str, object], ...]


@dataclass(frozen=True, slots=True)
class _Paid:
    district: str
    year: int
    amounts: dict[str, tuple[str, int]]
    sha256: str


def read_paid(path: str | Path) -> _Paid:
    """The final run's amounts per municipality; InputError if the file is not a final run's output."""
    from openpyxl import load_workbook

    from .safety import check_bytes

    path = Path(path)
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError([Problem("trueup-unreadable", Location(str(path)), "Die Arbeitsmappe des Echtlaufs lässt sich nicht lesen",
                                  found=error.strerror, expected="die Ergebnis-Arbeitsmappe eines Echtlaufs",
                                  hint="den Pfad prüfen")]) from None
    unsafe = check_bytes(data, name, structure=False)
    if unsafe:
        raise InputError(unsafe)
    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        missing = [s for s in ("Uebersicht", "Protokoll") if s not in workbook.sheetnames]
        if missing:
            raise InputError([Problem("trueup-bad-output", Location(name, missing[0]),
                                      f'Blatt "{missing[0]}" fehlt: das ist keine Ergebnis-Arbeitsmappe',
                                      found=", ".join(workbook.sheetnames), expected="Uebersicht, Protokoll",
                                      hint="die von `allocation run --mode final` geschriebene Arbeitsmappe angeben")])
        protocol = {str(r[0]): r[1] for r in workbook["Protokoll"].iter_rows(min_row=2, values_only=True) if r and r[0]}
        rows = [tuple(r) for r in workbook["Uebersicht"].iter_rows(values_only=True)]
    finally:
        workbook.close()
    problems: list[Problem] = []
    if protocol.get("Laufart") != "Echtlauf":
        problems.append(Problem("trueup-not-final", Location(name, "Protokoll"), "Diese Arbeitsmappe stammt nicht aus einem Echtlauf",
                                found=str(protocol.get("Laufart", "keine Laufart")), expected="Laufart Echtlauf",
                                hint="gegen die Arbeitsmappe des registrierten Echtlaufs (--mode final) abrechnen"))
    header = [str(h) if h is not None else "" for h in rows[0]] if rows else []
    if not {"AGS", "Gemeinde", "Summe"} <= set(header):
        problems.append(Problem("trueup-bad-output", Location(name, "Uebersicht", 1), "Spalten AGS, Gemeinde, Summe "
                                "fehlen", found=", ".join(header), expected="AGS, Gemeinde, Summe",
                                hint="die unveränderte Ergebnis-Arbeitsmappe des Echtlaufs angeben"))
    if problems:
        raise InputError(problems)
    ags_col, name_col, sum_col = header.index("AGS"), header.index("Gemeinde"), header.index("Summe")
    amounts: dict[str, tuple[str, int]] = {}
    for r, row in enumerate(rows[1:], start=2):
        ags = row[ags_col]
        if ags in (None, "", "Summe"):
            continue
        try:
            amounts[str(ags)] = (str(row[name_col]), cents_from_decimal(decimal_from_cell(row[sum_col])))
        except (ValueError, TypeError):
            raise InputError([Problem("trueup-bad-output", Location(name, "Uebersicht", r, sum_col + 1),
                                      "Der Betrag ist keine Zahl in Cent-Genauigkeit", found=repr(row[sum_col]),
                                      expected="ein Betrag wie 1234.56",
                                      hint="die unveränderte Ergebnis-Arbeitsmappe angeben")]) \
                from None
    year = protocol.get("Haushaltsjahr")
    return _Paid(str(protocol.get("Kreis")), int(year) if isinstance(year, (int, float)) else -1, amounts,
                 hashlib.sha256(data).hexdigest())


def settle(final_output: str | Path, actual_input: str | Path, rules: str | Path) -> Settlement:
    """Paid (final run) versus owed (recomputed from actual figures) per municipality."""
    from .pipeline import compute

    paid = read_paid(final_output)
    allocation, _controls, _warnings = compute(actual_input, rules)
    book = allocation.book
    where = Location(Path(actual_input).name, "Parameter")
    problems = []
    if not same_district(book.parameters.district, paid.district) or book.parameters.year != paid.year:
        problems.append(Problem("trueup-mismatch", where, "Die Ist-Zahlen gehören zu einem anderen Kreis oder Jahr",
                                found=f"{book.parameters.district} {book.parameters.year}",
                                expected=f"{paid.district} {paid.year} (wie im Echtlauf)",
                                hint="die Ist-Zahlen desselben Kreises und Haushaltsjahres verwenden"))
    owed = {ags: sum(routes.values()) for ags, routes in allocation.totals().items()}
    names = {m.ags: m.name for m in book.municipalities}
    only_paid, only_owed = sorted(set(paid.amounts) - set(owed)), sorted(set(owed) - set(paid.amounts))
    if only_paid or only_owed:
        problems.append(Problem("trueup-municipalities-differ", Location(Path(actual_input).name, "Gemeinden"),
                                "Die Gemeinden im Echtlauf und in den Ist-Zahlen stimmen nicht überein",
                                found=f"nur im Echtlauf: {', '.join(only_paid) or '–'}; nur in den Ist-Zahlen: "
                                      f"{', '.join(only_owed) or '–'}", expected="dieselben AGS in beiden",
                                hint="dieselbe Gemeindeliste wie im Echtlauf verwenden"))
    if problems:
        raise InputError(problems)
    lines = tuple(SettlementLine(ags, names[ags], paid.amounts[ags][1], owed[ags]) for ags in sorted(owed))
    protocol = (
        ("Kreis", book.parameters.district), ("Haushaltsjahr", book.parameters.year),
        ("Echtlauf (gezahlt)", Path(final_output).name), ("SHA-256 Echtlauf", paid.sha256),
        ("Ist-Zahlen (geschuldet)", Path(actual_input).name), ("SHA-256 Ist-Zahlen", book.sha256),
        ("Regeldatei", str(rules)), ("SHA-256 Regeldatei", allocation.rulebook.sha256),
        ("Differenz", "geschuldet − gezahlt; positiv = Nachzahlung der Gemeinde, negativ = Erstattung an die Gemeinde"),
        ("Laufzeitpunkt (UTC)", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
    )
    return Settlement(book.parameters.district, book.parameters.year, lines, protocol)


def write_settlement(path: str | Path, settlement: Settlement) -> None:
    from openpyxl import Workbook

    from .report import EUR, _Sheet, write_atomically

    workbook = Workbook()
    workbook.remove(workbook.active)
    sheet = _Sheet(workbook, "Spitzabrechnung", ["AGS", "Gemeinde", "Gezahlt (Echtlauf)", "Geschuldet (Ist)",
                                                  "Differenz", "Ergebnis"], [None, None, EUR, EUR, EUR, None])
    for line in settlement.lines:
        sheet.append([line.ags, line.name, cents_to_decimal(line.paid), cents_to_decimal(line.owed),
                      cents_to_decimal(line.difference), line.result])
    paid = sum(l.paid for l in settlement.lines)
    owed = sum(l.owed for l in settlement.lines)
    sheet.append(["Summe", "", cents_to_decimal(paid), cents_to_decimal(owed), cents_to_decimal(owed - paid), ""],
                 bold=True)
    sheet.finish()
    protocol = _Sheet(workbook, "Protokoll", ["Angabe", "Wert"], [None, None])
    for key, value in settlement.protocol:
        protocol.append([key, value])
    protocol.finish(autofilter=False)
    write_atomically(path, workbook.save)
