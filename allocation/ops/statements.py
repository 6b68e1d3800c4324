"""The statements log (`Stellungnahmen`) of the Benehmen and the Kreistag pack.

The log is a workbook `Stellungnahmen.xlsx` in the year folder (written empty by `allocation year init`), sheet
`Stellungnahmen`, one row per statement or per point raised: `AGS`, `Gemeinde`, `Datum` (date of the statement),
`Punkte` (the points raised), `Beschluss` (the Kreistag's decision: empty while open, `stattgegeben`, `teilweise
stattgegeben` or `zurückgewiesen`) and `Begründung` (the reason, required with a decision; § 55 KrO NRW: the
Kreistag decides on objections in public and gives its reasons). `read_statements` checks every row and collects
every problem (`statements-bad-cell`, exit 3); `write_kreistag_pack` writes the Kreistag pack: the stages of the
year with their hashes (`Stufen`) and the statements (`Stellungnahmen`).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from ..core.problems import InputError, Location, Problem
from ..core.states import MEMBER_KEY

__all__ = ["Statement", "STATEMENTS_FILE", "HEADER", "DECISIONS", "write_empty_log", "read_statements",
           "write_kreistag_pack"]

STATEMENTS_FILE = "Stellungnahmen.xlsx"
SHEET = "Stellungnahmen"
HEADER = ("AGS", "Gemeinde", "Datum", "Punkte", "Beschluss", "Begründung")
DECISIONS = ("stattgegeben", "teilweise stattgegeben", "zurückgewiesen")


@dataclass(frozen=True, slots=True)
class Statement:
    ags: str
    name: str
    date: _dt.date
    points: str
    decision: str  # "" while open
    reason: str
    source: Location


def write_empty_log(path: Path) -> None:
    """The empty statements log the Kreis fills in: a plain header row (no styles), widths, frozen header."""
    from ..workbook.report import write_book

    def build(book) -> None:
        sheet = book.add_sheet(SHEET)
        for c, text in enumerate(HEADER):
            book.put(sheet, 0, c, text)
        for c, width in enumerate((11, 20, 12, 60, 22, 60)):
            sheet.set_column_pixels(c, c, 7 * width)  # 7 px per character: the width itself in the file
        sheet.freeze_panes(1, 0)

    write_book(path, build)


def _date(value: object) -> _dt.date | None:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
            try:
                return _dt.datetime.strptime(value.strip(), pattern).date()
            except ValueError:
                continue
    return None


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def read_statements(path: str | Path) -> list[Statement]:
    """Every statement of the log; InputError with every unusable cell (located, in German)."""
    import openpyxl

    from ..runs.readback import output_bytes

    path = Path(path)
    name = str(path)
    log = output_bytes(path, "statements-bad-cell")  # written by `year init`, kept by people: bounds first
    try:
        workbook = openpyxl.load_workbook(log.stream(), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for a file that is no workbook
        raise InputError([Problem("statements-bad-cell", Location(name), "Das Protokoll der Stellungnahmen lässt "
                                  "sich nicht lesen", found=type(error).__name__, expected="eine .xlsx-Arbeitsmappe",
                                  hint=f"die Datei {STATEMENTS_FILE} des Umlagejahres verwenden")]) from None
    try:
        if SHEET not in workbook.sheetnames:
            raise InputError([Problem("statements-bad-cell", Location(name), f"Blatt {SHEET} fehlt",
                                      found=", ".join(workbook.sheetnames), expected=SHEET,
                                      hint=f"das Blatt {SHEET} mit den Spalten {', '.join(HEADER)} anlegen")])
        rows = list(workbook[SHEET].iter_rows(values_only=True))
    finally:
        workbook.close()
    header = tuple(_text(h) for h in rows[0]) if rows else ()
    if header[:len(HEADER)] != HEADER:
        raise InputError([Problem("statements-bad-cell", Location(name, SHEET, 1), "Die Spaltenüberschriften "
                                  "stimmen nicht", found=", ".join(header), expected=", ".join(HEADER),
                                  hint="die Überschriften aus der leeren Vorlage übernehmen")])
    problems: list[Problem] = []
    statements = []
    for number, row in enumerate(rows[1:], start=2):
        row = tuple(row) + (None,) * (len(HEADER) - len(row))
        if all(value in (None, "") for value in row[:len(HEADER)]):
            continue

        def bad(column: int, message: str, expected: str, hint: str) -> None:
            problems.append(Problem("statements-bad-cell", Location(name, SHEET, number, column + 1), message,
                                    found=repr(row[column]) if row[column] not in (None, "") else "leer",
                                    expected=expected, hint=hint))

        ags, points, decision, reason = _text(row[0]), _text(row[3]), _text(row[4]), _text(row[5])
        date = _date(row[2])
        if not MEMBER_KEY.fullmatch(ags):
            bad(0, "Der AGS ist ungültig", "8 Ziffern als Text, z. B. 05170004 (ein Kreisschlüssel: 5, ein "
                "Regionalschlüssel: 12)", "den AGS der Gemeinde eintragen")
        if date is None:
            bad(2, "Das Datum der Stellungnahme fehlt oder ist kein Datum", "ein Datum, z. B. 2022-02-20",
                "das Eingangsdatum der Stellungnahme eintragen")
        if not points:
            bad(3, "Die vorgebrachten Punkte fehlen", "Text", "die Punkte der Stellungnahme eintragen")
        if decision and decision not in DECISIONS:
            bad(4, "Der Beschluss ist unbekannt", "leer (offen), " + ", ".join(DECISIONS),
                "einen der Beschlüsse eintragen oder leer lassen, solange der Kreistag nicht entschieden hat")
        if decision and not reason:
            bad(5, "Ein Beschluss braucht eine Begründung", "Text",
                "die Begründung des Kreistags eintragen (sie geht an die Gemeinde)")
        if date is not None and ags and points:
            statements.append(Statement(ags, _text(row[1]), date, points, decision, reason,
                                        Location(name, SHEET, number)))
    if problems:
        raise InputError(problems)
    return statements


def write_kreistag_pack(target: str | Path, year_status, statements: list[Statement], head: str = "") -> None:
    """The Kreistag pack: the year's stages (`Stufen`), the statements with decisions (`Stellungnahmen`) and the
    year (`Jahr`, with what `status` found outside the stages and the register's chain head for the minutes)."""
    from ..workbook.report import write_book

    write_book(target, lambda book: _kreistag_sheets(book, year_status, statements, head))


def _kreistag_sheets(book, year_status, statements: list[Statement], head: str) -> None:
    year, checks = year_status.record, year_status.checks
    from ..workbook.report import Sheet

    sheet = Sheet(book, "Stufen", ["Nr", "Stufe", "Ordner", "Gerechnet (UTC)", "Laufart", "Begründung",
                                   "SHA-256 Manifest", "SHA-256 Manifest der vorigen Stufe", "Prüfung"],
                  [None] * 9)
    for check in checks:
        entry = check.entry
        sheet.append([entry["seq"], entry["stage"], entry["folder"], entry["recorded_utc"],
                      "Echtlauf" if entry["mode"] == "final" else "Probelauf", entry.get("reason") or "",
                      entry["manifest"]["sha256"], entry["prev_manifest_sha256"],
                      "OK" if check.ok else "; ".join(check.findings)])
    sheet.finish()
    sheet = Sheet(book, "Stellungnahmen", [*HEADER, "Stand"], [None, None, "DD.MM.YYYY", None, None, None, None])
    for s in sorted(statements, key=lambda s: (s.ags, s.date)):
        sheet.append([s.ags, s.name, s.date, s.points, s.decision, s.reason,
                      "entschieden" if s.decision else "offen"])
    sheet.finish()
    sheet = Sheet(book, "Jahr", ["Angabe", "Wert"], [None, None])
    for row in (("Kreis", year["district"]), ("Haushaltsjahr", year["year"]), ("Stufen", len(checks)),
                ("Stellungnahmen", len(statements)),
                ("offen", sum(1 for s in statements if not s.decision)),
                ("Befunde des Ordners", "; ".join(year_status.findings) or "keine"),
                ("Kettenkopf des Registers (für das Protokoll)", head)):
        sheet.append(list(row))
    sheet.finish(autofilter=False)
