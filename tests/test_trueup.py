"""Spitzabrechnung: paid (final run) versus owed (actual figures), per municipality.

Paid and owed are checked against an independent oracle: the KIM deficit is split by levy base with exact
fractions and largest remainder (ties by AGS), written out here. Only the KIM staff cost differs between
plan (296,000 €) and actual (306,000 €), so with funding 220,000 € the deficit goes from 76,000 € to
86,000 € and the differences must add up to exactly 10,000.00 €; all other items are unchanged.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.problems import InputError
from allocation.trueup import settle

CORPUS = Path(__file__).resolve().parent / "corpus"
BASES = {"05170004": 27154437, "05170008": 86873093, "05170012": 50884619, "05170016": 24115008}


def _largest_remainder(total_cents: int) -> dict[str, int]:
    whole = sum(BASES.values())
    exact = {ags: Fraction(total_cents * base, whole) for ags, base in BASES.items()}
    floors = {ags: value.numerator // value.denominator for ags, value in exact.items()}
    left = total_cents - sum(floors.values())
    for ags in sorted(exact, key=lambda a: (-(exact[a] - floors[a]), a))[:left]:
        floors[ags] += 1
    return floors


@pytest.fixture
def final_run(tmp_path):
    output = tmp_path / "echtlauf.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output),
                 "--mode", "final", "--register", str(tmp_path / "reg")]) == 0
    actual = tmp_path / "ist.xlsx"
    workbook = load_workbook(CORPUS / "gueltig.xlsx")
    workbook["Kostenpositionen"]["D2"] = 306000
    workbook.save(actual)
    return output, actual


def test_settlement_is_owed_minus_paid_per_municipality(final_run, tmp_path):
    output, actual = final_run
    settlement = settle(output, actual, CORPUS / "regeln.yaml")
    paid_kim, owed_kim = _largest_remainder(76000_00), _largest_remainder(86000_00)
    differences = {line.ags: line.difference for line in settlement.lines}
    assert differences == {ags: owed_kim[ags] - paid_kim[ags] for ags in BASES}
    assert sum(differences.values()) == 10000_00
    assert all(line.result == "Nachzahlung" for line in settlement.lines)

    assert main(["trueup", str(output), str(actual), "--rules", str(CORPUS / "regeln.yaml"), "-o",
                 str(tmp_path / "abrechnung.xlsx")]) == 0
    sheet = load_workbook(tmp_path / "abrechnung.xlsx")["Spitzabrechnung"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("AGS", "Gemeinde", "Gezahlt (Echtlauf)", "Geschuldet (Ist)", "Differenz", "Ergebnis")
    assert rows[-1][0] == "Summe" and round(rows[-1][4] * 100) == 10000_00


def test_same_figures_settle_to_zero(final_run):
    output, _ = final_run
    settlement = settle(output, CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml")
    assert {line.difference for line in settlement.lines} == {0}
    assert {line.result for line in settlement.lines} == {"ausgeglichen"}


def test_a_test_run_cannot_be_settled(tmp_path):
    output = tmp_path / "probelauf.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output)]) == 0
    with pytest.raises(InputError) as refused:
        settle(output, CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml")
    assert refused.value.problems[0].code == "trueup-not-final"


def test_actual_figures_of_another_year_are_refused(final_run, tmp_path):
    output, _ = final_run
    workbook = load_workbook(CORPUS / "gueltig.xlsx")
    workbook["Parameter"]["B3"] = 2023
    workbook.save(tmp_path / "ist2023.xlsx")
    with pytest.raises(InputError) as refused:
        settle(output, tmp_path / "ist2023.xlsx", CORPUS / "regeln.yaml")
    assert refused.value.problems[0].code == "trueup-mismatch"
