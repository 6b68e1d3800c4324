"""Levy rates (Hebesätze): the printed rate that finances a levy item and what that rate yields.

A levy item is split exactly over its payers' bases (largest remainder, `allocate`); published levies are
instead computed from a printed rate: rate = need ÷ sum of bases × 100, rounded half up, and each
municipality pays base × rate, rounded half up to the rounding unit. Their sum differs slightly from the
need. `levy_rates` gives both views side by side, per levy item and payer. For a rule with `extent`, the
base is the weighted base the split uses (Umlagegrundlagen × factor). All arithmetic is
`money.rate_percent` and `money.round_to_unit`.

A rate printed with too few decimals can misstate an item badly (0.05 % yielding 152,516.91 € for a need of
144,000 €; a small surplus printing as 0.00 %). So a rate is printed with the fewest decimals, at least
`Hebesatz_Nachkommastellen` and at most `MAX_DECIMALS`, whose yield is within `tolerance` of the need
(0.1 % of the need, but never less than half a rounding unit per payer, the noise of rounding each
amount). If even `MAX_DECIMALS` decimals miss, the item has no meaningful printed rate (`rate` None).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ..core.model import LEVY_ROUTES, Allocation
from ..core.money import decimal_ratio, rate_percent, round_ratio_to_unit

__all__ = ["RateLine", "LevyRate", "amount_at_rate", "levy_rates", "iter_levy_rates", "printed_rate", "tolerance",
           "LEVY_ROUTES", "MAX_DECIMALS", "TOLERANCE_SHARE"]

MAX_DECIMALS = 6  # beyond six decimals a printed rate helps no reader: the item gets no printed rate
TOLERANCE_SHARE = Fraction(1, 1000)  # a printed rate may miss the need by 0.1 %



def amount_at_rate(base: int | Fraction | Decimal, rate: Decimal | int | Fraction, unit: int) -> int:
    """base (cents) × rate (percent), rounded half up to `unit` cents; result in cents."""
    return _amounts_at_rate([_ratio(base)], rate, unit)[0]


def _ratio(value: int | Fraction | Decimal) -> tuple[int, int]:
    """An exact number as (numerator, denominator > 0); a Decimal without a Fraction (the common case)."""
    if isinstance(value, Decimal):
        return decimal_ratio(value)
    exact = Fraction(value)  # int, Fraction, or a float taken exactly as stored
    return exact.numerator, exact.denominator


def _amounts_at_rate(bases: list[tuple[int, int]], rate: Decimal | int | Fraction, unit: int) -> list[int]:
    """Each base (numerator, denominator cents) × rate (percent), rounded half up to `unit` cents.

    In integers: the rate's own ratio once, then one product and one division per base (a Fraction per base
    cost a gcd and three objects, for each of the up to five rates `printed_rate` tries)."""
    rate_numerator, rate_denominator = _ratio(rate)
    scale = rate_denominator * 100
    return [round_ratio_to_unit(numerator * rate_numerator, denominator * scale, unit)
            for numerator, denominator in bases]


@dataclass(frozen=True, slots=True)
class RateLine:
    ags: str
    base: Fraction  # cents (Umlagegrundlagen, or weighted by `extent`)
    at_rate: int | None  # cents, base × printed rate rounded to the unit; None without a meaningful rate
    exact_split: int  # cents, the allocation line

    @property
    def difference(self) -> int | None:
        """Printed-rate amount minus exact split, cents."""
        return None if self.at_rate is None else self.at_rate - self.exact_split


@dataclass(frozen=True, slots=True)
class LevyRate:
    item_id: str
    rule_id: str
    route: str
    need: int  # cents, the item's rounded deficit
    base_total: Fraction  # cents
    rate_exact: Fraction  # percent, need ÷ base total × 100
    rate: Decimal | None  # percent, as printed; None: no printed rate within MAX_DECIMALS meets the need
    decimals: int  # decimals of the printed rate (≥ declared_decimals), MAX_DECIMALS without a rate
    lines: tuple[RateLine, ...]
    declared_decimals: int = 2  # Hebesatz_Nachkommastellen

    @property
    def meaningful(self) -> bool:
        return self.rate is not None

    @property
    def total_at_rate(self) -> int | None:
        return None if self.rate is None else sum(line.at_rate for line in self.lines)

    @property
    def difference(self) -> int | None:
        """Yield of the printed rate minus the need, cents."""
        return None if self.rate is None else self.total_at_rate - self.need

    @property
    def note(self) -> str:
        if self.rate is None:
            return (f"nicht aussagekräftig: auch mit {MAX_DECIMALS} Nachkommastellen verfehlt der Ertrag des Hebesatzes "
                    "den Bedarf um mehr als 0,1 %; maßgeblich ist die exakte Verteilung")
        if self.decimals > self.declared_decimals:
            return (f"{self.decimals} statt {self.declared_decimals} Nachkommastellen: mit "
                    f"{self.declared_decimals} verfehlte der Ertrag den Bedarf um mehr als 0,1 %")
        return ""


def tolerance(need: int, payers: int, unit: int) -> Fraction:
    """How far (cents) the yield of a printed rate may miss the need: 0.1 % of the need, but at least half a
    rounding unit per payer (each amount is rounded on its own)."""
    return max(abs(need) * TOLERANCE_SHARE, Fraction(payers * unit, 2))


def printed_rate(need: int, bases: list[int | Fraction], declared: int, unit: int,
                 base_total: int | Fraction | None = None) -> tuple[Decimal | None, int]:
    """The rate (percent) with the fewest decimals ≥ `declared` whose yield is within `tolerance` of the need,
    and its decimals; (None, MAX_DECIMALS) if none up to MAX_DECIMALS is. `base_total`: the sum of `bases`,
    where the caller knows it."""
    if base_total is None:
        base_total = sum(bases, Fraction(0))
    allowed = tolerance(need, len(bases), unit)
    ratios = [_ratio(base) for base in bases]
    for decimals in range(declared, max(declared, MAX_DECIMALS) + 1):
        rate = rate_percent(need, base_total, decimals)
        if abs(sum(_amounts_at_rate(ratios, rate, unit)) - need) <= allowed:
            return rate, decimals
    return None, max(declared, MAX_DECIMALS)


def levy_rates(allocation: Allocation) -> tuple[LevyRate, ...]:
    """One `LevyRate` per levy item (payers in AGS order)."""
    return tuple(iter_levy_rates(allocation))


def iter_levy_rates(allocation: Allocation) -> Iterator[LevyRate]:
    """`levy_rates` one item at a time: the Hebesaetze sheet holds one item's rate lines, not every item's."""
    decimals = allocation.book.parameters.rate_decimals
    unit = allocation.book.parameters.unit
    for item in allocation.items:
        if item.rule.route not in LEVY_ROUTES:
            continue
        base_total = item.key_total * 100  # keys of levy routes are euros
        if base_total <= 0:
            continue
        payers = [line for line in sorted(item.lines, key=lambda l: l.ags) if line.key > 0]
        bases = [line.key * 100 for line in payers]
        rate, used = printed_rate(item.deficit, bases, decimals, unit, base_total)
        at_rate = (_amounts_at_rate([_ratio(base) for base in bases], rate, unit) if rate is not None
                   else [None] * len(bases))
        lines = tuple(RateLine(line.ags, base, amount, line.amount)
                      for line, base, amount in zip(payers, bases, at_rate))
        yield LevyRate(item.item.id, item.rule.id, item.rule.route, item.deficit, base_total,
                       Fraction(item.deficit * 100) / base_total, rate, used, lines, decimals)
