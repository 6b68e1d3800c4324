"""Provisional year (§ 56 Abs. 1 KrO NRW): the previous year's Umlagegrundlagen apply, marked as provisional."""
from __future__ import annotations

from decimal import Decimal

from allocation.cli import main
from allocation.core.problems import ExitCode
from workbooks import read_sheet, write_input, write_rules

LEVY = """\
  - id: levy
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {}
    route: district_levy
"""
ITEMS = [["X", "Test", "K", 1000, 0, 0, 0, None]]


def test_previous_years_bases_decide_the_split_and_are_recorded(tmp_path):
    # 2023 bases would split 1,000 € 1:1 (500/500); the 2022 bases 1,000 : 3,000 split it 250 / 750.
    current = write_input(tmp_path / "2023.xlsx", [["05999001", "A", 2000], ["05999002", "B", 2000]], ITEMS,
                          year=2023)
    previous = write_input(tmp_path / "2022.xlsx", [["05999001", "A", 1000], ["05999002", "B", 3000],
                                                    ["05999003", "C", 5000]], ITEMS, year=2022)
    rules = write_rules(tmp_path / "r.yaml", LEVY)
    output = tmp_path / "out.xlsx"
    assert main(["run", str(current), "--rules", str(rules), "-o", str(output), "--provisional",
                 "--bases-from", str(previous)]) == ExitCode.OK
    amounts = {r["AGS"]: Decimal(str(r["Betrag gerundet"])) for r in read_sheet(output, "Einzelnachweis")}
    assert amounts == {"05999001": Decimal("250.00"), "05999002": Decimal("750.00")}
    overview = {r["AGS"]: r for r in read_sheet(output, "Uebersicht") if r["AGS"] != "Summe"}
    assert Decimal(str(overview["05999001"]["Umlagegrundlagen"])) == Decimal("1000")
    protocol = {r["Angabe"]: r["Wert"] for r in read_sheet(output, "Protokoll")}
    assert protocol["Umlagegrundlagen des Vorjahres aus"] == str(previous)
    assert protocol["Vorläufig (§ 56 Abs. 1 KrO NRW)"] == "ja"
    assert main(["verify", str(output)]) == ExitCode.OK
    previous.write_bytes(previous.read_bytes() + b"\0")  # the previous year's workbook changed after the run
    assert main(["verify", str(output)]) == ExitCode.VERIFY


def test_a_municipality_missing_in_the_previous_year_is_located(tmp_path, capsys):
    current = write_input(tmp_path / "2023.xlsx", [["05999001", "A", 2000], ["05999002", "B", 2000]], ITEMS,
                          year=2023)
    previous = write_input(tmp_path / "2022.xlsx", [["05999001", "A", 1000]], ITEMS, year=2022)
    rules = write_rules(tmp_path / "r.yaml", LEVY)
    code = main(["run", str(current), "--rules", str(rules), "-o", str(tmp_path / "o.xlsx"), "--provisional",
                 "--bases-from", str(previous), "--json"])
    assert code == ExitCode.INPUT
    import json

    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["code"] for p in problems] == ["input-bases-missing"]
    assert problems[0]["location"]["cell"] == "Gemeinden!A3" and problems[0]["location"]["file"] == "2023.xlsx"
    assert not (tmp_path / "o.xlsx").exists()


def test_bases_of_a_later_or_same_year_are_refused(tmp_path, capsys):
    current = write_input(tmp_path / "2023.xlsx", [["05999001", "A", 2000]], ITEMS, year=2023)
    same = write_input(tmp_path / "other.xlsx", [["05999001", "A", 1000]], ITEMS, year=2023)
    rules = write_rules(tmp_path / "r.yaml", LEVY)
    assert main(["run", str(current), "--rules", str(rules), "-o", str(tmp_path / "o.xlsx"), "--provisional",
                 "--bases-from", str(same)]) == ExitCode.INPUT
    assert "input-bases-not-previous" in capsys.readouterr().err


def test_bases_from_needs_a_provisional_run(tmp_path, capsys):
    current = write_input(tmp_path / "2023.xlsx", [["05999001", "A", 2000]], ITEMS, year=2023)
    rules = write_rules(tmp_path / "r.yaml", LEVY)
    assert main(["run", str(current), "--rules", str(rules), "-o", str(tmp_path / "o.xlsx"),
                 "--bases-from", str(current)]) == ExitCode.USAGE
    assert "--provisional" in capsys.readouterr().err
