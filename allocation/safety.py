"""Checks on the raw bytes of an input file before any workbook library opens it.

An `.xlsx` file is a zip archive of XML parts. Before openpyxl sees a byte we make sure that it is one and
that opening it is harmless: not a CSV or text file, not an old `.xls` or a password-protected workbook (both
OLE compound files), not a zip bomb (declared sizes and compression ratios are checked from the central
directory *before* anything is decompressed, then every part is decompressed as a stream with a hard cap in
case the declared sizes lie), no `<!DOCTYPE`/`<!ENTITY` in any XML part (refused unexpanded, so neither
external entities nor "billion laughs" can be expanded later), no macros, not too many rows (the declared
`<dimension>` and the actual `<row>` elements are checked as a stream). With `structure=True` it also
reports what makes a workbook misleading to a reader: hidden sheets and merged cells in the sheets we read.
Nothing here writes.
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from typing import Iterator
from xml.etree import ElementTree

from .problems import Location, Problem

__all__ = ["check_bytes", "MAX_ROWS", "MAX_TOTAL_UNCOMPRESSED", "MAX_RATIO", "MAX_PARTS", "READ_SHEETS"]

MAX_ROWS = 100_000               # per sheet; a district's data has a few thousand rows at most
MAX_TOTAL_UNCOMPRESSED = 200 * 1024 * 1024  # all parts together, bytes
MAX_PART_UNCOMPRESSED = 100 * 1024 * 1024
MAX_RATIO = 200                  # uncompressed / compressed, for parts bigger than RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024        # small parts may compress extremely well (e.g. empty styles)
MAX_PARTS = 10_000
READ_SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen", "Schluessel")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CHUNK = 64 * 1024
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_FORBIDDEN = tuple(token.encode(enc) for token in ("<!doctype", "<!entity")
                   for enc in ("ascii", "utf-16-le", "utf-16-be"))
_CELL_REF = re.compile(r"^([A-Z]+)(\d+)$")


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
        return _problem("input-not-xlsx", name, "the workbook is password-protected (encrypted)",
                        found="verschlüsselte Arbeitsmappe (OLE-Container mit EncryptionInfo)",
                        expected="an .xlsx workbook without password",
                        hint="open it in Excel, remove the password (Datei › Informationen › Arbeitsmappe schützen) "
                             "and save again as .xlsx")
    return _problem("input-not-xlsx", name, "this is an old Excel 97-2003 (.xls) file",
                    found="Excel-97-2003-Datei (OLE-Container)", expected="an .xlsx workbook",
                    hint="open it in Excel and save as .xlsx (Excel-Arbeitsmappe)")


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


def _scan_sheet(archive: zipfile.ZipFile, info: zipfile.ZipInfo, sheet: str, name: str, structure: bool,
                budget: list[int]) -> list[Problem]:
    """Row count (declared and actual) and merged cells of one sheet, read as a stream."""
    problems: list[Problem] = []
    parser = ElementTree.XMLPullParser(events=("start",))
    rows = 0
    last_row = 0
    for chunk in _stream(archive, info, budget):
        parser.feed(chunk)
        for _, element in parser.read_events():
            tag = element.tag
            if tag == f"{_MAIN}dimension":
                ref = element.get("ref", "")
                match = _CELL_REF.match(ref.split(":")[-1])
                if match and int(match.group(2)) > MAX_ROWS:
                    problems.append(_problem(
                        "input-too-many-rows", name, f'sheet "{sheet}" declares {int(match.group(2)):,} rows'
                        .replace(",", "."), sheet, int(match.group(2)), found=f"Bereich {ref}",
                        expected=f"at most {MAX_ROWS:,} rows".replace(",", "."),
                        hint="delete the unused rows below the data (select them, Zellen › Löschen) and save"))
                    return problems
            elif tag == f"{_MAIN}row":
                rows += 1
                r = element.get("r")
                last_row = int(r) if r and r.isdigit() else last_row + 1
                if rows > MAX_ROWS or last_row > MAX_ROWS:
                    problems.append(_problem(
                        "input-too-many-rows", name, f'sheet "{sheet}" has more than {MAX_ROWS:,} rows'
                        .replace(",", "."), sheet, last_row, found=f"Zeile {last_row}",
                        expected=f"at most {MAX_ROWS:,} rows".replace(",", "."),
                        hint="delete the unused rows below the data and save"))
                    return problems
            elif tag == f"{_MAIN}mergeCell" and structure:
                ref = element.get("ref", "")
                match = _CELL_REF.match(ref.split(":")[0])
                row, column = (int(match.group(2)), _column_number(match.group(1))) if match else (None, None)
                what = "merged header cells" if row == 1 else "merged cells"
                problems.append(_problem(
                    "input-merged-cells", name, f"{what} {ref}", sheet, row, column, found=f"verbunden: {ref}",
                    expected="one value per cell, no merged cells",
                    hint="select the range and undo the merge (Start › Verbinden und zentrieren), then fill every cell"))
            element.clear()
    return problems


def check_bytes(data: bytes, name: str, structure: bool = True) -> list[Problem]:
    """Every reason not to open these bytes as an input workbook; [] if it is safe to hand to openpyxl."""
    if not data:
        return [_problem("input-empty-file", name, "the file is empty", found="0 Bytes", expected="an .xlsx workbook",
                         hint="save the workbook again; the upload may have been interrupted")]
    if data[:8] == OLE_MAGIC:
        return [_ole(data, name)]
    if not data.startswith(b"PK"):
        if _looks_like_text(data):
            first = data[:200].decode("utf-8", errors="replace").splitlines()[0] if data.strip() else ""
            return [_problem("input-not-xlsx", name, "this is a text/CSV file, not an Excel workbook",
                             found=repr(first[:60]), expected="an .xlsx workbook",
                             hint="open it in Excel and save as .xlsx (Excel-Arbeitsmappe); renaming is not enough")]
        return [_problem("input-not-xlsx", name, "this file is not an Excel workbook (.xlsx)", found=repr(data[:16]),
                         expected="an .xlsx workbook", hint="save the file as .xlsx (Excel-Arbeitsmappe)")]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        return [_problem("input-not-xlsx", name, "the file is a damaged zip archive, not a readable workbook",
                         found=str(error), expected="an .xlsx workbook", hint="open it in Excel and save it again")]
    with archive:
        return _check_archive(archive, infos, name, structure)


def _check_archive(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, structure: bool) -> list[Problem]:
    bomb_hint = "this is not a normal workbook; do not open it, ask the sender for the original .xlsx"
    if len(infos) > MAX_PARTS:
        return [_problem("input-zip-bomb", name, f"the archive has {len(infos)} parts", found=str(len(infos)),
                         expected=f"at most {MAX_PARTS}", hint=bomb_hint)]
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_UNCOMPRESSED:
        return [_problem("input-zip-bomb", name, "the workbook would unpack to far more data than any input needs",
                         found=f"{total:,} Bytes entpackt".replace(",", "."),
                         expected=f"at most {MAX_TOTAL_UNCOMPRESSED:,} bytes".replace(",", "."), hint=bomb_hint)]
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_PART_UNCOMPRESSED or (info.file_size > RATIO_FLOOR and ratio > MAX_RATIO):
            return [_problem("input-zip-bomb", name, f'part "{info.filename}" is compressed suspiciously well',
                             found=f"{info.file_size:,} Bytes aus {info.compress_size:,} Bytes (Faktor {ratio:,.0f})"
                             .replace(",", "."), expected=f"a compression ratio below {MAX_RATIO}", hint=bomb_hint)]
        if info.flag_bits & 0x1:
            return [_problem("input-not-xlsx", name, "the archive is encrypted", found=info.filename,
                             expected="an .xlsx workbook without password", hint="remove the password and save again")]
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        kind = "an OpenDocument file (.ods)" if "mimetype" in names else "a zip archive"
        return [_problem("input-not-xlsx", name, f"this is {kind}, not an Excel workbook",
                         found=", ".join(sorted(names)[:5]), expected="an .xlsx workbook with xl/workbook.xml",
                         hint="open it in Excel and save as .xlsx (Excel-Arbeitsmappe)")]
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        return [_problem("input-macros", name, "the workbook contains macros (VBA)", found="xl/vbaProject.bin",
                         expected="an .xlsx workbook without macros",
                         hint="save as .xlsx (Excel-Arbeitsmappe, not .xlsm); macros are never run here")]
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
                                     f'part "{info.filename}" contains a DOCTYPE/ENTITY declaration', found="<!DOCTYPE",
                                     expected="plain workbook XML without DTD (Excel never writes one)",
                                     hint="this file was not written by Excel; save the data in a new workbook")]
                tail = window[-32:]
        sheets = _sheet_paths(archive, names)
        problems: list[Problem] = []
        for sheet, state, path in sheets:
            if state != "visible" and structure:
                problems.append(_problem(
                    "input-hidden-sheet", name, f'sheet "{sheet}" is hidden ({state})', sheet, found=state,
                    expected="all sheets visible, so what is processed is what you see",
                    hint="unhide the sheet (right-click a sheet tab › Einblenden) and check it, or delete it"))
            if path in names:  # the row limit applies to every sheet, merged cells only to those we read
                problems += _scan_sheet(archive, archive.getinfo(path), sheet, name,
                                        structure and sheet in READ_SHEETS, budget)
    except _Stop:
        return [_problem("input-zip-bomb", name, "a part unpacks to more data than its header declares or allows",
                         found="entpackte Größe über der Grenze", expected="a normal .xlsx workbook", hint=bomb_hint)]
    except (zipfile.BadZipFile, zlib.error, ElementTree.ParseError, KeyError, EOFError, OSError, ValueError,
            NotImplementedError) as error:
        return [_problem("input-not-xlsx", name, "the workbook's contents are damaged", found=str(error)[:200],
                         expected="an .xlsx workbook", hint="open it in Excel and save it again")]
    return problems
