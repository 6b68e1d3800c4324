"""The yearly run end to end (issue 2): the seed case, hand-worked splits, and the output workbook."""
from __future__ import annotations

import hashlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from workbooks import read_sheet, write_input, write_rules

LEVY_RULE = """\
  - id: levy
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {}
    route: district_levy
"""


def fixture_bases(path: Path) -> dict[str, Decimal]:
    """The fixture's levy bases, read straight from the input workbook with openpyxl."""
    workbook = load_workbook(path, read_only=True)
    rows = list(workbook["Gemeinden"].iter_rows(values_only=True))
    workbook.close()
    header = rows[0]
    return {row[header.index("AGS")]: Decimal(str(row[header.index("Umlagegrundlagen")])) for row in rows[1:]}


def test_kim_deficit_of_four_posts_is_76000_euros_shared_by_levy_base(tmp_path, fixture_workbook, rules_file):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    # Seed: 4 posts × (74,000 € employer cost − 55,000 € state funding) = 76,000 €.
    deficit_cents = 4 * (74_000 - 55_000) * 100
    assert deficit_cents == 7_600_000
    bases = fixture_bases(fixture_workbook)
    total_base = sum(bases.values())
    lines = [row for row in read_sheet(output, "Einzelnachweis") if row["ID"] == "KIM-2022"]
    assert len(lines) == 13
    assert sum(Decimal(str(row["Betrag gerundet"])) for row in lines) == Decimal("76000.00")
    for row in lines:
        exact_cents = Fraction(deficit_cents) * Fraction(bases[row["AGS"]]) / Fraction(total_base)
        amount_cents = Decimal(str(row["Betrag gerundet"])) * 100
        assert abs(Fraction(amount_cents) - exact_cents) < 1, row["AGS"]
    decisions = {row["ID"]: row for row in read_sheet(output, "Entscheidungen")}
    assert decisions["KIM-2022"]["Regel"] == "kim-kreisumlage"
    assert decisions["KIM-2022"]["Weg (Kennung)"] == "district_levy"
    rule_line = 1 + rules_file.read_text(encoding="utf-8").splitlines().index("  - id: kim-kreisumlage")
    assert decisions["KIM-2022"]["Regeldatei:Zeile"] == f"{rules_file}:{rule_line}"


def test_youth_office_levy_excludes_overheads_and_non_payers(tmp_path, fixture_workbook, rules_file):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    lines = [row for row in read_sheet(output, "Einzelnachweis") if row["ID"] == "JA-2022"]
    # Personalkosten 18,450,000 + Sachkosten 6,120,000 − Förderung 2,310,000; Gemeinkosten 1,980,000 excluded.
    assert sum(Decimal(str(r["Betrag gerundet"])) for r in lines) == Decimal("22260000.00")
    youth_office_towns = {"05170004", "05170012", "05170016", "05170028", "05170036", "05170040", "05170052"}
    for row in lines:
        if row["AGS"] not in youth_office_towns:
            assert Decimal(str(row["Betrag gerundet"])) == 0, row["AGS"]
        else:
            assert Decimal(str(row["Betrag gerundet"])) > 0, row["AGS"]


def run_small(tmp_path: Path, municipalities, items, rules_yaml: str, **kwargs) -> tuple[int, Path]:
    input_path = write_input(tmp_path / "eingabe.xlsx", municipalities, items, **{
        k: v for k, v in kwargs.items() if k not in ("hit_policy",)})
    rules = write_rules(tmp_path / "regeln.yaml", rules_yaml, hit_policy=kwargs.get("hit_policy", "unique"))
    output = tmp_path / "ergebnis.xlsx"
    return main(["run", str(input_path), "--rules", str(rules), "-o", str(output)]), output


def amounts(output: Path, item_id: str) -> dict[str, Decimal]:
    return {row["AGS"]: Decimal(str(row["Betrag gerundet"])) for row in read_sheet(output, "Einzelnachweis")
            if row["ID"] == item_id}


def test_three_equal_bases_tie_goes_to_the_smallest_ags_not_the_first_row(tmp_path):
    # 100.00 € over three equal bases: 33.333… € each. Floors 33.33 € × 3 = 99.99 €; one cent is left and all
    # three remainders are equal (1/3 cent), so the smallest AGS gets it, although it is the last row.
    municipalities = [["05999003", "C-Stadt", 1000], ["05999002", "B-Dorf", 1000], ["05999001", "A-Gemeinde", 1000]]
    items = [["X", "Test", "K", 100, 0, 0, 0, None]]
    code, output = run_small(tmp_path, municipalities, items, LEVY_RULE)
    assert code == 0
    assert amounts(output, "X") == {"05999001": Decimal("33.34"), "05999002": Decimal("33.33"),
                                    "05999003": Decimal("33.33")}


def test_largest_remainder_beats_ags_order(tmp_path):
    # 10.00 € over bases 1:1:1:3 (sum 6): exact 1.666…, 1.666…, 1.666…, 5.00 €. Floors 1.66 × 3 + 5.00 = 9.98 €;
    # two cents left; the three equal remainders (2/3 cent) tie and go by AGS: 001 and 002 get one cent each.
    municipalities = [["05999004", "D", 3000], ["05999003", "C", 1000], ["05999002", "B", 1000],
                      ["05999001", "A", 1000]]
    items = [["X", "Test", "K", 10, 0, 0, 0, None]]
    code, output = run_small(tmp_path, municipalities, items, LEVY_RULE)
    assert code == 0
    assert amounts(output, "X") == {"05999001": Decimal("1.67"), "05999002": Decimal("1.67"),
                                    "05999003": Decimal("1.66"), "05999004": Decimal("5.00")}


def test_composite_key_70_30_by_hand(tmp_path):
    # Deficit 1,000.00 €. Linienminuten 100 / 300 (sums 400), Wagenkm 50 / 50 (sums 100).
    # A: 0.7 × 100/400 + 0.3 × 50/100 = 0.175 + 0.15 = 0.325 → 325.00 €
    # B: 0.7 × 300/400 + 0.3 × 50/100 = 0.525 + 0.15 = 0.675 → 675.00 €
    municipalities = [["05999001", "A", 1, 100, 50], ["05999002", "B", 1, 300, 50]]
    items = [["BUS", "Bus", "OEPNV", 0, 1000, 0, 0, None]]
    rules = """\
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: OEPNV}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}
"""
    code, output = run_small(tmp_path, municipalities, items, rules, municipality_extra=["Linienminuten", "Wagenkm"])
    assert code == 0
    assert amounts(output, "BUS") == {"05999001": Decimal("325.00"), "05999002": Decimal("675.00")}


def test_composite_key_with_remainder_by_hand(tmp_path):
    # Deficit 100.00 €; Linienminuten 1 / 2 (sum 3), Wagenkm 1 / 1 (sum 2); weights 70/30.
    # A: 0.7 × 1/3 + 0.3 × 1/2 = 7/30 + 3/20 = 23/60 → 38.333… €; B: 37/60 → 61.666… €.
    # Floors 38.33 + 61.66 = 99.99 €; the cent goes to B (remainder 2/3 cent > 1/3 cent).
    municipalities = [["05999001", "A", 1, 1, 1], ["05999002", "B", 1, 2, 1]]
    items = [["BUS", "Bus", "OEPNV", 0, 100, 0, 0, None]]
    rules = """\
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: OEPNV}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}
"""
    code, output = run_small(tmp_path, municipalities, items, rules, municipality_extra=["Linienminuten", "Wagenkm"])
    assert code == 0
    assert amounts(output, "BUS") == {"05999001": Decimal("38.33"), "05999002": Decimal("61.67")}


def test_host_bears_whole_deficit_and_surplus_is_shared_back(tmp_path):
    municipalities = [["05999001", "A", 1000], ["05999002", "B", 3000]]
    items = [["MS", "Musikschule", "Kultur", 500, 0, 0, 200, "05999002"],
             ["UE", "Überschuss", "Abfall", 0, 0, 0, 100, None]]
    rules = """\
  - id: host
    legal_basis: "Trägerschaft"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
  - id: levy
    legal_basis: "§ 56 KrO NRW"
    when: {Traeger: Kreis}
    route: district_levy
"""
    code, output = run_small(tmp_path, municipalities, items, rules)
    assert code == 0
    assert amounts(output, "MS") == {"05999001": Decimal("0.00"), "05999002": Decimal("300.00")}
    # Surplus 100.00 € returned 1:3 → −25.00 € and −75.00 €.
    assert amounts(output, "UE") == {"05999001": Decimal("-25.00"), "05999002": Decimal("-75.00")}


def test_euro_rounding_rounds_deficit_half_up_then_splits_whole_euros(tmp_path):
    # Deficit 100.50 € → 101 € (half up); over 1:1:1 → 33.67 each exact; floors 33 × 3 = 99; 2 euros left by AGS.
    municipalities = [["05999001", "A", 10], ["05999002", "B", 10], ["05999003", "C", 10]]
    items = [["X", "Test", "K", Decimal("100.50"), 0, 0, 0, None]]
    code, output = run_small(tmp_path, municipalities, items, LEVY_RULE, rounding="Euro")
    assert code == 0
    assert amounts(output, "X") == {"05999001": Decimal("34.00"), "05999002": Decimal("34.00"),
                                    "05999003": Decimal("33.00")}


def test_priority_hit_policy_highest_priority_wins(tmp_path):
    municipalities = [["05999001", "A", 1000], ["05999002", "B", 1000]]
    items = [["X", "Test", "KIM", 100, 0, 0, 0, None]]
    rules = """\
  - id: general
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {}
    route: district_levy
    priority: 1
  - id: kim-host
    legal_basis: "Vereinbarung"
    when: {Kategorie: KIM}
    route: direct_billing
    key: Umlagegrundlagen
    priority: 10
"""
    code, output = run_small(tmp_path, municipalities, items, rules, hit_policy="priority")
    assert code == 0
    decisions = read_sheet(output, "Entscheidungen")
    assert decisions[0]["Regel"] == "kim-host"
    assert decisions[0]["Alle passenden Regeln"] == "general, kim-host"


def test_priority_hit_policy_equal_priorities_the_earlier_rule_wins(tmp_path):
    """docs/auditor/rulebook.md: "higher wins; equal priorities: the earlier rule"."""
    municipalities = [["05999001", "A", 1000], ["05999002", "B", 1000]]
    items = [["X", "Test", "KIM", 100, 0, 0, 0, None]]
    rules = """\
  - id: first
    legal_basis: "Vereinbarung"
    when: {Kategorie: KIM}
    route: direct_billing
    key: Umlagegrundlagen
    priority: 5
  - id: second
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {}
    route: district_levy
    priority: 5
"""
    code, output = run_small(tmp_path, municipalities, items, rules, hit_policy="priority")
    assert code == 0
    decisions = read_sheet(output, "Entscheidungen")
    assert decisions[0]["Regel"] == "first"
    assert decisions[0]["Alle passenden Regeln"] == "first, second"


def test_a_weighted_keys_values_are_shares_that_add_up_to_one(fixture_workbook, rules_file):
    """ÖPNV-2022, key 70 % Linienminuten + 30 % Wagenkm: each municipality's Schlüsselwert is 0.7 × its minutes ÷
    all minutes + 0.3 × its km ÷ all km (a Fraction oracle over the fixture's Gemeinden sheet, read with openpyxl),
    shown to 6 decimals; the key sum is 1."""
    import allocation

    sheet = load_workbook(fixture_workbook, read_only=True)["Gemeinden"]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    minutes = {r[0]: Fraction(r[header.index("Linienminuten")]) for r in rows[1:] if r[0]}
    km = {r[0]: Fraction(r[header.index("Wagenkm")]) for r in rows[1:] if r[0]}
    expected = {ags: Fraction(7, 10) * minutes[ags] / sum(minutes.values())
                + Fraction(3, 10) * km[ags] / sum(km.values()) for ags in minutes}
    lines = allocation.compute(fixture_workbook, rules_file).lines.query("ID == 'OEPNV-2022'")
    assert len(lines) == len(expected) == 13
    for _, line in lines.iterrows():
        assert abs(Fraction(str(line["Schlüsselwert"])) - expected[line["AGS"]]) <= Fraction(1, 2 * 10**6), line["AGS"]
        assert Fraction(str(line["Schlüsselsumme"])) == 1


def test_output_workbook_has_the_documented_sheets_formats_and_controls(tmp_path, fixture_workbook, rules_file):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    workbook = load_workbook(output)
    assert workbook.sheetnames[:5] == ["Uebersicht", "Einzelnachweis", "Entscheidungen", "Kontrollen", "Protokoll"]
    overview = workbook["Uebersicht"]
    assert overview.freeze_panes == "A2"
    assert overview.auto_filter.ref.startswith("A1:")
    assert len(overview._charts) == 1
    assert "€" in overview["D2"].number_format
    assert all(row[5].value == "OK" for row in workbook["Kontrollen"].iter_rows(min_row=2))
    protocol = {row[0].value: row[1].value for row in workbook["Protokoll"].iter_rows(min_row=2)}
    assert protocol["SHA-256 Eingabe"] == hashlib.sha256(fixture_workbook.read_bytes()).hexdigest()
    assert protocol["SHA-256 Regeldatei"] == hashlib.sha256(rules_file.read_bytes()).hexdigest()
    assert protocol["Haushaltsjahr"] == 2022
    assert protocol["durable_rules"] == "2.0.28"
    # Uebersicht: the totals row equals the sum of all Einzelnachweis amounts (the fixture has no Umlagesaetze:
    # derived mode, the levies are the exact split); since issue 14 (rules/kreis-wesel.yaml has `levies:`) the
    # Hebesatz points count the levy columns only: (Kreisumlage + Jugendamtsumlage) ÷ base × 100
    rows = list(overview.iter_rows(min_row=2, values_only=True))
    totals_row = rows[-1]
    detail_sum = sum(Decimal(str(r["Betrag gerundet"])) for r in read_sheet(output, "Einzelnachweis"))
    header = [c.value for c in overview[1]]
    assert Decimal(str(totals_row[header.index("Summe")])) == detail_sum
    for row in rows[:-1]:
        levies = sum(Decimal(str(row[header.index(name)])) for name in ("Kreisumlage", "Jugendamtsumlage"))
        base = Decimal(str(row[header.index("Umlagegrundlagen")]))
        points = Decimal(str(row[header.index("Hebesatz-Punkte (Umlagen ÷ Umlagegrundlagen × 100)")]))
        assert abs(points - levies / base * 100) <= Decimal("0.00005")


def test_more_than_1024_cost_items_go_through_durable_rules(tmp_path):
    # durable_rules raises MemoryError at 1,024 state ids; every item here is a distinct fact (distinct Stellen).
    municipalities = [["05999001", "A", 1000], ["05999002", "B", 3000]]
    items = [[f"I{n:04d}", "Test", "KIM" if n % 2 else "Sonst", 4, 0, 0, 0, None, n] for n in range(1500)]
    rules = """\
  - id: kim
    legal_basis: "x"
    when: {Kategorie: KIM, Stellen: {ge: 0}}
    route: district_levy
  - id: other
    legal_basis: "x"
    when: {not: {Kategorie: KIM}}
    route: direct_billing
    key: Umlagegrundlagen
"""
    code, output = run_small(tmp_path, municipalities, items, rules, item_extra=["Stellen"])
    assert code == 0
    decisions = read_sheet(output, "Entscheidungen")
    assert len(decisions) == 1500
    assert {d["ID"]: d["Regel"] for d in decisions}["I0001"] == "kim"
    assert {d["ID"]: d["Regel"] for d in decisions}["I1498"] == "other"
    # 4.00 € split 1:3 = 1.00 € and 3.00 €, per item
    assert amounts(output, "I0777") == {"05999001": Decimal("1.00"), "05999002": Decimal("3.00")}


def test_template_has_the_contract_sheets_and_headers(tmp_path):
    path = tmp_path / "vorlage.xlsx"
    assert main(["template", str(path)]) == 0
    workbook = load_workbook(path)
    assert {"Parameter", "Gemeinden", "Kostenpositionen", "Schluessel"} <= set(workbook.sheetnames)
    assert [c.value for c in workbook["Gemeinden"][1]][:3] == ["AGS", "Gemeinde", "Umlagegrundlagen"]
    assert [c.value for c in workbook["Kostenpositionen"][1]][:8] == [
        "ID", "Bezeichnung", "Kategorie", "Personalkosten", "Sachkosten", "Gemeinkosten", "Foerderung", "Traeger"]
    assert [c.value for c in workbook["Schluessel"][1]] == ["ID", "AGS", "Wert"]
    assert workbook["Gemeinden"]["A2"].number_format == "@"  # AGS keeps its leading zero


def test_summary_names_the_output(tmp_path, fixture_workbook, rules_file, capsys):
    output = tmp_path / "sub" / "ergebnis.xlsx"
    assert main(["run", str(fixture_workbook), "--rules", str(rules_file), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert str(output) in printed
    assert "13 Gemeinden" in printed and "5 Kostenpositionen" in printed


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1", "-A1", "@SUM(A1)"])
def test_text_that_looks_like_a_formula_is_written_as_text(tmp_path, text):
    input_path = write_input(tmp_path / "eingabe.xlsx", [["05999001", "A", 1000]], [["X", "t", "K", 100, 0, 0, 0, None]])
    workbook = load_workbook(input_path)
    workbook["Kostenpositionen"]["B2"].value = text
    workbook["Kostenpositionen"]["B2"].data_type = "s"  # a text cell, as Excel stores text typed with a leading '
    workbook.save(input_path)
    output = tmp_path / "ergebnis.xlsx"
    rules = write_rules(tmp_path / "regeln.yaml", LEVY_RULE)
    assert main(["run", str(input_path), "--rules", str(rules), "-o", str(output)]) == 0
    cell = load_workbook(output)["Entscheidungen"]["B2"]
    assert cell.value == text
    assert cell.data_type == "s"
