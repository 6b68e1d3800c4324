"""Spitzabrechnung: paid (final run) versus owed (actual figures), per municipality.

Paid and owed are checked against an independent oracle: the KIM deficit is split by levy base with exact
fractions and largest remainder (ties by AGS), written out here. Only the KIM staff cost differs between
plan (296,000 €) and actual (306,000 €), so with funding 220,000 € the deficit goes from 76,000 € to
86,000 € and the differences must add up to exactly 10,000.00 €; all other items are unchanged.
A second case also changes a direct-billing item and the host municipality Alpen's own museum: only the
first two are settled with the Kreis; the museum is shown for information.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.cli import main
from allocation.core.problems import InputError
from allocation.workbook import report
from allocation.ops.trueup import HOST_NOTE, read_paid, settle
from allocation.runs.readback import EarlierChanged

CORPUS = Path(__file__).resolve().parent / "corpus"
BASES = {"05170004": 27154437, "05170008": 86873093, "05170012": 50884619, "05170016": 24115008}


def _largest_remainder(total_cents: int, keys: dict[str, int] = BASES) -> dict[str, int]:
    whole = sum(keys.values())
    exact = {ags: Fraction(total_cents * key, whole) for ags, key in keys.items()}
    floors = {ags: value.numerator // value.denominator for ags, value in exact.items()}
    left = total_cents - sum(floors.values())
    for ags in sorted(exact, key=lambda a: (-(exact[a] - floors[a]), a))[:left]:
        floors[ags] += 1
    return floors


@pytest.fixture
def final_run(tmp_path):
    output = tmp_path / "echtlauf.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output),
                 "--mode", "final"]) == 0  # the test's installation register (conftest)
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
    # the layout: sheets, euro formats, the bold totals row, frozen header and filter (4 municipalities)
    book = load_workbook(tmp_path / "abrechnung.xlsx")
    assert book.sheetnames == ["Spitzabrechnung", "Positionen", "Protokoll"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:F6"
    assert sheet["A2"].data_type == "s" and sheet["C2"].data_type == "n"
    assert {sheet.cell(2, c).number_format for c in (3, 4, 5)} == {'#,##0.00 "€"'}
    assert sheet["A6"].font.b and sheet["E6"].font.b and not sheet["A2"].font.b
    assert sheet["A1"].font.b and sheet["A1"].fill.fgColor.rgb.endswith("DDEBF7")
    assert [c.value for c in book["Positionen"][1]] == ["AGS", "Gemeinde", "ID", "Weg", "Gezahlt (Echtlauf)",
                                                       "Geschuldet (Ist)", "Differenz", "Abrechnung"]
    assert book["Positionen"]["E2"].number_format == '#,##0.00 "€"'
    assert book["Protokoll"].auto_filter.ref is None and book["Protokoll"]["A1"].value == "Angabe"


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


# Schuldnerberatung SB-2022: cases per municipality (sheet Schluessel of the corpus workbook), 381 in all.
CASES = {"05170004": 41, "05170008": 233, "05170012": 77, "05170016": 30}


@pytest.fixture
def actual_with_host_change(tmp_path):
    """Actuals: KIM staff 306,000 € (deficit 76,000 → 86,000 €); Schuldnerberatung Sachkosten 90,000 → 76,200 €
    (76,200 € ÷ 381 cases = exactly 200 € a case); Alpen's own museum MUS-2022 Sachkosten 50,000 → 60,000 €
    (deficit 40,000 → 50,000 €, borne by Alpen itself)."""
    actual = tmp_path / "ist-traeger.xlsx"
    workbook = load_workbook(CORPUS / "gueltig.xlsx")
    items = workbook["Kostenpositionen"]
    assert (items["A2"].value, items["A5"].value, items["A6"].value) == ("KIM-2022", "SB-2022", "MUS-2022")
    items["D2"] = 306000
    items["E5"] = 76200
    items["E6"] = 60000
    workbook.save(actual)
    return actual


def test_host_municipality_own_cost_is_not_settled_with_the_kreis(final_run, actual_with_host_change, tmp_path):
    output, _ = final_run
    settlement = settle(output, actual_with_host_change, CORPUS / "regeln.yaml")
    kim = {ags: _largest_remainder(86000_00)[ags] - _largest_remainder(76000_00)[ags] for ags in BASES}
    sb_paid = _largest_remainder(90000_00, CASES)
    sb_owed = {ags: 200_00 * cases for ags, cases in CASES.items()}  # 8,200 / 46,600 / 15,400 / 6,000 €
    differences = {line.ags: line.difference for line in settlement.lines}
    assert differences == {ags: kim[ags] + sb_owed[ags] - sb_paid[ags] for ags in BASES}
    # +10,000 € KIM − 13,800 € Schuldnerberatung; Alpen's +10,000 € museum is not a payment to the Kreis
    assert sum(differences.values()) == -3800_00
    museum = [line for line in settlement.items if line.item_id == "MUS-2022"]
    assert [(l.ags, l.route, l.paid, l.owed, l.settled) for l in museum] == [
        ("05170004", "host_bears", 40000_00, 50000_00, False)]
    hunxe_sb = next(l for l in settlement.items if (l.ags, l.item_id) == ("05170016", "SB-2022"))
    assert (hunxe_sb.route, hunxe_sb.paid, hunxe_sb.owed) == ("direct_billing", sb_paid["05170016"], 6000_00)

    assert main(["trueup", str(output), str(actual_with_host_change), "--rules", str(CORPUS / "regeln.yaml"), "-o",
                 str(tmp_path / "abrechnung.xlsx")]) == 0
    workbook = load_workbook(tmp_path / "abrechnung.xlsx")
    assert workbook.sheetnames == ["Spitzabrechnung", "Positionen", "Protokoll"]
    rows = list(workbook["Positionen"].iter_rows(values_only=True))
    assert rows[0] == ("AGS", "Gemeinde", "ID", "Weg", "Gezahlt (Echtlauf)", "Geschuldet (Ist)", "Differenz",
                       "Abrechnung")
    assert ("05170004", "Alpen", "MUS-2022", "Trägerkommune", 40000, 50000, 10000, HOST_NOTE) in rows
    alpen_kim = next(r for r in rows if r[:3] == ("05170004", "Alpen", "KIM-2022"))
    assert alpen_kim[3] == "Kreisumlage" and alpen_kim[7] == "abgerechnet"
    assert round(alpen_kim[6] * 100) == kim["05170004"]
    # the settled rows of Positionen add up to each municipality's line of Spitzabrechnung
    summary = {r[0]: round(r[4] * 100) for r in workbook["Spitzabrechnung"].iter_rows(min_row=2, values_only=True)
               if r[0] != "Summe"}
    for ags in BASES:
        assert sum(round(r[6] * 100) for r in rows[1:] if r[0] == ags and r[7] == "abgerechnet") == summary[ags]
    assert summary == differences


def test_paid_is_read_from_every_einzelnachweis_sheet(tmp_path, monkeypatch, actual_with_host_change):
    monkeypatch.setattr(report, "MAX_ROWS", 6)  # header + 5 lines per sheet: 5 items × 4 = 20 lines, 4 sheets
    output = tmp_path / "echtlauf-lang.xlsx"
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o", str(output),
                 "--mode", "final"]) == 0  # the test's installation register (conftest)
    assert "Einzelnachweis_4" in load_workbook(output, read_only=True).sheetnames
    settlement = settle(output, CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml")
    assert {line.difference for line in settlement.lines} == {0}
    # paid per municipality = its levy and direct-billing lines of the plan, from all four sheets
    assert {l.ags: l.paid for l in settlement.lines}["05170016"] == sum(
        l.paid for l in settlement.items if l.ags == "05170016" and l.settled) > 0
    assert len({l.item_id for l in settlement.items}) == 5


def test_an_edited_uebersicht_total_is_refused(final_run, tmp_path):
    output, actual = final_run
    workbook = load_workbook(output)
    sheet = workbook["Uebersicht"]
    assert sheet["A2"].value == "05170004"
    summe = [c.column for c in sheet[1] if c.value == "Summe"][0]
    sheet.cell(2, summe).value = sheet.cell(2, summe).value + 1
    workbook.save(tmp_path / "bearbeitet.xlsx")
    # a copy without its manifest is no output that can be checked (exit 3) ...
    with pytest.raises(InputError) as missing:
        settle(tmp_path / "bearbeitet.xlsx", actual, CORPUS / "regeln.yaml")
    assert [p.code for p in missing.value.problems] == ["output-no-manifest"] and missing.value.exit_code == 3
    # ... and the workbook edited beside its manifest no longer matches it: refused before its sheets are read
    workbook.save(output)
    with pytest.raises(EarlierChanged) as changed:
        settle(output, actual, CORPUS / "regeln.yaml")
    assert [p.code for p in changed.value.problems] == ["output-changed"] and changed.value.exit_code == 7
    # and the sheets of one run must agree among themselves (a copy re-signed with a forged manifest)
    with pytest.raises(InputError) as refused:
        read_paid(tmp_path / "bearbeitet.xlsx")
    problem = refused.value.problems[0]
    assert problem.code == "trueup-bad-output" and problem.location.sheet == "Uebersicht" and problem.location.row == 2
