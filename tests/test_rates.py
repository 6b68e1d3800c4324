"""Levy rates (issue 5): need ÷ base as a printed rate, and what the printed rate yields, against published tables.

Published figures are copied from the project's domain data (kept outside the repository):
- REGIONSUMLAGE: ../shared/domain/data/staedteregion_aachen_regionsumlage_1971_1976.csv
  (StädteRegion Aachen, Entwurf des Haushaltsplans 2024, Band I Vorbericht, C/023)
- JUGENDAMTSUMLAGE: ../shared/domain/data/staedteregion_aachen_jugendamtsumlage_1993_2021.csv
  (StädteRegion Aachen, Haushaltsentwurf 2025, Band I, C/034)
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.money import rate_percent
from allocation.runs.pipeline import compute
from allocation.calc.rates import amount_at_rate, levy_rates

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
EURO = 100

# jahr, umlagegrundlagen_eur, umlagesatz_pct, aufkommen_eur
REGIONSUMLAGE = [
    (1971, 49304379, "32.00", 15777401),
    (1972, 54459022, "35.00", 19060658),
    (1973, 64746077, "35.00", 22661127),
    (1974, 75320812, "34.50", 25985680),
    (1975, 80251332, "37.75", 30294878),
    (1976, 79635094, "37.75", 30062248),
]

# jahr, umlagegrundlagen_eur, umlagesatz_pct (as printed), umlageaufkommen_eur, aufwand_haushaltsansatz_eur
JUGENDAMTSUMLAGE = [
    (1993, 43049207, "9.905", 4264024, 4266564),
    (1994, 44899762, "12.50", 5612470, 5631415),
    (1995, 42771453, "14.40", 6159089, 6160531),
    (1996, 44003906, "15.70", 6908613, 6911016),
    (1997, 44459986, "16.55", 7358128, 7419747),
    (1998, 43904255, "17.72", 7779834, 7776891),
    (1999, 46345567, "17.47", 8096571, 8095320),
    (2000, 49801588, "17.09", 8511091, 8462217),
    (2001, 51635632, "17.53", 9051726, 9020101),
    (2002, 52111344, "16.74", 8723439, 8772518),
    (2003, 47110564, "18.63", 8776698, 8925593),
    (2004, 49445679, "17.26", 8534324, 8977674),
    (2005, 48000351, "21.21", 10180874, 10181889),
    (2006, 49498445, "20.94", 10364974, 10230897),
    (2007, 54732674, "19.56", 10705711, 10686371),
    (2008, 60851490, "16.76", 10198710, 10397130),
    (2009, 62981033, "16.55", 10423361, 10794009),
    (2010, 61786236, "23.511", 14526562, 14526771),
    (2011, 56695064, "26.0140", 14748654, 14874128),
    (2012, 58570227, "25.4700", 14917837, 14846292),
    (2013, 59928976, "25.7787", 15448896, 14854688),
    (2014, 64317621, "24.2503", 15597216, 15601237),
    (2015, 65408287, "25.7209", 16823600, 16822324),
    (2016, 68615182, "25.8363", 17727624, 17354042),
    (2017, 71555487, "27.5413", 19707311, 19707303),
    (2018, 76219330, "25.8574", 19708337, 19707303),
    (2019, 81657221, "24.1995", 19760639, 19759563),
    (2020, 84420295, "25.6778", 21677275, 21675737),
    (2021, 86402567, "26.7678", 23128066, 23128101),
]


# Umlagegrundlagen (whole euros) of the fixture's Gemeinden sheet (ILLUSTRATIVE, see build_fixture.py); 700,000,000 €
WESEL_BASES = {
    "05170004": 27154437, "05170008": 86873093, "05170012": 50884619, "05170016": 30153089,
    "05170020": 50291923, "05170024": 142030604, "05170028": 58692354, "05170032": 35869436,
    "05170036": 28845050, "05170040": 16853755, "05170044": 42982635, "05170048": 88446677,
    "05170052": 40922328,
}


def decimals_of(printed: str) -> int:
    return len(printed.split(".")[1])


@pytest.mark.parametrize("year, base, rate, amount", REGIONSUMLAGE)
def test_regionsumlage_amount_is_base_times_rate_rounded_to_euros(year, base, rate, amount):
    assert amount_at_rate(base * 100, Decimal(rate), EURO) == amount * 100


@pytest.mark.parametrize("year, base, rate, amount", REGIONSUMLAGE)
def test_regionsumlage_rate_reproduced_from_amount_and_base(year, base, rate, amount):
    assert rate_percent(amount * 100, base * 100, 2) == Decimal(rate)


# 2013: 59,928,976 € × 25.7787 % = 15,448,910.8... → 15,448,911 €, but 15,448,896 € is printed (15 € less).
# Likely a transcription or print error in the source; reported here, not hidden.
AMOUNT_NOT_REPRODUCED = {2013: 15_448_911}


@pytest.mark.parametrize("year, base, rate, amount, plan", JUGENDAMTSUMLAGE)
def test_jugendamtsumlage_amount_is_base_times_printed_rate(year, base, rate, amount, plan):
    computed = amount_at_rate(base * 100, Decimal(rate), EURO)
    exact = Fraction(base) * Fraction(Decimal(rate)) / 100
    if year in AMOUNT_NOT_REPRODUCED:
        assert computed == AMOUNT_NOT_REPRODUCED[year] * 100 != amount * 100
        assert abs(exact - amount) > 1  # not a rounding question
    else:
        assert computed == amount * 100


@pytest.mark.parametrize("year, base, rate, amount, plan", JUGENDAMTSUMLAGE)
def test_jugendamtsumlage_printed_rate_reproduced_from_amount_and_base(year, base, rate, amount, plan):
    # The table is self-consistent: amount ÷ base, to the printed decimals, gives the printed rate (2013 too).
    assert rate_percent(amount * 100, base * 100, decimals_of(rate)) == Decimal(rate)


# The planned expense (Haushaltsansatz) ÷ base gives the printed rate only in these years; in the others the
# StädteRegion set the rate on a need the table does not show (e.g. with true-ups of earlier years).
RATE_FROM_PLAN = {1995, 1999, 2005, 2010, 2017, 2021}


@pytest.mark.parametrize("year, base, rate, amount, plan", JUGENDAMTSUMLAGE)
def test_jugendamtsumlage_rate_from_plan_need(year, base, rate, amount, plan):
    reproduced = rate_percent(plan * 100, base * 100, decimals_of(rate)) == Decimal(rate)
    assert reproduced == (year in RATE_FROM_PLAN)


def test_published_youth_office_example_2021():
    # 23,128,101 ÷ 86,402,567 × 100 = 26.76782... → 26.7678 %; × base = 23,128,066.05... → 23,128,066 €.
    rate = rate_percent(23_128_101 * 100, 86_402_567 * 100, 4)
    assert rate == Decimal("26.7678")
    assert amount_at_rate(86_402_567 * 100, rate, EURO) == 23_128_066 * 100


def test_rate_command_prints_the_published_rate(capsys):
    assert main(["rate", "--need", "23128101", "--base", "86402567", "--decimals", "4"]) == 0
    assert capsys.readouterr().out == "26.7678\n"


def test_rate_command_rejects_a_zero_base(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rate", "--need", "1", "--base", "0"])
    assert exit_.value.code == 2


def test_fixture_levy_rates_next_to_exact_split():
    allocation, _controls, _warnings = compute(FIXTURE, RULES)
    rates = {levy.item_id: levy for levy in levy_rates(allocation)}
    assert set(rates) == {"KIM-2022", "JA-2022"}  # the two levy items; direct billing has no rate
    kim = rates["KIM-2022"]
    # 76,000 € ÷ 700,000,000 € × 100 = 0.0108571... %. Kreis Wesel prints 2 decimals, but 0.01 % yields only
    # about 70,000 €, 0.011 % about 77,000 €, 0.0109 % about 76,300 €: each misses the need by more than 0.1 %
    # (76 €). 0.01086 % yields about 76,020 €: within 76 €, so the rate is printed with 5 decimals.
    assert kim.rate == Decimal("0.01086") and kim.decimals == 5 and kim.need == 7_600_000
    assert "5 statt 2 Nachkommastellen" in kim.note
    assert kim.rate_exact == Fraction(76_000 * 100, 700_000_000)
    voerde = next(line for line in kim.lines if line.ags == "05170044")
    # 42,982,635 € × 0.01086 % = 4,667.914161 € → 4,667.91 €; exact split 4,666.69 € (see test_findings).
    assert voerde.at_rate == 466_791
    assert voerde.exact_split == 466_669
    assert voerde.difference == 466_791 - 466_669
    # the yield of 0.01086 %: each base (cents) × 1086 / 10^7, half up to the cent (`_half_up_oracle`), summed;
    # 700,000,000 € × 0.01086 % = 76,020 € exactly, and rounding 13 amounts moves it by at most 13 × ½ Cent
    assert sum(WESEL_BASES.values()) == 700_000_000
    at_rate = {ags: _half_up_oracle(Fraction(base * 100 * 1086, 10**7), 1) for ags, base in WESEL_BASES.items()}
    assert [(line.ags, line.at_rate) for line in kim.lines] == sorted(at_rate.items())
    assert kim.total_at_rate == sum(at_rate.values())
    assert kim.difference == sum(at_rate.values()) - 7_600_000
    assert abs(kim.difference - 20_00) <= 6
    youth = rates["JA-2022"]
    # Only the 7 municipalities served by the Kreisjugendamt; their bases sum to 253,505,632 €.
    assert len(youth.lines) == 7
    assert youth.base_total == 253_505_632 * 100
    # 22,260,000 ÷ 253,505,632 × 100 = 8.78087... → 8.78 %, which yields 253,505,632 € × 8.78 % =
    # 22,257,794.49 €: 2,205.51 € short, within 0.1 % of the need (22,260 €), so 2 decimals stay
    assert youth.rate == Decimal("8.78") and youth.decimals == 2 and youth.note == ""
    alpen = next(line for line in youth.lines if line.ags == "05170004")
    assert alpen.at_rate == 238_415_957  # 27,154,437 € × 8.78 % = 2,384,159.5686 € → 2,384,159.57 €


def test_hebesaetze_sheet(tmp_path):
    from openpyxl import load_workbook

    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(output)]) == 0
    workbook = load_workbook(output, read_only=True)
    rows = list(workbook["Hebesaetze"].iter_rows(values_only=True))
    workbook.close()
    header = rows[0]
    records = [dict(zip(header, row)) for row in rows[1:]]
    voerde = next(r for r in records if r["ID"] == "KIM-2022" and r["AGS"] == "05170044")
    assert str(voerde["Hebesatz gedruckt (%)"]) == "0.01086"
    assert voerde["Nachkommastellen (gedruckt)"] == 5
    assert str(voerde["Betrag nach gedrucktem Hebesatz"]) == "4667.91"
    assert str(voerde["Betrag exakte Verteilung"]) == "4666.69"
    assert str(voerde["Differenz (Hebesatz − exakt)"]) == "1.22"
    total = next(r for r in records if r["ID"] == "KIM-2022" and r["AGS"] == "Summe")
    assert str(total["Betrag exakte Verteilung"]) == "76000"


def _levy_case(tmp_path, items) -> dict:
    """Two payers with bases 105,033,820 € and 200,000,000 € (305,033,820 € in all), one district levy rule,
    2 declared decimals; returns the Hebesaetze rows of the run by (ID, AGS)."""
    from openpyxl import load_workbook

    from workbooks import write_input, write_rules

    source = write_input(tmp_path / "eingabe.xlsx", [["05999001", "A-Stadt", 105_033_820],
                                                     ["05999002", "B-Dorf", 200_000_000]], items)
    rules = write_rules(tmp_path / "regeln.yaml", "  - id: umlage\n    legal_basis: x\n    when: {}\n"
                                                  "    route: district_levy\n")
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(source), "--rules", str(rules), "-o", str(output)]) == 0
    rows = list(load_workbook(output, read_only=True)["Hebesaetze"].iter_rows(values_only=True))
    return {(row[0], row[3]): dict(zip(rows[0], row)) for row in rows[1:]}


def test_a_rate_that_misstates_the_need_gets_more_decimals(tmp_path):
    """The issue's case: a need of 144,000 € on 305,033,820 € (exact 0.0472083... %) printed as 0.05 % yields
    105,033,820 × 0.05 % = 52,516.91 € + 200,000,000 × 0.05 % = 100,000.00 €, 152,516.91 € in all (5.9 % too
    much). 0.047 % yields 49,365.90 + 94,000.00 = 143,365.90 € (634.10 € short, more than 0.1 % = 144 €);
    0.0472 % yields 49,575.96 + 94,400.00 = 143,975.96 €, 24.04 € short: printed with 4 decimals."""
    rows = _levy_case(tmp_path, [["U-1", "Umlage", "Kultur", 0, 144_000, 0, 0, "Kreis"]])
    total = rows[("U-1", "Summe")]
    assert str(total["Hebesatz gedruckt (%)"]) == "0.0472"
    assert total["Nachkommastellen (gedruckt)"] == 4
    assert str(rows[("U-1", "05999001")]["Betrag nach gedrucktem Hebesatz"]) == "49575.96"
    assert str(rows[("U-1", "05999002")]["Betrag nach gedrucktem Hebesatz"]) == "94400"
    assert str(total["Betrag nach gedrucktem Hebesatz"]) == "143975.96"
    assert str(total["Differenz (Hebesatz − exakt)"]) == "-24.04"
    assert "4 statt 2 Nachkommastellen" in total["Hinweis"]


def test_a_small_surplus_gets_enough_decimals_or_is_marked_not_meaningful(tmp_path):
    """Surpluses (funding above costs) on the same bases.
    3,000 € back: exact −0.000983... %; 2 decimals print 0.00 % (yield 0). −0.00098 % yields −1,029.33 −
    1,960.00 = −2,989.33 € (10.67 € off, more than 0.1 % = 3 €); −0.000983 % yields −1,032.48 − 1,966.00 =
    −2,998.48 € (1.52 € off): printed with 6 decimals.
    30 € back: exact −0.0000098... %; even 6 decimals (−0.000010 %) yield −10.50 − 20.00 = −30.50 €, 0.50 € off,
    more than 0.1 % of 30 € (3 Cent): no meaningful printed rate."""
    rows = _levy_case(tmp_path, [["UEB-3000", "Überschuss", "Kultur", 0, 0, 0, 3_000, "Kreis"],
                                 ["UEB-30", "Überschuss", "Kultur", 0, 0, 0, 30, "Kreis"]])
    big = rows[("UEB-3000", "Summe")]
    assert Decimal(str(big["Hebesatz gedruckt (%)"])) == Decimal("-0.000983")
    assert big["Nachkommastellen (gedruckt)"] == 6
    assert str(big["Betrag nach gedrucktem Hebesatz"]) == "-2998.48"
    small = rows[("UEB-30", "Summe")]
    assert small["Hebesatz gedruckt (%)"] is None and small["Betrag nach gedrucktem Hebesatz"] is None
    assert small["Hinweis"].startswith("nicht aussagekräftig")
    assert str(small["Betrag exakte Verteilung"]) == "-30"
    assert rows[("UEB-30", "05999001")]["Hinweis"].startswith("nicht aussagekräftig")


def _half_up_oracle(value: Fraction, unit: int) -> int:
    """Independent of money.py: |value| / unit + 1/2, floored, signed back, times unit."""
    magnitude = abs(value) / unit + Fraction(1, 2)
    whole = magnitude.numerator // magnitude.denominator
    return (whole if value >= 0 else -whole) * unit


from hypothesis import given, strategies as st  # noqa: E402

from strategies import at_rate_cases  # noqa: E402

_any_base_and_rate = st.tuples(st.fractions(min_value=0, max_value=10**12, max_denominator=10**6),
                               st.decimals(min_value=Decimal("-150"), max_value=Decimal("150"), places=6, allow_nan=False,
                                           allow_infinity=False),
                               st.sampled_from([1, 100]))


@given(st.one_of(_any_base_and_rate, at_rate_cases()))
def test_amount_at_rate_against_a_fraction_oracle(case):
    """Any exact base and rate, and (`at_rate_cases`) bases in cents whose amount is exactly half a unit: a
    half-even or half-towards-+∞ rounding fails here."""
    base, rate, unit = case
    assert amount_at_rate(base, rate, unit) == _half_up_oracle(Fraction(base) * Fraction(rate) / 100, unit)


def test_half_up_oracle_by_hand():
    # 0.5 → 1, 1.5 → 2, 2.5 → 3 (half-even would give 0, 2, 2); 250 cents to euros → 300; −0.5 → −1
    assert [_half_up_oracle(Fraction(n, 2), 1) for n in (1, 3, 5, -1)] == [1, 2, 3, -1]
    assert _half_up_oracle(Fraction(250), 100) == 300 and _half_up_oracle(Fraction(249), 100) == 200


def test_amount_at_rate_takes_any_exact_number():
    """Decimal is what the product passes; an int or Fraction rate and an int, Fraction or Decimal base give
    the same amount (100 € × 36 % = 36 €; 1/3 € × 3 % = 0.01 €, rounded half up from 1/100 €)."""
    assert amount_at_rate(10_000, 36, 1) == amount_at_rate(10_000, Decimal("36"), 1) == 3_600
    assert amount_at_rate(Fraction(100, 3), Fraction(3), 1) == 1
    assert amount_at_rate(Decimal("100.00"), Decimal("36.00"), 1) == 36
