"""The printed rate's tolerance (issue 24): 0,1 % of the need, but never less than half a rounding unit per
payer, and a rate whose yield misses the need by exactly the tolerance is printed (`<=`), one unit more is not.

Hand calculations (cents, rates in percent, amounts base × rate rounded half up to the unit):
- two payers of 100,00 € each, need 2,01 €: 201 / 20.000 × 100 = 1,005 % → printed with 2 decimals 1,01 %;
  each pays 10.000 × 1,01 % = 101 Cent, together 202: 1 Cent over the need. The tolerance is
  max(0,1 % × 201 = 0,201; 2 payers × ½ Cent = 1) = 1 Cent: 1,01 % is printed. Without the floor, or with `<`,
  no rate up to 6 decimals would do (1,005 % gives 100,5 → 101 Cent each, 202 again).
- two payers of 200,00 € each, need 4,02 €: 1,005 % → 1,01 %; each 202 Cent, together 404: 2 Cent over, more
  than the tolerance of 1 Cent; 3 decimals, 1,005 %, give 201 each, 402: printed with 3 decimals.
- at Euro rounding, two payers of 10.000,00 € each, need 201,00 €: 1,01 %; each 101,00 €, together 202,00 €:
  100 Cent over = 2 payers × ½ Euro: printed with 2 decimals.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from allocation.calc.rates import printed_rate, tolerance


@pytest.mark.parametrize("need, payers, unit, allowed", [
    (201, 2, 1, Fraction(1)),            # the floor: 2 × ½ Cent (0,1 % would be 0,201 Cent)
    (201, 3, 1, Fraction(3, 2)),         # 3 × ½ Cent
    (201, 2, 100, Fraction(100)),        # Euro: 2 × ½ Euro
    (1_000, 2, 1, Fraction(1)),          # both the same: 0,1 % of 10,00 € = 1 Cent
    (100_000, 2, 1, Fraction(100)),      # 0,1 % of 1.000,00 € wins over the floor
    (-100_000, 2, 1, Fraction(100)),     # a negative need: its size
])
def test_tolerance_is_a_thousandth_of_the_need_but_half_a_unit_per_payer_at_least(need, payers, unit, allowed):
    assert tolerance(need, payers, unit) == allowed


def test_a_yield_exactly_at_the_tolerance_is_printed():
    assert printed_rate(201, [10_000, 10_000], 2, 1) == (Decimal("1.01"), 2)


def test_a_yield_one_unit_beyond_the_tolerance_takes_more_decimals():
    assert printed_rate(402, [20_000, 20_000], 2, 1) == (Decimal("1.005"), 3)


def test_at_euro_rounding_the_floor_is_half_a_euro_per_payer():
    assert printed_rate(20_100, [1_000_000, 1_000_000], 2, 100) == (Decimal("1.01"), 2)
