"""`allocation explain` reads the output workbook and tells why and how, with figures checked by hand and a
Fraction oracle for the remainder ranking."""
from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.ops.explain import explain
from allocation.runs.pipeline import run
from allocation.core.problems import InputError

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"

# Schuldnerberatung cases per municipality (fixture build script, sheet Schluessel).
CASES = {"05170004": 41, "05170008": 233, "05170012": 77, "05170016": 38, "05170020": 160, "05170024": 402,
         "05170028": 70, "05170032": 95, "05170036": 36, "05170040": 19, "05170044": 118, "05170048": 251,
         "05170052": 57}
SB_DEFICIT = 36_034_567  # cents: 412,345.67 + 38,000 − 90,000 €


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explain")
    shutil.copy(RULES, folder / "kreis-wesel.yaml")
    run(FIXTURE, folder / "kreis-wesel.yaml", folder / "ergebnis.xlsx")
    return folder / "ergebnis.xlsx"


def test_explains_rule_line_legal_basis_condition_and_deficit(output):
    text = explain(output, "KIM-2022")
    # rules/kreis-wesel.yaml: `- id: kim-kreisumlage` is on line 15.
    assert "Regel „kim-kreisumlage“ (" in text and "kreis-wesel.yaml:15)" in text
    assert "§ 56 Abs. 1 KrO NRW" in text
    assert "Kategorie = „KIM“ [Wert: „KIM“] und Traeger = „Kreis“ [Wert: „Kreis“]" in text
    # 4 posts × 74,000 € = 296,000 €, minus 4 × 55,000 € = 220,000 € funding: 76,000 € (seed).
    assert "296.000,00 € − Förderung 220.000,00 € = 76.000,00 €" in text
    assert "Kreisumlage (district_levy)" in text


def remainder_ranks() -> tuple[dict[str, int], int]:
    """Independent oracle: largest remainder of the Schuldnerberatung split, ties by AGS."""
    total = sum(CASES.values())
    exact = {ags: Fraction(SB_DEFICIT * cases, total) for ags, cases in CASES.items()}
    floors = {ags: value.numerator // value.denominator for ags, value in exact.items()}
    order = sorted((ags for ags in exact if exact[ags] != floors[ags]), key=lambda a: (-(exact[a] - floors[a]), a))
    left = SB_DEFICIT - sum(floors.values())
    return {ags: rank for rank, ags in enumerate(order, start=1)}, left


def test_proof_for_a_municipality_shows_key_exact_amount_and_remainder_rank(output):
    text = explain(output, "SB-2022", "05170044")
    ranks, left = remainder_ranks()
    # Voerde: 118 of 1,597 cases; 118 / 1597 × 360,345.67 € = 26,625.415817… €, floor 26,625.41 €.
    assert "118 ÷ 1.597 × 360.345,67 € = 26.625,415817 €" in text
    assert "abgerundet 26.625,41 €" in text
    receives = ranks["05170044"] <= left
    assert (f"Rang {ranks['05170044']}" in text) and (("+ 1 Cent aus dem Rest" in text) == receives)
    assert text.rstrip().splitlines()[-2].endswith("26.625,42 €" if receives else "26.625,41 €")


def test_without_ags_lists_each_payers_amount(output):
    text = explain(output, "JA-2022")
    # The Jugendamtsumlage is paid only by the 7 municipalities served by the Kreisjugendamt.
    paying = [line for line in text.splitlines() if line.startswith("  0517")]
    assert len(paying) == 7
    assert not any("Moers" in line for line in paying)


def test_unknown_item_and_ags_are_located_problems_with_a_suggestion(output, capsys):
    with pytest.raises(InputError) as caught:
        explain(output, "KIM-2021")
    problem = caught.value.problems[0]
    assert problem.code == "explain-unknown-item" and "meinten Sie KIM-2022?" in problem.message
    with pytest.raises(InputError) as caught:
        explain(output, "KIM-2022", "05170099")
    assert caught.value.problems[0].code == "explain-unknown-ags"
    assert main(["explain", str(output), "--item", "KIM-2021"]) == 3
    assert main(["explain", str(output), "--item", "KIM-2022", "--ags", "05170044"]) == 0
    assert "Rechenweg für Voerde (Niederrhein)" in capsys.readouterr().out


def _german(text: str) -> Fraction:
    return Fraction(text.replace(".", "").replace(",", "."))


def test_composite_key_proof_recomputes_by_hand_from_the_printed_components(output):
    """ÖPNV: 70 % Linienminuten + 30 % Wagenkm over all 13 municipalities, deficit 4,250,000 − 1,100,000 =
    3,150,000 €. The printed proof must name each column's value, its total and its weight, so that the share
    and the exact amount recompute from the printed figures alone; the figures are checked against the input."""
    import re

    from openpyxl import load_workbook

    text = explain(output, "OEPNV-2022", "05170004")
    proof = next(line.strip() for line in text.splitlines() if line.strip().startswith("Alpen:"))
    parts = re.findall(r"(\d+(?:,\d+)?) % × ([\d.,]+) ÷ ([\d.,]+) \((\w+)\)", proof)
    assert [column for *_, column in parts] == ["Linienminuten", "Wagenkm"]
    # the printed values and totals are the input's: Alpen's cells and the column sums of sheet Gemeinden
    rows = list(load_workbook(FIXTURE, read_only=True)["Gemeinden"].iter_rows(values_only=True))
    header = list(rows[0])
    alpen = next(row for row in rows[1:] if row[0] == "05170004")
    for weight, value, total, column in parts:
        index = header.index(column)
        assert _german(value) == Fraction(str(alpen[index]))
        assert _german(total) == sum(Fraction(str(row[index])) for row in rows[1:] if row[0])
    assert [_german(w) for w, *_ in parts] == [70, 30]
    # by hand: share = Σ weight/100 × value ÷ total; exact amount = share × 3,150,000.00 €
    share = sum(_german(w) / 100 * _german(v) / _german(t) for w, v, t, _ in parts)
    shown_share = re.search(r"\) [≈=] ([\d,]+) × 3\.150\.000,00 €", proof).group(1)
    assert abs(_german(shown_share) - share) <= Fraction(1, 2 * 10**10)
    exact_euros = share * 3_150_000
    shown_exact = re.search(r"= ([\d.,]+) € → abgerundet ([\d.,]+) €", proof)
    assert abs(_german(shown_exact.group(1)) - exact_euros) <= Fraction(1, 2 * 10**6)
    floor_cents = exact_euros * 100 // 1
    assert _german(shown_exact.group(2)) * 100 == floor_cents
    assert "÷ 1 ×" not in proof
    assert "Schlüssel 70 % Linienminuten + 30 % Wagenkm: je Spalte Gewicht" in text
