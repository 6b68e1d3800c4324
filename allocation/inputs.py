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
import unicodedata
import zipfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

from .model import COMPONENTS, DISTRICT_HOST, CostItem, InputBook, KeyEntry, Municipality, Parameters
from .money import ROUNDING_UNITS, cents_from_decimal, decimal_from_cell
from .problems import InputError, Location, Problem, did_you_mean
from .safety import check_bytes

__all__ = [
    "read_input",
    "SHEETS",
    "MUNICIPALITY_COLUMNS",
    "ITEM_COLUMNS",
    "KEY_COLUMNS",
    "PARAMETERS",
    "normalise_header",
]

SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen")
OPTIONAL_SHEETS = ("Schluessel",)
MUNICIPALITY_COLUMNS = ("AGS", "Gemeinde", "Umlagegrundlagen")
ITEM_COLUMNS = ("ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger")
OPTIONAL_ITEM_COLUMNS = ("Stellen",)
KEY_COLUMNS = ("ID", "AGS", "Wert")
PARAMETERS = {
    "Kreis": "name of the district, e.g. Kreis Wesel",
    "Haushaltsjahr": "budget year, e.g. 2022",
    "Rundung": "Cent or Euro",
    "Hebesatz_Nachkommastellen": "2 or 4",
}
AGS_PATTERN = re.compile(r"^\d{8}$")
ALIASES = {"foerderung": "Foerderung", "traeger": "Traeger", "schluessel": "Schluessel"}


def normalise_header(text: str) -> str:
    """Lower-case, umlauts spelled out, no spaces or underscores: `Förderung ` -> `foerderung`."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    for umlaut, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, spelled)
    return re.sub(r"[\s_\-]+", "", text)


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


def _german_number_hint(text: str) -> str:
    """A fix for a number written as text, e.g. `12.000,5O` -> `12000.50 (letter O instead of zero?)`."""
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
        return "enter a number (format the cell as number, not text)"
    suggestion = f"{number:f}"
    if "." in suggestion and len(suggestion.split(".")[1]) == 1:
        suggestion += "0"
    extra = f" ({' '.join(notes)})" if notes else ""
    return f"enter the number {suggestion} as a number cell{extra}"


class _Sheet:
    """One sheet's header and data rows, with 1-based row/column numbers."""

    def __init__(self, name: str, rows: list[tuple], formulas: dict[tuple[int, int], str]) -> None:
        self.name = name
        self.rows = rows
        self.formulas = formulas


def _cells(workbook, name: str) -> list[tuple]:
    return [tuple(row) for row in workbook[name].iter_rows(values_only=True)]


def _open(data: bytes, collector: _Collector):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    where = collector.loc()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
            collector.add("input-not-xlsx", where, "this is an old Excel 97-2003 (.xls) file or an encrypted workbook",
                          expected="an .xlsx workbook without password",
                          hint="open it in Excel, remove any password, and save as .xlsx (Excel-Arbeitsmappe)")
        else:
            collector.add("input-not-xlsx", where, "this file is not an Excel workbook (.xlsx)",
                          found=repr(data[:16]), expected="an .xlsx workbook",
                          hint="save the file as .xlsx (Excel-Arbeitsmappe), not as CSV or another format")
        return None, None
    try:
        values = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        formulas = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        collector.add("input-not-xlsx", where, "the workbook cannot be opened", found=str(error),
                      expected="an .xlsx workbook", hint="open it in Excel and save it again as .xlsx")
        return None, None
    return values, formulas


def _load_sheets(values, formulas, collector: _Collector) -> dict[str, _Sheet]:
    names = list(values.sheetnames)
    sheets: dict[str, _Sheet] = {}
    for wanted in SHEETS + OPTIONAL_SHEETS:
        found = wanted if wanted in names else next(
            (n for n in names if normalise_header(n) == normalise_header(wanted)), None)
        if found is None:
            if wanted in SHEETS:
                collector.add("input-missing-sheet", collector.loc(wanted), f'sheet "{wanted}" is missing'
                              f"{did_you_mean(wanted, names)}", found=", ".join(names) or "no sheets",
                              expected=", ".join(SHEETS), hint=f'add a sheet named "{wanted}" (see `allocation template`)')
            continue
        if found != wanted:
            collector.add("input-sheet-name", collector.loc(found), f'sheet "{found}" should be named "{wanted}"',
                          found=found, expected=wanted, hint=f'rename the sheet to "{wanted}"')
            continue
        rows = _cells(values, wanted)
        formula_cells = {}
        for r, row in enumerate(_cells(formulas, wanted), start=1):
            for c, value in enumerate(row, start=1):
                if isinstance(value, str) and value.startswith("="):
                    formula_cells[(r, c)] = value
                elif value is not None and type(value).__name__ in ("ArrayFormula", "DataTableFormula"):
                    formula_cells[(r, c)] = "{array formula}"
        sheets[wanted] = _Sheet(wanted, rows, formula_cells)
    return sheets


def _header(sheet: _Sheet, required: tuple[str, ...], optional: tuple[str, ...],
            collector: _Collector) -> dict[str, int] | None:
    """Header row -> canonical column name -> 1-based index; None if the sheet is unusable."""
    if not sheet.rows:
        collector.add("input-empty-sheet", collector.loc(sheet.name, 1), f'sheet "{sheet.name}" is empty',
                      expected=", ".join(required), hint="write the column headers into row 1")
        return None
    canonical = {normalise_header(name): name for name in required + optional}
    canonical.update({k: v for k, v in ALIASES.items() if v in required + optional})
    columns: dict[str, int] = {}
    for c, raw in enumerate(sheet.rows[0], start=1):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if any(len(row) >= c and row[c - 1] not in (None, "") for row in sheet.rows[1:]):
                collector.add("input-missing-header", collector.loc(sheet.name, 1, c), "column has values but no header",
                              expected="a column name in row 1", hint="name the column or delete its values")
            continue
        text = str(raw).strip()
        name = canonical.get(normalise_header(text), text)
        if name in columns:
            collector.add("input-duplicate-column", collector.loc(sheet.name, 1, c), f'column "{name}" appears twice',
                          found=text, expected="each column once", hint="delete or rename one of them")
            continue
        columns[name] = c
    ok = True
    for name in required:
        if name not in columns:
            ok = False
            collector.add("input-missing-column", collector.loc(sheet.name, 1), f'column "{name}" is missing'
                          f"{did_you_mean(name, columns)}", found=", ".join(columns) or "no headers",
                          expected=", ".join(required), hint=f'add a column headed "{name}" in row 1')
    return columns if ok else None


def _data_rows(sheet: _Sheet, collector: _Collector) -> Iterator[tuple[int, tuple]]:
    """Non-empty data rows with their row numbers; an empty row between data rows is an error."""
    last = max((r for r, row in enumerate(sheet.rows, start=1)
                if r > 1 and any(v not in (None, "") for v in row)), default=1)
    for r in range(2, last + 1):
        row = sheet.rows[r - 1]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
            collector.add("input-empty-row", collector.loc(sheet.name, r), "empty row between data rows",
                          expected="one record per row without gaps", hint="delete the empty row")
            continue
        yield r, row


class _Row:
    """Typed access to the cells of one data row."""

    def __init__(self, sheet: _Sheet, r: int, row: tuple, columns: dict[str, int], collector: _Collector) -> None:
        self.sheet, self.r, self.row, self.columns, self.collector = sheet, r, row, columns, collector

    def raw(self, name: str) -> object:
        c = self.columns[name]
        value = self.row[c - 1] if c - 1 < len(self.row) else None
        if value is None and (self.r, c) in self.sheet.formulas:
            self.collector.add("input-uncalculated-formula", self.where(name), "formula without a calculated value",
                               found=self.sheet.formulas[(self.r, c)], expected="a value",
                               hint="open the workbook in Excel, let it calculate, and save it")
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                value = None
            elif value.startswith("#") and value.endswith(("!", "?", "A")):
                self.collector.add("input-excel-error", self.where(name), "the cell shows an Excel error",
                                   found=value, expected="a value", hint="fix the formula in this cell")
        return value

    def where(self, name: str) -> Location:
        return self.collector.loc(self.sheet.name, self.r, self.columns.get(name))

    def number(self, name: str, required: bool, what: str) -> Decimal | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} is empty", expected=what,
                                   hint=f"enter {what}")
            return None
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            self.collector.add("input-not-a-number", self.where(name), f"{name}: a date is not {what}",
                               found=_show(value), expected=what, hint="format the cell as a number and re-enter it")
            return None
        if isinstance(value, str) or isinstance(value, bool):
            hint = _german_number_hint(value) if isinstance(value, str) else "enter a number"
            self.collector.add("input-not-a-number", self.where(name), f"{_show(value)} is not {what}",
                               found=_show(value), expected=f"{what}, e.g. 12000.50", hint=hint)
            return None
        try:
            return decimal_from_cell(value)
        except ValueError:
            self.collector.add("input-not-a-number", self.where(name), f"{name} is not a finite number",
                               found=_show(value), expected=what, hint="enter a number")
            return None

    def amount(self, name: str, required: bool, what: str = "an amount in euros") -> int | None:
        value = self.number(name, required, what)
        if value is None:
            return None if required else 0
        try:
            cents = cents_from_decimal(value)
        except ValueError:
            self.collector.add("input-sub-cent", self.where(name), f"{name} has fractions of a cent",
                               found=str(value), expected="at most two decimal places",
                               hint=f"round to cents, e.g. {value.quantize(Decimal('0.01'))}")
            return None
        if cents < 0:
            self.collector.add("input-negative", self.where(name), f"{name} must not be negative",
                               found=str(value), expected="0 or more", hint="enter the amount without a minus sign")
            return None
        return cents

    def text(self, name: str, required: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} is empty", expected="a value",
                                   hint=f"fill in {name}")
            return ""
        if isinstance(value, Decimal) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            number = decimal_from_cell(value)
            return f"{number.normalize():f}" if number == number.to_integral_value() else str(number)
        return str(value)

    def ags(self, name: str, required: bool = True) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.collector.add("input-empty-cell", self.where(name), f"{name} is empty",
                                   expected="an 8-digit AGS", hint="enter the AGS, e.g. 05170048")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            digits = str(int(value)) if float(value).is_integer() else repr(value)
            hint = (f'format the column as text and enter "{digits.zfill(8)}" (the leading zero was lost)'
                    if digits.isdigit() and len(digits) < 8 else "format the column as text and enter 8 digits")
            self.collector.add("input-bad-ags", self.where(name), "the AGS is stored as a number",
                               found=digits, expected="8 digits as text, e.g. 05170048", hint=hint)
            return None
        text = str(value)
        if not AGS_PATTERN.match(text):
            self.collector.add("input-bad-ags", self.where(name), "not a valid AGS", found=_show(text),
                               expected="8 digits, e.g. 05170048", hint="enter the official 8-digit municipality key")
            return None
        return text

    def attribute(self, name: str) -> object:
        """A free column as rules see it: Decimal for numbers, text otherwise, '' for empty."""
        value = self.raw(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            return Decimal(int(value))
        if isinstance(value, (int, float, Decimal)):
            try:
                return decimal_from_cell(value)
            except ValueError:
                self.collector.add("input-not-a-number", self.where(name), f"{name} is not a finite number",
                                   found=_show(value), expected="a number or text", hint="enter a value")
                return ""
        if isinstance(value, (_dt.datetime, _dt.date)):
            return value.isoformat()
        return str(value)


def _parameters(sheet: _Sheet, collector: _Collector) -> Parameters | None:
    found: dict[str, tuple[object, int]] = {}
    for r, row in enumerate(sheet.rows, start=1):
        key = row[0] if row else None
        if key is None or (isinstance(key, str) and not key.strip()):
            continue
        key = str(key).strip()
        if r == 1 and normalise_header(key) == "parameter":
            continue
        canonical = next((k for k in PARAMETERS if normalise_header(k) == normalise_header(key)), None)
        if canonical is None:
            collector.add("input-unknown-parameter", collector.loc(sheet.name, r, 1), f'unknown parameter "{key}"'
                          f"{did_you_mean(key, PARAMETERS)}", found=key, expected=", ".join(PARAMETERS),
                          hint="correct the name or delete the row")
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
        collector.add("input-missing-parameter", where("Kreis"), 'parameter "Kreis" is missing or empty',
                      expected="the district's name", hint='add a row "Kreis" with the name in column B')
    year = found.get("Haushaltsjahr", (None, 0))[0]
    if isinstance(year, float) and year.is_integer():
        year = int(year)
    if isinstance(year, str) and year.isdigit():
        year = int(year)
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2200:
        ok = False
        collector.add("input-bad-parameter", where("Haushaltsjahr"), "Haushaltsjahr must be a year",
                      found=_show(year), expected="e.g. 2022", hint="enter the budget year as a number")
    rounding = found.get("Rundung", ("Cent", 0))[0]
    if rounding not in ROUNDING_UNITS:
        ok = False
        collector.add("input-bad-parameter", where("Rundung"), "Rundung must be Cent or Euro"
                      f"{did_you_mean(str(rounding), ROUNDING_UNITS)}", found=_show(rounding),
                      expected="Cent or Euro", hint="enter Cent (levy notices in NRW) or Euro")
    decimals = found.get("Hebesatz_Nachkommastellen", (2, 0))[0]
    if isinstance(decimals, float) and decimals.is_integer():
        decimals = int(decimals)
    if decimals not in (2, 4):
        ok = False
        collector.add("input-bad-parameter", where("Hebesatz_Nachkommastellen"),
                      "Hebesatz_Nachkommastellen must be 2 or 4", found=_show(decimals), expected="2 or 4",
                      hint="enter 2 (e.g. 36.20 %) or 4 (e.g. 26.7678 %)")
    if not ok:
        return None
    return Parameters(str(district), year, str(rounding), int(decimals), collector.loc(sheet.name))


def _municipalities(sheet: _Sheet, collector: _Collector) -> tuple[list[Municipality], tuple[str, ...]]:
    columns = _header(sheet, MUNICIPALITY_COLUMNS, (), collector)
    if columns is None:
        return [], ()
    result: list[Municipality] = []
    first_row: dict[str, int] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        ags = cells.ags("AGS")
        name = cells.text("Gemeinde", required=True)
        base = cells.number("Umlagegrundlagen", True, "the levy base in euros")
        if base is not None and base < 0:
            collector.add("input-negative-base", cells.where("Umlagegrundlagen"), "the levy base must not be negative",
                          found=str(base), expected="0 or more", hint="enter the Umlagegrundlagen from the GFG data")
            base = None
        base_cents = None
        if base is not None:
            try:
                base_cents = cents_from_decimal(base)
            except ValueError:
                collector.add("input-sub-cent", cells.where("Umlagegrundlagen"), "the levy base has fractions of a cent",
                              found=str(base), expected="at most two decimal places", hint="round to cents")
        attrs = {column: cells.attribute(column) for column in columns}
        if ags is not None:
            if ags in first_row:
                collector.add("input-duplicate-ags", cells.where("AGS"), f"AGS {ags} appears twice",
                              found=ags, expected="each municipality once",
                              hint=f"delete the duplicate; the first is in row {first_row[ags]}")
                continue
            first_row[ags] = r
            attrs["AGS"] = ags
        if ags is None or base_cents is None:
            continue
        result.append(Municipality(ags, name, base_cents, attrs, collector.loc(sheet.name, r), dict(columns)))
    if not result and not any(p.location.sheet == sheet.name for p in collector.problems):
        collector.add("input-no-rows", collector.loc(sheet.name, 2), "no municipalities",
                      expected="one row per municipality", hint="enter the member municipalities")
    return result, tuple(columns)


def _items(sheet: _Sheet, known_ags: set[str], collector: _Collector) -> tuple[list[CostItem], tuple[str, ...]]:
    columns = _header(sheet, ITEM_COLUMNS, OPTIONAL_ITEM_COLUMNS, collector)
    if columns is None:
        return [], ()
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
                host = cells.ags("Traeger")
                if host is not None and known_ags and host not in known_ags:
                    collector.add("input-unknown-host", cells.where("Traeger"), f"Traeger {host} is not in sheet Gemeinden",
                                  found=host, expected=f"{DISTRICT_HOST} or an AGS from Gemeinden",
                                  hint=f'leave empty or enter "{DISTRICT_HOST}" if the district runs it; otherwise '
                                       "use the host's AGS")
                    host = None
        attrs = {column: cells.attribute(column) for column in columns}
        if "Stellen" in columns and attrs["Stellen"] != "" and not isinstance(attrs["Stellen"], Decimal):
            collector.add("input-not-a-number", cells.where("Stellen"), f"{_show(attrs['Stellen'])} is not a number of posts",
                          found=_show(attrs["Stellen"]), expected="full-time equivalents, e.g. 4 or 0.5",
                          hint=_german_number_hint(str(attrs["Stellen"])))
        if item_id:
            if item_id in first_row:
                collector.add("input-duplicate-id", cells.where("ID"), f'cost item ID "{item_id}" appears twice',
                              found=item_id, expected="unique IDs", hint=f"rename one; the first is in row {first_row[item_id]}")
                continue
            first_row[item_id] = r
        if not item_id or host is None or funding is None or any(v is None for v in components.values()):
            continue
        attrs["ID"] = item_id
        attrs["Traeger"] = host
        result.append(CostItem(item_id, cells.text("Bezeichnung"), cells.text("Kategorie"), components, funding, host,
                               attrs, collector.loc(sheet.name, r), dict(columns)))
    return result, tuple(columns)


def _keys(sheet: _Sheet, items: set[str], known_ags: set[str], collector: _Collector) -> list[KeyEntry]:
    columns = _header(sheet, KEY_COLUMNS, (), collector)
    if columns is None:
        return []
    result: list[KeyEntry] = []
    seen: dict[tuple[str, str], int] = {}
    for r, row in _data_rows(sheet, collector):
        cells = _Row(sheet, r, row, columns, collector)
        item_id = cells.text("ID", required=True)
        ags = cells.ags("AGS")
        value = cells.number("Wert", True, "a key value (e.g. number of cases)")
        if item_id and items and item_id not in items:
            collector.add("input-unknown-item", cells.where("ID"), f'no cost item with ID "{item_id}"'
                          f"{did_you_mean(item_id, items)}", found=item_id, expected="an ID from Kostenpositionen",
                          hint="correct the ID")
            continue
        if ags is not None and known_ags and ags not in known_ags:
            collector.add("input-unknown-ags", cells.where("AGS"), f"AGS {ags} is not in sheet Gemeinden", found=ags,
                          expected="an AGS from Gemeinden", hint="correct the AGS")
            continue
        if value is not None and value < 0:
            collector.add("input-negative", cells.where("Wert"), "a key value must not be negative", found=str(value),
                          expected="0 or more", hint="enter the usage figure")
            continue
        if (item_id, ags) in seen:
            collector.add("input-duplicate-key", cells.where("AGS"), f"key for {item_id} / {ags} given twice",
                          found=f"{item_id} / {ags}", expected="one row per cost item and municipality",
                          hint=f"delete one; the first is in row {seen[(item_id, ags)]}")
            continue
        if not item_id or ags is None or value is None:
            continue
        seen[(item_id, ags)] = r
        result.append(KeyEntry(item_id, ags, value, collector.loc(sheet.name, r)))
    return result


def read_input(path: str | Path) -> InputBook:
    """Read and check an input workbook. Raises InputError listing every problem found."""
    path = Path(path)
    collector = _Collector(path.name)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError([Problem("input-unreadable", Location(str(path)), "the input workbook cannot be read",
                                  found=error.strerror, expected="a readable .xlsx file",
                                  hint="check the path and permissions")]) from None
    sha256 = hashlib.sha256(data).hexdigest()
    unsafe = check_bytes(data, path.name)  # before any workbook library sees the bytes
    if unsafe:
        raise InputError(unsafe)
    values, formulas = _open(data, collector)
    if values is None:
        raise InputError(collector.problems)
    try:
        sheets = _load_sheets(values, formulas, collector)
    finally:
        values.close()
        formulas.close()
    parameters = _parameters(sheets["Parameter"], collector) if "Parameter" in sheets else None
    municipalities, municipality_columns = (_municipalities(sheets["Gemeinden"], collector)
                                            if "Gemeinden" in sheets else ([], ()))
    known_ags = {m.ags for m in municipalities}
    items, item_columns = _items(sheets["Kostenpositionen"], known_ags, collector) \
        if "Kostenpositionen" in sheets else ([], ())
    keys = _keys(sheets["Schluessel"], {i.id for i in items}, known_ags, collector) if "Schluessel" in sheets else []
    if collector.problems or parameters is None:
        raise InputError(collector.problems)
    return InputBook(str(path), sha256, parameters, tuple(municipalities), tuple(items), tuple(keys),
                     municipality_columns, item_columns)
