"""Totals are bounded like single cells: no sum the product writes as a number has more than 15 digits.

A single input amount is at most 9,999,999,999,999.99 € (`input-too-many-digits`). Here every cell is within
that bound, but what the run adds up is not: the run stops with `input-total-too-large` (exit 3) at what adds up,
with the total (computed by hand in each test) and the bound, and writes nothing. Shown quotients (an exact
amount to 6 places) are rounded to the 15 digits a cell holds; the writer refuses any number with more.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.workbook.report import Book, CellNotExact, Sheet, write_book
from workbooks import read_sheet, write_input, write_rules

LEVY = """  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Traeger: Kreis}
    route: district_levy
  - id: traeger
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {not: {Traeger: Kreis}}
    route: host_bears
"""
BOUND = "höchstens 9.999.999.999.999,99 € (15 Stellen mit Cent: so viel hält eine Tabellenzelle genau)"
ALPEN, DINSLAKEN = ["05170004", "Alpen"], ["05170008", "Dinslaken"]


def _run(tmp_path: Path, municipalities, items, capsys) -> tuple[int, dict | None]:
    rules = write_rules(tmp_path / "regeln.yaml", LEVY)
    source = write_input(tmp_path / "eingabe.xlsx", municipalities, items)
    output = tmp_path / "ergebnis.xlsx"
    code = main(["run", str(source), "--rules", str(rules), "-o", str(output), "--json"])
    answer = json.loads(capsys.readouterr().out)
    if code:
        assert not output.exists() and not Path(f"{output}.manifest.json").exists()
    return code, answer


@pytest.mark.parametrize("case, municipalities, items, where, total", [
    # an item's cost components: 6.000.000.000.000,00 + 5.000.000.000.000,00 = 11.000.000.000.000,00 €
    ("components of one item", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
     [["GROSS", "groß", "KIM", 6_000_000_000_000, 5_000_000_000_000, 0, 0, "Kreis"]],
     {"sheet": "Kostenpositionen", "row": 2}, "11.000.000.000.000,00 €"),
    # two items of the Kreisumlage: 9.000.000.000.000,00 + 2.000.000.000.000,00 = 11.000.000.000.000,00 €
    ("a route's total", [[*ALPEN, 1000], [*DINSLAKEN, 2000]],
     [["X", "x", "KIM", 9_000_000_000_000, 0, 0, 0, "Kreis"], ["Y", "y", "KIM", 2_000_000_000_000, 0, 0, 0, "Kreis"]],
     {"sheet": "Kostenpositionen"}, "11.000.000.000.000,00 €"),
    # Alpen hosts two items: 6.000.000.000.000,00 + 6.000.000.000.000,00 = 12.000.000.000.000,00 € in its Summe
    ("one municipality's Summe", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
     [["A", "a", "Kultur", 6_000_000_000_000, 0, 0, 0, "05170004"],
      ["B", "b", "Kultur", 6_000_000_000_000, 0, 0, 0, "05170004"]],
     {"sheet": "Gemeinden", "row": 2}, "12.000.000.000.000,00 €"),
    # Umlagegrundlagen 6.000.000.000.000,00 + 5.000.000.000.000,00 = 11.000.000.000.000,00 € in the totals row
    ("the bases' total", [[*ALPEN, 6_000_000_000_000], [*DINSLAKEN, 5_000_000_000_000]],
     [["X", "x", "KIM", 9000, 0, 0, 0, "Kreis"]], {"sheet": "Gemeinden"}, "11.000.000.000.000,00 €"),
])
def test_cells_within_bounds_whose_sum_exceeds_a_cell_are_refused_before_writing(tmp_path, capsys, case,
                                                                                 municipalities, items, where, total):
    code, answer = _run(tmp_path, municipalities, items, capsys)
    assert code == 3 and answer["exit_code"] == 3
    first = answer["problems"][0]
    assert {p["code"] for p in answer["problems"]} == {"input-total-too-large"}
    assert first["found"] == total and first["expected"] == BOUND
    assert first["location"]["file"] == "eingabe.xlsx"
    assert {k: first["location"].get(k) for k in where} == where
    assert total in first["message"] and "zu groß für eine Tabellenzelle" in first["message"]
    assert len(answer["problems"]) == 1  # the same total again (route, grand total, Kontrollen) is not repeated


def test_a_sum_of_exactly_the_bound_is_written_to_the_cent(tmp_path, capsys):
    # 5.000.000.000.000,00 + 4.999.999.999.999,99 = 9.999.999.999.999,99 €, the largest sum a cell holds, borne
    # by its host Alpen: the item, Alpen's Summe and the totals row hold it to the cent
    code, answer = _run(tmp_path, [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                        [["X", "x", "Kultur", 5_000_000_000_000, Decimal("4999999999999.99"), 0, 0, "05170004"]],
                        capsys)
    assert code == 0, answer
    [decision] = read_sheet(tmp_path / "ergebnis.xlsx", "Entscheidungen")
    assert repr(decision["Förderfähige Kosten"]) == "9999999999999.99"
    overview = read_sheet(tmp_path / "ergebnis.xlsx", "Uebersicht")
    assert [repr(row["Summe"]) for row in overview[:3]] == ["9999999999999.99", "0", "9999999999999.99"]
    # one cent more in the sum is refused
    more = tmp_path / "mehr"
    more.mkdir()
    code, answer = _run(more, [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                        [["X", "x", "Kultur", 5_000_000_000_000, 5_000_000_000_000, 0, 0, "05170004"]], capsys)
    assert code == 3 and answer["problems"][0]["found"] == "10.000.000.000.000,00 €"


def test_an_exact_amount_beyond_15_digits_is_shown_to_15(tmp_path, capsys):
    # 10.000.000.000,00 € over three equal bases: 3.333.333.333,333333… € each. To 6 places that is 16 digits,
    # which a cell cannot hold; the cell shows 15 (3.333.333.333,33333), the proof text keeps the 6 places.
    code, _answer = _run(tmp_path, [[*ALPEN, 1], [*DINSLAKEN, 1], ["05170012", "Hamminkeln", 1]],
                         [["X", "x", "KIM", 10_000_000_000, 0, 0, 0, "Kreis"]], capsys)
    assert code == 0
    lines = read_sheet(tmp_path / "ergebnis.xlsx", "Einzelnachweis")
    assert [repr(line["Betrag ungerundet"]) for line in lines] == ["3333333333.33333"] * 3
    assert "= 3.333.333.333,333333 €" in lines[0]["Nachweis"]
    assert sorted(repr(line["Betrag gerundet"]) for line in lines) == ["3333333333.33", "3333333333.33",
                                                                       "3333333333.34"]


def test_a_settlement_difference_beyond_a_cell_is_refused(tmp_path, capsys):
    # the final run: Alpen hosts a surplus of −6.000.000.000.000,00 €; the actuals: a cost of 5.000.000.000.000,00 €.
    # Each fits a cell; the difference 5.000.000.000.000,00 − (−6.000.000.000.000,00) = 11.000.000.000.000,00 € not.
    rules = write_rules(tmp_path / "regeln.yaml", LEVY)
    final = write_input(tmp_path / "plan.xlsx", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                        [["A", "a", "Kultur", 0, 0, 0, 6_000_000_000_000, "05170004"],
                         ["K", "k", "KIM", 1000, 0, 0, 0, "Kreis"]])
    actual = write_input(tmp_path / "ist.xlsx", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                         [["A", "a", "Kultur", 5_000_000_000_000, 0, 0, 0, "05170004"],
                          ["K", "k", "KIM", 1000, 0, 0, 0, "Kreis"]])
    assert main(["run", str(final), "--rules", str(rules), "-o", str(tmp_path / "echt.xlsx"), "--mode", "final"]) == 0
    capsys.readouterr()
    code = main(["trueup", str(tmp_path / "echt.xlsx"), str(actual), "--rules", str(rules), "-o",
                 str(tmp_path / "abrechnung.xlsx"), "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 3 and not (tmp_path / "abrechnung.xlsx").exists()
    first = answer["problems"][0]
    assert first["code"] == "trueup-total-too-large" and first["found"] == "11.000.000.000.000,00 €"
    assert first["location"] == {"file": "ist.xlsx", "sheet": "Gemeinden", "row": 2, "cell": "Gemeinden, Zeile 2"}


def test_a_scenario_difference_beyond_a_cell_is_refused(tmp_path, capsys):
    # scenario 1: Alpen bears a surplus of −6.000.000.000.000,00 €; scenario 2 a cost of 5.000.000.000.000,00 €:
    # the difference 11.000.000.000.000,00 € is more than a cell holds
    rules = write_rules(tmp_path / "regeln.yaml", LEVY)
    one = write_input(tmp_path / "eins.xlsx", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                      [["A", "a", "Kultur", 0, 0, 0, 6_000_000_000_000, "05170004"]])
    two = write_input(tmp_path / "zwei.xlsx", [[*ALPEN, 1000], [*DINSLAKEN, 1000]],
                      [["A", "a", "Kultur", 5_000_000_000_000, 0, 0, 0, "05170004"]])
    code = main(["compare", str(one), "--rules", str(rules), "--rules", str(rules), "--input", str(two),
                 "-o", str(tmp_path / "vergleich.xlsx"), "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 3 and not (tmp_path / "vergleich.xlsx").exists()
    first = answer["problems"][0]
    assert first["code"] == "compare-total-too-large" and first["found"] == "11.000.000.000.000,00 €"
    assert "Alpen (05170004)" in first["message"]


# ------------------------------------------------------------------------------ the writer's safety net

@pytest.mark.parametrize("value", [Decimal("12345678901234.56"), Decimal("3333333333.333333"),
                                   Decimal("0.1234567890123456"), Decimal("Infinity"), Decimal("NaN"),
                                   1234567890123456])
def test_the_writer_refuses_a_number_a_cell_cannot_hold(tmp_path, value):
    for write in (lambda book: Sheet(book, "Blatt", ["A", "B"], [None, None]).append(["x", value]),
                  lambda book: book.put(book.add_sheet("Blatt"), 4, 1, value)):
        target = tmp_path / "mappe.xlsx"
        with pytest.raises(CellNotExact, match="Blatt!B") as refused:
            write_book(target, write)
        assert isinstance(refused.value, ValueError)  # an internal error, reported as such by the CLI
        assert not target.exists()


def test_the_writer_takes_every_number_of_at_most_15_digits(tmp_path):
    values = [Decimal("9999999999999.99"), Decimal("-9999999999999.99"), Decimal("1.23456789012345E+20"),
              Decimal("0.000000000123456789012345"), Decimal("123456789012345.000000"), 10 ** 16, -999999999999999]

    def build(book: Book) -> None:
        sheet = Sheet(book, "Blatt", ["Wert"], [None])
        for value in values:
            sheet.append([value])
        sheet.finish()
        worksheet = book.add_sheet("Einzeln")
        for row, value in enumerate(values):
            book.put(worksheet, row, 0, value)

    write_book(tmp_path / "mappe.xlsx", build)
    workbook = load_workbook(tmp_path / "mappe.xlsx")
    written = [row[0] for row in workbook["Blatt"].iter_rows(min_row=2, values_only=True)]
    assert [Decimal(repr(v)) for v in written] == [Decimal(v) for v in values]
    assert [Decimal(repr(row[0])) for row in workbook["Einzeln"].iter_rows(values_only=True)] == [Decimal(v) for v in values]
