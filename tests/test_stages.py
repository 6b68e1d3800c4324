"""Base and rate effect of a levy change between two stages (stages.py): by hand and against a Fraction oracle."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings

from allocation.calc.stages import Effects, decompose, describe
from strategies import effect_cases


def test_alpen_rate_change_is_all_rate_effect():
    # Alpen 2022: 27.154.437,00 € × 36,20 % = 9.829.906,194 → 9.829.906,19 €; × 36,70 % = 9.965.678,379 → 9.965.678,38 €
    effects = decompose(2_715_443_700, Decimal("36.20"), 982_990_619, 2_715_443_700, Decimal("36.70"), 996_567_838)
    assert effects == Effects(change=13_577_219, base_effect=0, rate_effect=13_577_219)


def test_both_change_rate_effect_rounded_base_effect_takes_the_rest():
    # 10.000.000,00 € × 36,20 % = 3.620.000,00 €; 10.500.000,01 € × 36,70 % = 3.853.500,00367 → 3.853.500,00 €
    # rate effect 10.500.000,01 × 0,50 % = 52.500,00005 → 52.500,00 €; base effect 233.500,00 − 52.500,00 = 181.000,00 €
    effects = decompose(1_000_000_000, Decimal("36.2"), 362_000_000, 1_050_000_001, Decimal("36.7"), 385_350_000)
    assert effects == Effects(change=23_350_000, base_effect=18_100_000, rate_effect=5_250_000)


def test_base_effect_absorbs_the_rounding_of_the_amounts():
    # 1,01 € × 36,20 % = 0,36562 → 0,37 €; 1,03 € × 36,70 % = 0,37801 → 0,38 €: change 0,01 €
    # rate effect 1,03 × 0,50 % = 0,00515 → 0,01 €; base effect 0,01 − 0,01 = 0 (exactly 0,02 × 36,20 % = 0,00724)
    assert decompose(101, Decimal("36.2"), 37, 103, Decimal("36.7"), 38) == Effects(1, 0, 1)


def test_unchanged_rate_is_no_rate_effect():
    # 100,00 € → 100,01 € at 33,33 %: 33,33 € → 33,333333 → 33,33 €; the change 0 is all base effect, none rate
    assert decompose(10_000, Decimal("33.33"), 3_333, 10_001, Decimal("33.33"), 3_333) == Effects(0, 0, 0)
    assert decompose(10_000, Decimal("33.33"), 3_333, 20_000, Decimal("33.33"), 6_666) == Effects(3_333, 3_333, 0)


def test_rounding_unit_euro():
    # 1.000,00 € × 36,2 % = 362,00 €; 1.000,00 € → 1.100,00 € at 36,7 %: 403,70 → 404,00 €; rate 1.100 × 0,5 % = 5,50 → 6,00 €
    assert decompose(100_000, Decimal("36.2"), 36_200, 110_000, Decimal("36.7"), 40_400, unit=100) == Effects(4_200, 3_600, 600)


def test_sentence_in_words():
    assert describe("Kreisumlage", "Alpen", Effects(1_234_567, 1_000_000, 234_567)) == (
        "Die Kreisumlage von Alpen steigt um 12.345,67 €: 10.000,00 € durch höhere Umlagegrundlagen, "
        "2.345,67 € durch den höheren Satz.")
    assert describe("Kreisumlage", "Alpen", Effects(-500, 300, -800)) == (
        "Die Kreisumlage von Alpen sinkt um 5,00 €: 3,00 € durch höhere Umlagegrundlagen, 8,00 € durch den "
        "niedrigeren Satz.")
    assert describe("Jugendamtsumlage", "Xanten", Effects(0, 0, 0)) == "Die Jugendamtsumlage von Xanten bleibt unverändert."


def _round_half_up(value: Fraction, unit: int) -> int:
    """Oracle rounding, written independently of money.py."""
    scaled = value / unit
    magnitude = abs(scaled)
    whole = int(magnitude)
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return (whole if scaled >= 0 else -whole) * unit


def test_oracle_rounds_halves_away_from_zero():
    assert [_round_half_up(Fraction(n, 2), 1) for n in (1, 3, 5, -1, -3)] == [1, 2, 3, -1, -2]
    assert _round_half_up(Fraction(-150), 100) == -200


@settings(max_examples=300, deadline=None)
@given(effect_cases())
def test_effects_add_up_exactly_to_the_change_of_the_rounded_amounts(case):
    """Bases and rates as drawn, and (half the cases, `effect_cases`) a rate effect of exactly k + ½ units, rising
    or falling: a rate effect rounded half-even or half towards +∞ fails here."""
    b0, r0, b1, r1, unit = case
    old_amount = _round_half_up(Fraction(b0) * Fraction(r0) / 100, unit)
    new_amount = _round_half_up(Fraction(b1) * Fraction(r1) / 100, unit)
    effects = decompose(b0, r0, old_amount, b1, r1, new_amount, unit)
    assert effects.base_effect + effects.rate_effect == new_amount - old_amount == effects.change
    exact_rate = Fraction(b1) * (Fraction(r1) - Fraction(r0)) / 100
    exact_base = Fraction(b1 - b0) * Fraction(r0) / 100
    if r0 == r1:
        assert effects.rate_effect == 0
    elif b0 == b1:
        assert effects.base_effect == 0
    else:
        assert effects.rate_effect == _round_half_up(exact_rate, unit)
        # the base effect carries the two amounts' rounding: within 1.5 units of its exact value
        assert abs(effects.base_effect - exact_base) <= Fraction(3, 2) * unit
