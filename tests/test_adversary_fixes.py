"""Regression tests beside the reproductions in test_adversary_findings.py (findings 2, 3, 7): the other
spellings of a doubled Parameter, the Spitzabrechnung of a statute-mode final run against changed bases
(hand-calculated), the edited-workbook check with levies, and a flag value between 0 and 1.
Expected values are worked out here by hand from the fixture's figures and the published 2022 rates."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.core.problems import InputError
from allocation.ops.trueup import read_paid
from allocation.workbook.inputs import read_input

ROOT = Path(__file__).resolve().parent.parent
WITH_RATES = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def _edited(target: Path, edit, source: Path = WITH_RATES) -> Path:
    workbook = load_workbook(source)
    edit(workbook)
    workbook.save(target)
    return target


# The fixture's Parameter sheet: header in row 1, Kreis row 2, Haushaltsjahr row 3, Rundung row 4.
@pytest.mark.parametrize(("key", "value", "first_row"), [
    ("Rundung", "Euro", 4), ("RUNDUNG", "Euro", 4), ("Rundung ", "Cent", 4), ("Haushaltsjahr", 2023, 3),
])
def test_a_parameter_given_twice_is_refused_at_the_second_row(tmp_path, key, value, first_row):
    book = _edited(tmp_path / "doppelt.xlsx", lambda wb: wb["Parameter"].append([key, value]))
    with pytest.raises(InputError) as error:
        read_input(book)
    [problem] = [p for p in error.value.problems if p.code == "input-duplicate-parameter"]
    assert (problem.location.sheet, problem.location.row, problem.location.column) == ("Parameter", 6, 1)
    assert f"Zeile {first_row}" in problem.hint
    # even the same value twice is refused: the controller cannot see which row the run used
    assert main(["run", str(book), "--rules", str(RULES), "-o", str(tmp_path / "out.xlsx")]) == 3


@pytest.mark.parametrize("flag", [2, 0.5])
def test_a_jugendamt_flag_other_than_0_or_1_is_refused_at_its_cell(tmp_path, flag, capsys):
    book = _edited(tmp_path / "kennzeichen.xlsx", lambda wb: wb["Gemeinden"].cell(2, 5, flag))
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(book), "--rules", str(RULES), "-o", str(output)]) == 3
    assert not output.exists()
    assert "Gemeinden" in capsys.readouterr().err


@pytest.fixture
def statute_final_run(tmp_path):
    final = tmp_path / "echtlauf.xlsx"
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(final), "--mode", "final"]) == 0
    return final


def _settled(path: Path) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    rows = load_workbook(path, read_only=True)["Spitzabrechnung"].iter_rows(min_row=2, values_only=True)
    return {row[0]: tuple(Decimal(str(v)) for v in row[2:5]) for row in rows}


def test_statute_trueup_settles_each_levy_line_at_the_rate(tmp_path, statute_final_run):
    # Actuals: Alpen's Umlagegrundlagen 27.154.437 € → 27.254.437 € (+100.000 €); everything else as planned.
    # Statute mode: each levy line is base × rate, so only Alpen's lines change, by 100.000 € × rate:
    # Kreisumlage 36,20 % → 36.200,00 €; Jugendamtsumlage 23,65 % (Alpen has Jugendamt_Kreis = 1) → 23.650,00 €.
    # (Both old and new lines end in the same fraction of a cent: ...,194 € and ...,3505 €, rounded alike.)
    actual = _edited(tmp_path / "ist.xlsx", lambda wb: wb["Gemeinden"].cell(2, 3, 27254437))
    settlement = tmp_path / "spitzabrechnung.xlsx"
    assert main(["trueup", str(statute_final_run), str(actual), "--rules", str(RULES), "-o", str(settlement)]) == 0
    lines = _settled(settlement)
    assert lines.pop("Summe")[2] == Decimal("59850.00")
    assert lines.pop("05170004")[2] == Decimal("59850.00")
    assert {ags: line[2] for ags, line in lines.items()} == {ags: Decimal(0) for ags in lines}

    positions = list(load_workbook(settlement, read_only=True)["Positionen"].iter_rows(min_row=2, values_only=True))
    alpen = {row[2]: Decimal(str(row[6])) for row in positions if row[0] == "05170004"}
    assert alpen["Kreisumlage"] == Decimal("36200.00") and alpen["Jugendamtsumlage"] == Decimal("23650.00")
    # Alpen pays the published rate on its base: 27.154.437 € × 36,20 % = 9.829.906,194 € → 9.829.906,19 €
    alpen_kreisumlage = next(row for row in positions if row[0] == "05170004" and row[2] == "Kreisumlage")
    assert Decimal(str(alpen_kreisumlage[4])) == Decimal("9829906.19")


def test_an_edited_levy_amount_is_refused_as_an_edited_workbook(tmp_path, statute_final_run):
    def raise_alpen_levy(wb):
        sheet = wb["Umlagen"]
        header = [c.value for c in sheet[1]]
        row = next(r for r in range(2, sheet.max_row + 1)
                   if sheet.cell(r, 1).value == "Kreisumlage" and sheet.cell(r, 2).value == "05170004")
        sheet.cell(row, header.index("Betrag") + 1, 1)   # Uebersicht still says 9.829.906,19 €
    edited = _edited(tmp_path / "bearbeitet.xlsx", raise_alpen_levy, statute_final_run)
    with pytest.raises(InputError) as error:
        read_paid(edited)
    [problem] = error.value.problems
    assert (problem.code, problem.location.sheet) == ("trueup-bad-output", "Uebersicht")
    assert "Umlagen" in problem.expected
