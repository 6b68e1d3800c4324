"""Build the hostile and broken input corpus: `python tests/corpus/build_corpus.py` (writes next to itself).

Each case is one file derived from a small valid workbook (`gueltig.xlsx`) or rule file (`regeln.yaml`) by
one deliberate defect. The expected error code and location of each case are written here by hand (from
what the defect is, not from running the program) and go to `cases.json` (read by tests/test_corpus.py)
and to the index in README.md. The files are committed; rebuilding must give the same cases.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
import re
import struct
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook, load_workbook

HERE = Path(__file__).resolve().parent
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
# openpyxl stamps the save time into docProps, so a rebuilt file differs from the committed one: files that
# exist are kept (their SHA-256 in cases.json stays valid); `--all` rebuilds every file.
REBUILD = "--all" in sys.argv

RULES = """\
# Rule file of the corpus (a stable copy of the shipped Kreis Wesel rules, without domains).
district: Kreis Wesel
valid_from: 2022
valid_to: 2023
hit_policy: unique
rules:
  - id: kim-kreisumlage
    description: KIM-Defizit über die allgemeine Kreisumlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: KIM, Traeger: Kreis}
    route: district_levy

  - id: jugendamtsumlage
    description: Kreisjugendamt, nur Gemeinden ohne eigenes Jugendamt
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: Jugendhilfe, Traeger: Kreis}
    route: differentiated_levy
    payers: {Jugendamt_Kreis: 1}
    components: [Personalkosten, Sachkosten]

  - id: oepnv-mehrbelastung
    description: Buslinien nach Nutzung
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: OEPNV, Traeger: Kreis}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}

  - id: schuldnerberatung-fallzahlen
    description: Schuldnerberatung nach Fallzahlen
    legal_basis: "§ 23 GkG NRW"
    when: {Kategorie: Beratung, Traeger: Kreis}
    route: direct_billing
    key: Schluessel

  - id: traegerkommune
    description: Eine Gemeinde trägt ihr Defizit selbst
    legal_basis: "§ 2 GO NRW"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
"""

MUNICIPALITIES = [  # AGS, name, levy base (illustrative), youth office of the district?, line-minutes, vehicle-km
    ("05170004", "Alpen", 27154437, 1, 41200, 118000),
    ("05170008", "Dinslaken", 86873093, 0, 212500, 455000),
    ("05170012", "Hamminkeln", 50884619, 1, 88300, 301000),
    ("05170016", "Hünxe", 24115008, 1, 35600, 97000),
]
ITEMS = [  # ID, label, category, staff, material, overhead, funding, host, posts
    ("KIM-2022", "Kommunales Integrationsmanagement", "KIM", 296000, 0, 0, 220000, "Kreis", 4),
    ("JA-2022", "Kreisjugendamt", "Jugendhilfe", 1000000, 200000, 50000, 100000, "Kreis", 12),
    ("OEPNV-2022", "ÖPNV-Mehrbelastung", "OEPNV", 0, 400000, 0, 100000, "Kreis", None),
    ("SB-2022", "Schuldnerberatung", "Beratung", 0, 90000, 0, 0, "Kreis", None),
    ("MUS-2022", "Museum der Gemeinde Alpen", "Kultur", 0, 50000, 0, 10000, "05170004", None),
]
KEYS = [("SB-2022", "05170004", 41), ("SB-2022", "05170008", 233), ("SB-2022", "05170012", 77),
        ("SB-2022", "05170016", 30)]


def base_workbook() -> Workbook:
    wb = Workbook()
    ws = wb.active
    ws.title = "Parameter"
    for row in (("Parameter", "Wert"), ("Kreis", "Kreis Wesel"), ("Haushaltsjahr", 2022), ("Rundung", "Cent"),
                ("Hebesatz_Nachkommastellen", 2)):
        ws.append(row)
    ws = wb.create_sheet("Gemeinden")
    ws.append(("AGS", "Gemeinde", "Umlagegrundlagen", "Jugendamt_Kreis", "Linienminuten", "Wagenkm"))
    for row in MUNICIPALITIES:
        ws.append(row)
    ws = wb.create_sheet("Kostenpositionen")
    ws.append(("ID", "Bezeichnung", "Kategorie", "Personalkosten", "Sachkosten", "Gemeinkosten", "Foerderung",
               "Traeger", "Stellen"))
    for row in ITEMS:
        ws.append(row)
    ws = wb.create_sheet("Schluessel")
    ws.append(("ID", "AGS", "Wert"))
    for row in KEYS:
        ws.append(row)
    wb.properties.created = wb.properties.modified = dt.datetime(2024, 1, 1)
    return wb


def save(wb: Workbook) -> bytes:
    buffer = io.BytesIO()
    wb.save(buffer)
    return normalise_zip(buffer.getvalue())


def normalise_zip(data: bytes, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    """Same parts with fixed timestamps (reproducible files), some parts replaced or added."""
    replace, add = replace or {}, add or {}
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = replace.get(info.filename, source.read(info.filename))
            target.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), content, zipfile.ZIP_DEFLATED)
        for name, content in add.items():
            target.writestr(zipfile.ZipInfo(name, FIXED_TIME), content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def part(data: bytes, name: str) -> str:
    return zipfile.ZipFile(io.BytesIO(data)).read(name).decode("utf-8")


def mutate(change) -> bytes:
    wb = base_workbook()
    change(wb)
    return save(wb)


def set_cell(sheet: str, ref: str, value):
    def change(wb):
        wb[sheet][ref] = value
    return change


SHEET_PART = {"Parameter": "xl/worksheets/sheet1.xml", "Gemeinden": "xl/worksheets/sheet2.xml",
              "Kostenpositionen": "xl/worksheets/sheet3.xml", "Schluessel": "xl/worksheets/sheet4.xml"}


def with_part(name: str, edit) -> bytes:
    data = save(base_workbook())
    return normalise_zip(data, replace={name: edit(part(data, name)).encode("utf-8")})


def doctype(xml: str, dtd: str) -> str:
    if xml.startswith("<?xml"):
        head, rest = xml.split("?>", 1)
        return head + "?>" + dtd + rest
    return dtd + xml


def rows_at(last_row: int, dimension: bool) -> bytes:
    """Gemeinden with one more row far below the data, written into the sheet XML (no million-row load)."""
    def edit(xml: str) -> str:
        if dimension:
            xml = re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="A1:F{last_row}"/>', xml)
        else:
            xml = re.sub(r'<dimension ref="[^"]*"\s*/>', "", xml)
        return xml.replace("</sheetData>", f'<row r="{last_row}"><c r="A{last_row}" t="inlineStr"><is><t>x</t></is>'
                                           f"</c></row></sheetData>")
    return with_part(SHEET_PART["Gemeinden"], edit)


def zip_bomb(total_mb: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        data = save(base_workbook())
        for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
            archive.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME), zipfile.ZipFile(io.BytesIO(data)).read(info),
                             zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("xl/media/bomb.bin", FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as handle:
            block = b"\0" * (1024 * 1024)
            for _ in range(total_mb):
                handle.write(block)
    return out.getvalue()


def lying_zip_bomb() -> bytes:
    """A part whose headers declare 1,000 bytes but which unpacks to 8 MiB (defeats declared-size checks)."""
    data = bytearray(normalise_zip(save(base_workbook()), add={"xl/media/liar.bin": b"\0" * (8 * 1024 * 1024)}))
    name = b"xl/media/liar.bin"
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("xl/media/liar.bin")
    struct.pack_into("<I", data, info.header_offset + 22, 1000)          # local header: uncompressed size
    position = data.rindex(name) - 46                                    # central directory entry of the part
    assert data[position:position + 4] == b"PK\x01\x02"
    struct.pack_into("<I", data, position + 24, 1000)                    # central directory: uncompressed size
    return bytes(data)


def ole(stream_name: str) -> bytes:
    """An OLE compound file header followed by a directory entry with the given stream name."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHH", 0x3E, 3, 0xFFFE) + b"\0" * 486
    entry = stream_name.encode("utf-16-le").ljust(64, b"\0") + struct.pack("<H", 2 * (len(stream_name) + 1))
    return header + entry.ljust(128, b"\0") + b"\0" * 384


def rules_line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def build() -> list[dict]:
    cases: list[dict] = []

    def case(file: str, data: bytes | str, code: str, where: str, what: str, exit_code: int = 3,
             rules: str = "regeln.yaml", sheet: str | None = None, cell: str | None = None, row: int | None = None,
             line: int | None = None) -> None:
        path = HERE / file
        if REBUILD or not path.exists():
            path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        cases.append({"file": file, "rules": rules, "exit_code": exit_code, "code": code, "where": where,
                      "sheet": sheet, "cell": cell, "row": row, "line": line, "what": what,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})

    (HERE / "regeln.yaml").write_text(RULES, encoding="utf-8")
    keep_or_write(HERE / "gueltig.xlsx", lambda: save(base_workbook()))

    # --- not a workbook at all / unsafe to open
    case("csv-als-xlsx.xlsx", "AGS;Gemeinde;Umlagegrundlagen\n05170004;Alpen;27154437\n", "input-not-xlsx", "Datei",
         "a CSV file renamed to .xlsx")
    case("alt-excel.xls", ole("Workbook"), "input-not-xlsx", "Datei", "an Excel 97-2003 .xls file (OLE container)")
    case("passwortgeschuetzt.xlsx", ole("EncryptionInfo"), "input-not-xlsx", "Datei",
         "a password-protected workbook (OLE container with EncryptionInfo)")
    case("zip-bombe-gross.xlsx", zip_bomb(300), "input-zip-bomb", "Datei",
         "a part declaring 300 MiB (limit: 200 MiB in total), refused from the central directory before unpacking")
    case("zip-bombe-verhaeltnis.xlsx", zip_bomb(60), "input-zip-bomb", "Datei",
         "a 60 MiB part compressed about 1000:1 (limit 200:1 for parts above 1 MiB)")
    case("zip-bombe-falsche-groesse.xlsx", lying_zip_bomb(), "input-not-xlsx", "Datei",
         "headers declare 1,000 bytes, the part unpacks to 8 MiB: unpacking stops at the declared size, the "
         "checksum fails, refused as damaged")
    case("xxe-externe-entitaet.xlsx", with_part(SHEET_PART["Gemeinden"], lambda x: doctype(
        x, '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>').replace(
        "<t>Alpen</t>", "<t>&xxe;</t>") if "<t>Alpen</t>" in x else 1 / 0), "input-xml-dtd", "Datei",
        "an XML external entity used in sheet Gemeinden (refused without expanding it)")
    case("billion-laughs.xlsx", with_part("xl/workbook.xml", lambda x: doctype(
        x, '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>')),
        "input-xml-dtd", "Datei", "an entity expansion bomb in workbook.xml")
    case("dtd-in-rels.xlsx", with_part("xl/_rels/workbook.xml.rels", lambda x: doctype(x, "<!DOCTYPE r>")),
         "input-xml-dtd", "Datei", "a DOCTYPE in a relationship part")
    case("zeilen-1048576.xlsx", rows_at(1048576, True), "input-too-many-rows", "Gemeinden, Zeile 1048576",
         "a sheet declaring 1,048,576 rows (<dimension> A1:F1048576)", sheet="Gemeinden", row=1048576)
    case("zeilen-ohne-dimension.xlsx", rows_at(100001, False), "input-too-many-rows", "Gemeinden, Zeile 100001",
         "a row at 100,001 without a <dimension> element (counted while streaming)", sheet="Gemeinden", row=100001)
    case("makros.xlsx", normalise_zip(save(base_workbook()), add={"xl/vbaProject.bin": b"\0" * 512}),
         "input-macros", "Datei", "a workbook with a VBA project")
    case("kein-workbook.xlsx", _plain_zip({"word/document.xml": b"<w/>", "[Content_Types].xml": b"<T/>"}),
         "input-not-xlsx", "Datei", "a zip archive that is no workbook (a Word document)")
    case("opendocument.xlsx", _plain_zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
                                          "content.xml": b"<x/>"}), "input-not-xlsx", "Datei",
         "an OpenDocument spreadsheet (.ods) renamed to .xlsx")
    case("leer.xlsx", b"", "input-empty-file", "Datei", "an empty file (0 bytes)")
    case("bild.xlsx", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "input-not-xlsx", "Datei", "a PNG image renamed to .xlsx")
    case("abgeschnitten.xlsx", save(base_workbook())[:3000], "input-not-xlsx", "Datei",
         "a workbook cut off in the middle (interrupted upload)")

    # --- structure the reader would misread
    case("verborgenes-blatt.xlsx", mutate(lambda wb: setattr(wb["Schluessel"], "sheet_state", "hidden")),
         "input-hidden-sheet", "Schluessel", "a hidden sheet the controller cannot see", sheet="Schluessel")
    case("sehr-verborgenes-blatt.xlsx", mutate(lambda wb: setattr(wb.create_sheet("Hilfswerte"), "sheet_state",
                                                                   "veryHidden")),
         "input-hidden-sheet", "Hilfswerte", "a 'very hidden' extra sheet", sheet="Hilfswerte")
    case("verbundene-kopfzellen.xlsx", mutate(lambda wb: wb["Gemeinden"].merge_cells("A1:B1")),
         "input-merged-cells", "Gemeinden!A1", "merged header cells A1:B1", sheet="Gemeinden", cell="A1")
    case("verbundene-datenzellen.xlsx", mutate(lambda wb: wb["Kostenpositionen"].merge_cells("D3:E3")),
         "input-merged-cells", "Kostenpositionen!D3", "merged cells in a data row", sheet="Kostenpositionen", cell="D3")
    case("blatt-fehlt.xlsx", mutate(lambda wb: wb.remove(wb["Gemeinden"])), "input-missing-sheet", "Gemeinden",
         "sheet Gemeinden missing", sheet="Gemeinden")
    case("blatt-falsch-benannt.xlsx", mutate(lambda wb: setattr(wb["Gemeinden"], "title", "GEMEINDEN_")),
         "input-sheet-name", "GEMEINDEN_", "sheet named 'GEMEINDEN_' instead of 'Gemeinden'", sheet="GEMEINDEN_")
    case("spalte-fehlt.xlsx", mutate(lambda wb: wb["Gemeinden"].delete_cols(3)), "input-missing-column",
         "Gemeinden, Zeile 1", "column Umlagegrundlagen missing", sheet="Gemeinden", row=1)
    case("spalte-doppelt.xlsx", mutate(set_cell("Gemeinden", "G1", "AGS")), "input-duplicate-column", "Gemeinden!G1",
         "column AGS twice", sheet="Gemeinden", cell="G1")
    case("werte-ohne-kopf.xlsx", mutate(set_cell("Gemeinden", "H3", 17)), "input-missing-header", "Gemeinden!H1",
         "values in a column without header", sheet="Gemeinden", cell="H1")
    case("blatt-leer.xlsx", mutate(lambda wb: (wb.remove(wb["Kostenpositionen"]), wb.create_sheet("Kostenpositionen",
                                                                                                   2))),
         "input-empty-sheet", "Kostenpositionen, Zeile 1", "an empty sheet Kostenpositionen", sheet="Kostenpositionen",
         row=1)
    case("leerzeile-mitten.xlsx", mutate(lambda wb: wb["Gemeinden"].insert_rows(4)), "input-empty-row",
         "Gemeinden, Zeile 4", "an empty row between data rows", sheet="Gemeinden", row=4)

    # --- values
    case("formel-ohne-wert.xlsx", mutate(set_cell("Kostenpositionen", "D2", "=200000+96000")),
         "input-uncalculated-formula", "Kostenpositionen!D2", "a formula never calculated by Excel (no cached value)",
         sheet="Kostenpositionen", cell="D2")
    case("fehlerwert.xlsx", mutate(set_cell("Kostenpositionen", "E3", "#DIV/0!")), "input-excel-error",
         "Kostenpositionen!E3", "an Excel error value #DIV/0!", sheet="Kostenpositionen", cell="E3")
    case("datum-als-betrag.xlsx", mutate(set_cell("Kostenpositionen", "E3", dt.datetime(2022, 3, 1))),
         "input-not-a-number", "Kostenpositionen!E3", "a date in an amount cell", sheet="Kostenpositionen", cell="E3")
    case("text-als-betrag.xlsx", mutate(set_cell("Kostenpositionen", "D3", "eine Million")), "input-not-a-number",
         "Kostenpositionen!D3", "text in an amount cell", sheet="Kostenpositionen", cell="D3")
    case("tausenderpunkt-text.xlsx", mutate(set_cell("Gemeinden", "C3", "86.873.093,00")), "input-not-a-number",
         "Gemeinden!C3", "a number with thousands separators stored as text", sheet="Gemeinden", cell="C3")
    case("buchstabe-o-statt-null.xlsx", mutate(set_cell("Kostenpositionen", "G2", "22O000")), "input-not-a-number",
         "Kostenpositionen!G2", "letter O instead of zero", sheet="Kostenpositionen", cell="G2")
    case("bruchteil-cent.xlsx", mutate(set_cell("Kostenpositionen", "E4", 400000.005)), "input-sub-cent",
         "Kostenpositionen!E4", "an amount with fractions of a cent", sheet="Kostenpositionen", cell="E4")
    case("negativer-betrag.xlsx", mutate(set_cell("Kostenpositionen", "E5", -90000)), "input-negative",
         "Kostenpositionen!E5", "a negative cost", sheet="Kostenpositionen", cell="E5")
    case("negative-umlagegrundlage.xlsx", mutate(set_cell("Gemeinden", "C4", -50884619)), "input-negative-base",
         "Gemeinden!C4", "a negative levy base", sheet="Gemeinden", cell="C4")
    case("ags-doppelt.xlsx", mutate(set_cell("Gemeinden", "A4", "05170008")), "input-duplicate-ags", "Gemeinden!A4",
         "the same AGS twice", sheet="Gemeinden", cell="A4")
    case("ags-fuehrende-null-verloren.xlsx", mutate(set_cell("Gemeinden", "A2", 5170004)), "input-bad-ags",
         "Gemeinden!A2", "an AGS stored as a number (leading zero lost)", sheet="Gemeinden", cell="A2")
    case("ags-mit-leerzeichen-innen.xlsx", mutate(set_cell("Gemeinden", "A3", "0517 0008")), "input-bad-ags",
         "Gemeinden!A3", "an AGS with a space inside", sheet="Gemeinden", cell="A3")
    case("id-doppelt.xlsx", mutate(set_cell("Kostenpositionen", "A3", "KIM-2022")), "input-duplicate-id",
         "Kostenpositionen!A3", "the same cost item ID twice", sheet="Kostenpositionen", cell="A3")
    case("traeger-unbekannt.xlsx", mutate(set_cell("Kostenpositionen", "H6", "05170099")), "input-unknown-host",
         "Kostenpositionen!H6", "a host AGS not in Gemeinden", sheet="Kostenpositionen", cell="H6")
    case("schluessel-unbekannte-position.xlsx", mutate(set_cell("Schluessel", "A3", "SB-2023")), "input-unknown-item",
         "Schluessel!A3", "a key row for a cost item that does not exist", sheet="Schluessel", cell="A3")
    case("schluessel-doppelt.xlsx", mutate(set_cell("Schluessel", "B3", "05170004")), "input-duplicate-key",
         "Schluessel!B3", "a key row given twice", sheet="Schluessel", cell="B3")
    case("parameter-kreis-fehlt.xlsx", mutate(lambda wb: wb["Parameter"].delete_rows(2)), "input-missing-parameter",
         "Parameter", "parameter Kreis missing", sheet="Parameter")
    case("haushaltsjahr-text.xlsx", mutate(set_cell("Parameter", "B3", "zweitausendzweiundzwanzig")),
         "input-bad-parameter", "Parameter!B3", "Haushaltsjahr as words", sheet="Parameter", cell="B3")
    case("rundung-unbekannt.xlsx", mutate(set_cell("Parameter", "B4", "Pfennig")), "input-bad-parameter",
         "Parameter!B4", "an unknown rounding unit", sheet="Parameter", cell="B4")
    case("niemand-kann-zahlen.xlsx", mutate(lambda wb: [wb["Gemeinden"].cell(row=r, column=4, value=0)
                                                        for r in range(2, 6)]),
         "decision-no-payers", f"regeln.yaml:{rules_line(RULES, 'payers:')}",
         "a Jugendhilfe item but no municipality has Jugendamt_Kreis = 1", exit_code=5,
         line=rules_line(RULES, "payers:"))

    # --- rule files
    weights = RULES.replace("key: {Linienminuten: 70, Wagenkm: 30}", "key: {Linienminuten: 70, Wagenkm: 29.99}")
    (HERE / "regeln-gewichte-99-99.yaml").write_text(weights, encoding="utf-8")
    case("gueltig-fuer-gewichte.xlsx", save(base_workbook()), "rule-weights-sum",
         f"regeln-gewichte-99-99.yaml:{rules_line(weights, 'Wagenkm: 29.99')}",
         "composite key weights adding up to 99.99", exit_code=4, rules="regeln-gewichte-99-99.yaml",
         line=rules_line(weights, "Wagenkm: 29.99"))
    tagged = RULES.replace("description: KIM-Defizit über die allgemeine Kreisumlage",
                           "description: !!python/object/apply:os.system [\"touch /tmp/gehackt\"]")
    (HERE / "regeln-python-tag.yaml").write_text(tagged, encoding="utf-8")
    case("gueltig-fuer-python-tag.xlsx", save(base_workbook()), "rule-yaml",
         f"regeln-python-tag.yaml:{rules_line(tagged, '!!python')}", "a rule file with a !!python/object tag",
         exit_code=4, rules="regeln-python-tag.yaml", line=rules_line(tagged, "!!python"))
    route = RULES.replace("route: host_bears", "route: host_pays")
    (HERE / "regeln-unbekannter-weg.yaml").write_text(route, encoding="utf-8")
    case("gueltig-fuer-unbekannter-weg.xlsx", save(base_workbook()), "rule-unknown-route",
         f"regeln-unbekannter-weg.yaml:{rules_line(route, 'host_pays')}", "an unknown route in a rule", exit_code=4,
         rules="regeln-unbekannter-weg.yaml", line=rules_line(route, "host_pays"))

    # --- bounds: work is bounded by what the file holds (issue 12), values a cell cannot hold (issue 11)
    case("wert-in-xfd1.xlsx", with_part(SHEET_PART["Gemeinden"], lambda x: x.replace(
        "</row>", '<c r="XFD1" t="inlineStr"><is><t>x</t></is></c></row>', 1)), "input-too-many-columns",
        "Gemeinden!XFD1", "a value in the last column XFD (16,384): a reader would pad every row to it",
        sheet="Gemeinden", cell="XFD1")
    case("wert-weit-unten-rechts.xlsx", with_part(SHEET_PART["Gemeinden"], lambda x: x.replace(
        "</sheetData>", '<row r="20000"><c r="GR20000" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')),
        "input-too-many-cells", "Gemeinden!GR20000",
        "one value at GR20000: 20,000 rows x 200 columns = 4,000,000 cells up to it (limit 600,000 in the read "
        "sheets together)",
        sheet="Gemeinden", cell="GR20000")
    case("streuzelle-zeile-90000.xlsx", with_part(SHEET_PART["Gemeinden"], lambda x: x.replace(
        "</sheetData>", '<row r="90000"><c r="A90000" t="inlineStr"><is><t>x</t></is></c></row></sheetData>')),
        "input-empty-row", "Gemeinden, Zeile 6",
        "one stray cell at A90000: one error for rows 6 to 89,999 naming A90000, not 89,994 errors",
        sheet="Gemeinden", row=6)
    case("gemeinsame-zeichenfolgen-riesig.xlsx", huge_shared_strings(1_000_001), "input-too-large", "Datei",
         "a shared-string table of 1,000,001 entries (limit 1,000,000), counted as a stream before any reader")
    case("zahl-nan.xlsx", number_text("Gemeinden", "C3", "NaN"), "input-not-a-number", "Gemeinden!C3",
         "NaN in the number cell of a levy base", sheet="Gemeinden", cell="C3")
    case("zahl-inf.xlsx", number_text("Gemeinden", "E3", "INF"), "input-not-a-number", "Gemeinden!E3",
         "INF in a free numeric column (Linienminuten)", sheet="Gemeinden", cell="E3")
    case("zahl-1e308.xlsx", number_text("Kostenpositionen", "E3", "1e308"), "input-too-many-digits",
         "Kostenpositionen!E3", "1e308 as Sachkosten", sheet="Kostenpositionen", cell="E3")
    case("zahl-39-stellen.xlsx", number_text("Gemeinden", "F3", "123456789012345678901234567890123456789"),
         "input-too-many-digits", "Gemeinden!F3", "a 39-digit integer in a free numeric column (Wagenkm)",
         sheet="Gemeinden", cell="F3")
    case("datum-text-kaputt.xlsx", with_part(SHEET_PART["Gemeinden"], lambda x: sub_once(
        r'<c r="E3"[^>]*><v>[^<]*</v></c>', '<c r="E3" t="d"><v>2022-13-45</v></c>', x)), "input-bad-date",
        "Gemeinden!E3", "a date cell (t=\"d\") holding the malformed text 2022-13-45", sheet="Gemeinden", cell="E3")
    case("ags-vollbreite-ziffern.xlsx", mutate(set_cell("Gemeinden", "A5", "\uff10\uff15\uff11\uff17\uff10\uff10"
                                                                          "\uff10\uff14")),
         "input-bad-ags", "Gemeinden!A5", "a second Alpen with the AGS in fullwidth digits ０５１７０００４",
         sheet="Gemeinden", cell="A5")
    case("betrag-16-stellen.xlsx", mutate(set_cell("Kostenpositionen", "D2", 1234567890123456)),
         "input-too-many-digits", "Kostenpositionen!D2", "a 16-digit amount (a cell holds 15 digits exactly)",
         sheet="Kostenpositionen", cell="D2")
    case("blatt-doppelt-gross-klein.xlsx", renamed_sheet(lambda wb: wb.create_sheet("Zusatz").append(
        ("Kreis", "Kreis Kleve")), "Zusatz", "PARAMETER"), "input-duplicate-sheet", "PARAMETER",
        "sheets Parameter and PARAMETER: which one counts is not guessed", sheet="PARAMETER")
    case("umlagesatz-doppelt.xlsx", mutate(levy_rates([("Kreisumlage", None, 33.5), ("Kreisumlage", None, 34)])),
         "input-duplicate-rate", "Umlagesaetze!A3", "the rate of one levy given twice", sheet="Umlagesaetze",
         cell="A3")
    case("umlagesatz-ueber-100.xlsx", mutate(levy_rates([("Kreisumlage", None, 335)])), "input-bad-rate",
         "Umlagesaetze!C2", "a levy rate of 335 percent", sheet="Umlagesaetze", cell="C2")
    case("umlagesatz-5-nachkommastellen.xlsx", mutate(levy_rates([("Jugendamtsumlage", "Umlagegrundlagen",
                                                                   12.34567)])),
         "input-bad-rate", "Umlagesaetze!C2", "a levy rate with 5 decimals (at most 4)", sheet="Umlagesaetze",
         cell="C2")
    return cases


def keep_or_write(path: Path, make) -> None:
    if REBUILD or not path.exists():
        path.write_bytes(make())


def renamed_sheet(change, old: str, new: str) -> bytes:
    """A sheet renamed in workbook.xml: openpyxl (like Excel) refuses names that differ only by case."""
    data = mutate(change)
    return normalise_zip(data, replace={"xl/workbook.xml": sub_once(f'name="{old}"', f'name="{new}"', part(
        data, "xl/workbook.xml")).encode("utf-8")})


def sub_once(pattern: str, replacement: str, text: str) -> str:
    result, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, pattern
    return result


def number_text(sheet: str, ref: str, text: str) -> bytes:
    """A number cell whose stored text is `text` (NaN, INF, 1e308, ...), written into the sheet XML."""
    return with_part(SHEET_PART[sheet], lambda x: sub_once(
        rf'<c r="{ref}"( t="n")?>\s*<v>[^<]*</v>', f'<c r="{ref}" t="n"><v>{text}</v>', x))


def levy_rates(rows):
    def change(wb):
        sheet = wb.create_sheet("Umlagesaetze")
        sheet.append(("Umlage", "Bestandteil", "Satz"))
        for row in rows:
            sheet.append(row)
    return change


def huge_shared_strings(count: int) -> bytes:
    """A shared-string table of `count` entries (varied enough to stay under the zip-bomb ratio)."""
    rnd = random.Random(12)
    body = "".join("<si><t>a</t></si>" if rnd.random() < 0.2 else "<si><t/></si>" for _ in range(count))
    table = (f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{count}" '
             f'uniqueCount="{count}">{body}</sst>').encode("utf-8")
    data = save(base_workbook())
    types = part(data, "[Content_Types].xml").replace("</Types>", (
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.sharedStrings+xml"/></Types>'))
    rels = part(data, "xl/_rels/workbook.xml.rels").replace("</Relationships>", (
        '<Relationship Id="rIdSst" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'sharedStrings" Target="sharedStrings.xml"/></Relationships>'))
    return normalise_zip(data, replace={"[Content_Types].xml": types.encode("utf-8"),
                                        "xl/_rels/workbook.xml.rels": rels.encode("utf-8")},
                         add={"xl/sharedStrings.xml": table})


def _plain_zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(zipfile.ZipInfo(name, FIXED_TIME), content)
    return out.getvalue()


def positive_cases() -> list[dict]:
    """Files that look odd but are accepted, with what the run must make of them."""
    cached = with_part(SHEET_PART["Kostenpositionen"], lambda x: re.sub(
        r'<c r="D2"( t="n")?\s*><v>296000</v></c>', '<c r="D2"><f>200000+96000</f><v>296000</v></c>', x))
    assert b"200000+96000" in zipfile.ZipFile(io.BytesIO(cached)).read(SHEET_PART["Kostenpositionen"])
    keep_or_write(HERE / "ok-formel-mit-wert.xlsx", lambda: cached)
    keep_or_write(HERE / "ok-leerzeichen-am-ende.xlsx", lambda: mutate(lambda wb: (
        set_cell("Gemeinden", "A2", "05170004 ")(wb), set_cell("Kostenpositionen", "C2", "KIM  ")(wb))))
    keep_or_write(HERE / "ok-dimension-16384-spalten.xlsx", lambda: with_part(
        SHEET_PART["Gemeinden"], lambda x: sub_once(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD5"/>', x)))
    keep_or_write(HERE / "ok-parameter-kopf-schluessel-wert.xlsx", lambda: mutate(lambda wb: (
        set_cell("Parameter", "A1", "Schlüssel")(wb), set_cell("Parameter", "B3", "2022")(wb))))
    return [{"file": "ok-formel-mit-wert.xlsx", "what": "a formula with Excel's cached value: the cached value is used"},
            {"file": "ok-leerzeichen-am-ende.xlsx",
             "what": "trailing spaces after an AGS and a category: stripped, then accepted"},
            {"file": "ok-dimension-16384-spalten.xlsx",
             "what": "Gemeinden declares <dimension ref=\"A1:XFD5\"/> (16,384 columns) but holds 6: only values "
                     "are read, rows are never padded to the declared width (issue 12: such a 36 KB file took "
                     "30 s and 1.5 GB with the old openpyxl reader)"},
            {"file": "ok-parameter-kopf-schluessel-wert.xlsx",
             "what": "Parameter's header row reads `Schlüssel | Wert` and Haushaltsjahr is the text \"2022\": a "
                     "header, and the year 2022"}]


README_HEAD = """# Corpus of hostile and broken inputs

Built by `build_corpus.py` (run it to add new cases; files that exist are kept; `--all` rebuilds every file,
and as openpyxl stamps the save time into docProps, that changes the hashes: commit the rebuilt files together
with `cases.json`). Every file is run by
`tests/test_corpus.py` through `allocation run FILE --rules RULES -o out.xlsx`; each must give the exit code
and the problem code at the location below, write no output workbook and leave the file unchanged (its
SHA-256 is recorded in `cases.json`). `gueltig.xlsx` with `regeln.yaml` is the valid base every case is
derived from (it must run). Exit codes: 3 input workbook, 4 rule file, 5 rules do not decide an item.

Decisions documented here:
- **Formulas**: the value Excel last calculated (cached in the file) is used; a formula without a cached
  value is an error (`input-uncalculated-formula`). See `ok-formel-mit-wert.xlsx` (accepted).
- **Trailing/leading whitespace** in text cells (AGS, IDs, categories, parameters) is stripped before
  checking, so `"05170004 "` is accepted as `05170004` (`ok-leerzeichen-am-ende.xlsx`): an invisible space
  changes no meaning, and refusing it would only cost the controller a round trip. Whitespace *inside* an AGS
  is an error.
- **Hidden sheets** are an error whichever sheet is hidden: what is processed must be what the controller sees.
- **Row limit**: 100,000 rows per sheet, checked from the declared `<dimension>` and from the streamed rows
  before the workbook is loaded.
- **Bounds by what the file holds**: in a sheet that is read, no value beyond column 200 (GR), and at most
  600,000 cells in the read sheets together (each counted from A1 to its last value); at most 1,000,000
  shared strings and 64,000 cell formats. A declared width (`<dimension>`) costs nothing and is accepted. A stray value far below the data is one
  `input-empty-row` for the block of empty rows, naming the stray cell.
- **Numbers a cell cannot hold exactly**: NaN and infinity are not numbers; a number of more than 15
  significant digits or from 10^15 on, and an amount from 10,000,000,000,000 € (15 digits with the cents), is
  `input-too-many-digits`.

| file | rules | exit | code | location | defect |
|---|---|---|---|---|---|
"""


def main() -> None:
    cases = build()
    positives = positive_cases()
    (HERE / "cases.json").write_text(json.dumps({"cases": cases, "accepted": positives}, ensure_ascii=False,
                                                indent=1) + "\n", encoding="utf-8")
    lines = [README_HEAD.rstrip("\n")]
    for c in cases:
        lines.append(f"| `{c['file']}` | `{c['rules']}` | {c['exit_code']} | `{c['code']}` | {c['where']} | {c['what']} |")
    lines += ["", "Accepted on purpose:", ""] + [f"- `{p['file']}`: {p['what']}" for p in positives]
    (HERE / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(cases)} broken inputs, {len(positives)} accepted oddities written to {HERE}")


if __name__ == "__main__":
    main()
