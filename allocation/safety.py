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
                        "input-too-many-rows", name, f'Blatt "{sheet}" meldet {int(match.group(2)):,} Zeilen'
                        .replace(",", "."), sheet, int(match.group(2)), found=f"Bereich {ref}",
                        expected=f"höchstens {MAX_ROWS:,} Zeilen".replace(",", "."),
                        hint="die leeren Zeilen unter den Daten löschen (markieren, Zellen › Löschen) und speichern"))
                    return problems
            elif tag == f"{_MAIN}row":
                rows += 1
                r = element.get("r")
                last_row = int(r) if r and r.isdigit() else last_row + 1
                if rows > MAX_ROWS or last_row > MAX_ROWS:
                    problems.append(_problem(
                        "input-too-many-rows", name, f'Blatt "{sheet}" hat mehr als {MAX_ROWS:,} Zeilen'
                        .replace(",", "."), sheet, last_row, found=f"Zeile {last_row}",
                        expected=f"höchstens {MAX_ROWS:,} Zeilen".replace(",", "."),
                        hint="die leeren Zeilen unter den Daten löschen und speichern"))
                    return problems
            elif tag == f"{_MAIN}mergeCell" and structure:
                ref = element.get("ref", "")
                match = _CELL_REF.match(ref.split(":")[0])
                row, column = (int(match.group(2)), _column_number(match.group(1))) if match else (None, None)
                what = "verbundene Überschriftzellen" if row == 1 else "verbundene Zellen"
                problems.append(_problem(
                    "input-merged-cells", name, f"{what} {ref}", sheet, row, column, found=f"verbunden: {ref}",
                    expected="ein Wert je Zelle, keine verbundenen Zellen",
                    hint="den Bereich markieren, die Verbindung aufheben (Start › Verbinden und zentrieren) und "
                         "jede Zelle ausfüllen"))
            element.clear()
    return problems


def check_bytes(data: bytes, name: str, structure: bool = True) -> list[Problem]:
    """Every reason not to open these bytes as an input workbook; [] if it is safe to hand to openpyxl."""
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
        return _check_archive(archive, infos, name, structure)


def _check_archive(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, structure: bool) -> list[Problem]:
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
        sheets = _sheet_paths(archive, names)
        problems: list[Problem] = []
        for sheet, state, path in sheets:
            if state != "visible" and structure:
                problems.append(_problem(
                    "input-hidden-sheet", name, f'Blatt "{sheet}" ist ausgeblendet ({state})', sheet, found=state,
                    expected="alle Blätter sichtbar, damit verarbeitet wird, was Sie sehen",
                    hint="das Blatt einblenden (Rechtsklick auf einen Blattreiter › Einblenden) und prüfen oder "
                         "löschen"))
            if path in names:  # the row limit applies to every sheet, merged cells only to those we read
                problems += _scan_sheet(archive, archive.getinfo(path), sheet, name,
                                        structure and sheet in READ_SHEETS, budget)
    except _Stop:
        return [_problem("input-zip-bomb", name, "Ein Teil entpackt zu mehr Daten, als sein Kopf angibt oder erlaubt ist",
                         found="entpackte Größe über der Grenze", expected="eine gewöhnliche .xlsx-Arbeitsmappe",
                         hint=bomb_hint)]
    except (zipfile.BadZipFile, zlib.error, ElementTree.ParseError, KeyError, EOFError, OSError, ValueError,
            NotImplementedError) as error:
        return [_problem("input-not-xlsx", name, "Der Inhalt der Arbeitsmappe ist beschädigt",
                         found=str(error)[:200], expected="eine .xlsx-Arbeitsmappe",
                         hint="in Excel öffnen und erneut speichern")]
    return problems
