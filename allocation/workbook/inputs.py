"""Input workbook -> `InputBook`. Reads cells exactly, checks everything, reports all problems at once.

The workbook layout is the contract with controllers (README, "Eingabe-Arbeitsmappe"): sheets
`Parameter`, `Gemeinden`, `Kostenpositionen` and optional `Schluessel`. The file is read once into memory
(its SHA-256 is of exactly those bytes) and never written. Numbers become `Decimal` from the text Excel
stored, amounts become int cents; a formula is used with the value Excel last calculated for it, and a
formula that was never calculated is an error.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

from ..core.model import normalise_header  # re-exported: the one definition of a column name
from ..core.model import NeedEntry
from ..core.states import DEFAULT_LEVEL, LEVELS
from ..core.model import (COMPONENTS, DISTRICT_HOST, CostItem, InputBook, KeyEntry, LevyRateEntry, Municipality,
                    Parameters)
from ..core.filenames import FileRefused, read_regular
from ..core.money import ROUNDING_UNITS, cents_from_decimal, decimal_from_cell
from ..core.problems import InputError, Location, Problem, column_letter, did_you_mean
from .safety import MAX_FILE_BYTES, Scan, SheetScan, scan_bytes

__all__ = [
    "read_input",
    "read_input_rows",
    "SHEETS",
    "MUNICIPALITY_COLUMNS",
    "ITEM_COLUMNS",
    "KEY_COLUMNS",
    "LEVY_RATE_COLUMNS",
    "OPTIONAL_LEVY_RATE_COLUMNS",
    "PARAMETERS",
    "normalise_header",
]

SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen")
OPTIONAL_SHEETS = ("Schluessel", "Umlagesaetze")
MUNICIPALITY_COLUMNS = ("AGS", "Gemeinde", "Umlagegrundlagen")
ITEM_COLUMNS = ("ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger")
OPTIONAL_ITEM_COLUMNS = ("Stellen",)
KEY_COLUMNS = ("ID", "AGS", "Wert")
LEVY_RATE_COLUMNS = ("Umlage", "Satz")
OPTIONAL_LEVY_RATE_COLUMNS = ("Bestandteil",)
RATE_DECIMALS = 4  # a statutory levy rate in percent, e.g. 33.1234
PARAMETERS = {
    "Kreis": "Name des Kreises, z. B. Kreis Wesel",
    "Haushaltsjahr": "Haushaltsjahr, z. B. 2022",
    "Rundung": "Cent oder Euro",
    "Hebesatz_Nachkommastellen": "2 oder 4",
    "Umlageverband": "wer umlegt: " + ", ".join(LEVELS) + " (leer: Kreis)",
    "Umlagebedarf": "ungedeckter Bedarf in Euro, der ohne Kostenposition über die Umlage finanziert wird; bei mehreren "
                    "Umlagen je Umlage eine Zeile `Umlagebedarf:<id der Umlage>`",
    "Gebietsschluessel": "der eigene Schlüssel des Umlageverbands (z. B. der 5-stellige Kreisschlüssel), für die "
                         "Umlage an die Ebene darüber (`run --upward`)",
}
AGS_PATTERN = re.compile(r"[0-9]{8}")  # ASCII digits only: a fullwidth "０５…" is another string
# The keys of each level (core/states.LEVELS): 8-digit AGS of a Gemeinde, the 5-digit Kreisschlüssel or a kreisfreie
# Stadt's AGS (its last three digits 000), the 12-digit Regionalschlüssel.
KEY_PATTERNS = {"ags": re.compile(r"[0-9]{8}"), "kreis": re.compile(r"[0-9]{5}|[0-9]{5}000"),
                "regional": re.compile(r"[0-9]{12}")}
KEY_TEXTS = {"ags": "8-stelliger AGS einer Gemeinde, z. B. 05170048",
             "kreis": "5-stelliger Kreisschlüssel (z. B. 09677) oder AGS einer kreisfreien Stadt (z. B. 09663000)",
             "regional": "12-stelliger Regionalschlüssel, z. B. 010515163003"}
NEED_PARAMETER = "Umlagebedarf"
MAX_DIGITS = 15  # significant digits a spreadsheet number cell holds exactly
_WHOLE = 10.0 ** MAX_DIGITS
ALIASES = {"foerderung": "Foerderung", "traeger": "Traeger", "schluessel": "Schluessel"}


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.seen: set[tuple] = set()

    def loc(self, sheet: str | None = None, row: int | None = None, column: int | None = None) -> Location:
        return Location(self.file, sheet, row, column)

    def add(self, code: str, where: Location, message: str, **kw: str | None) -> None:
        if (code, where) in self.seen:  # a cell read twice (as typed value and as attribute) is reported once
            return
        self.seen.add((code, where))
        self.problems.append(Problem(code, where, message, **kw))


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (_dt.datetime, _dt.date)):
        return f"Datum {value.isoformat()}"
    return repr(value)


def _cell_text(value: object) -> str:
    """A header or key cell as text; a whole number without `.0` (calamine gives 2022.0 for 2022)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _WHOLE:
        return str(int(value))
    return str(value).strip()


def _german_number_hint(text: str) -> str:
    """A fix for a number written as text, e.g. `12.000,5O` -> `12000.50 ... (Buchstabe O statt Null?)`."""
    cleaned = text.strip().replace("€", "").replace("EUR", "").strip()
    notes = []
    if re.search(r"[oO]", cleaned) and re.fullmatch(r"[\d.,\s oO-]+", cleaned):
        cleaned = cleaned.replace("O", "0").replace("o", "0")
        notes.append("Buchstabe O statt Null?")
    if re.search(r"[lI]", cleaned) and re.fullmatch(r"[\d.,\s lI-]+", cleaned):
        cleaned = cleaned.replace("l", "1").replace("I", "1")
        notes.append("Buchstabe l statt Eins?")
    candidate = cleaned.replace(" ", "")
    if "," in candidate:
        candidate = candidate.replace(".", "").replace(",", ".")
    try:
        number = Decimal(candidate)
    except InvalidOperation:
        return "eine Zahl eintragen (Zelle als Zahl formatieren, nicht als Text)"
    suggestion = f"{number:f}"
    if "." in suggestion and len(suggestion.split(".")[1]) == 1:
        suggestion += "0"
    extra = f" ({' '.join(notes)})" if notes else ""
    return f"{suggestion} als Zahl eintragen{extra}"


def _digits(number: Decimal) -> str:
    """A number as its digits, shortened for a message (1e308 has 309)."""
    text = f"{number:f}" if abs(number.adjusted()) < 40 else f"{number:E}"
    return text if len(text) <= 60 else f"{number:.6E}"


def _negated(what: str) -> str:
    """'ein Betrag in Euro' -> 'kein Betrag in Euro'; other phrasings -> 'keine Zahl'."""
    if what.startswith(("ein ", "eine ")):
        return "k" + what
    return "keine Zahl"


class _Sheet:
    """One sheet's rows (1-based row/column numbers; a row is a list, empty cells `None` or ""), with what the
    safety scan found in its XML by (row, column): formulas without a cached value, Excel error cells (their
    text is also put into the row), malformed date cells and cells formatted as a percentage."""

    def __init__(self, name: str, rows: list[list], formulas: dict[tuple[int, int], str],
                 errors: dict[tuple[int, int], str], bad_dates: dict[tuple[int, int], str],
                 percent: set[tuple[int, int]]) -> None:
        self.name = name
        self.rows = rows
        self.formulas = formulas
        self.errors = errors
        self.bad_dates = bad_dates
        self.percent = percent


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, read with a cap; a directory, FIFO, socket or device is refused before it is read
    (`filenames.read_regular`)."""
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except FileRefused as refused:
        if refused.strerror == "die Datei ist zu groß":
            raise _too_large(path) from None
        raise InputError([Problem("input-unreadable", Location(str(path)), "Die Eingabe ist keine gewöhnliche Datei",
                                  found=refused.found, expected="eine lesbare .xlsx-Datei",
                                  hint="Pfad und Zugriffsrechte prüfen")]) from None
    except OSError as error:
        raise InputError([Problem("input-unreadable", Location(str(path)), "Die Eingabe-Arbeitsmappe lässt sich "
                                  "nicht lesen", found=error.strerror or str(error), expected="eine lesbare .xlsx-Datei",
                                  hint="Pfad und Zugriffsrechte prüfen")]) from None


def _too_large(path: Path) -> InputError:
    return InputError([Problem("input-too-large", Location(path.name), "Die Datei ist größer, als eine "
                               "Eingabe-Arbeitsmappe sein darf", found=f"mehr als {MAX_FILE_BYTES:,} Bytes"
                               .replace(",", "."), expected=f"höchstens {MAX_FILE_BYTES:,} Bytes".replace(",", "."),
                               hint="nur die Blätter Parameter, Gemeinden, Kostenpositionen (und Schluessel, "
                                    "Umlagesaetze) in eine neue Arbeitsmappe übernehmen")])


def _open(data: bytes, collector: _Collector):
    """The workbook as python-calamine reads it (the bytes passed the safety scan), or None with a problem."""
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(data))
    except (CalamineError, ValueError) as error:  # what calamine documents: its CalamineError (ZipError, XmlError,
        # PasswordError) and ValueError; anything else is a bug and reaches the caller as exit 1 with its traceback
        collector.add("input-not-xlsx", collector.loc(), "Die Arbeitsmappe lässt sich nicht öffnen",
                      found=str(error)[:200], expected="eine .xlsx-Arbeitsmappe",
                      hint="in Excel öffnen und erneut als .xlsx speichern")
        return None


def _rows(workbook, name: str, scan: SheetScan, collector: _Collector) -> list[list] | None:
    """All rows of a sheet from A1 to its last value (never wider), with Excel error cells put back as their text."""
    from python_calamine import CalamineError

    try:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except (CalamineError, ValueError) as error:  # a damaged sheet part: calamine's documented errors
        if scan.errors:  # calamine refuses error values it does not know (#GETTING_DATA): name the cells
            for (r, c), text in scan.errors.items():
                collector.add("input-excel-error", collector.loc(name, r, c), "Die Zelle zeigt einen Excel-Fehler",
                              found=text, expected="ein Wert", hint="die Formel in dieser Zelle korrigieren")
            return None
        collector.add("input-not-xlsx", collector.loc(name), f'Blatt "{name}" lässt sich nicht lesen',
                      found=str(error)[:200], expected="ein lesbares Tabellenblatt",
                      hint="in Excel öffnen und erneut als .xlsx speichern")
        return None
    for (r, c), text in scan.errors.items():
        while len(rows) < r:
            rows.append([])
        row = rows[r - 1]
        row.extend([None] * (c - len(row)))
        row[c - 1] = text  # calamine reports an error cell as empty; the row is not empty
    return rows


def _load_sheets(workbook, scan: Scan, collector: _Collector) -> dict[str, _Sheet]:
    names = list(workbook.sheet_names)
    sheets: dict[str, _Sheet] = {}
    for wanted in SHEETS + OPTIONAL_SHEETS:
        similar = [n for n in names if normalise_header(n) == normalise_header(wanted)]
        found = wanted if wanted in names else (similar[0] if similar else None)
        if found is None:
            if wanted in SHEETS:
                collector.add("input-missing-sheet", collector.loc(wanted), f'Blatt "{wanted}" fehlt'
                              f"{did_you_mean(wanted, names)}", found=", ".join(names) or "keine Blätter",
                              expected=", ".join(SHEETS),
                              hint=f'ein Blatt "{wanted}" anlegen (Vorlage: `allocation template`)')
            continue
        others = [n for n in similar if n != found]
        if others:  # "Parameter" and "PARAMETER": which one the controller meant is not ours to guess
            for other in others:
                collector.add("input-duplicate-sheet", collector.loc(other), f'Blatt "{other}" und Blatt "{found}" '
                              "unterscheiden sich nur in Groß-/Kleinschreibung oder Leerzeichen",
                              found=f'"{found}", "{other}"', expected=f'genau ein Blatt "{wanted}"',
                              hint="das überzählige Blatt löschen oder eindeutig umbenennen")
            continue
        if found != wanted:
            collector.add("input-sheet-name", collector.loc(found), f'Blatt "{found}" muss "{wanted}" heißen',
                          found=found, expected=wanted, hint=f'das Blatt in "{wanted}" umbenennen')
            continue
        facts = scan.sheets.get(wanted)
        if facts is None:  # never let the reader load a sheet whose XML the bounds did not see
            collector.add("input-not-xlsx", collector.loc(wanted), f'Blatt "{wanted}" lässt sich nicht prüfen: sein '
                          "Teil fehlt im Archiv oder ist falsch verknüpft", found="kein Tabellenteil zum Blatt",
                          expected="eine .xlsx-Arbeitsmappe, wie Excel sie speichert",
                          hint="in Excel öffnen und erneut als .xlsx speichern")
            continue
        rows = _rows(workbook, wanted, facts, collector)
        if rows is None:
            continue
        sheets[wanted] = _Sheet(wanted, rows, facts.formulas, facts.errors, facts.bad_dates, facts.percent)
    return sheets


def _header(sheet: _Sheet, required: tuple[str, ...], optional: tuple[str, ...],
            collector: _Collector) -> dict[str, int] | None:
    """Header row -> canonical column name -> 1-based index; None if the sheet is unusable."""
    if not sheet.rows:
        collector.add("input-empty-sheet", collector.loc(sheet.name, 1), f'Blatt "{sheet.name}" ist leer',
                      expected=", ".join(required), hint="die Spaltenüberschriften in Zeile 1 eintragen")
        return None
    canonical = {normalise_header(name): name for name in required + optional}
    canonical.update({k: v for k, v in ALIASES.items() if v in required + optional})
    columns: dict[str, int] = {}
    for c, raw in enumerate(sheet.rows[0], start=1):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if any(len(row) >= c and row[c - 1] not in (None, "") for row in sheet.rows[1:]):
                collector.add("input-missing-header", collector.loc(sheet.name, 1, c), "Spalte enthält Werte, aber keine Überschrift",
                              expected="ein Spaltenname in Zeile 1",
                              hint="der Spalte eine Überschrift geben oder ihre Werte löschen")
            continue
        text = _cell_text(raw)
        name = canonical.get(normalise_header(text), text)
        if name in columns:
            collector.add("input-duplicate-column", collector.loc(sheet.name, 1, c), f'Spalte "{name}" kommt doppelt vor',
                          found=text, expected="jede Spalte nur einmal", hint="eine der beiden löschen oder umbenennen")
            continue
        columns[name] = c
    ok = True
    for name in required:
        if name not in columns:
            ok = False
            collector.add("input-missing-column", collector.loc(sheet.name, 1), f'Spalte "{name}" fehlt'
                          f"{did_you_mean(name, columns)}", found=", ".join(columns) or "keine Überschriften",
                          expected=", ".join(required), hint=f'in Zeile 1 eine Spalte "{name}" anlegen')
    return columns if ok else None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _data_rows(sheet: _Sheet, collector: _Collector) -> Iterator[tuple[int, list]]:
    """Non-empty data rows with their row numbers. Empty rows followed by more data are one error per block
    (naming the first cell after it: a stray cell far below the data is one error, not thousands); empty rows
    at the end are ignored."""
    gap_start = None
    for r in range(2, len(sheet.rows) + 1):
        row = sheet.rows[r - 1]
        if all(_blank(v) for v in row):
            gap_start = gap_start or r
            continue
        if gap_start is not None:
            _report_gap(sheet, gap_start, r, row, collector)
            gap_start = None
        yield r, row


def _report_gap(sheet: _Sheet, first: int, after: int, row: list, collector: _Collector) -> None:
    c = next(c for c, v in enumerate(row, start=1) if not _blank(v))
    cell = f"{column_letter(c)}{after}"
    rows = f"Zeile {first}" if after - first == 1 else f"Zeilen {first} bis {after - 1}"
    collector.add("input-empty-row", collector.loc(sheet.name, first),
                  f"{rows} {'ist' if after - first == 1 else 'sind'} leer, danach folgen weitere Daten ab {cell}",
                  found=f"{rows} leer; {cell} = {_show(row[c - 1])}", expected="ein Datensatz pro Zeile ohne Lücken",
                  hint=("die leere Zeile löschen" if after - first == 1 else
                        f"die leeren Zeilen löschen oder, falls {cell} versehentlich ausgefüllt ist, den Wert dort "
                        "löschen"))


class _Row:
    """Typed access to the cells of one data row."""

    def __init__(self, sheet: _Sheet, r: int, row: tuple, columns: dict[str, int], collector: _Collector) -> None:
        self.sheet, self.r, self.row, self.columns, self.collector = sheet, r, row, columns, collector

    def raw(self, name: str) -> object:
        c = self.columns[name]
        value = self.row[c - 1] if c - 1 < len(self.row) else None
        cell = (self.r, c)
        if cell in self.sheet.errors:
            self.collector.add("input-excel-error", self.where(name), "Die Zelle zeigt einen Excel-Fehler",
                              found=self.sheet.errors[cell], expected="ein Wert",
                              hint="die Formel in dieser Zelle korrigieren")
        elif cell in self.sheet.formulas and _blank(value):
            self.collector.add("input-uncalculated-formula", self.where(name), "Formel ohne berechneten Wert",
                               found=self.sheet.formulas[cell], expected="ein Wert",
                               hint="die Arbeitsmappe in Excel öffnen, neu berechnen lassen und speichern")
        elif cell in self.sheet.bad_dates:
            self.collector.add("input-bad-date", self.where(name), "Die Datumszelle enthält kein gültiges Datum",
                               found=_show(self.sheet.bad_dates[cell]), expected="ein Datum wie 2022-03-01",
                               hint="das Datum neu eintragen (oder die Zelle als Zahl formatieren, wenn eine Zahl "
                                    "gemeint ist)")
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                value = None
            elif value.startswith("#") and value.endswith(("!", "?", "A")):
                self.collector.add("input-excel-error", self.where(name), "Die Zelle zeigt einen Excel-Fehler",
                                   found=value, expected="ein Wert", hint="die Formel in dieser Zelle korrigieren")
        elif isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
            value = _dt.datetime.combine(value, _dt.time())  # a date cell, as openpyxl read it (midnight)
        return value

    def where(self, name: str) -> Location:
        return self.collector.loc(self.sheet.name, self.r, self.columns.get(name))

    def number(self, name: str, required: bool, what: str) -> Decimal | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} ist leer", expected=what,
                                   hint=f"{what} eintragen")
            return None
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time, _dt.timedelta)):
            self.collector.add("input-not-a-number", self.where(name), f"{name}: ein Datum ist {_negated(what)}",
                               found=_show(value), expected=what,
                               hint="die Zelle als Zahl formatieren und den Wert neu eintragen")
            return None
        if isinstance(value, str) or isinstance(value, bool):
            hint = _german_number_hint(value) if isinstance(value, str) else "eine Zahl eintragen"
            self.collector.add("input-not-a-number", self.where(name), f"{_show(value)} ist {_negated(what)}",
                               found=_show(value), expected=f"{what}, z. B. 12000.50", hint=hint)
            return None
        if isinstance(value, float) and value.is_integer() and -_WHOLE < value < _WHOLE:
            return Decimal(int(value))  # the common case: a whole number of at most 15 digits, exact
        try:
            number = decimal_from_cell(value)
        except ValueError:
            self.collector.add("input-not-a-number", self.where(name), f"{name} ist keine endliche Zahl",
                               found=_show(value), expected=what, hint="eine Zahl eintragen")
            return None
        return number if self.exact(name, number) else None

    def exact(self, name: str, number: Decimal) -> bool:
        """False (with a problem) for a number a spreadsheet cell cannot hold exactly: over 15 significant digits
        or 10^15 and more (NaN and infinity never get here)."""
        if number.adjusted() < MAX_DIGITS and (len(number.as_tuple().digits) <= MAX_DIGITS
                                               or len(number.normalize().as_tuple().digits) <= MAX_DIGITS):
            return True
        self.collector.add("input-too-many-digits", self.where(name), f"{name} hat mehr als {MAX_DIGITS} Stellen",
                           found=_digits(number),
                           expected=f"höchstens {MAX_DIGITS} gültige Stellen, kleiner als 10^15",
                           hint="den Wert prüfen; eine Tabellenzelle speichert nur 15 Stellen genau")
        return False

    def amount(self, name: str, required: bool, what: str = "ein Betrag in Euro",
               negative: tuple[str, str, str] = ("input-negative", "darf nicht negativ sein",
                                                 "den Betrag ohne Minuszeichen eintragen")) -> int | None:
        """The cell as int cents (0 if empty and optional); `negative` = (code, message, hint) for a value < 0."""
        value = self.number(name, required, what)
        if value is None:
            return None if required else 0
        if value < 0:
            code, message, hint = negative
            self.collector.add(code, self.where(name), f"{name} {message}", found=str(value),
                               expected="0 oder mehr", hint=hint)
            return None
        try:
            cents = cents_from_decimal(value)
        except ValueError:
            self.collector.add("input-sub-cent", self.where(name), f"{name} enthält Bruchteile eines Cents",
                               found=str(value), expected="höchstens zwei Nachkommastellen",
                               hint=f"auf Cent runden, z. B. {value.quantize(Decimal('0.01'))}")
            return None
        if abs(cents) >= 10 ** MAX_DIGITS:  # the output writes euros with cents: 15 digits is what a cell carries
            self.collector.add("input-too-many-digits", self.where(name), f"{name} ist zu groß, um auf den Cent genau "
                               "in einer Tabellenzelle zu stehen", found=str(value),
                               expected="höchstens 9999999999999.99 (15 Stellen einschließlich Cent)",
                               hint="den Betrag prüfen (Tausendertrennzeichen oder Einheit vertauscht?)")
            return None
        return cents

    def text(self, name: str, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} ist leer", expected="ein Wert",
                                   hint=f"{name} ausfüllen")
            return ""
        if isinstance(value, Decimal) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            number = decimal_from_cell(value)
            return f"{number.normalize():f}" if number == number.to_integral_value() else str(number)
        return str(value)

    def ags(self, name: str, required: bool = True, keys: tuple[str, ...] = ("ags",),
            level: str = DEFAULT_LEVEL) -> str | None:
        if keys != ("ags",):
            return self.key(name, required, keys, level)
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} ist leer",
                                   expected="ein 8-stelliger AGS", hint="den AGS eintragen, z. B. 05170048")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            digits = str(int(value)) if isinstance(value, int) or value.is_integer() else repr(value)
            hint = (f'die Spalte als Text formatieren und "{digits.zfill(8)}" eintragen (die führende Null ist '
                    "verloren gegangen)" if digits.isdigit() and len(digits) < 8
                    else "die Spalte als Text formatieren und 8 Ziffern eintragen")
            self.collector.add("input-bad-ags", self.where(name), "Der AGS ist als Zahl gespeichert",
                               found=digits, expected="8 Ziffern als Text, z. B. 05170048", hint=hint)
            return None
        text = str(value)
        if not AGS_PATTERN.fullmatch(text):
            self.collector.add("input-bad-ags", self.where(name), "kein gültiger AGS", found=_show(text),
                               expected="8 Ziffern, z. B. 05170048",
                               hint="den amtlichen 8-stelligen Gemeindeschlüssel eintragen")
            return None
        return text

    def key(self, name: str, required: bool, keys: tuple[str, ...], level: str) -> str | None:
        """A payer's key as its level allows (README, "Umlageverband"), as text of ASCII digits."""
        expected = " oder ".join(KEY_TEXTS[k] for k in keys)
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} ist leer", expected=expected,
                                   hint="den Schlüssel des Mitglieds eintragen")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            digits = str(int(value)) if isinstance(value, int) or value.is_integer() else repr(value)
            self.collector.add("input-bad-ags", self.where(name), "Der Schlüssel ist als Zahl gespeichert", found=digits,
                               expected=expected + " (als Text)",
                               hint="die Spalte als Text formatieren und den Schlüssel mit führender Null eintragen")
            return None
        text = str(value)
        if any(KEY_PATTERNS[k].fullmatch(text) for k in keys):
            return text
        member = (f"ein Mitglied eines {level}s ist ein Landkreis (Kreisschlüssel) oder eine kreisfreie Stadt "
                  "(AGS mit 000 am Ende)" if "kreis" in keys and "ags" not in keys and re.fullmatch(r"[0-9]{8}", text)
                  else "")
        self.collector.add("input-bad-ags", self.where(name), f"kein gültiger Schlüssel für ein Mitglied ({level})"
                           + (f": {member}" if member else ""), found=_show(text), expected=expected,
                           hint="den Schlüssel der Ebene eintragen (Parameter Umlageverband prüfen)")
        return None

    def attribute(self, name: str) -> object:
        """A free column as rules see it: Decimal for numbers, text otherwise, '' for empty."""
        value = self.raw(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return Decimal(int(value))
        if isinstance(value, float) and value.is_integer() and -_WHOLE < value < _WHOLE:
            return Decimal(int(value))  # the common case: a whole number of at most 15 digits, exact
        if isinstance(value, (int, float, Decimal)):
            try:
                number = decimal_from_cell(value)
            except ValueError:
                self.collector.add("input-not-a-number", self.where(name), f"{name} ist keine endliche Zahl",
                                   found=_show(value), expected="eine Zahl oder ein Text", hint="einen Wert eintragen")
                return ""
            return number if self.exact(name, number) else ""
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        return str(value)


def _is_header_cell(value: object) -> bool:
    return isinstance(value, str) and normalise_header(value) == "wert"


def _need_key(key: str) -> str | None:
    """`Umlagebedarf` -> ""; `Umlagebedarf:kreisumlage` (also with a blank or _) -> "kreisumlage"; else None."""
    match = re.fullmatch(r"\s*umlagebedarf\s*(?:[:_ ]\s*(\S.*?))?\s*", key, flags=re.IGNORECASE)
    return None if match is None else (match.group(1) or "")


def _parameters(sheet: _Sheet, collector: _Collector) -> "Parameters | _Partial":
    found: dict[str, tuple[object, int]] = {}
    needs: dict[str, tuple[object, int]] = {}
    for r, row in enumerate(sheet.rows, start=1):
        key = row[0] if row else None
        if key is None or (isinstance(key, str) and not key.strip()):
            continue
        key = _cell_text(key)
        if r == 1 and (normalise_header(key) == "parameter" or _is_header_cell(row[1] if len(row) > 1 else None)):
            continue  # a header row: "Parameter | Wert", "Schlüssel | Wert", "Name | Wert"
        levy = _need_key(key)
        if levy is not None:
            if levy in needs:
                collector.add("input-duplicate-parameter", collector.loc(sheet.name, r, 1),
                              f'Parameter "{key}" kommt doppelt vor', found=key, expected="je Umlage ein Umlagebedarf",
                              hint=f"die doppelte Zeile löschen; der Parameter steht schon in Zeile {needs[levy][1]}")
                continue
            value = row[1] if len(row) > 1 else None
            needs[levy] = (value.strip() if isinstance(value, str) else value, r)
            continue
        canonical = next((k for k in PARAMETERS if normalise_header(k) == normalise_header(key)), None)
        if canonical is None:
            collector.add("input-unknown-parameter", collector.loc(sheet.name, r, 1), f'unbekannter Parameter "{key}"'
                          f"{did_you_mean(key, PARAMETERS)}", found=key, expected=", ".join(PARAMETERS),
                          hint="den Namen korrigieren oder die Zeile löschen")
            continue
        if canonical in found:  # which of two values the controller meant is not guessed
            collector.add("input-duplicate-parameter", collector.loc(sheet.name, r, 1),
                          f'Parameter "{canonical}" kommt doppelt vor', found=key, expected="jeden Parameter nur einmal",
                          hint=f"die doppelte Zeile löschen; der Parameter steht schon in Zeile {found[canonical][1]}")
            continue
        value = row[1] if len(row) > 1 else None
        if isinstance(value, str):
            value = value.strip() or None
        found[canonical] = (value, r)

    def where(key: str) -> Location:
        return collector.loc(sheet.name, found[key][1], 2) if key in found else collector.loc(sheet.name)

    ok = True
    district = found.get("Kreis", (None, 0))[0]
    if district is None:
        ok = False
        collector.add("input-missing-parameter", where("Kreis"), 'Parameter "Kreis" fehlt oder ist leer',
                      expected="der Name des Kreises", hint='eine Zeile "Kreis" mit dem Namen in Spalte B anlegen')
    year = found.get("Haushaltsjahr", (None, 0))[0]
    if isinstance(year, float) and year.is_integer():
        year = int(year)
    if isinstance(year, str) and re.fullmatch(r"[0-9]{4}", year):  # ASCII digits; text "2022" is the year 2022
        year = int(year)
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2200:
        ok = False
        collector.add("input-bad-parameter", where("Haushaltsjahr"), "Haushaltsjahr muss eine Jahreszahl sein",
                      found=_show(year), expected="z. B. 2022", hint="das Haushaltsjahr als Zahl eintragen")
    rounding = found.get("Rundung", ("Cent", 0))[0]
    if rounding not in ROUNDING_UNITS:
        ok = False
        collector.add("input-bad-parameter", where("Rundung"), "Rundung muss Cent oder Euro sein"
                      f"{did_you_mean(str(rounding), ROUNDING_UNITS)}", found=_show(rounding),
                      expected="Cent oder Euro", hint="Cent (üblich für Umlagebescheide in NRW) oder Euro eintragen")
    decimals = found.get("Hebesatz_Nachkommastellen", (2, 0))[0]
    if isinstance(decimals, float) and decimals.is_integer():
        decimals = int(decimals)
    if decimals not in (2, 4):
        ok = False
        collector.add("input-bad-parameter", where("Hebesatz_Nachkommastellen"),
                      "Hebesatz_Nachkommastellen muss 2 oder 4 sein", found=_show(decimals),
                      expected="2 oder 4", hint="2 (z. B. 36.20 %) oder 4 (z. B. 26.7678 %) eintragen")
    level = found.get("Umlageverband", (DEFAULT_LEVEL, 0))[0] or DEFAULT_LEVEL
    level = next((name for name in LEVELS if name.casefold() == str(level).casefold()), level)  # "bezirk" is Bezirk
    if level not in LEVELS:
        ok = False
        collector.add("input-bad-parameter", where("Umlageverband"), "unbekannter Umlageverband"
                      f"{did_you_mean(str(level), LEVELS)}", found=_show(level), expected=", ".join(LEVELS),
                      hint="die Ebene eintragen, die umlegt (leer lassen für einen Kreis)")
    own_key = found.get("Gebietsschluessel", (None, 0))[0]
    if isinstance(own_key, (int, float)) and not isinstance(own_key, bool) or (
            own_key is not None and not re.fullmatch(r"[0-9]{5}|[0-9]{8}|[0-9]{12}", str(own_key))):
        ok = False
        collector.add("input-bad-parameter", where("Gebietsschluessel"), "Gebietsschluessel ist kein Schlüssel",
                      found=_show(own_key), expected="5, 8 oder 12 Ziffern als Text, z. B. 09677",
                      hint="die Zelle als Text formatieren und den Schlüssel mit führender Null eintragen")
    entries = []
    for levy, (value, r) in needs.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # the template's empty row: no need given
        cents = _need_cents(value, collector.loc(sheet.name, r, 2), collector)
        if cents is None:
            ok = False
            continue
        entries.append(NeedEntry(levy, cents, collector.loc(sheet.name, r, 2)))
    if "" in needs and len(needs) > 1:
        ok = False
        collector.add("input-duplicate-parameter", collector.loc(sheet.name, needs[""][1], 1),
                      "Umlagebedarf ohne Umlage neben Umlagebedarf je Umlage", found="Umlagebedarf",
                      expected="entweder eine Zeile Umlagebedarf oder je Umlage eine Zeile Umlagebedarf:<id>",
                      hint="die Zeile ohne Umlage der richtigen Umlage zuordnen, z. B. Umlagebedarf:kreisumlage")
    if not ok:
        # what the other sheets are read by stays known: the members' keys by the level, whether a need is given
        return _Partial(str(level) if level in LEVELS else DEFAULT_LEVEL, bool(needs))
    return Parameters(str(district), year, str(rounding), int(decimals), collector.loc(sheet.name), str(level),
                      tuple(entries), str(own_key or ""))


@dataclass(frozen=True, slots=True)
class _Partial:
    """A Parameter sheet with errors: enough of it to read the other sheets without errors that follow from them."""

    level: str
    has_needs: bool


def _need_cents(value: object, where: Location, collector: _Collector) -> int | None:
    """A Umlagebedarf cell as cents (a number in euros, at most two decimals, not negative)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        collector.add("input-bad-parameter", where, "Umlagebedarf ist kein Betrag", found=_show(value),
                      expected="ein Betrag in Euro, z. B. 107500000", hint="den ungedeckten Bedarf als Zahl eintragen")
        return None
    number = decimal_from_cell(value)
    try:
        cents = cents_from_decimal(number)
    except ValueError:
        collector.add("input-sub-cent", where, "Umlagebedarf enthält Bruchteile eines Cents", found=str(number),
                      expected="höchstens zwei Nachkommastellen", hint="auf Cent runden")
        return None
    if cents < 0 or abs(cents) >= 10 ** MAX_DIGITS:
        collector.add("input-bad-parameter", where, "Umlagebedarf liegt außerhalb des Möglichen", found=str(number),
                      expected="0 oder mehr, höchstens 15 Stellen einschließlich Cent",
                      hint="den Betrag prüfen (Einheit oder Vorzeichen vertauscht?)")
        return None
    return cents


def _territory(key: str) -> str:
    """The 8-digit form of a member's key: a Kreisschlüssel as its kreisfreie Stadt's AGS (09663 → 09663000), a
    12-digit Regionalschlüssel as its AGS (Land, Regierungsbezirk, Kreis + Gemeinde, without Gemeindeart and
    Gemeindeverband: 120605003154 → 12060154; service.brandenburg.de, "Regionalschlüssel")."""
    if len(key) == 5:
        return key + "000"
    if len(key) == 12:
        return key[:5] + key[9:]
    return key


def _municipalities(sheet: _Sheet, collector: _Collector, level: str = DEFAULT_LEVEL
                    ) -> tuple[list[Municipality], tuple[str, ...], set[str]]:
    """The municipalities (members: payers keyed as their level allows), the sheet's columns, and every valid key
    of the sheet (also of rows with other errors: a reference to such a row is not an "unknown AGS" on top of its
    own error). `Umlagegrundlagen` may be missing where the rule file's levies compute the base from its
    components (checked once the rules are known: `levies.computed_bases`)."""
    columns = _header(sheet, MUNICIPALITY_COLUMNS[:2], MUNICIPALITY_COLUMNS[2:], collector)
    if columns is None:
        return [], (), set()
    keys = LEVELS[level].keys
    result: list[Municipality] = []
    first_row: dict[str, int] = {}
    territory: dict[str, tuple[str, int]] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        ags = cells.ags("AGS", keys=keys, level=level)
        name = cells.text("Gemeinde", required=True)
        base_cents = cells.amount("Umlagegrundlagen", True, "die Umlagegrundlage in Euro",
                                  ("input-negative-base", "darf nicht negativ sein",
                                   "die Umlagegrundlagen aus den GFG-Daten eintragen")) \
            if "Umlagegrundlagen" in columns else 0
        attrs = {column: cells.attribute(column) for column in columns}
        if ags is not None:
            if ags in first_row:
                collector.add("input-duplicate-ags", cells.where("AGS"), f"AGS {ags} kommt doppelt vor",
                              found=ags, expected="jede Gemeinde nur einmal",
                              hint=f"die doppelte Zeile löschen; die erste steht in Zeile {first_row[ags]}")
                continue
            same = territory.get(_territory(ags))
            if same is not None:  # one territory under two forms of its key (09663 and 09663000): levied twice
                collector.add("input-duplicate-ags", cells.where("AGS"), f"{ags} bezeichnet dasselbe Gebiet wie "
                              f"{same[0]} in Zeile {same[1]}", found=ags, expected="jedes Mitglied nur einmal",
                              hint="eine der beiden Zeilen löschen (ein Kreisschlüssel und der AGS mit 000 am Ende, "
                                   "ein Regionalschlüssel und sein AGS meinen dasselbe Gebiet)")
                continue
            first_row[ags] = r
            territory[_territory(ags)] = (ags, r)
            attrs["AGS"] = ags
        if ags is None or base_cents is None:
            continue
        result.append(Municipality(ags, name, base_cents, attrs, collector.loc(sheet.name, r), dict(columns)))
    if not result and not any(p.location.sheet == sheet.name for p in collector.problems):
        collector.add("input-no-rows", collector.loc(sheet.name, 2), "keine Gemeinden",
                      expected="eine Zeile je Gemeinde", hint="die kreisangehörigen Gemeinden eintragen")
    return result, tuple(columns), set(first_row)


def _items(sheet: _Sheet, known_ags: set[str], collector: _Collector, level: str = DEFAULT_LEVEL
           ) -> tuple[list[CostItem], tuple[str, ...], set[str]]:
    """The cost items, the sheet's columns, and every ID of the sheet (also of items with other errors)."""
    columns = _header(sheet, ITEM_COLUMNS, OPTIONAL_ITEM_COLUMNS, collector)
    if columns is None:
        return [], (), set()
    result: list[CostItem] = []
    first_row: dict[str, int] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        item_id = cells.text("ID", required=True)
        components = {name: cells.amount(name, required=False) for name in COMPONENTS}
        funding = cells.amount("Foerderung", required=False)
        host_raw = cells.raw("Traeger")
        host = DISTRICT_HOST
        if host_raw is not None and str(host_raw) != DISTRICT_HOST:
            if str(host_raw).lower() == DISTRICT_HOST.lower():
                host = DISTRICT_HOST
            else:
                host = cells.ags("Traeger", keys=LEVELS[level].keys, level=level)
                if host is not None and known_ags and host not in known_ags:
                    collector.add("input-unknown-host", cells.where("Traeger"), f"Traeger {host} steht nicht im Blatt Gemeinden",
                                  found=host, expected=f"{DISTRICT_HOST} oder ein AGS aus Gemeinden",
                                  hint=f'leer lassen oder "{DISTRICT_HOST}" eintragen, wenn der Kreis Träger ist; '
                                       "sonst den AGS der Trägergemeinde")
                    host = None
        attrs = {column: cells.attribute(column) for column in columns}
        if "Stellen" in columns and attrs["Stellen"] != "" and not isinstance(attrs["Stellen"], Decimal):
            collector.add("input-not-a-number", cells.where("Stellen"), f"{_show(attrs['Stellen'])} ist keine Stellenzahl",
                          found=_show(attrs["Stellen"]), expected="Vollzeitäquivalente, z. B. 4 oder 0.5",
                          hint=_german_number_hint(str(attrs["Stellen"])))
        if item_id:
            if item_id in first_row:
                collector.add("input-duplicate-id", cells.where("ID"), f'Kostenposition mit ID "{item_id}" kommt doppelt vor',
                              found=item_id, expected="eindeutige IDs",
                              hint=f"eine umbenennen; die erste steht in Zeile {first_row[item_id]}")
                continue
            first_row[item_id] = r
        if not item_id or host is None or funding is None or any(v is None for v in components.values()):
            continue
        attrs["ID"] = item_id
        attrs["Traeger"] = host
        result.append(CostItem(item_id, cells.text("Bezeichnung"), cells.text("Kategorie"), components, funding, host,
                               attrs, collector.loc(sheet.name, r), dict(columns)))
    return result, tuple(columns), set(first_row)


def _keys(sheet: _Sheet, items: set[str], known_ags: set[str], collector: _Collector,
          level: str = DEFAULT_LEVEL) -> list[KeyEntry]:
    """`items`: every ID Kostenpositionen names, also on rows refused for their own errors (their keys are no
    unknown items)."""
    columns = _header(sheet, KEY_COLUMNS, (), collector)
    if columns is None:
        return []
    result: list[KeyEntry] = []
    seen: dict[tuple[str, str], int] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        item_id = cells.text("ID", required=True)
        ags = cells.ags("AGS", keys=LEVELS[level].keys, level=level)
        value = cells.number("Wert", True, "ein Schlüsselwert (z. B. Fallzahl)")
        if item_id and items and item_id not in items:
            collector.add("input-unknown-item", cells.where("ID"), f'keine Kostenposition mit ID "{item_id}"'
                          f"{did_you_mean(item_id, items)}", found=item_id, expected="eine ID aus Kostenpositionen",
                          hint="die ID korrigieren")
            continue
        if ags is not None and known_ags and ags not in known_ags:
            collector.add("input-unknown-ags", cells.where("AGS"), f"AGS {ags} steht nicht im Blatt Gemeinden", found=ags,
                          expected="ein AGS aus Gemeinden", hint="den AGS korrigieren")
            continue
        if value is not None and value < 0:
            collector.add("input-negative", cells.where("Wert"), "Ein Schlüsselwert darf nicht negativ sein", found=str(value),
                          expected="0 oder mehr", hint="die Verbrauchs- bzw. Fallzahl eintragen")
            continue
        if (item_id, ags) in seen:
            collector.add("input-duplicate-key", cells.where("AGS"), f"Schlüssel für {item_id} / {ags} doppelt angegeben",
                          found=f"{item_id} / {ags}", expected="eine Zeile je Kostenposition und Gemeinde",
                          hint=f"eine löschen; die erste steht in Zeile {seen[(item_id, ags)]}")
            continue
        if not item_id or ags is None or value is None:
            continue
        seen[(item_id, ags)] = r
        result.append(KeyEntry(item_id, ags, value, collector.loc(sheet.name, r)))
    return result


def _levy_rates(sheet: _Sheet, collector: _Collector) -> list[LevyRateEntry]:
    """The optional `Umlagesaetze` sheet: one statutory rate (percent, 0..100, at most 4 decimals) per levy and
    base component ("" = the whole base)."""
    columns = _header(sheet, LEVY_RATE_COLUMNS, OPTIONAL_LEVY_RATE_COLUMNS, collector)
    if columns is None:
        return []
    result: list[LevyRateEntry] = []
    seen: dict[tuple[str, str], int] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        levy = cells.text("Umlage", required=True)
        component = cells.text("Bestandteil") if "Bestandteil" in columns else ""
        rate = cells.number("Satz", True, "ein Umlagesatz in Prozent, z. B. 33.5")
        if rate is not None and (r, columns["Satz"]) in sheet.percent:
            rate = rate.scaleb(2)  # a cell formatted as percent holds 0.335 and shows 33.5 %: the controller sees 33.5
        if rate is not None and not (0 <= rate <= 100 and rate.as_tuple().exponent >= -RATE_DECIMALS):
            collector.add("input-bad-rate", cells.where("Satz"), "Der Umlagesatz muss zwischen 0 und 100 Prozent "
                          f"liegen und darf höchstens {RATE_DECIMALS} Nachkommastellen haben", found=str(rate),
                          expected=f"0 bis 100 mit höchstens {RATE_DECIMALS} Nachkommastellen, z. B. 33.1234",
                          hint="den Satz in Prozent eintragen (33,5 % als 33.5, nicht 0.335)")
            rate = None
        if levy and (levy, component) in seen:
            what = f"{levy} / {component}" if component else f"{levy} (ganze Grundlage)"
            collector.add("input-duplicate-rate", cells.where("Umlage"), f"Umlagesatz für {what} doppelt angegeben",
                          found=what, expected="eine Zeile je Umlage und Bestandteil",
                          hint=f"eine löschen; die erste steht in Zeile {seen[(levy, component)]}")
            continue
        if not levy or rate is None:
            continue
        seen[(levy, component)] = r
        result.append(LevyRateEntry(levy, component, rate, collector.loc(sheet.name, r)))
    return result


def read_input(path: str | Path, shown: str | None = None) -> InputBook:
    """Read and check an input workbook. Raises InputError listing every problem found. `shown`: the file name
    the workbook is known by, where it is read from a copy of another name (verify's replay of an archived
    input); the run shows and locates it by that name."""
    book, problems = read_input_rows(path, shown)
    if problems:
        raise InputError(problems)
    return book


# Problems of one data row that drop only that row: the rest of the workbook stays whole, so the checks that
# follow reading (the rule file's columns and domains, the needs, the rates) can still run on the rows that
# passed and report their problems in the same go. Any other problem (a sheet, a header, a parameter, a rate
# row) leaves no workbook those checks could trust.
ROW_PROBLEMS = frozenset({
    "input-bad-ags", "input-duplicate-ags", "input-duplicate-id", "input-duplicate-key", "input-empty-cell",
    "input-empty-row", "input-excel-error", "input-negative", "input-negative-base", "input-not-a-number",
    "input-sub-cent", "input-too-many-digits", "input-uncalculated-formula", "input-unknown-ags",
    "input-unknown-host", "input-unknown-item"})
WHOLE_SHEETS = frozenset({"Parameter", "Umlagesaetze"})


def read_input_rows(path: str | Path, shown: str | None = None) -> tuple[InputBook, list[Problem]]:
    """Read and check an input workbook like `read_input`, but return the book of the rows that passed with
    the problems of the rows that did not, where only data rows are at fault (`ROW_PROBLEMS`, outside
    Parameter and Umlagesaetze): the caller runs its later checks on that book and reports everything at once
    (`pipeline.compute`). Raises InputError for any other problem."""
    path = Path(path)
    name = shown or path.name
    collector = _Collector(name)
    data = _read_bytes(path)
    sha256 = hashlib.sha256(data).hexdigest()
    scan = scan_bytes(data, name)  # before any workbook library sees the bytes
    if scan.problems:
        raise InputError(scan.problems)
    workbook = _open(data, collector)
    if workbook is None:
        raise InputError(collector.problems)
    try:
        sheets = _load_sheets(workbook, scan, collector)
    finally:
        workbook.close()
    parameters = _parameters(sheets["Parameter"], collector) if "Parameter" in sheets else None
    level = parameters.level if parameters is not None else DEFAULT_LEVEL
    has_needs = bool(parameters.needs) if isinstance(parameters, Parameters) else bool(parameters and parameters.has_needs)
    if isinstance(parameters, _Partial):
        parameters = None
    municipalities, municipality_columns, known_ags = (_municipalities(sheets["Gemeinden"], collector, level)
                                                       if "Gemeinden" in sheets else ([], (), set()))
    items, item_columns, known_items = _items(sheets["Kostenpositionen"], known_ags, collector, level) \
        if "Kostenpositionen" in sheets else ([], (), set())
    keys = _keys(sheets["Schluessel"], known_items, known_ags, collector, level) if "Schluessel" in sheets else []
    if "Parameter" in sheets and (has_needs or "Umlagesaetze" in sheets) and "Kostenpositionen" not in sheets:
        # a levy with a statutory rate, or whose need is given as Umlagebedarf, needs no cost item (nor their sheet)
        collector.problems = [p for p in collector.problems
                              if not (p.code == "input-missing-sheet" and p.location.sheet == "Kostenpositionen")]
    levy_rates = _levy_rates(sheets["Umlagesaetze"], collector) if "Umlagesaetze" in sheets else []
    problems = collector.problems
    if parameters is None or any(p.code not in ROW_PROBLEMS or p.location.sheet in WHOLE_SHEETS for p in problems):
        raise InputError(problems)
    return InputBook(str(path.with_name(shown) if shown else path), sha256, parameters, tuple(municipalities),
                     tuple(items), tuple(keys),
                     municipality_columns, item_columns, tuple(levy_rates)), list(problems)
