"""Reading the input workbook with python-calamine (issues 11, 12, 13): same cells as openpyxl read them,
bounds by what the file holds, numbers a cell can hold exactly, ASCII AGS, sheets that differ only by case,
the optional `Umlagesaetze` sheet, and files that are not files."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from allocation.workbook import inputs
from allocation.workbook.inputs import read_input
from allocation.core.money import decimal_from_cell
from allocation.core.problems import InputError
from allocation.workbook.safety import MAX_STYLES, scan_bytes
from workbooks import write_input

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
MUNICIPALITIES = [["05999001", "A", 1000], ["05999002", "B", 3000]]
ITEMS = [["X", "Test", "KIM", 100, 0, 0, 0, None]]
READ_SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen", "Schluessel")


def problems_of(path: Path) -> list:
    with pytest.raises(InputError) as raised:
        read_input(path)
    return raised.value.problems


def located(problems, code: str) -> list[str]:
    """`Sheet!A1` (or the sheet, or the file) of every problem with this code."""
    from allocation.core.problems import column_letter

    result = []
    for p in problems:
        if p.code == code:
            where = p.location
            cell = f"{column_letter(where.column)}{where.row}" if where.column and where.row else (
                f"Zeile {where.row}" if where.row else "")
            result.append((f"{where.sheet}!{cell}" if cell else where.sheet) if where.sheet else where.file)
    return result


def sheet_xml_edit(path: Path, sheet_index: int, edit) -> Path:
    """Rewrite one sheet part of a workbook openpyxl wrote (for cells openpyxl cannot write)."""
    name = f"xl/worksheets/sheet{sheet_index}.xml"
    source = zipfile.ZipFile(path)
    parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    parts[name] = edit(parts[name].decode("utf-8")).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for part_name, content in parts.items():
            target.writestr(part_name, content)
    return path


# --- the same cells as openpyxl read them (openpyxl is the independent oracle here)

def _openpyxl_cells(path: Path) -> dict[str, list[tuple]]:
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return {name: [tuple(row) for row in workbook[name].iter_rows(values_only=True)]
                for name in READ_SHEETS if name in workbook.sheetnames}
    finally:
        workbook.close()


def _same(old: object, new: object) -> bool:
    if old is None or old == "":
        return new is None or new == ""
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float)) and str(decimal_from_cell(old)) == str(decimal_from_cell(new))
    return old == new


def _synthetic_district(tmp_path: Path) -> Path:
    from allocation.ops.synth import write_country

    inputs_dir, _ = write_country(tmp_path / "land", scale=1.0, seed=7, districts=1)  # 40 x 400, full size
    return sorted(inputs_dir.glob("*.xlsx"))[0]


@pytest.mark.parametrize("name", ["fixture", "gueltig", "ok-formel-mit-wert", "ok-leerzeichen-am-ende", "synth"])
def test_calamine_reads_the_numbers_openpyxl_read(name, tmp_path):
    """Every cell of the read sheets gives the same value, numbers the same Decimal text (str), as openpyxl."""
    path = {"fixture": FIXTURE, "synth": None}.get(name) or CORPUS / f"{name}.xlsx"
    if name == "synth":
        path = _synthetic_district(tmp_path)
    data = path.read_bytes()
    collector = inputs._Collector(path.name)
    workbook = inputs._open(data, collector)
    sheets = inputs._load_sheets(workbook, scan_bytes(data, path.name), collector)
    compared = 0
    for sheet, rows in _openpyxl_cells(path).items():
        new_rows = sheets[sheet].rows
        for r, row in enumerate(rows, start=1):
            for c, old in enumerate(row, start=1):
                new = new_rows[r - 1][c - 1] if r <= len(new_rows) and c <= len(new_rows[r - 1]) else None
                assert _same(old, new), (sheet, r, c, old, new)
                compared += isinstance(old, (int, float))
    assert compared > 10  # the comparison saw numbers, not only text


def test_whole_numbers_become_decimals_without_a_point():
    """Excel writes 5170004, not 5170004.0; calamine hands over 5170004.0: the same Decimal text either way."""
    assert str(decimal_from_cell(5170004.0)) == "5170004" == str(decimal_from_cell(5170004))
    assert str(decimal_from_cell(0.1)) == "0.1"
    assert str(decimal_from_cell(2.0 ** 53)) == "9007199254740992.0"  # beyond exact integers: repr, as before


def test_the_run_path_imports_neither_openpyxl_nor_numpy_nor_pandas(tmp_path):
    output = tmp_path / "x.xlsx"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "allocation", "run", str(FIXTURE), "--rules",
                           str(ROOT / "rules" / "kreis-wesel.yaml"), "-o", str(output)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "python_calamine" in imported
    assert not imported & {"openpyxl", "numpy", "pandas"}


# --- issue 12: bounded by what the file holds

def test_a_declared_width_of_16384_columns_pads_no_row(tmp_path):
    path = CORPUS / "ok-dimension-16384-spalten.xlsx"
    data = path.read_bytes()
    collector = inputs._Collector(path.name)
    sheets = inputs._load_sheets(inputs._open(data, collector), scan_bytes(data, path.name), collector)
    assert {len(row) for row in sheets["Gemeinden"].rows} == {6}  # A..F hold values, A1:XFD5 is declared
    book = read_input(path)
    assert [m.ags for m in book.municipalities] == ["05170004", "05170008", "05170012", "05170016"]


def test_a_value_at_xfd1_is_refused_before_rows_are_built():
    assert located(problems_of(CORPUS / "wert-in-xfd1.xlsx"), "input-too-many-columns") == ["Gemeinden!XFD1"]


def test_a_value_that_spans_more_than_600000_cells_is_refused():
    assert located(problems_of(CORPUS / "wert-weit-unten-rechts.xlsx"), "input-too-many-cells") == [
        "Gemeinden!GR20000"]


def test_the_cell_limit_counts_the_read_sheets_together(tmp_path):
    """Gemeinden up to E60000 (300,000 cells) and Kostenpositionen up to H40000 (320,000): over 600,000
    together although each alone is under it; refused at the cell that crosses the limit."""
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    far = '<row r="{r}"><c r="{ref}" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'
    sheet_xml_edit(path, 2, lambda x: x.replace("</sheetData>", far.format(r=60000, ref="E60000")))
    sheet_xml_edit(path, 3, lambda x: x.replace("</sheetData>", far.format(r=40000, ref="H40000")))
    assert located(problems_of(path), "input-too-many-cells") == ["Kostenpositionen!H40000"]


def test_a_stray_cell_far_below_the_data_is_one_error_that_names_it():
    problems = problems_of(CORPUS / "streuzelle-zeile-90000.xlsx")
    empty = [p for p in problems if p.code == "input-empty-row"]
    assert len(empty) == 1 and empty[0].location.row == 6  # rows 6..89,999 are empty; data ends in row 5
    assert "A90000" in empty[0].message and "A90000" in empty[0].found
    assert len(problems) < 10


def test_one_empty_row_between_data_rows_is_still_reported_at_that_row(tmp_path):
    path = write_input(tmp_path / "e.xlsx", [MUNICIPALITIES[0], [None, None, None], [None, None, None],
                                             MUNICIPALITIES[1]], ITEMS)
    empty = [p for p in problems_of(path) if p.code == "input-empty-row"]
    assert [(p.location.row, "Zeilen 3 bis 4" in p.message) for p in empty] == [(3, True)]


def test_a_huge_shared_string_table_is_refused_from_the_file():
    assert located(problems_of(CORPUS / "gemeinsame-zeichenfolgen-riesig.xlsx"), "input-too-large") == [
        "gemeinsame-zeichenfolgen-riesig.xlsx"]


def test_a_huge_style_table_is_refused(tmp_path):
    path = write_input(tmp_path / "s.xlsx", MUNICIPALITIES, ITEMS)
    source = zipfile.ZipFile(path)
    parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    styles = parts["xl/styles.xml"].decode("utf-8")
    extra = "".join(f'<xf numFmtId="{i % 50}" fontId="0" fillId="0" borderId="0"/>' for i in range(MAX_STYLES + 1))
    parts["xl/styles.xml"] = re.sub(r"(<cellXfs[^>]*>)", r"\1" + extra, styles, count=1).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in parts.items():
            target.writestr(name, content)
    assert located(problems_of(path), "input-too-large") == ["s.xlsx"]


@pytest.mark.parametrize("file, code, cell", [
    ("zahl-nan.xlsx", "input-not-a-number", "Gemeinden!C3"),
    ("zahl-inf.xlsx", "input-not-a-number", "Gemeinden!E3"),
    ("zahl-1e308.xlsx", "input-too-many-digits", "Kostenpositionen!E3"),
    ("zahl-39-stellen.xlsx", "input-too-many-digits", "Gemeinden!F3"),
    ("datum-text-kaputt.xlsx", "input-bad-date", "Gemeinden!E3"),
])
def test_numbers_no_cell_can_hold_and_malformed_dates_are_located(file, code, cell):
    assert located(problems_of(CORPUS / file), code) == [cell]


def test_a_directory_as_input_is_refused(tmp_path):
    problems = problems_of(tmp_path)
    assert [p.code for p in problems] == ["input-unreadable"] and "Verzeichnis" in problems[0].found


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_or_dev_zero_as_input_exits_3_and_never_hangs(tmp_path):
    fifo = tmp_path / "eingabe.xlsx"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        if not path.exists():
            continue
        done = subprocess.run([sys.executable, "-m", "allocation", "run", str(path), "--rules",
                               str(ROOT / "rules" / "kreis-wesel.yaml"), "-o", str(tmp_path / "o.xlsx"), "--json"],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # a guard, not a timing
        assert done.returncode == 3, done.stdout + done.stderr
        assert '"input-unreadable"' in done.stdout


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path, monkeypatch):
    path = write_input(tmp_path / "gross.xlsx", MUNICIPALITIES, ITEMS)
    monkeypatch.setattr(inputs, "MAX_FILE_BYTES", path.stat().st_size - 1)
    assert [p.code for p in problems_of(path)] == ["input-too-large"]


# --- issue 11: what a cell means

FULLWIDTH_ALPEN = "\uff10\uff15\uff19\uff19\uff19\uff10\uff10\uff11"  # ０５９９９００１ (looks like 05999001)


def test_an_ags_in_fullwidth_digits_is_not_a_second_municipality(tmp_path):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES + [[FULLWIDTH_ALPEN, "A", 1000]], ITEMS)
    assert located(problems_of(path), "input-bad-ags") == ["Gemeinden!A4"]


@pytest.mark.parametrize("digits", ["\u0660\u0665\u0669\u0669\u0669\u0660\u0660\u0662",  # Arabic-Indic ٠٥٩٩٩٠٠٢
                                    "\uff10\uff15\uff19\uff19\uff19\uff10\uff10\uff12"])
def test_unicode_digits_are_refused_as_host_and_in_schluessel(tmp_path, digits):
    items = [["X", "Test", "KIM", 100, 0, 0, 0, digits]]
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, items, keys=[["X", digits, 5]])
    problems = problems_of(path)
    assert sorted(located(problems, "input-bad-ags")) == ["Kostenpositionen!H2", "Schluessel!B2"]


def test_a_year_in_unicode_digits_is_refused(tmp_path):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS, parameters=[
        ["Parameter", "Wert"], ["Kreis", "Testkreis"], ["Haushaltsjahr", "\uff12\uff10\uff12\uff12"]])
    assert located(problems_of(path), "input-bad-parameter") == ["Parameter!B3"]


def test_a_haushaltsjahr_written_as_text_is_that_year(tmp_path):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS, parameters=[
        ["Parameter", "Wert"], ["Kreis", "Testkreis"], ["Haushaltsjahr", "2022"]])
    assert read_input(path).parameters.year == 2022


@pytest.mark.parametrize("header", [["Schlüssel", "Wert"], ["Name", "Wert"], ["Parameter", "Wert"]])
def test_a_first_parameter_row_with_wert_is_a_header(tmp_path, header):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS, parameters=[
        header, ["Kreis", "Testkreis"], ["Haushaltsjahr", 2022]])
    assert read_input(path).parameters.district == "Testkreis"


def test_the_accepted_corpus_header_schluessel_wert_reads(tmp_path):
    book = read_input(CORPUS / "ok-parameter-kopf-schluessel-wert.xlsx")
    assert (book.parameters.district, book.parameters.year) == ("Kreis Wesel", 2022)


def test_an_na_error_cell_is_located(tmp_path):
    path = write_input(tmp_path / "e.xlsx", [["05999001", "A", "#N/A"], MUNICIPALITIES[1]], ITEMS)
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet2.xml").decode("utf-8")
    assert '<c r="C2" t="e">' in xml  # openpyxl stored it as an Excel error cell
    assert located(problems_of(path), "input-excel-error") == ["Gemeinden!C2"]


def test_an_error_cell_only_the_xml_names_is_located(tmp_path):
    """#GETTING_DATA does not look like the classic errors; the cell type t="e" says what it is."""
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    sheet_xml_edit(path, 3, lambda x: re.sub(r'<c r="D2"[^>]*><v>[^<]*</v>',
                                             '<c r="D2" t="e"><v>#GETTING_DATA</v>', x, count=1))
    problems = problems_of(path)
    assert located(problems, "input-excel-error") == ["Kostenpositionen!D2"]
    assert next(p for p in problems if p.code == "input-excel-error").found == "#GETTING_DATA"


def test_the_largest_amount_a_cell_carries_to_the_cent_is_read(tmp_path):
    """15 significant digits with the cents: 9,999,999,999,999.99 € (13 + 2 digits) is the largest amount."""
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, [["X", "Test", "KIM", 9999999999999.99, 0, 0, 0, None]])
    assert read_input(path).items[0].components["Personalkosten"] == 999_999_999_999_999


@pytest.mark.parametrize("amount", [10000000000000, 1234567890123456, 12345678901234.5])
def test_an_amount_a_cell_cannot_carry_to_the_cent_is_refused(tmp_path, amount):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, [["X", "Test", "KIM", amount, 0, 0, 0, None]])
    assert located(problems_of(path), "input-too-many-digits") == ["Kostenpositionen!D2"]


def test_a_levy_base_beyond_15_digits_is_refused(tmp_path):
    path = write_input(tmp_path / "e.xlsx", [["05999001", "A", 12345678901234567], MUNICIPALITIES[1]], ITEMS)
    assert located(problems_of(path), "input-too-many-digits") == ["Gemeinden!C2"]


def test_a_free_number_beyond_15_significant_digits_is_refused(tmp_path):
    path = write_input(tmp_path / "e.xlsx", [MUNICIPALITIES[0] + [0.1234567890123456], MUNICIPALITIES[1] + [1]],
                       ITEMS, municipality_extra=["Anteil"])
    assert located(problems_of(path), "input-too-many-digits") == ["Gemeinden!D2"]


def test_sheets_that_differ_only_by_case_are_an_error():
    problems = problems_of(CORPUS / "blatt-doppelt-gross-klein.xlsx")
    assert [p.location.sheet for p in problems if p.code == "input-duplicate-sheet"] == ["PARAMETER"]


def test_sheets_that_differ_only_by_spaces_are_an_error(tmp_path):
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    workbook = load_workbook(path)
    workbook.create_sheet("Gemeinden ").append(["AGS", "Gemeinde", "Umlagegrundlagen"])
    workbook.save(path)
    assert [p.location.sheet for p in problems_of(path) if p.code == "input-duplicate-sheet"] == ["Gemeinden "]


# --- the optional Umlagesaetze sheet

def _with_rates(path: Path, rows: list, header=("Umlage", "Bestandteil", "Satz"), percent_cells=()) -> Path:
    workbook = load_workbook(path)
    sheet = workbook.create_sheet("Umlagesaetze")
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    for ref in percent_cells:
        sheet[ref].number_format = "0.00%"
    workbook.save(path)
    return path


def test_levy_rates_are_read_exactly_with_their_row(tmp_path):
    path = _with_rates(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS),
                       [["Kreisumlage", None, 33.1234], ["Jugendamtsumlage", "Umlagegrundlagen", 0],
                        ["Jugendamtsumlage", "Steuerkraft", 100]])
    rates = read_input(path).levy_rates
    assert [(r.levy, r.component, str(r.rate), r.source.sheet, r.source.row) for r in rates] == [
        ("Kreisumlage", "", "33.1234", "Umlagesaetze", 2), ("Jugendamtsumlage", "Umlagegrundlagen", "0",
                                                             "Umlagesaetze", 3),
        ("Jugendamtsumlage", "Steuerkraft", "100", "Umlagesaetze", 4)]


def test_a_workbook_without_umlagesaetze_has_no_rates(tmp_path):
    assert read_input(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)).levy_rates == ()


def test_a_rate_in_a_percent_cell_is_the_percentage_the_controller_sees(tmp_path):
    """33.5 % typed into a percent-formatted cell is stored as 0.335; the controller sees 33.5 %."""
    path = _with_rates(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS), [["Kreisumlage", None, 0.335]],
                       percent_cells=["C2"])
    assert read_input(path).levy_rates[0].rate == Decimal("33.5")


@pytest.mark.parametrize("rows, code, cell", [
    ([["Kreisumlage", None, 33], ["Kreisumlage", None, 34]], "input-duplicate-rate", "Umlagesaetze!A3"),
    ([["Kreisumlage", "Umlagegrundlagen", 33], ["Kreisumlage", "Umlagegrundlagen", 33]], "input-duplicate-rate",
     "Umlagesaetze!A3"),
    ([["Kreisumlage", None, 100.00001]], "input-bad-rate", "Umlagesaetze!C2"),
    ([["Kreisumlage", None, -0.5]], "input-bad-rate", "Umlagesaetze!C2"),
    ([["Kreisumlage", None, 33.12345]], "input-bad-rate", "Umlagesaetze!C2"),
    ([["Kreisumlage", None, "33,5"]], "input-not-a-number", "Umlagesaetze!C2"),
    ([["Kreisumlage", None, None]], "input-empty-cell", "Umlagesaetze!C2"),
    ([[None, None, 33]], "input-empty-cell", "Umlagesaetze!A2"),
])
def test_bad_levy_rates_are_located(tmp_path, rows, code, cell):
    path = _with_rates(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS), rows)
    assert located(problems_of(path), code) == [cell]


def test_a_rate_for_the_whole_base_and_one_for_a_component_are_not_duplicates(tmp_path):
    path = _with_rates(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS),
                       [["Kreisumlage", None, 30], ["Kreisumlage", "Umlagegrundlagen", 33]])
    assert len(read_input(path).levy_rates) == 2


def test_the_template_has_the_umlagesaetze_sheet(tmp_path):
    from allocation.workbook.template import write_template

    write_template(tmp_path / "vorlage.xlsx")
    workbook = load_workbook(tmp_path / "vorlage.xlsx")
    assert [c.value for c in workbook["Umlagesaetze"][1]] == ["Umlage", "Bestandteil", "Satz"]
    assert "Umlagesaetze" in [row[0] for row in workbook["Anleitung"].iter_rows(values_only=True)]
    # the layout: sheets in order, bold headers with a help comment, text format ("@") in rows 2..1000 of the
    # key columns, widths max(14, name + 4), frozen header; Parameter with its defaults
    assert workbook.sheetnames == ["Parameter", "Gemeinden", "Kostenpositionen", "Schluessel", "Umlagesaetze",
                                   "Anleitung"]
    municipalities = workbook["Gemeinden"]
    assert [c.value for c in municipalities[1]] == ["AGS", "Gemeinde", "Umlagegrundlagen", "Einwohner"]
    header = municipalities["B1"]
    assert header.font.b and (header.comment.text, header.comment.author) == ("Name der Gemeinde", "allocation")
    assert municipalities["A2"].number_format == "@" and municipalities["A1000"].number_format == "@"
    assert municipalities["B2"].number_format == "General" and municipalities.freeze_panes == "A2"
    assert municipalities.column_dimensions["C"].width == 20  # "Umlagegrundlagen" 16 + 4
    parameters = workbook["Parameter"]
    assert [c.value for c in parameters[1]] == ["Parameter", "Wert", "Erläuterung"] and parameters["A1"].font.b
    assert parameters["A4"].value == "Rundung" and parameters["B4"].value == "Cent"
    assert parameters["B5"].value == 2 and parameters["B5"].data_type == "n" and parameters["B3"].value is None
    assert parameters.column_dimensions["A"].width == 28 and parameters.freeze_panes is None
    notes = workbook["Anleitung"]
    assert notes["A1"].value == "Blatt / Spalte" and not notes["A1"].font.b
    assert notes.column_dimensions["B"].width == 100



def test_a_read_sheet_whose_part_the_scan_cannot_find_is_refused(tmp_path):
    """The bounds must have seen every sheet the reader loads: a relationship to a missing part is refused."""
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    source = zipfile.ZipFile(path)
    parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    rels = parts["xl/_rels/workbook.xml.rels"].decode("utf-8")
    parts["xl/_rels/workbook.xml.rels"] = rels.replace("worksheets/sheet2.xml", "worksheets/fehlt.xml").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in parts.items():
            target.writestr(name, content)
    assert located(problems_of(path), "input-not-xlsx") == ["Gemeinden"]


def test_an_item_with_its_own_error_causes_no_unknown_item_errors(tmp_path):
    """X has a sub-cent amount; its two key rows must not add two `input-unknown-item` errors."""
    items = [["X", "Test", "Beratung", 100.005, 0, 0, 0, None], ["Y", "Test", "KIM", 100, 0, 0, 0, None]]
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, items, keys=[["X", "05999001", 1], ["X", "05999002", 2]])
    assert sorted(p.code for p in problems_of(path)) == ["input-sub-cent"]


def test_a_municipality_with_its_own_error_causes_no_unknown_host_or_ags_errors(tmp_path):
    """05999002 has a negative base; the item it hosts and its key row must not add "unknown" errors."""
    municipalities = [MUNICIPALITIES[0], ["05999002", "B", -5]]
    items = [["X", "Test", "KIM", 100, 0, 0, 0, "05999002"]]
    path = write_input(tmp_path / "e.xlsx", municipalities, items, keys=[["X", "05999002", 1]])
    assert sorted(p.code for p in problems_of(path)) == ["input-negative-base"]


# --- no traceback from the reader, whatever the bytes of a sheet part

_TOKENS = [b"<v>", b"</v>", b't="e"', b't="d"', b't="s"', b't="str"', b'r="XFD1"', b"<f>", b"NaN", b"1e400",
           b"&amp;", b"<c ", b"/>", b'r="A0"', b's="99"', b"<v>2022-02-30</v>", b"\xff", b"<is><t>", b"</row>"]


@given(st.data())
def test_a_damaged_part_gives_located_problems_never_a_traceback(data):
    """Random edits of one XML part of the corpus base: read_input returns a book or raises InputError."""
    source = zipfile.ZipFile(CORPUS / "gueltig.xlsx")
    parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    name = data.draw(st.sampled_from(sorted(n for n in parts if n.endswith(".xml"))))
    body = bytearray(parts[name])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        edit = data.draw(st.sampled_from(["cut", "insert", "byte"]))
        if edit == "cut":
            del body[at:at + data.draw(st.integers(1, 8))]
        elif edit == "insert":
            body[at:at] = data.draw(st.sampled_from(_TOKENS))
        else:
            body[at] = data.draw(st.integers(0, 255))
    parts[name] = bytes(body)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "e.xlsx"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
            for part_name, content in parts.items():
                target.writestr(part_name, content)
        try:
            read_input(path)
        except InputError as error:
            assert error.problems and all(p.code.startswith("input-") and p.location.file for p in error.problems)


def _with_sheet(path: Path, name: str, xml: str) -> Path:
    """Add a sheet part openpyxl did not write (e.g. one far larger than its data)."""
    source = zipfile.ZipFile(path)
    parts = {info.filename: source.read(info.filename) for info in source.infolist()}
    parts["xl/workbook.xml"] = parts["xl/workbook.xml"].replace(
        b"</sheets>", f'<sheet name="{name}" sheetId="99" r:id="rId99"/></sheets>'.encode())
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(b"</Relationships>", (
        b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'worksheet" Target="worksheets/extra.xml"/></Relationships>'))
    parts["xl/worksheets/extra.xml"] = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + xml + "</worksheet>"
    ).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for part_name, content in parts.items():
            target.writestr(part_name, content)
    return path


@pytest.mark.parametrize("xml, row", [
    ('<sheetData><row r="1"><c r="A1"><v>1</v></c></row><row r="100001"><c r="A100001"><v>1</v></c></row>'
     "</sheetData>", 100001),
    ('<dimension ref="A1:B1048576"/><sheetData><row r="1"/></sheetData>', 1048576),
    ("<sheetData>" + "".join(f"<row><c><v>{r}</v></c></row>" for r in range(100_001)) + "</sheetData>", 100001),
])
def test_the_row_limit_holds_in_a_sheet_that_is_not_read(tmp_path, xml, row):
    path = _with_sheet(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS), "Hilfsblatt", xml)
    problems = problems_of(path)
    assert [(p.code, p.location.sheet, p.location.row) for p in problems] == [
        ("input-too-many-rows", "Hilfsblatt", row)]


def test_a_sheet_that_is_not_read_with_row_breaks_and_many_rows_is_accepted(tmp_path):
    """<rowBreaks>/<brk> are no rows; 100,000 rows is the limit, not over it."""
    xml = ('<sheetData>' + "".join(f'<row r="{r}" spans="1:1"><c r="A{r}"><v>1</v></c></row>'
                                   for r in range(1, 100_001)) + '</sheetData><rowBreaks count="1"><brk id="5"/>'
           "</rowBreaks>")
    path = _with_sheet(write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS), "Hilfsblatt", xml)
    assert read_input(path).parameters.district == "Testkreis"


def test_read_sheets_of_too_many_empty_styled_cells_are_refused(tmp_path, monkeypatch):
    """Empty styled cells cost parse time though no reader keeps them: their number (all read sheets together:
    Parameter 8 + Gemeinden 9 before row 9) is bounded too."""
    from allocation.workbook import safety

    monkeypatch.setattr(safety, "MAX_CELL_ELEMENTS", 40)
    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    sheet_xml_edit(path, 2, lambda x: x.replace("</sheetData>", '<row r="9">' + "".join(
        f'<c r="{c}9" s="0"/>' for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "</row></sheetData>"))
    assert [(p.code, p.location.sheet, p.location.row) for p in problems_of(path)] == [
        ("input-too-many-cells", "Gemeinden", 9)]


def test_an_oversized_workbook_part_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from allocation.workbook import safety

    path = write_input(tmp_path / "e.xlsx", MUNICIPALITIES, ITEMS)
    size = zipfile.ZipFile(path).getinfo("xl/styles.xml").file_size
    monkeypatch.setattr(safety, "MAX_STRUCTURE_PART", size - 1)
    problems = problems_of(path)
    assert [p.code for p in problems] == ["input-too-large"] and "xl/styles.xml" in problems[0].message
