"""money.py by hand: exact cells, rounding half-up, largest remainder with AGS tie-break, display."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from allocation.core.money import (apportion, cents_from_decimal, decimal_from_cell, format_eur, percent_points,
                              rate_percent, round_to_unit)


@pytest.mark.parametrize("cell, expected", [
    (0.1, Decimal("0.1")), (74000.0, Decimal("74000.0")), (12000.5, Decimal("12000.5")), (19000, Decimal(19000)),
    (0.30000000000000004, Decimal("0.30000000000000004")),
])
def test_cells_become_the_decimal_excel_stored(cell, expected):
    assert decimal_from_cell(cell) == expected


def test_cents_refuse_fractions_of_a_cent():
    assert cents_from_decimal(Decimal("12000.50")) == 1_200_050
    with pytest.raises(ValueError):
        cents_from_decimal(Decimal("0.005"))


@pytest.mark.parametrize("cents, unit, expected", [
    (10050, 100, 10100), (10049, 100, 10000), (-10050, 100, -10100), (Fraction(1, 2), 1, 1), (Fraction(-1, 2), 1, -1),
    (12345, 1, 12345),
])
def test_round_half_up_is_symmetric(cents, unit, expected):
    assert round_to_unit(cents, unit) == expected


def test_apportion_hand_worked_example():
    # 1,000 cents over 1:2:4 (sum 7): 142.857…, 285.714…, 571.428… → floors 142 + 285 + 571 = 998;
    # remainders 6/7, 5/7, 3/7 → the two cents go to 001 and 002.
    shares = apportion(1000, {"001": 1, "002": 2, "003": 4})
    assert {a: s.amount for a, s in shares.items()} == {"001": 143, "002": 286, "003": 571}
    assert shares["001"].rank == 1 and shares["002"].rank == 2 and shares["003"].rank == 3
    assert shares["003"].extra_units == 0


def test_apportion_negative_total_is_the_negated_split():
    shares = apportion(-1000, {"001": 1, "002": 2, "003": 4})
    assert {a: s.amount for a, s in shares.items()} == {"001": -143, "002": -286, "003": -571}


def test_apportion_in_whole_euros():
    shares = apportion(100_00, {"b": 1, "a": 1, "c": 1}, unit=100)  # 33.33 € each → 34, 33, 33 by AGS
    assert {a: s.amount for a, s in shares.items()} == {"a": 3400, "b": 3300, "c": 3300}


def test_apportion_refuses_zero_keys_and_unit_mismatch():
    with pytest.raises(ValueError):
        apportion(100, {"a": 0, "b": 0})
    with pytest.raises(ValueError):
        apportion(150, {"a": 1}, unit=100)


def test_percent_points_and_rate():
    assert percent_points(3620, 10000) == Decimal("36.2000")
    # StädteRegion Aachen Jugendamtsumlage 2021 plan: 23,128,101 € need on 86,402,567 € base, printed 26.7678 %
    assert rate_percent(23128101, 86402567, 4) == Decimal("26.7678")


def test_format_eur_german():
    assert format_eur(123456789) == "1.234.567,89 €"
    assert format_eur(-5) == "-0,05 €"


@pytest.mark.parametrize("text, expected", [
    ("37.85", (3785, 100)), ("-0.005", (-5, 1000)), ("12E+2", (1200, 1)), ("0", (0, 1)), ("0.000", (0, 1)),
    ("-3", (-3, 1)), ("0E+999999999", (0, 1)), ("-0.00", (0, 1)),
])
def test_decimal_ratio_by_hand(text, expected):
    from allocation.core.money import decimal_ratio
    assert decimal_ratio(Decimal(text)) == expected


def test_decimal_ratio_refuses_what_is_not_a_number():
    from allocation.core.money import decimal_ratio
    for text in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError):
            decimal_ratio(Decimal(text))


@pytest.mark.parametrize("numerator, denominator, unit, expected", [
    (1, 2, 1, 1), (-1, 2, 1, -1), (149, 3, 100, 0), (150 * 3, 3, 100, 200), (-15000, 100, 100, -200),
    (2495, 50, 1, 50),  # 49.9 cents -> 50
])
def test_round_ratio_to_unit_by_hand(numerator, denominator, unit, expected):
    from allocation.core.money import round_ratio_to_unit
    assert round_ratio_to_unit(numerator, denominator, unit) == expected
