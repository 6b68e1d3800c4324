"""Statutory levies and binding: a levy's `payers`, `extent` and base columns are bound to the workbook's header
spelling and their cells type-checked with a located problem (rules/kreis-wesel.yaml: the Jugendamtsumlage's
payers sit on the levy)."""
from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from workbooks import read_sheet

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "kreis-wesel-2022"
PLAIN = FIXTURES / "kreis-wesel-2022.xlsx"
WITH_RATES = FIXTURES / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def _edited(source: Path, target: Path, cells: dict[str, object], sheet: str = "Gemeinden") -> Path:
    workbook = load_workbook(source)
    for ref, value in cells.items():
        workbook[sheet][ref] = value
    workbook.save(target)
    return target


def _refused(capsys, workbook: Path, rules: Path, output: Path) -> list[dict]:
    assert main(["run", str(workbook), "--rules", str(rules), "-o", str(output), "--json"]) == 3
    assert not output.exists()
    return json.loads(capsys.readouterr().out)["problems"]


def _half_up(exact_euros: Fraction) -> Decimal:
    """Oracle: euros rounded half up to the cent (written here, not money.py)."""
    whole, rest = divmod((exact_euros * 100).numerator, (exact_euros * 100).denominator)
    return Decimal(whole + (1 if 2 * rest >= (exact_euros * 100).denominator else 0)) / 100


def test_a_blank_and_a_text_payers_cell_of_a_levy_stop_the_run_at_their_cells(tmp_path, capsys):
    # Gemeinden!E is Jugendamt_Kreis: row 3 Dinslaken (blank), row 5 Hünxe ("ja")
    broken = _edited(PLAIN, tmp_path / "eingabe.xlsx", {"E3": None, "E5": "ja"})
    problems = _refused(capsys, broken, RULES, tmp_path / "ergebnis.xlsx")
    assert [(p["code"], p["location"]["cell"]) for p in problems] == [
        ("input-empty-cell", "Gemeinden!E3"), ("input-not-a-number", "Gemeinden!E5")]
    assert problems[1]["found"] == '"ja"' and "jugendamtsumlage" in problems[1]["message"]


def test_a_spelled_out_payers_header_gives_the_same_uebersicht(tmp_path):
    spelled = _edited(WITH_RATES, tmp_path / "eingabe.xlsx", {"E1": "Jugendamt Kreis"})
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(tmp_path / "unterstrich.xlsx")]) == 0
    assert main(["run", str(spelled), "--rules", str(RULES), "-o", str(tmp_path / "leerzeichen.xlsx")]) == 0
    rows = {row["AGS"]: row for row in read_sheet(tmp_path / "leerzeichen.xlsx", "Uebersicht")}
    # Hünxe (Jugendamt_Kreis 1): 30.153.089 € × 23,65 % = 7.131.205,5485 € → 7.131.205,55 €
    assert _half_up(Fraction(30_153_089) * Fraction(2365, 10000)) == Decimal("7131205.55")
    assert Decimal(str(rows["05170016"]["Jugendamtsumlage"])) == Decimal("7131205.55")
    assert Decimal(str(rows["05170024"]["Jugendamtsumlage"])) == 0  # Moers has its own Jugendamt
    assert read_sheet(tmp_path / "leerzeichen.xlsx", "Uebersicht") == \
        read_sheet(tmp_path / "unterstrich.xlsx", "Uebersicht")


def test_a_levy_base_cell_holding_text_is_a_located_error(tmp_path, capsys):
    broken = _edited(WITH_RATES, tmp_path / "eingabe.xlsx", {"C4": "rund 50 Mio."})  # Hamminkeln's Umlagegrundlagen
    problems = _refused(capsys, broken, RULES, tmp_path / "ergebnis.xlsx")
    assert [p["location"]["cell"] for p in problems] == ["Gemeinden!C4"]
    assert problems[0]["code"] == "input-not-a-number" and "rund 50 Mio." in problems[0]["found"]


@pytest.fixture
def component_rules(tmp_path) -> Path:
    """kreis-wesel.yaml with a Kreisumlage on two base components (Einwohner weighted 50 %) and a
    Jugendamtsumlage scaled by an extent column `Umfang`; without the worked examples (their municipalities
    have neither column)."""
    text = RULES.read_text(encoding="utf-8")
    text = text[:text.index("\nexamples:")] + text[text.index("\ninstalments:"):]
    text = text.replace("    base: Umlagegrundlagen\n\n  - id: jugendamtsumlage",
                        "    base: {Umlagegrundlagen: 100, Einwohner: 50}\n\n  - id: jugendamtsumlage", 1)
    text = text.replace("    payers: {Jugendamt_Kreis: 1}\n", "    payers: {Jugendamt_Kreis: 1}\n    extent: Umfang\n", 1)
    assert "Einwohner: 50" in text and "extent: Umfang" in text
    path = tmp_path / "regeln.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _with_extent(tmp_path: Path, values: dict[int, object]) -> Path:
    """The plain fixture with a column I `Umfang` (1 everywhere unless `values` says otherwise, by row)."""
    workbook = load_workbook(PLAIN)
    sheet = workbook["Gemeinden"]
    sheet["I1"] = "Umfang"
    for row in range(2, sheet.max_row + 1):
        sheet.cell(row, 9).value = values.get(row, 1)
    path = tmp_path / "eingabe.xlsx"
    workbook.save(path)
    return path


def test_the_component_and_extent_rules_run_on_clean_cells(tmp_path, component_rules):
    assert main(["run", str(_with_extent(tmp_path, {})), "--rules", str(component_rules),
                 "-o", str(tmp_path / "ergebnis.xlsx")]) == 0


@pytest.mark.parametrize("value, found", [("viele", "'viele'"), (None, "leer"), (-5, "-5")])
def test_a_bad_levy_base_component_cell_is_located(tmp_path, capsys, component_rules, value, found):
    workbook = load_workbook(_with_extent(tmp_path, {}))
    workbook["Gemeinden"]["D6"] = value  # Kamp-Lintfort's Einwohner
    workbook.save(tmp_path / "eingabe.xlsx")
    problems = _refused(capsys, tmp_path / "eingabe.xlsx", component_rules, tmp_path / "ergebnis.xlsx")
    assert [(p["code"], p["location"]["cell"]) for p in problems] == [("input-levy-base", "Gemeinden!D6")]
    assert problems[0]["found"] == found, problems[0]["found"]


@pytest.mark.parametrize("value", ["voll", None, -1])
def test_a_bad_levy_extent_cell_is_located(tmp_path, capsys, component_rules, value):
    path = _with_extent(tmp_path, {2: value})  # Alpen, a Jugendamtsumlage payer
    problems = _refused(capsys, path, component_rules, tmp_path / "ergebnis.xlsx")
    assert [(p["code"], p["location"]["cell"]) for p in problems] == [("input-bad-key", "Gemeinden!I2")]
