"""Levy rates (Hebesätze): the printed rate that finances a levy item and what that rate yields.

A levy item is split exactly over its payers' bases (largest remainder, `allocate`); published levies are
instead computed from a printed rate: rate = need ÷ sum of bases × 100, rounded half up to the
`Hebesatz_Nachkommastellen` of the `Parameter` sheet, and each municipality pays base × rate, rounded half
up to the rounding unit. Their sum differs slightly from the need. `levy_rates` gives both views side by
side, per levy item and payer. For a rule with `extent`, the base is the weighted base the split uses
(Umlagegrundlagen × factor). All arithmetic is `money.rate_percent` and `money.round_to_unit`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .model import LEVY_ROUTES, Allocation
from .money import rate_percent, round_to_unit, to_fraction

__all__ = ["RateLine", "LevyRate", "amount_at_rate", "levy_rates", "LEVY_ROUTES"]



def amount_at_rate(base: int | Fraction, rate: Decimal, unit: int) -> int:
    """base (cents) × rate (percent), rounded half up to `unit` cents; result in cents."""
    return round_to_unit(to_fraction(base) * to_fraction(rate) / 100, unit)


@dataclass(frozen=True, slots=True)
class RateLine:
    ags: str
    base: Fraction  # cents (Umlagegrundlagen, or weighted by `extent`)
    at_rate: int  # cents, base × printed rate rounded to the unit
    exact_split: int  # cents, the allocation line

    @property
    def difference(self) -> int:
        """Printed-rate amount minus exact split, cents."""
        return self.at_rate - self.exact_split


@dataclass(frozen=True, slots=True)
class LevyRate:
    item_id: str
    rule_id: str
    route: str
    need: int  # cents, the item's rounded deficit
    base_total: Fraction  # cents
    rate_exact: Fraction  # percent, need ÷ base total × 100
    rate: Decimal  # percent, as printed
    decimals: int
    lines: tuple[RateLine, ...]

    @property
    def total_at_rate(self) -> int:
        return sum(line.at_rate for line in self.lines)

    @property
    def difference(self) -> int:
        """Yield of the printed rate minus the need, cents."""
        return self.total_at_rate - self.need


def levy_rates(allocation: Allocation) -> tuple[LevyRate, ...]:
    """One `LevyRate` per levy item (payers in AGS order)."""
    decimals = allocation.book.parameters.rate_decimals
    unit = allocation.book.parameters.unit
    result = []
    for item in allocation.items:
        if item.rule.route not in LEVY_ROUTES:
            continue
        base_total = item.key_total * 100  # keys of levy routes are euros
        if base_total <= 0:
            continue
        rate = rate_percent(item.deficit, base_total, decimals)
        lines = tuple(RateLine(line.ags, line.key * 100, amount_at_rate(line.key * 100, rate, unit), line.amount)
                      for line in sorted(item.lines, key=lambda l: l.ags) if line.key > 0)
        result.append(LevyRate(item.item.id, item.rule.id, item.rule.route, item.deficit, base_total,
                               Fraction(item.deficit * 100) / base_total, rate, decimals, lines))
    return tuple(result)
