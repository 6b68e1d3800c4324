"""Another district's (or another year's) files are refused with a located problem (issue 24).

- The year folder takes only its own district's input (`year-other-district`, exit 8, at the input's Parameter
  sheet); a spelling of the same district ("Wesel" for "Kreis Wesel") is the same district.
- `trueup` settles a final run only against actual figures of its own district and year (`trueup-mismatch`,
  exit 3, at the actual figures' Parameter sheet).
- `notices --previous` takes only an earlier run of the same district and year (`notices-previous-mismatch`,
  exit 3, at the earlier workbook's Protokoll).
Each other district's file is a copy of Kreis Wesel's with only the Kreis changed (and a rule file for that
Kreis), so that nothing but the district check can refuse it: same municipalities, same figures.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocation.cli import main
from workbooks import SMALL_INPUT, SMALL_RULES, WESEL_RATES, WESEL_RULES, modified_copy


def problems(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)["problems"]


def kleve_rules(source: Path, target: Path) -> Path:
    """A rule file for Kreis Kleve: the given Kreis Wesel rule file with only its district changed."""
    text = source.read_text(encoding="utf-8")
    assert text.count("district: Kreis Wesel") == 1
    target.write_text(text.replace("district: Kreis Wesel", "district: Kreis Kleve"), encoding="utf-8")
    return target


# ----------------------------------------------------------------------------------------------- year folder


def test_a_year_folder_refuses_another_districts_input_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Kleve", "--year", "2022"]) == 0
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "modell", str(SMALL_INPUT), "--rules", str(SMALL_RULES),
                 "--json"]) == 8
    (problem,) = problems(capsys)
    # the input's Parameter sheet, row 2 (Kreis)
    assert (problem["code"], problem["found"], problem["expected"]) == ("year-other-district", "Kreis Wesel",
                                                                       "Kreis Kleve")
    assert Path(problem["location"]["file"]).name == "gueltig.xlsx" and problem["location"]["sheet"] == "Parameter"
    assert sorted(p.name for p in folder.iterdir()) == ["Stellungnahmen.xlsx", "jahr.json", "stufen.jsonl"]
    assert (folder / "stufen.jsonl").read_text(encoding="utf-8") == ""


def test_a_year_folder_takes_its_district_under_another_spelling(tmp_path):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Wesel", "--year", "2022"]) == 0
    assert main(["year", "stage", str(folder), "modell", str(SMALL_INPUT), "--rules", str(SMALL_RULES)]) == 0


# ---------------------------------------------------------------------------------------------------- trueup


@pytest.fixture(scope="module")
def final_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("echtlauf")
    output, register = folder / "ergebnis.xlsx", folder / "register"
    assert main(["run", str(SMALL_INPUT), "--rules", str(SMALL_RULES), "-o", str(output), "--mode", "final",
                 "--register", str(register)]) == 0
    return output, register


def test_trueup_settles_the_same_districts_actuals(final_run, tmp_path):
    # the control for the refusals below: the same figures of Kreis Wesel settle (every difference 0)
    output, register = final_run
    assert main(["trueup", str(output), str(SMALL_INPUT), "--rules", str(SMALL_RULES), "-o",
                 str(tmp_path / "abrechnung.xlsx"), "--register", str(register)]) == 0


@pytest.mark.parametrize("district, year, found", [("Kreis Kleve", None, "Kreis Kleve 2022"),
                                                   (None, 2023, "Kreis Wesel 2023")],
                         ids=["other-district", "other-year"])
def test_trueup_refuses_actuals_of_another_district_or_year(final_run, tmp_path, capsys, district, year, found):
    output, register = final_run
    actual = modified_copy(SMALL_INPUT, tmp_path / "ist.xlsx", district=district, year=year)
    rules = kleve_rules(SMALL_RULES, tmp_path / "regeln.yaml") if district else SMALL_RULES
    capsys.readouterr()
    assert main(["trueup", str(output), str(actual), "--rules", str(rules), "-o", str(tmp_path / "abrechnung.xlsx"),
                 "--register", str(register), "--json"]) == 3
    (problem,) = problems(capsys)
    assert (problem["code"], problem["found"], problem["expected"]) == (
        "trueup-mismatch", found, "Kreis Wesel 2022 (wie im Echtlauf)")
    assert problem["location"] == {"file": "ist.xlsx", "sheet": "Parameter", "cell": "Parameter"}
    assert not (tmp_path / "abrechnung.xlsx").exists()


# -------------------------------------------------------------------------------------------- notices --previous


@pytest.mark.parametrize("district, year", [("Kreis Kleve", None), (None, 2021)], ids=["other-district", "other-year"])
def test_change_notices_refuse_a_previous_run_of_another_district_or_year(tmp_path, capsys, district, year):
    pytest.importorskip("typst")
    register = tmp_path / "register"
    earlier_input = modified_copy(WESEL_RATES, tmp_path / "frueher.xlsx", district=district, year=year)
    earlier_rules = kleve_rules(WESEL_RULES, tmp_path / "kleve.yaml") if district else WESEL_RULES
    earlier = tmp_path / "frueher-ergebnis.xlsx"
    assert main(["run", str(earlier_input), "--rules", str(earlier_rules), "-o", str(earlier), "--register",
                 str(register), *(["--ignore-validity", "Vorjahr für den Test"] if year else [])]) == 0
    later = tmp_path / "ergebnis.xlsx"
    raised = modified_copy(WESEL_RATES, tmp_path / "eingabe.xlsx", rates={"kreisumlage": 36.7})
    assert main(["run", str(raised), "--rules", str(WESEL_RULES), "-o", str(later), "--register", str(register)]) == 0
    capsys.readouterr()
    assert main(["notices", str(later), "-o", str(tmp_path / "bescheide"), "--date", "2022-06-20", "--previous",
                 str(earlier), "--register", str(register), "--json"]) == 3
    (problem,) = problems(capsys)
    assert problem["code"] == "notices-previous-mismatch"
    assert problem["location"] == {"file": str(earlier), "sheet": "Protokoll", "cell": "Protokoll"}
    assert (problem["found"], problem["expected"]) == (("Kreis Kleve", "Kreis Wesel") if district else ("2021", "2022"))
    assert not (tmp_path / "bescheide").exists()


# --------------------------------------------------------------------------------------- notices --previous-year


def test_notices_refuse_last_years_result_of_another_district(tmp_path, capsys):
    """`--previous-year` (last year's rate and amount on the letter) takes only the same district's result of the
    year before: Kreis Kleve's 2021 is refused for Kreis Wesel 2022, and nothing is written."""
    pytest.importorskip("typst")
    register = tmp_path / "register"
    kleve_2021 = modified_copy(WESEL_RATES, tmp_path / "kleve-2021.xlsx", district="Kreis Kleve", year=2021)
    last_year = tmp_path / "kleve-2021-ergebnis.xlsx"
    assert main(["run", str(kleve_2021), "--rules", str(kleve_rules(WESEL_RULES, tmp_path / "kleve.yaml")), "-o",
                 str(last_year), "--ignore-validity", "Vorjahr für den Test"]) == 0
    this_year = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(WESEL_RATES), "--rules", str(WESEL_RULES), "-o", str(this_year), "--register",
                 str(register)]) == 0
    capsys.readouterr()
    assert main(["notices", str(this_year), "-o", str(tmp_path / "bescheide"), "--date", "2022-01-10",
                 "--previous-year", str(last_year), "--register", str(register), "--json"]) == 3
    (problem,) = problems(capsys)
    assert problem["code"] == "notices-previous-mismatch"
    assert (problem["found"], problem["expected"]) == ("Kreis Kleve", "Kreis Wesel")
    assert not (tmp_path / "bescheide").exists()
