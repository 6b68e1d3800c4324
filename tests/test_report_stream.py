"""The streamed output workbook (xlsxwriter, constant_memory) keeps the workbook contract of report.py.

Expected values are written out here by hand (sheet names, header texts, formats, colours, the Kreis Wesel
fixture's 13 municipalities and 5 cost items) or are the decimal text of the amounts written.
"""
from __future__ import annotations

import re
import zipfile
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from allocation.cli import main
from allocation.workbook.report import Book, Sheet

CORPUS = Path(__file__).parent / "corpus"
NOTE_START = "VORLÄUFIG (§ 56 Abs. 1 KrO NRW)"


def _sheet_xml(path: Path, number: int) -> str:
    return zipfile.ZipFile(path).read(f"xl/worksheets/sheet{number}.xml").decode("utf-8")


def _width(ws, column: int) -> float | None:
    """The stored width of a column (xlsxwriter groups neighbouring columns of equal width)."""
    for dimension in ws.column_dimensions.values():
        if dimension.min is not None and dimension.min <= column <= dimension.max and dimension.customWidth:
            return dimension.width
    return None


def test_streamed_text_that_looks_like_a_formula_stays_plain_text(tmp_path):
    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0", "http://example.org"]
    path = tmp_path / "p.xlsx"
    book = Book(str(path), None)
    assert book.workbook.constant_memory
    assert not (book.workbook.strings_to_formulas or book.workbook.strings_to_numbers or book.workbook.strings_to_urls)
    sheet = Sheet(book, "Probe", ["Text"], [None])
    for text in hostile:
        sheet.append([text])
    sheet.finish()
    book.close()
    xml = _sheet_xml(path, 1)
    assert "<f>" not in xml and "<f " not in xml and "hyperlink" not in xml
    back = load_workbook(path)["Probe"]
    for row, text in enumerate(hostile, start=2):
        cell = back.cell(row=row, column=1)
        assert cell.value == text and cell.data_type == "s"
        assert cell.quotePrefix == text.startswith(("=", "+", "-", "@"))


def test_streamed_amounts_are_stored_as_their_decimal_text(tmp_path):
    path = tmp_path / "a.xlsx"
    book = Book(str(path), None)
    eur = '#,##0.00 "€"'
    sheet = Sheet(book, "Betraege", ["Betrag", "Anteil", "Zahl"], [eur, "0.0000000000", "0"])
    values = [(Decimal("1234.56"), Decimal("0.1234567891"), 7), (Decimal("-0.01"), Decimal("0.5000000000"), 0),
              (Decimal("26846345.67"), Decimal("1.0000000000"), 12)]
    for row in values:
        sheet.append(row)
    sheet.append([Decimal("26847580.22"), "", ""], bold=True)
    sheet.finish()
    book.close()
    xml = _sheet_xml(path, 1)
    stored = re.findall(r"<v>([^<]*)</v>", xml)
    assert stored == ["1234.56", "0.1234567891", "7", "-0.01", "0.5", "0", "26846345.67", "1", "12", "26847580.22"]
    back = load_workbook(path)["Betraege"]
    assert back["A2"].number_format == eur and back["B2"].number_format == "0.0000000000"
    assert back["C2"].number_format == "0"
    assert Decimal(str(back["A5"].value)) == Decimal("26847580.22") and back["A5"].font.b
    assert back["B5"].value is None and back["B5"].font.b and not back["A2"].font.b
    # widths: "Anteil" header 6 + 2 = 8; "0.1234567891" shown as 0.12 -> len("0.12") + 3 + 1 = 8; the
    # amount "26,847,580.22" -> 13 + 3 + 1 = 17
    assert [_width(back, c) for c in (1, 2, 3)] == [17, 8, 6]
    assert back.freeze_panes == "A2" and back.auto_filter.ref == "A1:C5"


def test_streamed_output_workbook_keeps_sheets_headers_formats_and_chart(tmp_path, fixture_workbook, rules_file):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    workbook = load_workbook(output)
    # `Umlagen`: rules/kreis-wesel.yaml has `levies:` since issue 14 (intended)
    assert workbook.sheetnames == ["Uebersicht", "Einzelnachweis", "Entscheidungen", "Kontrollen", "Protokoll",
                                   "Hinweise", "Hebesaetze", "Umlagen"]
    for ws in workbook.worksheets:
        assert ws.freeze_panes == "A2", ws.title
        headers = [c.value for c in ws[1]]
        for column, cell in enumerate(ws[1], start=1):
            assert cell.font.b and cell.fill.fill_type == "solid" and cell.fill.fgColor.rgb.endswith("DDEBF7")
            assert cell.alignment.wrap_text and cell.alignment.vertical == "top"
            assert len(cell.value) + 2 <= _width(ws, column) <= 80, (ws.title, cell.value)
        expected_filter = None if ws.title == "Protokoll" else f"A1:{get_column_letter(len(headers))}{ws.max_row}"
        assert ws.auto_filter.ref == expected_filter, ws.title
        assert ws.sheet_properties.tabColor is None and not ws.oddHeader.center.text
    detail = workbook["Einzelnachweis"]
    assert [c.value for c in detail[1]] == [
        "ID", "AGS", "Gemeinde", "Regel", "Weg", "Schlüssel", "Schlüsselwert", "Schlüsselsumme", "Anteil (exakt)",
        "Betrag ungerundet", "Betrag gerundet", "Resteinheiten", "Rang (größter Rest)", "Nachweis"]
    assert detail.max_row == 1 + 5 * 13  # 5 cost items × 13 municipalities
    assert [detail.cell(row=2, column=c).number_format for c in (7, 8, 9, 10, 11, 12)] == [
        "#,##0.######", "#,##0.######", "0.0000000000", "#,##0.000000", '#,##0.00 "€"', "0"]
    assert detail.cell(row=2, column=14).value.endswith("€")  # the proof is text
    assert _width(detail, 14) == 80  # proofs are longer than the 80 character cap
    controls = workbook["Kontrollen"]
    assert _width(controls, 6) == len("Ergebnis") + 2  # "OK" is shorter than the header
    overview = workbook["Uebersicht"]
    header = [c.value for c in overview[1]]
    assert header[:3] == ["AGS", "Gemeinde", "Umlagegrundlagen"]
    assert header[-2:] == ["Summe", "Hebesatz-Punkte (Umlagen ÷ Umlagegrundlagen × 100)"]  # levies only (issue 14)
    routes = len(header) - 5
    assert overview.max_row == 1 + 13 + 1  # municipalities and the totals row
    totals = overview[overview.max_row]
    assert totals[0].value == "Summe" and all(c.font.b for c in totals)
    assert overview["D2"].number_format == '#,##0.00 "€"' and overview.cell(row=2, column=len(header)).number_format == "0.0000"
    (chart,) = overview._charts
    assert (chart.type, chart.grouping, chart.overlap) == ("bar", "stacked", 100)
    assert len(chart.series) == routes
    for offset, series in enumerate(chart.series):
        letter = get_column_letter(4 + offset)
        assert series.tx.strRef.f.replace("$", "") == f"Uebersicht!{letter}1"
        assert series.val.numRef.f.replace("$", "") == f"Uebersicht!{letter}2:{letter}14"
        reference = series.cat.strRef or series.cat.numRef
        assert reference.f.replace("$", "") == "Uebersicht!B2:B14"
    assert chart.y_axis.numFmt.formatCode == "#,##0"  # the value axis (openpyxl's y axis of a bar chart)
    assert chart.anchor._from.row == 13 + 4 and chart.anchor._from.col == 0  # cell A18, under the totals row


def test_streamed_provisional_workbook_marks_every_sheet_beside_its_header(tmp_path):
    output = tmp_path / "v.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output),
                 "--provisional"]) == 0
    workbook = load_workbook(output)
    for ws in workbook.worksheets:
        row = [c.value for c in ws[1]]
        # header cells, one empty column, then the note: the header row itself keeps its columns
        last_header = max(i for i, v in enumerate(row) if v is not None and not v.startswith(NOTE_START))
        note = ws.cell(row=1, column=last_header + 3)
        assert row[last_header + 1] is None and note.value.startswith(NOTE_START), ws.title
        assert note.font.b and note.font.color.rgb.endswith("FFFFFF") and note.fill.fgColor.rgb.endswith("C00000")
        assert ws.sheet_properties.tabColor.rgb.endswith("C00000")
        for part in (ws.oddHeader.center, ws.oddFooter.center):
            assert part.text == note.value and part.color == "C00000"
        if ws.title != "Protokoll":  # the auto-filter covers the header columns only, not the note
            assert ws.auto_filter.ref.startswith("A1:" + get_column_letter(last_header + 1))


def test_a_write_failing_half_way_leaves_no_temporary_row_files(tmp_path, monkeypatch, fixture_workbook, rules_file):
    """constant_memory keeps rows in temporary files until close(); a failed write must remove them too."""
    import tempfile

    import pytest

    from allocation.workbook import report
    from allocation.runs.pipeline import run

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def broken(book, allocation):
        raise OSError("disk full")

    monkeypatch.setattr(report, "_hebesaetze", broken)  # the last sheet: all others are half on disk by then
    out = tmp_path / "out"
    from allocation.core.problems import OutputError

    with pytest.raises(OutputError, match="disk full"):  # since issue 12 a located output problem (exit 9)
        run(fixture_workbook, rules_file, out / "ergebnis.xlsx")
    assert list(scratch.iterdir()) == []
    assert list(out.iterdir()) == []


def _half_up(value, places: int) -> Decimal:
    """Independent of money.py: a Fraction rounded half-up through Decimal's own quantize."""
    from decimal import ROUND_HALF_UP, localcontext
    with localcontext() as context:
        context.prec = 80
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def test_einzelnachweis_key_and_share_cells_stay_right_when_their_memo_overflows(monkeypatch, fixture_workbook,
                                                                                   rules_file):
    """Key and share cells are remembered per value (items of one levy repeat them) in a bounded memo;
    with a memo of two values, cleared over and over, every cell is still its line's own value."""
    from allocation.runs.pipeline import compute
    from allocation.workbook import report

    allocation, _controls, _warnings = compute(fixture_workbook, rules_file)
    monkeypatch.setattr(report, "_CELL_MEMO", 2)
    rows = list(report.einzelnachweis_table(allocation).rows)
    lines = [(item, line) for item in allocation.items for line in sorted(item.lines, key=lambda l: l.ags)]
    assert len(rows) == len(lines) == 13 * 5
    for row, (item, line) in zip(rows, lines):
        assert row[1] == line.ags
        assert row[6] == _half_up(line.key, 6)
        assert row[8] == _half_up(line.share, 10)
        # Betrag ungerundet: the item's deficit × the line's share (lines keep no exact Fraction of their own)
        assert row[9] == _half_up(item.deficit * line.share / 100, 6)


def test_write_book_writes_dates_as_dates_and_leaves_nothing_behind(tmp_path):
    """The public writer: dates keep openpyxl's own formats in a Sheet (the Kreistag pack's Stand column),
    Book.put with `every` formats a whole column (Abschlaege: DD.MM.YYYY, empty amount cells in euros), and a
    build that fails leaves neither the workbook nor a temporary file."""
    import datetime as dt

    import pytest

    from allocation.workbook.report import Book, Sheet, write_book

    def build(book: Book) -> None:
        sheet = Sheet(book, "Daten", ["Datum", "Zeitpunkt"], ["DD.MM.YYYY", None])
        sheet.append([dt.date(2022, 2, 20), dt.datetime(2022, 2, 24, 13, 5)])
        sheet.finish()
        raw = book.add_sheet("Roh")
        book.put(raw, 0, 0, dt.date(2022, 1, 15), "DD.MM.YYYY", every=True)
        book.put(raw, 0, 1, None, '#,##0.00 "€"', every=True)
        book.put(raw, 0, 2, Decimal("388.89"), '#,##0.00 "€"', every=True)
        book.put(raw, 0, 3, "-1", "@")

    path = tmp_path / "d.xlsx"
    write_book(path, build)
    book = load_workbook(path)
    dates = book["Daten"]
    assert dates["A2"].is_date and dates["A2"].value == dt.datetime(2022, 2, 20)
    assert dates["A2"].number_format == "yyyy-mm-dd"  # openpyxl's date format: the column format is for numbers
    assert dates["B2"].value == dt.datetime(2022, 2, 24, 13, 5) and dates["B2"].number_format == "yyyy-mm-dd h:mm:ss"
    raw = book["Roh"]
    assert raw["A1"].is_date and raw["A1"].number_format == "DD.MM.YYYY"
    assert raw["B1"].value is None and raw["B1"].number_format == '#,##0.00 "€"'
    assert raw["C1"].value == 388.89 and raw["C1"].number_format == '#,##0.00 "€"'
    assert raw["D1"].value == "-1" and raw["D1"].data_type == "s" and raw["D1"].quotePrefix
    assert raw["D1"].number_format == "General"  # without `every` a format is for numbers only

    def broken(book: Book) -> None:
        Sheet(book, "Halb", ["A"], [None]).append(["x"])
        raise RuntimeError("abgebrochen")

    with pytest.raises(RuntimeError):
        write_book(tmp_path / "halb.xlsx", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.xlsx"]


def test_a_cell_the_stream_cannot_take_is_an_error_not_a_silent_gap(tmp_path):
    """constant_memory writes rows in order; xlsxwriter drops a cell for an earlier row (or off the sheet)
    without a word. `Book.put` refuses it instead, so no workbook can lose a cell unnoticed."""
    import pytest

    from allocation.workbook.report import Book

    book = Book(str(tmp_path / "p.xlsx"))
    sheet = book.add_sheet("Probe")
    book.put(sheet, 0, 0, "Kopf")
    book.put(sheet, 5, 0, Decimal("1.50"))
    with pytest.raises(ValueError, match="Zeile 3, Spalte 2 nicht geschrieben .*Zeile ist schon abgeschlossen"):
        book.put(sheet, 2, 1, "zu spät")
    with pytest.raises(ValueError, match="Zeile 7, Spalte 16385 nicht geschrieben .*außerhalb des Blatts"):
        book.put(sheet, 6, 16384, "zu weit rechts")
    book.close()


def test_text_longer_than_a_cell_holds_is_cut_visibly_not_silently(tmp_path):
    """An Excel cell holds 32,767 characters (UTF-16 units) and xlsxwriter cuts longer text without a word. A
    longer text (a rule description, a condition explained with long values) is cut with a marker that says so
    and gives the full length; text that fits is untouched, characters outside the BMP count twice."""
    from openpyxl import load_workbook

    from allocation.workbook.report import Book, fit_cell

    assert fit_cell("x" * 32_767) == "x" * 32_767
    assert fit_cell("😀" * 16_383) == "😀" * 16_383  # 32,766 units: fits
    cut = fit_cell("😀" * 16_384)  # 32,768 units: one too many
    assert len(cut.encode("utf-16-le")) // 2 <= 32_767 and cut.endswith("Zeichen, eine Excel-Zelle fasst 32.767]")
    assert "der Text hat 16.384 Zeichen" in cut
    path = tmp_path / "lang.xlsx"
    book = Book(str(path))
    rows = Sheet(book, "Zeilen", ["Text"], [None])
    rows.append(["=" + "x" * 40_000])  # looks like a formula, and is too long
    raw = book.add_sheet("Roh")
    book.put(raw, 0, 0, "y" * 40_000)
    book.close()
    long_cell = load_workbook(path)["Zeilen"]["A2"]
    assert long_cell.value.startswith("=xxx") and long_cell.quotePrefix and long_cell.data_type == "s"
    assert len(long_cell.value) <= 32_767 and long_cell.value.endswith("der Text hat 40.001 Zeichen, eine "
                                                                          "Excel-Zelle fasst 32.767]")
    assert load_workbook(path)["Roh"]["A1"].value.endswith("der Text hat 40.000 Zeichen, eine Excel-Zelle fasst 32.767]")


def test_a_run_with_a_rule_description_longer_than_a_cell_holds_succeeds_and_says_it_is_cut(tmp_path, fixture_workbook,
                                                                                             rules_file):
    from openpyxl import load_workbook

    text = rules_file.read_text(encoding="utf-8")
    start = text.index("\n    description: ") + len("\n    description: ")
    rules = tmp_path / "lang.yaml"
    rules.write_text(text[:start] + '"' + "x" * 40_000 + '" #' + text[start:], encoding="utf-8")
    out = tmp_path / "out.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules), "-o", str(out)]) == 0
    sheet = load_workbook(out, read_only=True)["Entscheidungen"]
    rows = list(sheet.iter_rows(values_only=True))
    column = rows[0].index("Beschreibung der Regel")
    described = [row[column] for row in rows[1:] if row[column] and row[column].startswith("xxxx")]
    assert described and all(len(d) <= 32_767 and d.endswith("der Text hat 40.000 Zeichen, eine Excel-Zelle fasst "
                                                             "32.767]") for d in described)


def test_a_long_text_with_lone_surrogates_is_cut_too():
    """A lone surrogate (an undecodable byte of a file name) counts as one UTF-16 unit and does not break the cut."""
    from allocation.workbook.report import fit_cell

    assert fit_cell("\udcff" * 20_000) == "\udcff" * 20_000  # 20,000 units: fits
    cut = fit_cell("\udcff" * 40_000)
    assert len(cut.encode("utf-16-le", "surrogatepass")) // 2 <= 32_767
    assert cut.endswith("der Text hat 40.000 Zeichen, eine Excel-Zelle fasst 32.767]")
