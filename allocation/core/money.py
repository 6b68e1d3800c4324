"""Money: integer cents, rounding and apportionment. The only module that rounds.

Amounts are `int` cents everywhere in the pipeline. `Decimal` appears only at the edges (reading a cell,
writing a cell, printing). Rounding is half-up (away from zero for negatives, so that rounding is
symmetric) to a rounding unit that is a setting (`Cent` = 1, `Euro` = 100 cents).

`apportion` splits a total over keys exactly: floor every exact quota, then hand the remaining units out by
largest remainder, ties by AGS ascending, never by row order. A negative total is split as its absolute
value and negated, so that -D gives exactly the negated shares of D.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from fractions import Fraction
from typing import Mapping

__all__ = [
    "ROUNDING_UNITS",
    "Keys",
    "Share",
    "apportion",
    "prepare_keys",
    "CELL_DIGITS",
    "CELL_CONTEXT",
    "MAX_CELL_CENTS",
    "cell_digits",
    "fits_cell",
    "cents_from_decimal",
    "cents_to_decimal",
    "decimal_from_cell",
    "format_eur",
    "fraction_to_decimal",
    "percent_points",
    "rate_percent",
    "ratio_to_decimal",
    "round_down_to_multiple",
    "round_to_unit",
    "split_evenly",
    "to_fraction",
]

# Rounding unit name (as written in the `Parameter` sheet) -> size in cents.
ROUNDING_UNITS: dict[str, int] = {"Cent": 1, "Euro": 100}

CENT = Decimal("0.01")
_EXACT_INTEGERS = 2 ** 53  # every whole number below this is exactly a double
# A spreadsheet number cell holds 15 significant digits exactly (an input amount is refused beyond them,
# `input-too-many-digits`); with cents that is at most 9,999,999,999,999.99 €, for single cells and sums alike.
CELL_DIGITS = 15
MAX_CELL_CENTS = 10 ** CELL_DIGITS - 1
# rounds to what a cell holds; `CELL_CONTEXT.plus(x) != x` says x has more than 15 significant digits
CELL_CONTEXT = Context(prec=CELL_DIGITS, rounding=ROUND_HALF_UP, traps=[])


def fits_cell(cents: int | Fraction) -> bool:
    """Whether an amount of `cents` (rounded half up to the cent, as written) fits one cell to the cent."""
    if isinstance(cents, Fraction) and cents.denominator != 1:
        cents = _half_up(cents)
    return -MAX_CELL_CENTS <= cents <= MAX_CELL_CENTS


def cell_digits(value: Decimal) -> Decimal:
    """A shown quotient (an exact amount to 6 places, a key total, a rate, Hebesatz points) rounded half up to at
    most 15 significant digits, so that its cell holds exactly the number written; unchanged if it has no more.
    Amounts and sums are never rounded here: they must fit (`fits_cell`) or the run stops."""
    return CELL_CONTEXT.plus(value)


def decimal_from_cell(value: object) -> Decimal:
    """A numeric cell value as the Decimal a person sees in Excel.

    Excel stores numbers as binary doubles and writes their shortest round-trip text into the file;
    `repr` of the double gives back exactly that text, so no float arithmetic can drift into amounts. A whole
    number below 2**53 is written without a decimal point (`5170004`, as Excel writes it and as openpyxl read
    it), not as Python's `5170004.0`; readers such as python-calamine hand every number over as a float.
    Raises ValueError for anything that is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if value.is_integer() and abs(value) < _EXACT_INTEGERS:
            return Decimal(int(value))
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a number") from None
    else:
        raise ValueError(f"{type(value).__name__} is not a number")
    if not result.is_finite():
        raise ValueError("not a finite number")
    return result


def cents_from_decimal(amount: Decimal) -> int:
    """Exact euros -> int cents. Raises ValueError if the amount has fractions of a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError("fractions of a cent")
    return int(cents)


_EXACT_CENTS = 10**26  # below the default context's 28 digits: scaleb keeps every digit


def cents_to_decimal(cents: int) -> Decimal:
    """int cents -> Decimal euros with two places (for writing cells and printing)."""
    if -_EXACT_CENTS < cents < _EXACT_CENTS:  # the same Decimal (two places) without a division and a quantize
        return Decimal(cents).scaleb(-2)
    return (Decimal(cents) / 100).quantize(CENT)


def to_fraction(value: int | Decimal | Fraction) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


def _half_up(value: Fraction) -> int:
    """Round a Fraction to the nearest integer, halves away from zero."""
    return _ratio_half_up(value.numerator, value.denominator)


def _ratio_half_up(numerator: int, denominator: int) -> int:
    """numerator ÷ denominator (denominator > 0, not necessarily in lowest terms) rounded half away from zero.

    Integer arithmetic only: the Fractions it replaces cost a gcd and an object per step."""
    whole, rest = divmod(-numerator if numerator < 0 else numerator, denominator)
    if 2 * rest >= denominator:
        whole += 1
    return -whole if numerator < 0 else whole


def round_to_unit(cents: int | Fraction, unit: int) -> int:
    """Round an amount in cents half-up to a multiple of `unit` cents; result in cents."""
    if not isinstance(cents, (int, Fraction)):
        cents = Fraction(cents)
    return _ratio_half_up(cents.numerator, cents.denominator * unit) * unit


def round_ratio_to_unit(numerator: int, denominator: int, unit: int) -> int:
    """numerator ÷ denominator cents (denominator > 0) rounded half-up to a multiple of `unit` cents, like
    `round_to_unit(Fraction(numerator, denominator), unit)` without building the Fraction."""
    return _ratio_half_up(numerator, denominator * unit) * unit


def decimal_ratio(value: Decimal) -> tuple[int, int]:
    """A finite Decimal as (numerator, denominator), denominator a power of ten: exact, no Fraction, no gcd."""
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value}")
    sign, digits, exponent = value.as_tuple()
    numerator = int("".join(map(str, digits)) or "0")
    if numerator == 0:
        return 0, 1  # 0E+999999999 is zero, not a power of ten to build
    if sign:
        numerator = -numerator
    if exponent >= 0:
        return numerator * 10**exponent, 1
    return numerator, 10**-exponent


def round_down_to_multiple(cents: int, multiple: int) -> int:
    """The largest multiple of `multiple` cents not above |cents|, with the sign of `cents` (towards zero).

    Saarland's § 25 Abs. 1 KFAG: a levy "auf einen vollen und durch 12 teilbaren Betrag in Euro abzurunden"
    is `round_down_to_multiple(cents, 1200)`.
    """
    if multiple <= 0:
        raise ValueError("multiple must be positive")
    sign = -1 if cents < 0 else 1
    return sign * (abs(cents) // multiple * multiple)


def split_evenly(total: int, parts: int, unit: int = 1) -> list[int]:
    """`total` cents in `parts` equal parts of whole `unit`s; the units left over go one each to the first parts.

    The parts add up exactly to `total`, which must be a multiple of `unit`. A negative total is split as its
    magnitude and negated, like `apportion`.
    """
    if parts <= 0 or unit <= 0:
        raise ValueError("parts and unit must be positive")
    if total % unit:
        raise ValueError(f"total {total} is not a multiple of the unit {unit}")
    sign = -1 if total < 0 else 1
    each, left = divmod(abs(total) // unit, parts)
    return [sign * (each + (1 if index < left else 0)) * unit for index in range(parts)]


def fraction_to_decimal(value: Fraction, places: int) -> Decimal:
    """A Fraction rounded half-up to `places` decimals, for display only."""
    return ratio_to_decimal(value.numerator, value.denominator, places)


def ratio_to_decimal(numerator: int, denominator: int, places: int) -> Decimal:
    """numerator ÷ denominator (denominator > 0) rounded half-up to `places` decimals, like
    `fraction_to_decimal(Fraction(numerator, denominator), places)` without building the Fraction."""
    return Decimal(_ratio_half_up(numerator * 10**places, denominator)).scaleb(-places)


@dataclass(frozen=True, slots=True)
class Share:
    """One recipient's part of an apportioned total.

    `exact` is the exact quota in cents (total × weight ÷ weight sum, built when asked: a split keeps three
    integers, not a Fraction per recipient); `amount` the rounded cents. `extra_units` is 1 when the
    recipient received one remainder unit; `rank` is its place in the largest-remainder order (1 = largest
    remainder; None if its quota had no remainder).
    """

    ags: str
    key: Fraction
    amount: int
    floor_units: int
    extra_units: int
    rank: int | None
    total: int  # the apportioned total, cents
    weight: int  # the key as an integer (`Keys.weights`)
    weight_sum: int

    @property
    def exact(self) -> Fraction:
        return Fraction(self.total * self.weight, self.weight_sum)


def _integer_keys(keys: Mapping[str, Fraction]) -> dict[str, int]:
    """Scale rational keys by the lcm of their denominators: same ratios, integer arithmetic."""
    lcm = 1
    for value in keys.values():
        lcm = lcm * value.denominator // math.gcd(lcm, value.denominator)
    return {ags: value.numerator * (lcm // value.denominator) for ags, value in keys.items()}  # exact: lcm is a multiple


@dataclass(frozen=True, slots=True)
class Keys:
    """Keys made ready for `apportion`: the exact keys, the same ratios as integers (`weights`) and their sum.
    A run splits many items over the same keys (every item of the Kreisumlage over the same bases); preparing
    them once spares each split the conversion, the check and the common denominator."""

    rational: Mapping[str, Fraction]
    weights: Mapping[str, int]
    weight_sum: int

    def shares(self) -> dict[str, Fraction]:
        """Each recipient's exact share of the whole (key ÷ key sum, = weight ÷ weight sum)."""
        return {ags: Fraction(weight, self.weight_sum) for ags, weight in self.weights.items()}


def prepare_keys(keys: Mapping[str, int | Decimal | Fraction]) -> Keys:
    """Check and prepare keys (AGS -> non-negative key) once for several `apportion` calls.

    Raises ValueError for a negative key or a key sum of zero."""
    rational = {ags: to_fraction(value) for ags, value in keys.items()}
    if any(value < 0 for value in rational.values()):
        raise ValueError("negative key")
    weights = _integer_keys(rational)
    weight_sum = sum(weights.values())
    if weight_sum == 0:
        raise ValueError("keys sum to zero")
    return Keys(rational, weights, weight_sum)


def apportion(total: int, keys: Mapping[str, int | Decimal | Fraction] | Keys, unit: int = 1) -> dict[str, Share]:
    """Split `total` cents over `keys` (AGS -> non-negative key, or `prepare_keys` of them) in multiples of
    `unit` cents.

    The shares add up exactly to `total`, which must be a multiple of `unit`. Raises ValueError for a
    negative key, a key sum of zero, or a total that is not a multiple of the unit.
    """
    if unit <= 0:
        raise ValueError("rounding unit must be positive")
    if total % unit:
        raise ValueError(f"total {total} is not a multiple of the rounding unit {unit}")
    prepared = keys if isinstance(keys, Keys) else prepare_keys(keys)
    rational, weights, weight_sum = prepared.rational, prepared.weights, prepared.weight_sum
    sign = -1 if total < 0 else 1
    units = abs(total) // unit
    floors: dict[str, int] = {}
    remainders: dict[str, int] = {}
    for ags, weight in weights.items():
        floors[ags], remainders[ags] = divmod(units * weight, weight_sum)
    left = units - sum(floors.values())
    order = sorted((ags for ags, rest in remainders.items() if rest), key=lambda a: (-remainders[a], a))
    ranks = {ags: position for position, ags in enumerate(order, start=1)}
    winners = set(order[:left])
    shares = {}
    for ags, weight in weights.items():
        extra = 1 if ags in winners else 0
        shares[ags] = Share(
            ags=ags,
            key=rational[ags],
            amount=sign * (floors[ags] + extra) * unit,
            floor_units=floors[ags],
            extra_units=extra,
            rank=ranks.get(ags),
            total=total,
            weight=weight,
            weight_sum=weight_sum,
        )
    return shares


def percent_points(amount_cents: int, base_cents: int, places: int = 4) -> Decimal | None:
    """amount ÷ base × 100, rounded half-up to `places` decimals and to at most 15 significant digits (a tiny
    base gives huge points: shown as a cell holds them, `cell_digits`); None for a zero base."""
    if base_cents == 0:
        return None
    return cell_digits(fraction_to_decimal(Fraction(amount_cents * 100, base_cents), places))


def rate_percent(need: int | Decimal | Fraction, base: int | Decimal | Fraction, decimals: int) -> Decimal:
    """The levy rate that finances `need` on `base`: need ÷ base × 100, half-up to `decimals` places."""
    base_fraction = to_fraction(base)
    if base_fraction <= 0:
        raise ValueError("levy base must be positive")
    return fraction_to_decimal(to_fraction(need) * 100 / base_fraction, decimals)


def de_number(value: Decimal, places: int = 2) -> str:
    """An exact Decimal in German digits (1.234,5678), at least `places` decimals, no digit dropped: the one
    German number format of messages, letters and sheets' texts."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        value = value.quantize(Decimal(1).scaleb(-places))  # only adds zeros: -exponent < places
    return f"{value:,f}".translate(_GERMAN_SEPARATORS)


_GERMAN_SEPARATORS = str.maketrans(",.", ".,")  # swapped in one pass


def de_percent(value: Decimal) -> str:
    return f"{de_number(value.normalize() if value == value.to_integral() else value, 2)} %"


def format_eur(cents: int) -> str:
    """German display: 1.234,56 €."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros:,}".replace(",", ".") + f",{rest:02d} €"
