"""Scenarios side by side and year over year (issue 5), on the Kreis Wesel 2022 KIM scenarios of the seed.

Expected figures are computed here by hand: the seed's deficits (19,000 € per post) and a largest-remainder
oracle (Fractions) over the fixture's levy bases and the real population figures (IT.NRW 31.12.2021).
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.ops.compare import ResultSummary, year_over_year
from allocation.core.model import ROUTES
from test_findings import BASES, POST_DEFICIT, VOERDE, largest_remainder

ROOT = Path(__file__).resolve().parent.parent
BASE_INPUT = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
SCENARIOS = ROOT / "fixtures" / "kreis-wesel-2022" / "scenarios"
RULES = ROOT / "rules" / "kreis-wesel.yaml"

# Einwohner 31.12.2021 (IT.NRW via NRZ; the fixture's Gemeinden!D), the key of scenario 2.
POPULATION = {
    "05170004": 12528, "05170008": 67114, "05170012": 26900, "05170016": 13611, "05170020": 37847,
    "05170024": 103725, "05170028": 27613, "05170032": 30863, "05170036": 13464, "05170040": 8689,
    "05170044": 35889, "05170048": 60688, "05170052": 21502,
}


def sheet(path: Path, name: str) -> list[dict]:
    workbook = load_workbook(path, read_only=True)
    rows = list(workbook[name].iter_rows(values_only=True))
    workbook.close()
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def euros(cents: int) -> Decimal:
    return Decimal(cents) / 100


def amount(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("compare") / "vergleich.xlsx"
    code = main(["compare", str(BASE_INPUT),
                 "--rules", str(RULES), "--label", "1 Kreisumlage",
                 "--rules", str(SCENARIOS / "kim-gemeindescharf.yaml"), "--label", "2 gemeindescharf",
                 "--rules", str(RULES), "--input", str(SCENARIOS / "kreis-wesel-2022-voerde-traeger-kreis-4-stellen.xlsx"),
                 "--label", "3a",
                 "--rules", str(RULES), "--input", str(SCENARIOS / "kreis-wesel-2022-voerde-traeger-kreis-3-stellen.xlsx"),
                 "--label", "3b",
                 "-o", str(output)])
    assert code == 0
    return output


def test_voerde_own_post_costs_19000_more_when_the_kreis_keeps_four_posts(comparison):
    voerde = next(row for row in sheet(comparison, "Vergleich") if row["AGS"] == VOERDE)
    assert amount(voerde["Differenz 3a − 1 Kreisumlage (€)"]) == Decimal("19000.00")
    # 19,000 € ÷ 42,982,635 € × 100 = 0.044203... Hebesatz points
    assert Decimal(str(voerde["Differenz 3a − 1 Kreisumlage (Hebesatz-Punkte)"])) == Decimal("0.0442")
    # Every other municipality pays the same in 1 and 3a.
    others = [row for row in sheet(comparison, "Vergleich") if row["AGS"] not in (VOERDE, "Summe")]
    assert all(amount(row["Differenz 3a − 1 Kreisumlage (€)"]) == 0 for row in others)


def test_voerde_difference_when_the_kreis_needs_one_post_fewer(comparison):
    share_four = largest_remainder(4 * POST_DEFICIT, BASES)[VOERDE]  # 4,666.69 €
    share_three = largest_remainder(3 * POST_DEFICIT, BASES)[VOERDE]  # 3,500.01 €
    voerde = next(row for row in sheet(comparison, "Vergleich") if row["AGS"] == VOERDE)
    expected = euros(POST_DEFICIT - (share_four - share_three))
    assert expected == Decimal("17833.32")
    assert amount(voerde["Differenz 3b − 1 Kreisumlage (€)"]) == expected


def test_routes_of_voerde_per_scenario(comparison):
    rows = {row["Szenario"]: row for row in sheet(comparison, "Wege") if row["AGS"] == VOERDE}
    share_four = euros(largest_remainder(4 * POST_DEFICIT, BASES)[VOERDE])
    # Scenario 1: only the levy share. Scenario 3a: 19,000 € own post plus the same levy share.
    assert amount(rows["1 Kreisumlage"]["Kreisumlage"]) == share_four
    assert amount(rows["1 Kreisumlage"]["Trägerkommune"]) == 0
    assert amount(rows["3a"]["Kreisumlage"]) == share_four
    assert amount(rows["3a"]["Trägerkommune"]) == Decimal("19000.00")
    assert amount(rows["3b"]["Kreisumlage"]) == euros(largest_remainder(3 * POST_DEFICIT, BASES)[VOERDE])
    # Scenario 2: no KIM levy; the 76,000 € are billed by population.
    assert amount(rows["2 gemeindescharf"]["Kreisumlage"]) == 0
    by_population = largest_remainder(4 * POST_DEFICIT, POPULATION)[VOERDE]
    difference = amount(rows["2 gemeindescharf"]["Direktabrechnung"]) - amount(rows["1 Kreisumlage"]["Direktabrechnung"])
    assert difference == euros(by_population)


def test_scenario_two_bills_kim_by_population_for_everyone(comparison):
    rows = [row for row in sheet(comparison, "Vergleich") if row["AGS"] != "Summe"]
    by_population = largest_remainder(4 * POST_DEFICIT, POPULATION)
    by_base = largest_remainder(4 * POST_DEFICIT, BASES)
    for row in rows:
        assert amount(row["Differenz 2 gemeindescharf − 1 Kreisumlage (€)"]) == euros(
            by_population[row["AGS"]] - by_base[row["AGS"]]), row["AGS"]
    total = next(row for row in sheet(comparison, "Vergleich") if row["AGS"] == "Summe")
    assert amount(total["Differenz 2 gemeindescharf − 1 Kreisumlage (€)"]) == 0


def test_items_moved_between_routes(comparison):
    moves = {row["ID"]: row for row in sheet(comparison, "Verschiebungen")}
    assert moves["KIM-2022"]["Weg 1 Kreisumlage"] == "Kreisumlage"
    assert moves["KIM-2022"]["Weg 2 gemeindescharf"] == "Direktabrechnung"
    assert moves["KIM-2022"]["Weg verschoben"] == "ja"
    assert amount(moves["KIM-2022"]["Defizit 3b"]) == Decimal("57000.00")
    assert moves["JA-2022"]["Weg verschoben"] == "nein"
    assert moves["KIM-VOERDE-2022"]["Weg 1 Kreisumlage"] == "—"
    assert moves["KIM-VOERDE-2022"]["Weg 3a"] == "Trägerkommune"


def test_findings_of_each_scenario(comparison):
    findings = sheet(comparison, "Hinweise")
    assert [(f["Szenario"], f["AGS"], f["Art"]) for f in findings] == [
        ("3a", VOERDE, "Doppelbelastung"), ("3b", VOERDE, "Doppelbelastung")]


def _summary(year: int, routes: dict[str, dict[str, int]]) -> ResultSummary:
    full = {ags: {route: r.get(route, 0) for route in ROUTES} for ags, r in routes.items()}
    return ResultSummary(f"{year}.xlsx", "Testkreis", year, {ags: f"Gemeinde {ags}" for ags in routes}, full)


def test_year_over_year_change_in_euros_percent_and_route_shares():
    before = _summary(2022, {"A": {"district_levy": 80_000, "direct_billing": 20_000}, "B": {"district_levy": 5_000}})
    after = _summary(2023, {"A": {"district_levy": 90_000, "direct_billing": 30_000}, "C": {"host_bears": 100}})
    rows, warnings = year_over_year(before, after)
    assert warnings == []
    a, b, c = rows
    assert (a.total_before, a.total_after, a.change) == (100_000, 120_000, 20_000)
    assert a.change_percent == Decimal("20.00")  # 200 € more on 1,000 €
    # Kreisumlage: 80 % of A's total in 2022, 75 % in 2023 → −5 points; Direktabrechnung 20 % → 25 %.
    assert a.share_change_points("district_levy") == Decimal("-5.0000")
    assert a.share_change_points("direct_billing") == Decimal("5.0000")
    assert (b.change, b.change_percent, c.change) == (None, None, None)  # absent in one of the years


def test_year_over_year_warns_on_the_same_year():
    rows, warnings = year_over_year(_summary(2022, {"A": {}}), _summary(2022, {"A": {}}))
    assert [w.code for w in warnings] == ["compare-same-year"]
    assert rows[0].change == 0 and rows[0].change_percent is None


def test_two_budget_years_from_output_workbooks(tmp_path):
    # 2023: the state's flat amount rose to 57,000 € per post (domain brief), so 4 posts leave
    # 4 × (74,000 − 57,000) = 68,000 € instead of 76,000 €; all other items are unchanged.
    workbook = load_workbook(BASE_INPUT)
    parameters = workbook["Parameter"]
    next(row for row in parameters.iter_rows() if row[0].value == "Haushaltsjahr")[1].value = 2023
    items = workbook["Kostenpositionen"]
    header = [cell.value for cell in items[1]]
    kim = next(row for row in items.iter_rows(min_row=2) if row[0].value == "KIM-2022")
    kim[header.index("Förderung")].value = Decimal("228000.00")
    input_2023 = tmp_path / "eingabe-2023.xlsx"
    workbook.save(input_2023)
    out_2022, out_2023, result = tmp_path / "e2022.xlsx", tmp_path / "e2023.xlsx", tmp_path / "yoy.xlsx"
    assert main(["run", str(BASE_INPUT), "--rules", str(RULES), "-o", str(out_2022)]) == 0
    assert main(["run", str(input_2023), "--rules", str(RULES), "-o", str(out_2023)]) == 0
    assert main(["compare", str(out_2022), str(out_2023), "-o", str(result)]) == 0
    before, after = largest_remainder(7_600_000, BASES), largest_remainder(6_800_000, BASES)
    rows = {row["AGS"]: row for row in sheet(result, "Vergleich")}
    for ags in BASES:
        assert amount(rows[ags]["Änderung (€)"]) == euros(after[ags] - before[ags]), ags
    assert amount(rows["Summe"]["Änderung (€)"]) == Decimal("-8000.00")
    voerde = rows[VOERDE]
    total_2022 = amount(voerde["Summe 2022"])
    change = euros(after[VOERDE] - before[VOERDE])
    assert Decimal(str(voerde["Änderung (%)"])) == (change / total_2022 * 100).quantize(Decimal("0.01"))
    routes = {(row["AGS"], row["Weg"]): row for row in sheet(result, "Wege")}
    assert amount(routes[(VOERDE, "Kreisumlage")]["Änderung (€)"]) == change
    assert (VOERDE, "Trägerkommune") not in routes  # Voerde hosts nothing in either year
    # the layout of the year comparison (a rule file with levies: both years have Umlagen, so Wirkungen too)
    book = load_workbook(result)
    assert book.sheetnames == ["Vergleich", "Wege", "Jahre", "Wirkungen"]
    table = book["Vergleich"]
    assert [c.value for c in table[1]] == ["AGS", "Gemeinde", "Summe 2022", "Summe 2023", "Änderung (€)",
                                           "Änderung (%)"]
    assert table.freeze_panes == "A2" and table.auto_filter.ref == "A1:F15"
    assert table["C2"].number_format == EUR_FORMAT and table["F2"].number_format == "0.00"
    assert table["A15"].value == "Summe" and table["A15"].font.b and table["E15"].font.b
    assert Decimal(str(table["E15"].value)) == Decimal("-8000.00") and table["E15"].number_format == EUR_FORMAT
    years = book["Jahre"]
    assert [[c.value for c in row] for row in years.iter_rows(min_row=3, max_row=5)] == [
        ["Kreis", "Kreis Wesel", "Kreis Wesel"], ["Haushaltsjahr", 2022, 2023], ["Gemeinden", 13, 13]]
    assert years.auto_filter.ref is None


def test_compare_needs_output_workbooks_without_rules(tmp_path, capsys):
    code = main(["compare", str(BASE_INPUT), str(BASE_INPUT), "-o", str(tmp_path / "x.xlsx"), "--json"])
    assert code == 3
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems[0]["code"] == "compare-not-an-output"
    assert problems[0]["location"]["file"] == str(BASE_INPUT)
    assert not (tmp_path / "x.xlsx").exists()


def test_label_before_rules_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(BASE_INPUT), "--label", "X", "--rules", str(RULES), "-o", str(tmp_path / "x.xlsx")])
    assert exit_.value.code == 2


def test_one_scenario_is_a_usage_error(tmp_path, capsys):
    assert main(["compare", str(BASE_INPUT), "--rules", str(RULES), "-o", str(tmp_path / "x.xlsx")]) == 2
    assert "mindestens zwei Szenarien" in capsys.readouterr().err


def test_scenarios_with_levies_show_each_levy_side_by_side(tmp_path):
    """Issue 14: scenario comparisons learn levies. With the Kreis Wesel rates of 2022 (36.20 % Kreisumlage,
    23.65 % Jugendamtsumlage) Alpen (base 27,154,437 €) pays, by hand:
    27,154,437 × 36.20 % = 9,829,906.194 → 9,829,906.19 € and 27,154,437 × 23.65 % = 6,422,024.3505 → 6,422,024.35 €.
    The second scenario is the same input without rates (derived mode): its levy columns are the exact split."""
    from openpyxl import load_workbook

    from allocation.cli import main

    with_rates = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
    output = tmp_path / "vergleich.xlsx"
    assert main(["compare", str(with_rates), "--rules", str(RULES), "--label", "Satzung", "--rules", str(RULES),
                 "--label", "ohne Sätze", "--input", str(BASE_INPUT), "-o", str(output)]) == 0
    sheet = load_workbook(output, read_only=True)["Umlagen"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == ["AGS", "Gemeinde", "Szenario", "Kreisumlage", "Jugendamtsumlage", "Summe der Umlagen"]
    alpen = next(r for r in rows if r[0] == "05170004" and r[2] == "Satzung")
    assert alpen[3:] == [9829906.19, 6422024.35, 16251930.54]
    assert any(r[0] == "05170004" and r[2] == "ohne Sätze" for r in rows)


EUR_FORMAT = '#,##0.00 "€"'


def test_scenario_comparison_workbook_keeps_its_layout(comparison):
    """The format contract of the comparison workbook, read back cell by cell: sheets in order, headers from
    the labels, AGS as text, amounts as numbers in the euro format, the bold totals row, frozen header,
    auto-filter over the table and widths by the header/value rule."""
    workbook = load_workbook(comparison)
    assert workbook.sheetnames == ["Vergleich", "Wege", "Verschiebungen", "Hinweise", "Umlagen", "Szenarien"]
    sheet = workbook["Vergleich"]
    assert [c.value for c in sheet[1]] == [
        "AGS", "Gemeinde", "Umlagegrundlagen", "Summe 1 Kreisumlage", "Summe 2 gemeindescharf", "Summe 3a",
        "Summe 3b", "Differenz 2 gemeindescharf − 1 Kreisumlage (€)",
        "Differenz 2 gemeindescharf − 1 Kreisumlage (Hebesatz-Punkte)", "Differenz 3a − 1 Kreisumlage (€)",
        "Differenz 3a − 1 Kreisumlage (Hebesatz-Punkte)", "Differenz 3b − 1 Kreisumlage (€)",
        "Differenz 3b − 1 Kreisumlage (Hebesatz-Punkte)"]
    header = sheet["A1"]
    assert header.font.b and header.fill.fgColor.rgb.endswith("DDEBF7") and header.alignment.wrap_text
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:M15"  # 13 municipalities + header + total
    first = sheet["A2"]
    assert first.value == "05170004" and first.data_type == "s"
    base = sheet["C2"]
    assert base.data_type == "n" and base.number_format == EUR_FORMAT and Decimal(str(base.value)) == 27154437
    assert sheet["I2"].number_format == "0.0000" and sheet["H2"].number_format == EUR_FORMAT
    total = sheet["A15"]
    assert total.value == "Summe" and total.font.b and not first.font.b
    assert Decimal(str(sheet["C15"].value)) == sum(BASES.values()) and sheet["C15"].font.b
    # "Umlagegrundlagen" 16 + 2 = 18; the largest base 142,030,604.00 is 14 characters + 3 + 1 = 18
    assert sheet.column_dimensions["A"].width == 9  # an AGS: 8 characters + 1
    assert sheet.column_dimensions["C"].width == 18
    scenarios = workbook["Szenarien"]
    assert scenarios.auto_filter.ref is None and scenarios.freeze_panes == "A2"
    assert scenarios["A2"].value == 1 and scenarios["A2"].data_type == "n" and scenarios["B5"].value == "3b"
    assert scenarios["I2"].number_format == EUR_FORMAT
