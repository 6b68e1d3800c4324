"""The change of a levy amount between two stages, split into a base effect and a rate effect.

For one levy and one municipality with base B0 and rate r0 (percent) at the earlier stage and B1, r1 at the
later one, the amounts are A0 = round(B0 × r0 %) and A1 = round(B1 × r1 %). The change A1 − A0 is split into

- base effect = (B1 − B0) × r0 %   (what the new bases alone would have changed at the old rate), and
- rate effect = B1 × (r1 − r0) %   (what the new rate changes on the new bases).

Exactly, the two add up to B1 × r1 % − B0 × r0 %; the published amounts are rounded, so one effect must absorb
the rounding for the two to add up to A1 − A0 exactly. Decision: **the rate effect is rounded half up to the
rounding unit and the base effect takes the rest** (change − rate effect). The rate effect is the figure the
Kreistag decides and an auditor recomputes (new base × rate points); the base effect is driven by figures the
Kreis does not set (GFG data), so it carries the at most 1.5 units of the two amounts' own rounding. An effect
whose exact value is zero is shown as zero: if the bases did not change, the base effect is 0 and the rate effect
is the whole change; if the rate did not change, the rate effect is 0. All rounding is `money.round_to_unit`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from ..core.money import format_eur, round_to_unit

__all__ = ["Effects", "decompose", "describe"]


@dataclass(frozen=True, slots=True)
class Effects:
    """The change of one rounded levy amount (cents) and its two effects (cents); base + rate = change."""

    change: int
    base_effect: int
    rate_effect: int


def decompose(old_base: Fraction | int, old_rate: Decimal | Fraction, old_amount: int,
              new_base: Fraction | int, new_rate: Decimal | Fraction, new_amount: int, unit: int = 1) -> Effects:
    """Split `new_amount − old_amount` (rounded amounts, cents) into base and rate effect (see the module).

    Bases are in cents (exact), rates in percent. The effects add up exactly to the change."""
    old_base, new_base = Fraction(old_base), Fraction(new_base)
    old_rate, new_rate = Fraction(old_rate), Fraction(new_rate)
    change = new_amount - old_amount
    if new_rate == old_rate:
        return Effects(change, change, 0)
    if new_base == old_base:
        return Effects(change, 0, change)
    rate_effect = round_to_unit(new_base * (new_rate - old_rate) / 100, unit)
    return Effects(change, change - rate_effect, rate_effect)


def _cause(cents: int, rising: str, falling: str) -> str:
    return f"{format_eur(abs(cents))} {rising if cents > 0 else falling}"


def describe(levy: str, municipality: str, effects: Effects) -> str:
    """The change in words, e.g. "Die Kreisumlage von Alpen steigt um 12.345,67 €: 10.000,00 € durch höhere
    Umlagegrundlagen, 2.345,67 € durch den höheren Satz." Effects are named with their own direction."""
    if effects.change == 0 and effects.base_effect == 0:
        return f"Die {levy} von {municipality} bleibt unverändert."
    verb = "steigt" if effects.change > 0 else "sinkt" if effects.change < 0 else "bleibt gleich"
    head = f"Die {levy} von {municipality} {verb}"
    head += f" um {format_eur(abs(effects.change))}" if effects.change else ""
    parts = []
    if effects.base_effect:
        parts.append(_cause(effects.base_effect, "durch höhere Umlagegrundlagen", "durch niedrigere Umlagegrundlagen"))
    if effects.rate_effect:
        parts.append(_cause(effects.rate_effect, "durch den höheren Satz", "durch den niedrigeren Satz"))
    return f"{head}: {', '.join(parts)}." if parts else f"{head}."
