"""Checks on the raw bytes of an input file before any workbook library opens it.

An `.xlsx` file is a zip archive of XML parts. Before a workbook reader sees a byte we make sure that it is one and
that opening it is harmless: not a CSV or text file, not an old `.xls` or a password-protected workbook (both
OLE compound files), not a zip bomb (declared sizes and compression ratios are checked from the central
directory *before* anything is decompressed, then every part is decompressed as a stream with a hard cap in
case the declared sizes lie), no `<!DOCTYPE`/`<!ENTITY` in any XML part (refused unexpanded, so neither
external entities nor "billion laughs" can be expanded later), no macros, not too many rows (the declared
`<dimension>` and the actual `<row>` elements are checked as a stream), and work bounded by what the file
holds, not what it declares: in the sheets we read, no value beyond `MAX_COLUMNS` or outside `MAX_CELLS`
(a reader allocates the rectangle up to the last value), and shared-string and style tables of bounded size.
With `structure=True` it also reports what makes a workbook misleading to a reader: hidden sheets and merged
cells in the sheets we read. `scan_bytes` also hands the reader what a cell-value reader (python-calamine)
does not report: formulas without a cached value, Excel error cells and malformed date cells (`SheetScan`).
Sheets are streamed with expat; nothing here builds a tree of a sheet or writes.
"""
from __future__ import annotations

import datetime as _dt
import io
import posixpath
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Iterator
from xml.etree import ElementTree
from xml.parsers import expat

from ..core.problems import Location, Problem, column_letter

__all__ = ["check_bytes", "scan_bytes", "is_read_sheet", "Scan", "SheetScan", "DAMAGED_WORKBOOK", "MAX_ROWS", "MAX_COLUMNS", "MAX_CELLS",
           "MAX_CELL_ELEMENTS", "MAX_SHARED_STRINGS", "MAX_STYLES", "MAX_STRUCTURE_PART", "MAX_FILE_BYTES",
           "MAX_TOTAL_UNCOMPRESSED", "MAX_RATIO", "MAX_PARTS", "READ_SHEETS"]

MAX_FILE_BYTES = 100 * 1024 * 1024  # the file itself; read with this cap (the web upload limit is 20 MB)
MAX_ROWS = 100_000               # per sheet; a district's data has a few thousand rows at most
MAX_COLUMNS = 200                # per read sheet, counted to the last cell holding a value (A..GR)
MAX_CELLS = 600_000              # read sheets together: rows x columns up to the last value (what a reader
                                 # allocates and the checks visit; about 3 s at the limit). 100,000 key rows = 300,000
MAX_CELL_ELEMENTS = 2_000_000    # <c> elements of the read sheets together, empty styled ones included (parse time)
MAX_STRUCTURE_PART = 16 * 1024 * 1024  # workbook.xml, its relationships, styles.xml (real ones: kilobytes)
MAX_SHARED_STRINGS = 1_000_000   # entries of the shared-string table (loaded whole by any reader)
MAX_STYLES = 64_000              # cell formats (Excel's own limit is about 64,000)
MAX_TOTAL_UNCOMPRESSED = 200 * 1024 * 1024  # all parts together, bytes
MAX_PART_UNCOMPRESSED = 100 * 1024 * 1024
MAX_RATIO = 200                  # uncompressed / compressed, for parts bigger than RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024        # small parts may compress extremely well (e.g. empty styles)
MAX_PARTS = 10_000
READ_SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen", "Schluessel", "Umlagesaetze")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CHUNK = 64 * 1024
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_FORBIDDEN = tuple(token.encode(enc) for token in ("<!doctype", "<!entity")
                   for enc in ("ascii", "utf-16-le", "utf-16-be"))
_CELL_REF = re.compile(r"^([A-Z]{1,3})(\d{1,7})$")
_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main "  # expat's "namespace tag" names
_C, _V, _F, _IS, _ROW = _NS + "c", _NS + "v", _NS + "f", _NS + "is", _NS + "row"
_DIMENSION, _MERGE, _SI, _XF = _NS + "dimension", _NS + "mergeCell", _NS + "si", _NS + "xf"


# What a workbook library (openpyxl) raises on a damaged archive or part, at opening or while rows stream: the
# readers of our own output workbooks (explain, compare, trueup, verify) turn these into a located problem.
DAMAGED_WORKBOOK = (zipfile.BadZipFile, zlib.error, ElementTree.ParseError, expat.ExpatError, LookupError, EOFError,
                    OSError, ValueError, TypeError, AttributeError, NotImplementedError)  # KeyError, IndexError: Lookup


class _Stop(Exception):
    pass


def _problem(code: str, name: str, message: str, sheet: str | None = None, row: int | None = None,
             column: int | None = None, **kw: str | None) -> Problem:
    return Problem(code, Location(name, sheet, row, column), message, **kw)


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    if not sample or b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        try:
            sample.decode("cp1252")
        except UnicodeDecodeError:
            return False
    return True


def _ole(data: bytes, name: str) -> Problem:
    # Stream names in an OLE directory are UTF-16-LE; an encrypted OOXML workbook holds "EncryptionInfo".
    if "EncryptionInfo".encode("utf-16-le") in data or "EncryptedPackage".encode("utf-16-le") in data:
        return _problem("input-not-xlsx", name, "Die Arbeitsmappe ist kennwortgeschützt (verschlüsselt)",
                        found="verschlüsselte Arbeitsmappe (OLE-Container mit EncryptionInfo)",
                        expected="eine .xlsx-Arbeitsmappe ohne Kennwort",
                        hint="in Excel öffnen, das Kennwort entfernen (Datei › Informationen › Arbeitsmappe schützen) "
                             "und erneut als .xlsx speichern")
    return _problem("input-not-xlsx", name, "Das ist eine alte Excel-97-2003-Datei (.xls)",
                    found="Excel-97-2003-Datei (OLE-Container)", expected="eine .xlsx-Arbeitsmappe",
                    hint="in Excel öffnen und als .xlsx (Excel-Arbeitsmappe) speichern")


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int]) -> Iterator[bytes]:
    """Decompressed chunks of one part, stopping with _Stop once the part or the total budget is exceeded."""
    produced = 0
    with archive.open(info) as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                return
            produced += len(chunk)
            budget[0] -= len(chunk)
            if produced > max(info.file_size, 0) + _CHUNK or produced > MAX_PART_UNCOMPRESSED or budget[0] < 0:
                raise _Stop
            yield chunk


def _sheet_paths(archive: zipfile.ZipFile, names: set[str]) -> list[tuple[str, str, str]]:
    """(sheet name, state, part path) for each sheet in workbook order."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    targets: dict[str, str] = {}
    if "xl/_rels/workbook.xml.rels" in names:
        for rel in ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels")).iter(f"{_PKG_REL}Relationship"):
            target = rel.get("Target", "")
            path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            targets[rel.get("Id", "")] = path
    result = []
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        result.append((sheet.get("name", ""), sheet.get("state", "visible"),
                       targets.get(sheet.get(f"{_REL}id", ""), "")))
    return result


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


@dataclass(frozen=True, slots=True)
class SheetScan:
    """What the reader needs from a read sheet's XML that a cell-value reader does not report: formulas without
    a cached value (cell -> formula text), Excel error cells (cell -> `#N/A`, ...), and date cells (`t="d"`)
    whose text is no ISO date (cell -> text). Cells are 1-based (row, column)."""

    formulas: dict[tuple[int, int], str]
    errors: dict[tuple[int, int], str]
    bad_dates: dict[tuple[int, int], str]
    percent: set[tuple[int, int]]  # number cells shown as a percentage (0.335 shown as 33.5 %)


@dataclass(frozen=True, slots=True)
class Scan:
    """The safety verdict on a workbook's bytes and, for the sheets read, their `SheetScan` by sheet name."""

    problems: list[Problem]
    sheets: dict[str, SheetScan] = field(default_factory=dict)


class _TooMany(Exception):
    pass


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$", re.ASCII)


def _iso_date_ok(text: str) -> bool:
    if not _ISO_DATE.match(text):
        return False
    try:
        _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class _SheetScanner:
    """Streams one sheet part with expat (no tree is built): row and cell bounds, merged cells and, for read
    sheets, the cells listed in `SheetScan`. Refuses with `_Refused` as soon as a bound is crossed."""

    def __init__(self, sheet: str, name: str, read: bool, structure: bool, percent_styles: frozenset[str],
                 before: int, elements: int = 0, max_rows: int = MAX_ROWS) -> None:
        self.sheet, self.name, self.read, self.structure = sheet, name, read, structure
        self.max_rows = max_rows
        self.before = before  # cells of the read sheets scanned before this one
        self.percent_styles = percent_styles
        self.problems: list[Problem] = []
        self.scan = SheetScan({}, {}, {}, set())
        self.style: str | None = None
        self.rows = self.last_row = self.column = 0
        self.max_row = self.max_column = 0
        self.cell: tuple[int, int] | None = None
        self.cell_type = "n"
        self.value: list[str] | None = None
        self.formula: list[str] | None = None
        self.inline = False
        self.text: list[str] | None = None  # where character data goes now
        self.expat = None
        self.elements = elements  # <c> elements so far, empty ones included: expat calls back for each

    def parser(self):
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        # Only start tags call back (half the calls): a cell is finished when the next one starts or the part
        # ends, and character data is collected from a <v> or <f> until the next start tag (see collect).
        parser.StartElementHandler = self.start
        self.expat = parser
        return parser

    def characters(self, data: str) -> None:
        self.text.append(data)

    def collect(self, into: list[str] | None) -> None:
        self.text = into
        self.expat.CharacterDataHandler = self.characters if into is not None else None

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.text is not None:
            self.collect(None)
        if tag == _C:
            if self.cell is not None:
                self.end_cell()
            self.elements += 1
            if self.elements > MAX_CELL_ELEMENTS:
                self.too_many_elements(attrs.get("r", ""))
            ref = attrs.get("r")
            letters = ref.rstrip("0123456789") if ref else None
            column = (_COLUMNS.get(letters) or _letters_column(letters)) if letters else 0
            self.column = column or self.column + 1
            self.cell = (self.last_row, self.column)
            self.cell_type = attrs.get("t", "n")
            self.style = attrs.get("s")
            self.value = self.formula = None
            self.inline = False
        elif tag == _V and self.cell is not None:
            # the text matters for formulas (empty = never calculated), error cells and date cells only
            self.value = []
            if self.read and (self.formula is not None or self.cell_type in ("e", "d")):
                self.collect(self.value)
            else:
                self.value.append("?")  # a value is present; its text is calamine's business
        elif tag == _F and self.cell is not None:
            self.formula = []
            if self.read:
                self.collect(self.formula)
        elif tag == _IS:
            self.inline = True
        elif tag == _ROW:
            self.row(attrs.get("r"))
        elif tag == _DIMENSION:
            self.dimension(attrs.get("ref", ""))
        elif tag == _MERGE and self.read and self.structure:
            self.merged(attrs.get("ref", ""))

    def finish(self) -> None:
        """The part has ended: finish its last cell."""
        if self.cell is not None:
            self.end_cell()
            self.cell = None

    def row(self, r: str | None) -> None:
        self.rows += 1
        self.last_row = int(r) if r and r.isdigit() else self.last_row + 1
        self.column = 0
        if self.rows > self.max_rows or self.last_row > self.max_rows:
            raise _Refused(_problem(
                "input-too-many-rows", self.name, f'Blatt "{self.sheet}" hat mehr als {_n(self.max_rows)} Zeilen',
                self.sheet, self.last_row, found=f"Zeile {self.last_row}",
                expected=f"höchstens {_n(self.max_rows)} Zeilen",
                hint="die leeren Zeilen unter den Daten löschen und speichern"))

    def dimension(self, ref: str) -> None:
        match = _CELL_REF.match(ref.split(":")[-1])
        if match and int(match.group(2)) > self.max_rows:  # a declared width costs nothing: only values are read
            raise _Refused(_problem(
                "input-too-many-rows", self.name, f'Blatt "{self.sheet}" meldet {_n(int(match.group(2)))} Zeilen',
                self.sheet, int(match.group(2)), found=f"Bereich {ref}", expected=f"höchstens {_n(self.max_rows)} Zeilen",
                hint="die leeren Zeilen unter den Daten löschen (markieren, Zellen › Löschen) und speichern"))

    def merged(self, ref: str) -> None:
        match = _CELL_REF.match(ref.split(":")[0])
        row, column = (int(match.group(2)), _column_number(match.group(1))) if match else (None, None)
        what = "verbundene Überschriftzellen" if row == 1 else "verbundene Zellen"
        self.problems.append(_problem(
            "input-merged-cells", self.name, f"{what} {ref}", self.sheet, row, column, found=f"verbunden: {ref}",
            expected="ein Wert je Zelle, keine verbundenen Zellen",
            hint="den Bereich markieren, die Verbindung aufheben (Start › Verbinden und zentrieren) und "
                 "jede Zelle ausfüllen"))

    def too_many_elements(self, ref: str) -> None:
        raise _Refused(_problem(
            "input-too-many-cells", self.name, f'Blatt "{self.sheet}": die gelesenen Blätter haben zusammen mehr '
            f"als {_n(MAX_CELL_ELEMENTS)} Zelleinträge (auch leere, formatierte Zellen)", self.sheet, self.last_row,
            self.column + 1, found=f"über {_n(MAX_CELL_ELEMENTS)} Zelleinträge, zuletzt {ref or 'ohne Bezug'}",
            expected=f"höchstens {_n(MAX_CELL_ELEMENTS)} Zelleinträge in den gelesenen Blättern zusammen",
            hint="die formatierten leeren Zeilen und Spalten neben den Daten löschen (markieren, Zellen › Löschen) "
                 "und speichern"))

    def end_cell(self) -> None:
        value = "".join(self.value).strip() if self.value else ""
        if not (value or self.inline or self.formula is not None) or not self.read:
            return  # a styled empty cell: no reader keeps it, so it costs nothing
        r, c = self.cell
        if c > self.max_column or r > self.max_row:
            self.bound(r, c)
        if self.cell_type == "e":
            self.scan.errors[(r, c)] = value or "#WERT!"
        elif self.formula is not None and not value and not self.inline:
            text = "".join(self.formula).strip()
            self.scan.formulas[(r, c)] = f"={text}" if text else "{gemeinsame Formel}"
        elif self.cell_type == "d" and value and not _iso_date_ok(value):
            self.scan.bad_dates[(r, c)] = value
        if self.style in self.percent_styles and self.cell_type == "n":
            self.scan.percent.add((r, c))

    def bound(self, r: int, c: int) -> None:
        ref = f"{column_letter(c)}{r}"
        if c > MAX_COLUMNS:
            raise _Refused(_problem(
                "input-too-many-columns", self.name, f'Blatt "{self.sheet}": Wert in Spalte {column_letter(c)}, '
                f"weit rechts der erlaubten {_n(MAX_COLUMNS)} Spalten", self.sheet, r, c, found=f"Zelle {ref}",
                expected=f"höchstens {_n(MAX_COLUMNS)} Spalten (bis {column_letter(MAX_COLUMNS)})",
                hint=f"den Wert in {ref} löschen (oder die Spalten rechts der Daten markieren und löschen) und "
                     "speichern"))
        self.max_row, self.max_column = max(self.max_row, r), max(self.max_column, c)
        if self.before + self.max_row * self.max_column > MAX_CELLS:
            others = f" (dazu {_n(self.before)} in den Blättern davor)" if self.before else ""
            raise _Refused(_problem(
                "input-too-many-cells", self.name, f'Blatt "{self.sheet}": der Bereich bis {ref} umfasst '
                f"{_n(self.max_row)} Zeilen × {_n(self.max_column)} Spalten{others}", self.sheet, r, c,
                found=f"{_n(self.before + self.max_row * self.max_column)} Zellen bis {ref}",
                expected=f"höchstens {_n(MAX_CELLS)} Zellen in den gelesenen Blättern zusammen (je Blatt Zeilen × "
                         "Spalten bis zum letzten Wert)",
                hint=f"prüfen, ob {ref} ein versehentlicher Wert weit außerhalb der Daten ist, und ihn löschen"))


_COLUMNS: dict[str, int] = {}


def _letters_column(letters: str) -> int:
    """Column letters -> number, memoised (a sheet has few distinct columns); 0 for anything that is no column."""
    if len(_COLUMNS) > 20_000:
        _COLUMNS.clear()
    number = _column_number(letters) if letters.isascii() and letters.isupper() and len(letters) <= 3 else 0
    _COLUMNS[letters] = number
    return number


def _n(number: int) -> str:
    return f"{number:,}".replace(",", ".")


def _scan_sheet(archive: zipfile.ZipFile, info: zipfile.ZipInfo, sheet: str, name: str, read: bool,
                structure: bool, budget: list[int], percent_styles: frozenset[str],
                cells: list[int], max_rows: int = MAX_ROWS) -> tuple[list[Problem], SheetScan]:
    """Bounds, merged cells (read sheets) and the cells of `SheetScan` of one sheet, read as a stream;
    `cells` counts the cells (rectangles) and cell elements of the read sheets so far."""
    scanner = _SheetScanner(sheet, name, read, structure, percent_styles, cells[0], cells[1], max_rows)
    parser = scanner.parser()
    try:
        for chunk in _stream(archive, info, budget):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
        scanner.finish()
    except _Refused as refused:
        return [refused.problem], scanner.scan
    cells[0] += scanner.max_row * scanner.max_column
    cells[1] = scanner.elements
    return scanner.problems, scanner.scan


# A sheet we never read only needs its rows counted. expat would call Python for each of its elements (an 11 MB
# upload can hold 100 MB of sheet XML: seconds); the tags are counted in C instead. A `<row` inside a comment
# or CDATA can only make the count larger, i.e. refuse, never let a sheet through.
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row(?=[\s/>])([^>]*)>")
_ROW_NUMBER = re.compile(rb"""\sr\s*=\s*["'](\d{1,9})["']""")
_DIMENSION_TAG = re.compile(rb"""<(?:[A-Za-z_][\w.-]*:)?dimension\s[^>]*?\bref\s*=\s*["']([^"']*)["']""")


def _count_rows(archive: zipfile.ZipFile, info: zipfile.ZipInfo, sheet: str, name: str,
                budget: list[int], max_rows: int = MAX_ROWS) -> list[Problem]:
    """The row limit of a sheet that is not read: declared `<dimension>` and `<row>` tags, counted as a stream."""
    scanner = _SheetScanner(sheet, name, False, False, frozenset(), 0, max_rows=max_rows)
    tail = b""
    try:
        for chunk in _stream(archive, info, budget):
            buffer = tail + chunk
            cut = buffer.rfind(b"<")
            if cut >= 0 and b">" not in buffer[cut:] and len(buffer) - cut < _CHUNK:
                buffer, tail = buffer[:cut], buffer[cut:]  # a tag split between chunks
            else:
                tail = b""
            if scanner.rows == 0:
                for match in _DIMENSION_TAG.finditer(buffer):
                    scanner.dimension(match.group(1).decode("ascii", "replace"))
            for match in _ROW_TAG.finditer(buffer):
                number = _ROW_NUMBER.search(b" " + match.group(1))
                scanner.row(number.group(1).decode("ascii") if number else None)
    except _Refused as refused:
        return [refused.problem]
    return []


_STRUCTURE_PARTS = ("xl/workbook.xml", "xl/_rels/workbook.xml.rels", "xl/styles.xml")
_PERCENT_FORMATS = {"9", "10"}  # Excel's built-in 0% and 0.00%


def _percent_styles(archive: zipfile.ZipFile, names: set[str], budget: list[int]) -> frozenset[str]:
    """Indexes (as in a cell's `s`) of the cell formats that show a number as a percentage."""
    if "xl/styles.xml" not in names:
        return frozenset()
    custom: set[str] = set()
    formats: list[str] = []
    parent: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == _NS + "numFmt" and "%" in re.sub(r'"[^"]*"|\\.', "", attrs.get("formatCode", "")):
            custom.add(attrs.get("numFmtId", ""))
        elif tag == _XF and parent and parent[-1] == _NS + "cellXfs":
            formats.append(attrs.get("numFmtId", "0"))
        parent.append(tag)

    def end(tag: str) -> None:
        parent.pop()

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler, parser.EndElementHandler = start, end
    for chunk in _stream(archive, archive.getinfo("xl/styles.xml"), budget):
        parser.Parse(chunk, False)
    percent = _PERCENT_FORMATS | custom
    return frozenset(str(index) for index, number_format in enumerate(formats) if number_format in percent)


def _count_tables(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str,
                  budget: list[int]) -> list[Problem]:
    """Shared strings and cell formats are loaded whole by any reader: count their entries as a stream."""
    problems = []
    for info in infos:
        lower = info.filename.lower()
        if lower.endswith("sharedstrings.xml"):
            tag, limit, what = _SI, MAX_SHARED_STRINGS, "Texteinträge (gemeinsame Zeichenfolgen)"
        elif lower.endswith("styles.xml"):
            tag, limit, what = _XF, MAX_STYLES, "Zellformate"
        else:
            continue
        count = [0]

        def start(element: str, attrs: dict[str, str], tag=tag, count=count, limit=limit) -> None:
            if element == tag:
                count[0] += 1
                if count[0] > limit:
                    raise _TooMany

        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartElementHandler = start
        try:
            for chunk in _stream(archive, info, budget):
                parser.Parse(chunk, False)
        except _TooMany:
            problems.append(_problem(
                "input-too-large", name, f'Teil "{info.filename}" hat mehr als {_n(limit)} {what}',
                found=f"über {_n(limit)} {what}", expected=f"höchstens {_n(limit)}",
                hint="die Daten in eine neue Arbeitsmappe kopieren (nur Werte einfügen) und diese speichern"))
    return problems


def check_bytes(data: bytes, name: str, structure: bool = True, max_rows: int | None = None) -> list[Problem]:
    """Every reason not to open these bytes as an input workbook; [] if it is safe to hand to a reader.
    `max_rows` is the row limit of every sheet (default MAX_ROWS): our own outputs pass Excel's
    (`report.MAX_ROWS`)."""
    return scan_bytes(data, name, structure, max_rows).problems


def is_read_sheet(sheet: str) -> bool:
    """A sheet the reader loads: one of READ_SHEETS, also under a name differing in case, spaces or `_`."""
    key = unicodedata.normalize("NFC", sheet).strip().lower()
    for umlaut, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        key = key.replace(umlaut, spelled)
    return re.sub(r"[\s_\-]+", "", key) in _READ_KEYS


_READ_KEYS = {name.lower() for name in READ_SHEETS}


def scan_bytes(data: bytes, name: str, structure: bool = True, max_rows: int | None = None) -> Scan:
    """`check_bytes` plus what the reader needs from the sheets' XML (`SheetScan` per read sheet)."""
    sheets: dict[str, SheetScan] = {}
    problems = _check(data, name, structure, sheets, MAX_ROWS if max_rows is None else max_rows)
    return Scan(problems, sheets if not problems else {})


def _check(data: bytes, name: str, structure: bool, sheets: dict[str, SheetScan], max_rows: int) -> list[Problem]:
    if not data:
        return [_problem("input-empty-file", name, "Die Datei ist leer", found="0 Bytes",
                         expected="eine .xlsx-Arbeitsmappe",
                         hint="die Arbeitsmappe erneut speichern und hochladen; das Hochladen wurde vielleicht "
                              "unterbrochen")]
    if data[:8] == OLE_MAGIC:
        return [_ole(data, name)]
    if not data.startswith(b"PK"):
        if _looks_like_text(data):
            first = data[:200].decode("utf-8", errors="replace").splitlines()[0] if data.strip() else ""
            return [_problem("input-not-xlsx", name, "Das ist eine Text-/CSV-Datei, keine Excel-Arbeitsmappe",
                             found=repr(first[:60]), expected="eine .xlsx-Arbeitsmappe",
                             hint="in Excel öffnen und als .xlsx (Excel-Arbeitsmappe) speichern; Umbenennen genügt "
                                  "nicht")]
        return [_problem("input-not-xlsx", name, "Die Datei ist keine Excel-Arbeitsmappe (.xlsx)",
                         found=repr(data[:16]), expected="eine .xlsx-Arbeitsmappe",
                         hint="die Datei als .xlsx (Excel-Arbeitsmappe) speichern")]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        return [_problem("input-not-xlsx", name, "Die Datei ist ein beschädigtes ZIP-Archiv, keine lesbare Arbeitsmappe",
                         found=str(error), expected="eine .xlsx-Arbeitsmappe",
                         hint="in Excel öffnen und erneut speichern")]
    with archive:
        return _check_archive(archive, infos, name, structure, sheets, max_rows)


def _check_archive(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, structure: bool,
                   scans: dict[str, SheetScan], max_rows: int) -> list[Problem]:
    bomb_hint = ("das ist keine gewöhnliche Arbeitsmappe; nicht öffnen, sondern beim Absender die "
                 "Original-.xlsx anfordern")
    if len(infos) > MAX_PARTS:
        return [_problem("input-zip-bomb", name, f"Das Archiv hat {len(infos)} Teile", found=str(len(infos)),
                         expected=f"höchstens {MAX_PARTS}", hint=bomb_hint)]
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_UNCOMPRESSED:
        return [_problem("input-zip-bomb", name, "Die Arbeitsmappe würde entpackt weit mehr Daten ergeben, als eine Eingabe je braucht",
                         found=f"{total:,} Bytes entpackt".replace(",", "."),
                         expected=f"höchstens {MAX_TOTAL_UNCOMPRESSED:,} Bytes".replace(",", "."), hint=bomb_hint)]
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_PART_UNCOMPRESSED or (info.file_size > RATIO_FLOOR and ratio > MAX_RATIO):
            return [_problem("input-zip-bomb", name, f'Teil "{info.filename}" ist verdächtig stark komprimiert',
                             found=f"{info.file_size:,} Bytes aus {info.compress_size:,} Bytes (Faktor {ratio:,.0f})"
                             .replace(",", "."), expected=f"ein Kompressionsfaktor unter {MAX_RATIO}", hint=bomb_hint)]
        if info.flag_bits & 0x1:
            return [_problem("input-not-xlsx", name, "Das Archiv ist verschlüsselt", found=info.filename,
                             expected="eine .xlsx-Arbeitsmappe ohne Kennwort",
                             hint="das Kennwort entfernen und erneut speichern")]
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        kind = "eine OpenDocument-Datei (.ods)" if "mimetype" in names else "ein ZIP-Archiv"
        return [_problem("input-not-xlsx", name, f"Das ist {kind}, keine Excel-Arbeitsmappe",
                         found=", ".join(sorted(names)[:5]), expected="eine .xlsx-Arbeitsmappe mit xl/workbook.xml",
                         hint="in Excel öffnen und als .xlsx (Excel-Arbeitsmappe) speichern")]
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        return [_problem("input-macros", name, "Die Arbeitsmappe enthält Makros (VBA)", found="xl/vbaProject.bin",
                         expected="eine .xlsx-Arbeitsmappe ohne Makros",
                         hint="als .xlsx (Excel-Arbeitsmappe, nicht .xlsm) speichern; Makros werden hier nie "
                              "ausgeführt")]
    budget = [MAX_TOTAL_UNCOMPRESSED]
    try:
        # Every part is unpacked as a capped stream (declared sizes may lie); XML parts are scanned for DTDs
        # before any of them is parsed.
        for info in infos:
            is_xml = info.filename.lower().endswith((".xml", ".rels", ".vml"))
            tail = b""
            for chunk in _stream(archive, info, budget):
                if not is_xml:
                    continue
                window = (tail + chunk).lower()
                if any(token in window for token in _FORBIDDEN):
                    return [_problem("input-xml-dtd", name,
                                     f'Teil "{info.filename}" enthält eine DOCTYPE-/ENTITY-Deklaration',
                                     found="<!DOCTYPE",
                                     expected="einfaches Arbeitsmappen-XML ohne DTD (Excel schreibt nie eine)",
                                     hint="die Datei stammt nicht aus Excel; die Daten in eine neue Arbeitsmappe "
                                          "übernehmen")]
                tail = window[-32:]
        oversized = [part for part in _STRUCTURE_PARTS
                     if part in names and archive.getinfo(part).file_size > MAX_STRUCTURE_PART]
        if oversized:  # parsed whole (workbook, its relationships) or twice (styles): a few KB in a real workbook
            size = archive.getinfo(oversized[0]).file_size
            return [_problem("input-too-large", name, f'Teil "{oversized[0]}" ist {_n(size)} Bytes groß',
                             found=f"{_n(size)} Bytes", expected=f"höchstens {_n(MAX_STRUCTURE_PART)} Bytes",
                             hint="die Daten in eine neue Arbeitsmappe kopieren (nur Werte einfügen) und diese "
                                  "speichern")]
        sheets = _sheet_paths(archive, names)
        problems = _count_tables(archive, infos, name, budget)
        if problems:
            return problems
        percent_styles = _percent_styles(archive, names, budget)
        cells = [0, 0]  # value rectangles and <c> elements of the read sheets so far
        for sheet, state, path in sheets:
            if state != "visible" and structure:
                problems.append(_problem(
                    "input-hidden-sheet", name, f'Blatt "{sheet}" ist ausgeblendet ({state})', sheet, found=state,
                    expected="alle Blätter sichtbar, damit verarbeitet wird, was Sie sehen",
                    hint="das Blatt einblenden (Rechtsklick auf einen Blattreiter › Einblenden) und prüfen oder "
                         "löschen"))
            if path in names and is_read_sheet(sheet):  # cell bounds and merged cells: the sheets we read
                found, scans[sheet] = _scan_sheet(archive, archive.getinfo(path), sheet, name, True, structure,
                                                  budget, percent_styles, cells, max_rows)
                problems += found
            elif path in names:  # the row limit applies to every sheet (a marked copy loads them all)
                problems += _count_rows(archive, archive.getinfo(path), sheet, name, budget, max_rows)
    except _Stop:
        return [_problem("input-zip-bomb", name, "Ein Teil entpackt zu mehr Daten, als sein Kopf angibt oder erlaubt ist",
                         found="entpackte Größe über der Grenze", expected="eine gewöhnliche .xlsx-Arbeitsmappe",
                         hint=bomb_hint)]
    except (zipfile.BadZipFile, zlib.error, ElementTree.ParseError, expat.ExpatError, KeyError, EOFError, OSError,
            ValueError, NotImplementedError, LookupError) as error:  # LookupError: an unknown XML encoding
        return [_problem("input-not-xlsx", name, "Der Inhalt der Arbeitsmappe ist beschädigt",
                         found=str(error)[:200], expected="eine .xlsx-Arbeitsmappe",
                         hint="in Excel öffnen und erneut speichern")]
    return problems
