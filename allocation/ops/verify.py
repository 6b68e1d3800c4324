"""`allocation verify`: check a run's manifest and hashes, replay the run and compare everything it signs.

`verify` reads the manifest through `runs.readback` (bounds, JSON, every key with its type and value; a problem
names the key path), checks the recorded hashes against the files (read only as regular files), and, for a final
run, its entry in the register of final runs (`register` in the manifest: file, seq and hash must be there; a
manifest of an older version is found by the workbook's hash). It then recomputes the run from the recorded input
and rules (in the recorded working directory, so that paths shown in cells are the same), at the recorded time,
into a private temporary folder under a fixed name (nothing the manifest says chooses where anything is written),
and compares: every cell of every sheet (value and number format), each sheet's layout (sheet order, visibility,
column widths, hidden rows and columns, frozen panes, auto-filter, tab colour, print header) and, as the strongest
check, every part of the xlsx package byte for byte, ignoring only the write times in `docProps/core.xml`
(`PACKAGE_TIMES`); a differing part is reported by part and, inside a sheet, by cell or row. It also rebuilds the
manifest from the recomputed run and compares it field by field; only the fields in `UNCOMPARED_FIELDS` (places,
the output's own hash, which is checked against the file instead, and the register entry, which is checked against
the register) are left out. It lives above the run it replays (`runs.pipeline.replay`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import itertools
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..core.filenames import sha256_file
from ..core.model import Allocation
from ..core.money import de_number
from ..core.problems import ExitCode, Problem, ProblemsError, column_letter
from ..runs.manifest import MANIFEST_SUFFIX, build_manifest, manifest_path
from ..runs.readback import (Earlier, EarlierRefused, RegisterView, flatten, load_manifest, output_bytes, plain_name,
                             read_register)

__all__ = ["VERIFY_FAILED", "IGNORED_ROWS", "UNCOMPARED_FIELDS", "PACKAGE_TIMES", "verify", "VerifyResult",
           "CellDifference", "FieldDifference", "compare_workbooks", "compare_packages", "compare_manifests",
           "load_manifest", "existing_file", "register_findings"]

VERIFY_FAILED = ExitCode.VERIFY  # exit code of `allocation verify` when anything differs
# Protokoll rows left out of the cell comparison: none. The replay is made at the recorded time, so the row
# "Laufzeitpunkt (UTC)" must show the manifest's `started_utc` too (kept as a name for scripts that import it).
IGNORED_ROWS: tuple[str, ...] = ()
# The only bytes of the package that differ between a run and its replay: the write times xlsxwriter puts into
# the document properties.
PACKAGE_TIMES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:(?:created|modified)>)")


# ---------------------------------------------------------------------------------------------- verify

# Fields that legitimately differ between the recorded and the recomputed manifest: when and where the run
# happened, and the output's own hash (an xlsx carries its write time; the recorded hash is checked against
# the file on disk instead). `[]` stands for every element of a list.
UNCOMPARED_FIELDS = ("started_utc", "working_directory", "input.absolute", "rules[].absolute", "bases_from.absolute",
                     "rates_from.absolute", "upward.absolute", "output.path", "output.sha256", "tool.python",
                     # the manifest's format and seal: checked when it is read (`readback.load_manifest`)
                     "format", "seal",
                     # a final run's register entry: checked against the register (`register_findings`)
                     "register.file", "register.seq", "register.sha256", "register.prev_sha256", "register.chain",
                     "register.head")
# Versions: another allocation or durable_rules version is a difference (the run was not reproduced with
# the tools it names); another Python version is a note (money is integer and Fraction arithmetic).
NOTED_FIELDS = ("tool.python",)
# The parameters a run records that the replay cannot compute but takes as given (pipeline.run's `recorded`)
RECORDED_PARAMETERS = ("mode", "provisional", "ignore_validity")

@dataclass(frozen=True, slots=True)
class CellDifference:
    """A cell (or a sheet's layout) of the recorded output that the replay does not reproduce."""

    sheet: str
    cell: str
    expected: object
    found: object
    aspect: str = "Wert"  # "Wert", "Zahlenformat" or "Layout"

    def __str__(self) -> str:
        what = "" if self.aspect == "Wert" else f" ({self.aspect})"
        return f"{self.sheet}!{self.cell}{what}: erwartet {_cell_shown(self.expected)}, gefunden {_cell_shown(self.found)}"


def _cell_shown(value: object) -> str:
    """A cell value as a message shows it: numbers in German format (1.234.567,89), an empty cell as "leer", text
    quoted; never "None" or "Decimal('…')"."""
    from decimal import Decimal

    if value is None or value == "":
        return "leer"
    if isinstance(value, bool):
        return "WAHR" if value else "FALSCH"
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
        if number == number.to_integral_value() and abs(number) < 10_000:  # a year, a count: no separator (2022)
            return f"{number.to_integral_value():f}"
        return de_number(number.to_integral_value() if number == number.to_integral_value() else number.normalize(), 0)
    return f"„{value}“"


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """A manifest field whose recorded value the recomputed run does not give."""

    key: str  # key path, e.g. totals_cents.05170044.total
    recorded: object
    recomputed: object

    def __str__(self) -> str:
        return f"Manifest {self.key}: nachgerechnet {self.recomputed!r}, im Manifest {self.recorded!r}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    manifest: Path
    file_problems: tuple[str, ...] = ()
    differences: tuple[CellDifference, ...] = ()
    replay_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    problems: tuple[Problem, ...] = ()  # the manifest itself is malformed (located: file, key path)
    field_differences: tuple[FieldDifference, ...] = ()
    register: tuple[str, ...] = ()  # a final run whose entry the register lacks, or a damaged register
    package: tuple[CellDifference, ...] = ()  # parts of the xlsx package that differ from the replay
    recorded: dict | None = field(default=None, repr=False, compare=False)  # the manifest as read and checked

    @property
    def identical(self) -> bool:
        return not (self.file_problems or self.differences or self.replay_error is not None or self.problems
                    or self.field_differences or self.register or self.package)

    def text(self) -> str:
        lines = [f"Manifest: {self.manifest}"]
        lines += [f"  {problem}" for problem in self.problems]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  Geändert: {problem}" for problem in self.file_problems]
        lines += [f"  Register: {finding}" for finding in self.register]
        if self.replay_error:
            lines.append(f"  Nachrechnen nicht möglich: {self.replay_error}")
        lines += [f"  Abweichung {difference}" for difference in self.field_differences]
        lines += [f"  Abweichung {difference}" for difference in self.differences]
        lines += [f"  Abweichung {difference}" for difference in self.package]
        if self.identical:
            lines.append("identisch: Eingabe und Regeln unverändert, Nachrechnung ergibt dieselben Zellen, Formate, "
                         "Blattlayouts, Teile der Arbeitsmappe und Manifest-Angaben.")
        elif self.problems:
            lines.append(f"NICHT geprüft: das Manifest ist fehlerhaft ({len(self.problems)} Problem(e)).")
        else:
            lines.append(f"NICHT identisch: {len(self.file_problems)} geänderte Datei(en), "
                         f"{len(self.register)} Befund(e) im Register, "
                         f"{len(self.field_differences)} abweichende Manifest-Angabe(n), "
                         f"{len(self.differences)} abweichende Zelle(n), {len(self.package)} abweichende(r) Teil(e) "
                         "der Arbeitsmappe.")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"status": "identical" if self.identical else "malformed" if self.problems else "different",
                "manifest": str(self.manifest), "problems": [p.as_dict() for p in self.problems],
                "changed_files": list(self.file_problems), "register": list(self.register),
                "replay_error": self.replay_error, "notes": list(self.notes),
                "manifest_differences": [{"key": d.key, "recorded": _jsonable(d.recorded),
                                          "recomputed": _jsonable(d.recomputed)} for d in self.field_differences],
                "differences": [_difference_dict(d) for d in self.differences],
                "package_differences": [_difference_dict(d) for d in self.package]}


def _difference_dict(d: CellDifference) -> dict:
    return {"sheet": d.sheet, "cell": d.cell, "aspect": d.aspect, "expected": _jsonable(d.expected),
            "found": _jsonable(d.found)}


def _jsonable(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _locate(target: str | Path) -> Path:
    target = Path(target)
    return target if target.name.endswith(MANIFEST_SUFFIX) else manifest_path(target)


# --------------------------------------------------------------------------------- manifest fields


def _generic(key: str) -> str:
    """rules[0].absolute -> rules[].absolute"""
    import re

    return re.sub(r"\[\d+\]", "[]", key)


_MISSING = object()  # a key that one of the two manifests lacks


def compare_manifests(recorded: dict, recomputed: dict) -> tuple[list[FieldDifference], list[str]]:
    """Field by field, except UNCOMPARED_FIELDS; returns the differences and notes (NOTED_FIELDS)."""
    want, have = flatten(recorded), flatten(recomputed)
    differences, notes = [], []
    for key in list(want) + [k for k in have if k not in want]:
        if want.get(key, _MISSING) == have.get(key, _MISSING):
            continue
        generic = _generic(key)
        if generic in NOTED_FIELDS:
            notes.append(f"Hinweis: nachgerechnet mit {key} {have.get(key)}, der Lauf nennt {want.get(key)}")
        elif generic not in UNCOMPARED_FIELDS:
            differences.append(FieldDifference(key, want.get(key, "(fehlt)"), have.get(key, "(fehlt)")))
    return differences, notes

def existing_file(entry: dict, base: Path) -> Path | None:
    """The file a manifest entry names: its absolute path as recorded, else its path relative to the manifest's
    folder, else (a run of the inbox, whose private copy of the input is gone) the archived input in
    DIR/archiv/ whose name carries its SHA-256. Only regular files count (a FIFO put there is never opened)."""
    # an absolute path as recorded (a run that records names only, the web page's, has a bare name there: that is
    # the manifest's folder, never the current one)
    recorded = Path(entry["absolute"])
    for candidate in ((recorded,) if recorded.is_absolute() else ()) + (base / entry["path"],):
        with contextlib.suppress(OSError, ValueError):
            if candidate.is_file():
                return candidate
    archive = base.parent.parent / "archiv"
    if archive.is_dir():  # the recorded sha256 passed the manifest check: 64 hexadecimal digits, no pattern
        return next((p for p in sorted(archive.glob(f"*_{entry['sha256']}_*")) if p.is_file()), None)
    return None


# ------------------------------------------------------------------------------------ cells and layout


def _cells(source) -> dict[str, dict[str, tuple[object, str]]]:
    """Sheet -> cell -> (value, number format), streamed (read-only); empty cells are left out. `source`: a path
    or the bytes of a workbook as read once (`Earlier.stream()`)."""
    from openpyxl import load_workbook

    workbook = load_workbook(source, read_only=True, data_only=False)
    try:
        sheets: dict[str, dict[str, tuple[object, str]]] = {}
        for sheet in workbook.worksheets:
            cells: dict[str, tuple[object, str]] = {}
            for row in sheet.iter_rows():
                ignored = bool(row) and row[0].value in IGNORED_ROWS and sheet.title == "Protokoll"
                for cell in row:
                    if cell.value is None or (ignored and getattr(cell, "column", 1) > 1):
                        continue
                    cells[cell.coordinate] = (cell.value, cell.number_format)
            sheets[sheet.title] = cells
        return sheets
    finally:
        workbook.close()


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _sheet_parts(archive) -> list[tuple[str, str, str]]:
    """(sheet name, zip part, visibility) in workbook order; visibility is the sheet's `state` (visible,
    hidden or veryHidden)."""
    from xml.etree import ElementTree

    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter(f"{_PACKAGE_REL}Relationship")}
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    parts = []
    for sheet in book.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_REL}id"), "")
        parts.append((sheet.get("name", ""), target.lstrip("/") if target.startswith("/") else f"xl/{target}",
                      sheet.get("state", "visible")))
    return parts


def _hidden(element) -> bool:
    return element.get("hidden", "0").strip().lower() in ("1", "true")


def _layout_of(stream) -> dict[str, object]:
    """Column widths, hidden columns and rows, frozen pane, auto-filter, tab colour and print header of one
    sheet's XML, streamed (rows are dropped as they pass, so a long sheet costs no memory). A hidden row or
    column is a key of its own, so the layout of a sheet that hides nothing is unchanged."""
    from xml.etree import ElementTree

    layout: dict[str, object] = {"Fixierung": None, "Autofilter": None, "Registerfarbe": None, "Kopfzeile": None}
    row_number = 0
    for _, element in ElementTree.iterparse(stream, events=("end",)):
        tag = element.tag.removeprefix(_MAIN)
        if tag == "row":
            row_number = int(element.get("r", row_number + 1))  # `r` may be left out: then the next row
            if _hidden(element):
                layout[f"Zeile {row_number} ausgeblendet"] = True
            element.clear()
        elif tag == "col":
            width = round(float(element.get("width", "0")), 4)
            for column in range(int(element.get("min", "0")), int(element.get("max", "0")) + 1):
                if column <= 16384:
                    layout[f"Spaltenbreite {column_letter(column)}"] = width
                    if _hidden(element):
                        layout[f"Spalte {column_letter(column)} ausgeblendet"] = True
        elif tag == "pane":
            layout["Fixierung"] = (float(element.get("xSplit", "0")), float(element.get("ySplit", "0")),
                                   element.get("state"))
        elif tag == "autoFilter":
            layout["Autofilter"] = element.get("ref")
        elif tag == "tabColor":
            layout["Registerfarbe"] = element.get("rgb")
        elif tag == "oddHeader":
            layout["Kopfzeile"] = element.text
    return layout


def _layout(source) -> dict[str, dict[str, object]]:
    """Sheet -> layout, in workbook order (the key order is the sheet order)."""
    with zipfile.ZipFile(source) as archive:
        result = {}
        for name, part, state in _sheet_parts(archive):
            with archive.open(part) as stream:
                result[name] = {"Sichtbarkeit": state, **_layout_of(stream)}
        return result


def compare_workbooks(expected: Path, found: Path | Earlier) -> list[CellDifference]:
    """Every cell whose value or number format differs, every difference in sheet order and layout. `found` is
    the recorded output as read once (or a path). A recorded output that cannot be read is one difference, not
    a traceback."""
    from ..workbook.safety import DAMAGED_WORKBOOK

    want = _cells(expected)
    try:
        have = _cells(found.stream() if isinstance(found, Earlier) else found)
        layout_b = _layout(found.stream() if isinstance(found, Earlier) else found)
    except DAMAGED_WORKBOOK as error:
        return [CellDifference("(Arbeitsmappe)", "(Datei)", "lesbare Arbeitsmappe",
                               f"nicht lesbar: {type(error).__name__}: {error}"[:200], "Layout")]
    differences: list[CellDifference] = []
    if [s for s in want if s in have] != [s for s in have if s in want]:
        differences.append(CellDifference("(Arbeitsmappe)", "(Blattreihenfolge)", ", ".join(want), ", ".join(have),
                                          "Layout"))
    for sheet in list(want) + [s for s in have if s not in want]:
        if sheet not in have or sheet not in want:
            differences.append(CellDifference(sheet, "(Blatt)", "vorhanden" if sheet in want else "fehlt",
                                              "vorhanden" if sheet in have else "fehlt"))
            continue
        a, b = want[sheet], have[sheet]
        for coordinate in sorted(set(a) | set(b), key=_cell_order):
            (value_a, format_a), (value_b, format_b) = a.get(coordinate, (None, None)), b.get(coordinate, (None, None))
            if value_a != value_b:
                differences.append(CellDifference(sheet, coordinate, value_a, value_b))
            elif format_a != format_b:
                differences.append(CellDifference(sheet, coordinate, format_a, format_b, "Zahlenformat"))
    layout_a = _layout(expected)
    for sheet in layout_a:
        if sheet in layout_b:
            for aspect in list(layout_a[sheet]) + [k for k in layout_b[sheet] if k not in layout_a[sheet]]:
                if layout_a[sheet].get(aspect) != layout_b[sheet].get(aspect):
                    differences.append(CellDifference(sheet, f"({aspect})", layout_a[sheet].get(aspect),
                                                      layout_b[sheet].get(aspect), "Layout"))
    return differences


# ------------------------------------------------------------------------------------------ the package

def _part_bytes(archive: zipfile.ZipFile, name: str) -> bytes:
    data = archive.read(name)
    return PACKAGE_TIMES.sub(rb"\1\2", data) if name == "docProps/core.xml" else data


def _container(data: bytes) -> tuple[list[tuple], list[str]]:
    """The zip archive itself. Returns its parts in order, each as (name, compression, flags, local extra field,
    central extra field, comment), to be held against the replay's, and what no part accounts for: a part named
    twice, bytes before, between or after the parts (a part only its local header knows, a prefix, a tail), a
    local header that says other than the central directory (name, CRC, sizes), data after the end of a part's
    compressed stream, bytes between the central directory and its end record (zip64 records), a comment. The
    writer leaves none of these, and a reader could be shown any of them."""
    import struct
    import zlib

    issues: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos, start_dir, comment = archive.infolist(), archive.start_dir, archive.comment
    names = [info.filename for info in infos]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        issues.append(f"Teile doppelt im Archiv: {', '.join(twice)}")
    parts, position = [], 0
    for info in sorted(infos, key=lambda info: info.header_offset):
        if info.header_offset != position:
            issues.append(f"Bytes {position}–{info.header_offset} gehören zu keinem Teil des Inhaltsverzeichnisses")
        header = data[info.header_offset:info.header_offset + 30]
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            issues.append(f"der Teil {info.filename} hat keinen gültigen Kopf")
            return [], issues
        flags, method, crc, compressed, size, name_length, extra_length = struct.unpack("<2xHH4xIIIHH", header[4:30])
        name = data[info.header_offset + 30:info.header_offset + 30 + name_length]
        start = info.header_offset + 30 + name_length + extra_length
        local_extra = data[info.header_offset + 30 + name_length:start]
        if name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace") \
                or method != info.compress_type or (not flags & 0x08 and (crc, compressed, size) !=
                                                     (info.CRC, info.compress_size, info.file_size)):
            issues.append(f"der Kopf des Teils {info.filename} sagt anderes als das Inhaltsverzeichnis")
        stream = data[start:start + info.compress_size]
        if info.compress_type == zipfile.ZIP_DEFLATED:
            unpacked = zlib.decompressobj(-15)
            with contextlib.suppress(zlib.error):
                unpacked.decompress(stream)
            if not unpacked.eof or unpacked.unused_data:
                issues.append(f"im Teil {info.filename} stehen Bytes nach dem Ende seiner Daten")
        position = start + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows the data (with or without its signature)
            position += 16 if data[position:position + 4] == b"PK\x07\x08" else 12
        parts.append((info.filename, info.compress_type, info.flag_bits, local_extra, info.extra, info.comment))
    if position != start_dir:
        issues.append(f"Bytes {position}–{start_dir} zwischen den Teilen und dem Inhaltsverzeichnis")
    end = data.rfind(b"PK\x05\x06")
    if end < 0 or len(data) != end + 22 + len(comment):
        issues.append("Bytes nach dem Ende des Archivs")
    elif end != start_dir + struct.unpack("<I", data[end + 12:end + 16])[0]:
        issues.append("Bytes zwischen dem Inhaltsverzeichnis und seinem Ende (z. B. Zip64-Einträge)")
    if comment:
        issues.append(f"ein Kommentar im Archiv ({len(comment)} Bytes)")
    in_order = {part[0]: part for part in parts}
    return [in_order[name] for name in names], issues


def _brief(value: object) -> object:
    return f"{len(value)} Bytes" if isinstance(value, bytes) else value


def compare_packages(expected: Path, found: Path | Earlier) -> list[CellDifference]:
    """Every part of the xlsx package (sheets, styles, shared strings, drawings, charts, document properties,
    relationships, content types), byte for byte against the replay, except the write times of
    `docProps/core.xml`. A part that differs is one difference: by part, and inside a sheet by the cell (`B3`)
    or row (`Zeile 3`) whose XML differs first, with the number of differing elements; so a row height of 0, a
    white font or a conditional format `;;;` that leaves every value alone is still found. `found` passed the output bounds
    (`readback.output_bytes`), so every part is read within them."""
    from ..workbook.safety import DAMAGED_WORKBOOK

    data = found.data if isinstance(found, Earlier) else Path(found).read_bytes()
    try:
        (parts_a, _), (parts_b, issues) = _container(Path(expected).read_bytes()), _container(data)
    except DAMAGED_WORKBOOK as error:
        return [CellDifference("(Paket)", "(Datei)", "lesbares Paket", f"nicht lesbar: {type(error).__name__}: "
                               f"{error}"[:200], "Paket")]
    container = [CellDifference("(Paket)", "(Zip-Archiv)", "nur die Teile, wie allocation sie schreibt", issue, "Paket")
                 for issue in issues]
    if [part[0] for part in parts_a] != [part[0] for part in parts_b] and not container:
        container.append(CellDifference("(Paket)", "(Reihenfolge der Teile)", ", ".join(p[0] for p in parts_a)[:300],
                                        ", ".join(p[0] for p in parts_b)[:300], "Paket"))
    shapes = {part[0]: part for part in parts_a}
    aspects = ("Kompression", "Kennzeichen", "Zusatzfeld im Kopf", "Zusatzfeld im Inhaltsverzeichnis", "Kommentar")
    for part in parts_b:
        want = shapes.get(part[0])
        for aspect, a, b in zip(aspects, want[1:] if want else (), part[1:]):
            if a != b:
                container.append(CellDifference("(Paket)", f"({aspect} {part[0]})", _brief(a), _brief(b), "Paket"))
    try:
        with zipfile.ZipFile(expected) as want, zipfile.ZipFile(io.BytesIO(data)) as have:
            sheet_of = {part: name for name, part, _ in _sheet_parts(want)}
            names_a, names_b = want.namelist(), have.namelist()
            differences = [CellDifference("(Paket)", f"({name})", "vorhanden" if name in names_a else "fehlt",
                                          "vorhanden" if name in names_b else "fehlt", "Paket")
                           for name in sorted(set(names_a) ^ set(names_b))]
            for name in names_a:
                if name not in names_b:
                    continue
                a, b = _part_bytes(want, name), _part_bytes(have, name)
                if a != b:
                    differences += _part_differences(sheet_of.get(name), name, a, b)
            return container + differences
    except DAMAGED_WORKBOOK as error:
        return [CellDifference("(Paket)", "(Datei)", "lesbares Paket", f"nicht lesbar: {type(error).__name__}: "
                               f"{error}"[:200], "Paket")]


def _part_differences(sheet: str | None, name: str, a: bytes, b: bytes) -> list[CellDifference]:
    """Where two versions of one XML part differ: the first differing element (tag, attributes, text), named by
    the cell or row it lies in where the part is a sheet, and how many elements differ; a part that is no XML is
    one difference."""
    import io
    from xml.etree import ElementTree

    def elements(data: bytes):
        cell = row = None
        for event, element in ElementTree.iterparse(io.BytesIO(data), events=("start", "end")):
            tag = element.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "row":
                    row, cell = element.get("r"), None
                elif tag == "c":
                    cell = element.get("r")
                continue
            where = cell if cell and tag not in ("row", "sheetData") else (f"Zeile {row}" if row and tag == "row"
                                                                           else tag)
            yield where, (tag, tuple(sorted(element.attrib.items())), (element.text or "").strip())
            if tag in ("row", "sheetData"):  # what follows lies outside the row (and the sheet's data)
                element.clear()
                cell = None
                row = None if tag == "sheetData" else row

    label = sheet or "(Paket)"
    first, count = None, 0
    try:
        end = ("(Ende)", ("(fehlt)", (), ""))
        for (where_a, item_a), (where_b, item_b) in itertools.zip_longest(elements(a), elements(b), fillvalue=end):
            if item_a != item_b:
                count += 1
                if first is None:
                    first = (where_b if where_b != "(Ende)" else where_a, item_a, item_b)
    except ElementTree.ParseError as error:
        return [CellDifference(label, f"({name})", "gültiges XML", f"nicht lesbar: {error}"[:200], "Paket")]
    if first is None:  # the same elements, yet other bytes (outside the elements compared)
        return [CellDifference(label, f"({name})", f"{len(a)} Bytes wie nachgerechnet", f"{len(b)} Bytes, anderer "
                               "Inhalt", "Paket")]
    where, item_a, item_b = first
    more = f" (und {count - 1} weitere abweichende Elemente dieses Teils)" if count > 1 else ""
    return [CellDifference(label, f"{where} ({name})", _shown(item_a), _shown(item_b) + more, "Paket")]


def _shown(item: tuple) -> str:
    tag, attributes, text = item
    shown = " ".join(f'{key.rsplit("}", 1)[-1]}="{value}"' for key, value in attributes)
    return f"<{tag}{' ' + shown if shown else ''}>{text[:60]}"


def _cell_order(coordinate: str) -> tuple[int, int, str]:
    from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

    letters, row = coordinate_from_string(coordinate)
    return row, column_index_from_string(letters), coordinate


# ------------------------------------------------------------------------------------------ verify


def _recomputed_manifest(manifest: dict, replayed: Path, allocation: Allocation) -> dict:
    """The manifest the replayed run would write: built by `build_manifest` from the replay's allocation, with
    the recorded run mode and the other recorded extras, which the replay takes as given. The replay lies under a
    fixed name; the workbook's own name (`output.file`, checked to be the workbook beside the manifest) is the
    recorded one."""
    bases_from = manifest.get("bases_from")
    # what a run records beside the computed parameters, and the replay takes as given; any other key is compared
    # (and so reported: a run never writes it)
    extra = {k: v for k, v in manifest["parameters"].items() if k in RECORDED_PARAMETERS}
    rebuilt = build_manifest(allocation, manifest["input"]["path"], manifest["rules"][0]["path"], replayed,
                             _dt.datetime.now(_dt.timezone.utc), extra)
    rebuilt["output"]["file"] = manifest["output"]["file"]
    rates_from = manifest.get("rates_from")
    upward = manifest.get("upward")
    return rebuilt | ({"bases_from": bases_from} if bases_from else {}) | ({"rates_from": rates_from} if rates_from else {}) \
        | ({"upward": upward} if upward else {})


def _hash_of(path: Path) -> tuple[str | None, str]:
    """The file's SHA-256, or None and why it cannot be read (only regular files are read)."""
    try:
        return sha256_file(path), ""
    except OSError as error:
        return None, f"{getattr(error, 'strerror', None) or error}: {getattr(error, 'found', path)}"


def _file_problems(manifest: dict, base: Path) -> list[str]:
    problems: list[str] = []
    entries = [("Eingabe", manifest["input"])] + [("Regeldatei", rules) for rules in manifest["rules"]]
    if manifest.get("bases_from"):
        entries.append(("Vorjahres-Arbeitsmappe", manifest["bases_from"]))
    if manifest.get("rates_from"):
        entries.append(("Vorjahres-Arbeitsmappe (Umlagesätze)", manifest["rates_from"]))
    if manifest.get("upward"):
        entries.append(("Ergebnis der Ebene darüber", manifest["upward"]))
    for kind, entry in entries:
        found = existing_file(entry, base)
        digest, why = _hash_of(found) if found is not None else (None, "")
        if found is None or digest is None:
            problems.append(f"{entry['path']}: {kind} nicht gefunden (auch nicht als {entry['absolute']})"
                            + (f": {why}" if why else ""))
        elif digest != entry["sha256"]:
            problems.append(f"{found}: SHA-256 der {kind} weicht ab (erwartet {entry['sha256']}, gefunden "
                            f"{digest}): die Datei wurde nach dem Lauf verändert")
    return problems


def register_findings(manifest: dict, output_sha256: str, register: "str | Path | RegisterView | None") -> list[str]:
    """What the register says against a final run's manifest: nothing for a test run; for a final run its entry
    must be in the register (the `register` record: file, seq and hash; a manifest of an older version: an entry
    of its district and year with the workbook's hash) and name this workbook. A damaged register is a finding
    too. A run that a later one superseded is in order (a note elsewhere says so). `register`: its folder (default
    the installation's), or the register as already read (`year status` checks every final stage against one read)."""
    from ..core.problems import OutputError
    from ..runs.register import installation_register

    if manifest["parameters"].get("mode") != "final":
        return []
    try:
        view = register if isinstance(register, RegisterView) else read_register(installation_register(register))
    except (ProblemsError, OutputError) as error:
        return [str(problem) for problem in error.problems]
    reference = manifest.get("register")
    parameters = manifest["parameters"]
    if reference is None:
        entries = view.entries(parameters["district"], parameters["year"])
        if not any(entry.get("output_sha256") == output_sha256 for entry in entries):
            return [f"kein Eintrag für diese Arbeitsmappe (SHA-256 {output_sha256}) im Register {view.folder} für "
                    f"{parameters['district']} {parameters['year']}: der Echtlauf ist dort nicht (mehr) verzeichnet "
                    "(Register gelöscht, geleert oder eine Zeile entfernt?)"]
        return []
    if not view.has(reference["file"], reference["seq"], reference["sha256"]):
        return [f"Eintrag Nr. {reference['seq']} in {view.folder / reference['file']} (SHA-256 {reference['sha256']}) fehlt "
                "im Register oder wurde verändert: der Echtlauf ist dort nicht verzeichnet (Zeile gelöscht, Datei "
                "geleert, anderes Register?)"]
    entry = view.files[reference["file"]][reference["seq"] - 1].entry
    if entry.get("output_sha256") != output_sha256:
        return [f"Eintrag Nr. {reference['seq']} in {view.folder / reference['file']} nennt eine andere Arbeitsmappe "
                f"(SHA-256 {entry.get('output_sha256')}, diese: {output_sha256})"]
    chain = view.chain
    if not (0 < reference["chain"] <= len(chain) and chain[reference["chain"] - 1].sha256 == reference["head"]):
        return [f"Kettenglied Nr. {reference['chain']} (SHA-256 {reference['head']}) fehlt in der Kette des Registers "
                f"{view.folder}: die Kette wurde neu geschrieben"]
    return []


FIXED_REPLAY = "nachrechnung.xlsx"  # the replay's name in its private folder: never a name from the manifest
FIXED_INPUT = "eingabe.xlsx"  # an archived input's copy there


def verify(target: str | Path, register_dir: str | Path | None = None) -> VerifyResult:
    """Check the manifest, the hashes and (a final run) the register, replay the run and compare every cell,
    format, layout, package part and manifest field. `register_dir`: the register of final runs (default: the
    installation's)."""
    from ..runs.pipeline import replay

    path = Path(target)
    path = path if path.name.endswith(MANIFEST_SUFFIX) else manifest_path(path)
    manifest, malformed = load_manifest(path)
    if manifest is None:
        return VerifyResult(path, problems=tuple(malformed))
    base = path.parent
    output = base / manifest["output"]["file"]  # a plain file name, checked by load_manifest
    tool = manifest["tool"]
    notes = [f"Lauf mit allocation {tool['allocation']}, durable_rules {tool['durable_rules']}, "
             f"Python {tool['python']} am {manifest['started_utc']} UTC"]
    try:
        recorded = output_bytes(output, "verify-unreadable")
    except EarlierRefused as refused:
        return VerifyResult(path, tuple(f"{output}: Ergebnis-Arbeitsmappe nicht lesbar: {p.found or p.message}"
                                        for p in refused.problems) + tuple(_file_problems(manifest, base)),
                            notes=tuple(notes))
    problems = _file_problems(manifest, base)
    if recorded.sha256 != manifest["output"]["sha256"]:
        problems.insert(0, f"{output}: SHA-256 der Ergebnis-Arbeitsmappe weicht vom Manifest ab (nach dem Lauf "
                           "verändert)")
    register = register_findings(manifest, recorded.sha256, register_dir)
    if any("nicht gefunden" in p for p in problems):
        return VerifyResult(path, tuple(problems), notes=tuple(notes), register=tuple(register), recorded=manifest)
    directory = Path(manifest.get("working_directory", base))  # a names-only run: paths are relative to the manifest
    if not directory.is_dir():
        directory = base
    differences: list[CellDifference] = []
    package: list[CellDifference] = []
    field_differences: list[FieldDifference] = []
    replay_error = None
    with tempfile.TemporaryDirectory(prefix="allocation-verify-") as temp:
        replayed = Path(temp) / FIXED_REPLAY
        input_location = None
        found_input = existing_file(manifest["input"], base)
        recorded_name = Path(manifest["input"]["path"]).name
        if found_input is not None and found_input.name != recorded_name:
            # an archived input: replayed from a copy under a fixed name, shown by its recorded file name
            if not plain_name(recorded_name):
                replay_error = f"Der Name der Eingabe im Manifest ist kein Dateiname: {recorded_name!r}"
            else:
                input_location = Path(temp) / FIXED_INPUT
                shutil.copyfile(found_input, input_location)
        if replay_error is None:
            try:
                with contextlib.chdir(directory):
                    allocation = replay(manifest, replayed, input_location)
                    recomputed = _recomputed_manifest(manifest, replayed, allocation)
            except ProblemsError as error:
                replay_error = "; ".join(str(p) for p in error.problems[:5])
            else:
                field_differences, version_notes = compare_manifests(manifest, recomputed)
                notes += version_notes
                differences = compare_workbooks(replayed, recorded)
                package = compare_packages(replayed, recorded)
    return VerifyResult(path, tuple(problems), tuple(differences), replay_error, tuple(notes),
                        field_differences=tuple(field_differences), register=tuple(register), package=tuple(package),
                        recorded=manifest)
