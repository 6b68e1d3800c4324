"""Hypothesis strategies and small builders shared by the property tests (tests/test_prop_*.py).

Nothing here computes an expected value: oracles live in the tests that use them. This module only makes
inputs (AGS sets, keys, totals, condition trees, records, input workbooks) and renders them in the formats
the package reads (rule-file YAML, xlsx), so that every generated case goes through the real parsers.

Rounding edges: amounts are rounded half up (away from zero), so a rounding rule that differs only at exact
halves (half-even, half towards +infinity) is caught only by inputs whose exact amount lies exactly halfway
between two units. Random figures almost never do; `nudge_to_half` moves one drawn figure to the nearest value
that makes the amount such a tie, and the strategies below use it for about half of their cases
(`at_rate_cases`, `effect_cases`, `statute_cases`, `input_specs`, `statute_specs`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st

from allocation.core.model import COMPONENTS, DISTRICT_HOST, CostItem, InputBook, Municipality, Parameters
from allocation.core.problems import Location

__all__ = [
    "scaled",
    "nudge_to_half",
    "at_rate_cases",
    "effect_cases",
    "StatuteCase",
    "statute_cases",
    "cost_and_funding",
    "ags_codes",
    "key_values",
    "apportion_cases",
    "ApportionCase",
    "Column",
    "schemas",
    "conditions_over",
    "records_over",
    "render_condition",
    "rulebook_text",
    "make_book",
    "InputSpec",
    "input_specs",
    "write_input_workbook",
    "E2E_RULES",
    "E2E_COMPONENTS",
    "E2E_LEVY_RULES",
    "StatuteSpec",
    "statute_specs",
]


def scaled(fraction: float, minimum: int) -> settings:
    """Settings for an expensive test: a fraction of the active profile's examples, at least `minimum`.

    Evaluated when the test module is imported, i.e. after pytest loaded the profile
    (`--hypothesis-profile=thorough` raises it for these tests too).
    """
    return settings(max_examples=max(minimum, int(settings.default.max_examples * fraction)))


# --------------------------------------------------------------------------------------- exact halves

def nudge_to_half(value: int, multiplier: int, offset: int, modulus: int, minimum: int = 0) -> int | None:
    """The integer v ≥ `minimum` nearest to `value` for which (v × multiplier + offset) ÷ modulus lies exactly
    halfway between two whole numbers, i.e. v × multiplier + offset ≡ modulus / 2 (mod modulus), `modulus` even.

    An amount exact = (v × multiplier + offset) ÷ modulus units is then a .5 tie of rounding to the unit. None
    where no v makes it one (gcd(multiplier, modulus) does not divide modulus / 2 − offset). Only integer
    congruences: the inputs it builds are checked against the tests' own oracles."""
    if modulus <= 0 or modulus % 2:
        raise ValueError("modulus must be positive and even")
    target = (modulus // 2 - offset) % modulus
    common = math.gcd(multiplier % modulus, modulus)
    if target % common:
        return None
    step = modulus // common
    first = (target // common) * pow((multiplier % modulus) // common, -1, step) % step if step > 1 else 0
    candidate = value - (value - first) % step  # the solution at or below `value`
    if candidate < minimum or value - candidate > step // 2:
        candidate += step
    return candidate


def _ratio_of(value: Decimal) -> tuple[int, int]:
    """A finite Decimal as (numerator, power-of-ten denominator)."""
    exponent = value.as_tuple().exponent
    places = max(0, -exponent)
    return int(value.scaleb(places)), 10**places


@st.composite
def at_rate_cases(draw):
    """(base cents, rate percent, unit) for `amount_at_rate`: a base and a rate of 0 to 6 decimals as drawn, or
    (half the cases) the base nudged so that base × rate ÷ 100 is exactly (k + ½) units. A rate may be negative
    (a surplus given back, `rates.printed_rate`), so ties below zero occur too."""
    unit = draw(st.sampled_from([1, 100]))
    places = draw(st.integers(0, 6))
    rate_units = draw(st.integers(0, 100 * 10**places))  # percent × 10^places, 0 to 100 %
    base = draw(st.one_of(st.integers(0, 10**12), st.integers(0, 1_000)))
    if draw(st.booleans()) and rate_units:
        # base × rate_units ÷ (100 × 10^places × unit) units; an even rate too rich in factors 2 has no half
        # (one unit of its last place less makes it odd, and an odd one always has)
        modulus = 100 * 10**places * unit
        nudged = nudge_to_half(base, rate_units, 0, modulus)
        if nudged is None:
            rate_units -= 1
            nudged = nudge_to_half(base, rate_units, 0, modulus)
        base = nudged
    sign = draw(st.sampled_from([1, 1, -1]))
    return base, Decimal(sign * rate_units).scaleb(-places), unit


# cents up to 100 bn €, and small bases where a few cents decide
_effect_bases = st.one_of(st.integers(min_value=0, max_value=10**13), st.integers(min_value=0, max_value=10_000))
_effect_rates = st.integers(min_value=0, max_value=1_000_000)  # percent × 10^4: 0–100 % with 4 decimals


@st.composite
def effect_cases(draw):
    """(old base, old rate, new base, new rate, unit) for `stages.decompose`, bases in cents and rates in percent
    with 4 decimals. In half the cases the new base is nudged so that the rate effect, new base × (new rate −
    old rate) ÷ 100, is exactly (k + ½) units: positive or, for a falling rate, negative."""
    b0, b1 = draw(_effect_bases), draw(_effect_bases)
    r0, r1 = draw(_effect_rates), draw(_effect_rates)
    unit = draw(st.sampled_from([1, 100]))
    if draw(st.booleans()):
        if r1 == r0:
            r1 = r0 + 1 if r0 < 1_000_000 else r0 - 1
        modulus = 10**6 * unit  # new base × Δrate (× 10^-4 %) ÷ 100 = new base × Δrate ÷ 10^6 cents
        nudged = nudge_to_half(b1, abs(r1 - r0), 0, modulus)
        if nudged is None:  # Δrate too rich in factors 2: one unit of the new rate closer to the old one
            r1 += -1 if r1 > r0 else 1
            nudged = nudge_to_half(b1, abs(r1 - r0), 0, modulus)
        b1 = nudged
    return b0, Decimal(r0).scaleb(-4), b1, Decimal(r1).scaleb(-4), unit


@dataclass(frozen=True)
class StatuteCase:
    """A statute levy on Steuerkraftzahlen (weight `tax_weight` %) + Schluesselzuweisungen (`key_weight` %), cents,
    with one rate for the whole base or one per component (`rates`, percent), optionally an extent factor per
    municipality (`factors`, None without `extent`)."""

    values: tuple[tuple[int, int], ...]  # (Steuerkraftzahlen, Schluesselzuweisungen) cents, one per municipality
    tax_weight: Decimal
    key_weight: Decimal
    rates: tuple[Decimal, ...]  # (whole base,) or (Steuerkraftzahlen, Schluesselzuweisungen)
    factors: tuple[Decimal, ...] | None
    unit: int


_weights = st.one_of(st.integers(1, 100).map(Decimal), st.sampled_from([Decimal(80), Decimal(90), Decimal(100)]),
                     st.integers(1, 10_000).map(lambda n: Decimal(n).scaleb(-2)))  # 0.01 .. 100 %
_factors = st.one_of(st.sampled_from([Decimal(0), Decimal(1), Decimal("0.5"), Decimal("1.5"), Decimal("0.25")]),
                     st.integers(0, 30_000).map(lambda n: Decimal(n).scaleb(-4)))  # 0 .. 3, 4 decimals


@st.composite
def statute_cases(draw, max_municipalities: int = 6) -> StatuteCase:
    """Statute levies whose weights are not all 100 and whose lines may carry an extent factor; in about half the
    lines the Steuerkraftzahlen are nudged so that the line's exact amount is a .5 tie of the rounding unit. The
    first municipality always has a positive weighted base and factor (the levy's item needs a key sum > 0)."""
    count = draw(st.integers(1, max_municipalities))
    tax_weight, key_weight = draw(_weights), draw(_weights)
    per_component = draw(st.booleans())
    rates = tuple(Decimal(draw(st.integers(0, 100 * 10**4))).scaleb(-4) for _ in range(2 if per_component else 1))
    factors = tuple(draw(_factors) for _ in range(count)) if draw(st.booleans()) else None
    if factors is not None and factors[0] == 0:
        factors = (Decimal(1),) + factors[1:]
    unit = draw(st.sampled_from([1, 100]))
    tax_rate, key_rate = _ratio_of(rates[0]), _ratio_of(rates[-1])
    (tw, tw_d), (kw, kw_d) = _ratio_of(tax_weight), _ratio_of(key_weight)
    values = []
    for index in range(count):
        minimum = 1 if index == 0 else 0
        tax = draw(st.one_of(st.integers(minimum, 10**11), st.integers(minimum, 10**4)))
        key = draw(st.one_of(st.integers(0, 10**10), st.integers(0, 10**4)))
        factor = _ratio_of(factors[index]) if factors is not None else (1, 1)
        if draw(st.booleans()):
            # exact (cents) = (tax × tw/tw_d/100 × tax_rate/100 + key × kw/kw_d/100 × key_rate/100) × factor;
            # all over one denominator: (tax × A + key × B) ÷ D with integers A, B, D
            common = tw_d * kw_d * tax_rate[1] * key_rate[1] * 10**4 * factor[1]
            a = tw * kw_d * tax_rate[0] * key_rate[1] * factor[0]
            b = kw * tw_d * key_rate[0] * tax_rate[1] * factor[0]
            nudged = nudge_to_half(tax, a, key * b, common * unit, minimum) if a else None
            tax = nudged if nudged is not None else tax
        values.append((tax, key))
    return StatuteCase(tuple(values), tax_weight, key_weight, rates, factors, unit)


@st.composite
def cost_and_funding(draw, maximum: int = 10**9) -> tuple[int, int]:
    """(cost, funding) in cents; in half the cases the funding is nudged so that the deficit, cost − funding, ends
    in exactly 50 Cent: a .5 tie when the deficit is rounded to whole euros."""
    cost, funding = draw(st.integers(0, maximum)), draw(st.integers(0, maximum))
    if draw(st.booleans()):
        funding = nudge_to_half(funding, -1, cost, 100)  # cost − funding ≡ 50 (mod 100)
    return cost, funding


# ------------------------------------------------------------------------------------- apportionment

ags_codes = st.integers(min_value=0, max_value=99_999_999).map(lambda n: f"{n:08d}")

# Small integers make equal remainders (ties, decided by AGS) frequent; the other kinds cover large,
# decimal and rational keys as the pipeline produces them (bases in euros, weighted composite keys).
key_values = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False),
    st.fractions(min_value=0, max_value=10**6, max_denominator=997),
)


@dataclass(frozen=True)
class ApportionCase:
    total: int  # cents, a multiple of unit
    keys: dict  # AGS -> key (int | Decimal | Fraction), key sum > 0
    unit: int  # 1 (Cent) or 100 (Euro)


@st.composite
def apportion_cases(draw, max_size: int = 14) -> ApportionCase:
    codes = draw(st.lists(ags_codes, min_size=1, max_size=max_size, unique=True))
    values = draw(st.lists(key_values, min_size=len(codes), max_size=len(codes)))
    if sum(Fraction(v) for v in values) == 0:
        values[draw(st.integers(0, len(values) - 1))] = draw(st.integers(1, 50))
    unit = draw(st.sampled_from([1, 100]))
    units = draw(st.one_of(st.integers(-40, 40), st.integers(-10**11, 10**11)))
    return ApportionCase(units * unit, dict(zip(codes, values)), unit)


# ------------------------------------------------------------------------------ conditions and records

# Values chosen for the corners where durable_rules compares loosely (see engine.py): numeric-looking
# text, the empty string, 0 / 1 / 1.0, negatives, decimals, and text that resembles the engine's encoding.
NUMBERS = [Decimal(v) for v in ("0", "1", "1.0", "-1", "0.5", "2.25", "-3.75", "10", "100", "0.1", "-0.1",
                                "999999999999999", "-999999999999999", "0.0001", "0.000015", "-0.000025")]
TEXTS = ["", "1", "01", "1.0", "0", "-1", "abc", "Kreis", "KIM", " 1", "1 ", "ä", 'a"b', "a\\b", "true",
         "null", "s:1", "s:", "number", "05170048", "1e3", "NaN"]
# No control characters: an xlsx cell cannot hold them, and neither can the C strings of durable_rules.
_free_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=4)


numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-5, 5).map(Decimal),
                    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False),
                    # tiny decimals (printed by Python in exponent form, e.g. 1E-9, 5E-05): once crashed
                    # durable_rules' JSON parser (tests/test_regressions.py)
                    st.builds(lambda sign, n: Decimal(sign * n).scaleb(-9),
                              st.sampled_from([1, -1]), st.integers(1, 999_999)),
                    )
# Values a record may hold but a rule constant may not (more than 15 significant digits or >= 10^15).
record_only_numbers = st.sampled_from([Decimal("1E+20"), Decimal("-1E+20"), Decimal("1000000000000000"),
                                       Decimal("0.30000000000000004"), Decimal("9007199254740993")])
texts = st.one_of(st.sampled_from(TEXTS), _free_text)

COLUMN_NAMES = ["Kategorie", "Traeger", "Stellen", "Zahl", "Wert", "Spalte 1", "Größe", "x", "eq", "in"]


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool  # every record holds a number here: ordered operators are allowed


@st.composite
def schemas(draw, max_columns: int = 4) -> tuple[Column, ...]:
    names = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=1, max_size=max_columns, unique=True))
    return tuple(Column(name, draw(st.booleans())) for name in names)


def _constant_for(column: Column):
    # Any column may be compared for equality with text or numbers; text never equals a number.
    return st.one_of(numbers, texts) if not column.numeric else st.one_of(numbers, numbers, texts)


@st.composite
def _comparison(draw, schema: tuple[Column, ...]):
    column = draw(st.sampled_from(schema))
    ops = ["eq", "ne", "in"] + (["lt", "le", "gt", "ge"] if column.numeric else [])
    op = draw(st.sampled_from(ops))
    if op == "in":
        value = tuple(draw(st.lists(_constant_for(column), min_size=1, max_size=4)))
    elif op in ("lt", "le", "gt", "ge"):
        value = draw(numbers)
    else:
        value = draw(_constant_for(column))
    return ("cmp", column.name, op, value)


def conditions_over(schema: tuple[Column, ...], max_leaves: int = 8):
    """Condition trees as plain tuples: ("cmp", column, op, value) | ("all"|"any", [children]) | ("not", child)."""
    return st.recursive(
        _comparison(schema),
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda cs: ("all", cs)),
            st.lists(children, max_size=3).map(lambda cs: ("any", cs)),
            children.map(lambda c: ("not", c)),
        ),
        max_leaves=max_leaves,
    )


def records_over(schema: tuple[Column, ...], min_size: int = 20, max_size: int = 80):
    """Records (column -> str | Decimal); a text column may be missing (the engine reads it as "")."""
    fields = {}
    for column in schema:
        if column.numeric:
            fields[column.name] = st.one_of(numbers, record_only_numbers)
        else:
            fields[column.name] = st.one_of(texts, numbers, st.just(None))
    record = st.fixed_dictionaries(fields).map(lambda r: {k: v for k, v in r.items() if v is not None})
    return st.lists(record, min_size=min_size, max_size=max_size)


def _scalar(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:f}"
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def render_condition(node, rnd) -> str:
    """A condition tree as YAML flow text, using the different spellings the rule language allows."""
    kind = node[0]
    if kind == "cmp":
        _, column, op, value = node
        key = _scalar(column)
        if op == "eq" and rnd.random() < 0.5:
            return "{" + f"{key}: {_scalar(value)}" + "}"
        operand = "[" + ", ".join(_scalar(v) for v in value) + "]" if op == "in" else _scalar(value)
        return "{" + f"{key}: {{{op}: {operand}}}" + "}"
    if kind == "not":
        return "{" + f'"not": {render_condition(node[1], rnd)}' + "}"
    children = node[1]
    if kind == "all" and children and all(c[0] == "cmp" for c in children) and rnd.random() < 0.5:
        columns = [c[1] for c in children]
        if len(set(columns)) == len(columns):
            # several columns in one mapping: an implicit "all"
            return "{" + ", ".join(render_condition(c, rnd)[1:-1] for c in children) + "}"
        ops = [c[2] for c in children]
        if len(set(columns)) == 1 and len(set(ops)) == len(ops):
            # several operators on one column: also an implicit "all"
            parts = []
            for c in children:
                operand = "[" + ", ".join(_scalar(v) for v in c[3]) + "]" if c[2] == "in" else _scalar(c[3])
                parts.append(f"{c[2]}: {operand}")
            return "{" + f"{_scalar(columns[0])}: {{{', '.join(parts)}}}" + "}"
    return "{" + f'"{kind}": [' + ", ".join(render_condition(c, rnd) for c in children) + "]}"


def rulebook_text(rules: list[tuple[str, object, int]], hit_policy: str, rnd) -> str:
    """A rule file with one district_levy rule per (id, condition tree, priority)."""
    lines = ["district: Testkreis", "valid_from: 2000", "valid_to: 2100", f"hit_policy: {hit_policy}", "state: NW",
             "rules:"]
    for rule_id, tree, priority in rules:
        lines += [f"  - id: {rule_id}",
                  '    legal_basis: "§ 56 Abs. 1 KrO NRW"',
                  f"    when: {render_condition(tree, rnd)}",
                  "    route: district_levy",
                  f"    priority: {priority}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- in-memory input book

def make_book(municipalities: list[tuple[str, int, dict]], items: list[tuple[str, dict, int, int]],
              unit: int = 1, municipality_columns: tuple[str, ...] = (), item_columns: tuple[str, ...] = ()
              ) -> InputBook:
    """An InputBook without a workbook: municipalities (AGS, base cents, attrs), items (id, attrs,
    Personalkosten cents, Foerderung cents), for stage-level properties (decide, allocate)."""
    file = "generated.xlsx"
    parameters = Parameters("Testkreis", 2022, "Cent" if unit == 1 else "Euro", 2, Location(file, "Parameter"))
    m_records = tuple(
        Municipality(ags, f"Gemeinde {ags}", base, {"AGS": ags, **attrs}, Location(file, "Gemeinden", row), {})
        for row, (ags, base, attrs) in enumerate(municipalities, start=2))
    i_records = tuple(
        CostItem(item_id, item_id, str(attrs.get("Kategorie", "")),
                 {c: (cost if c == "Personalkosten" else 0) for c in COMPONENTS}, funding, DISTRICT_HOST,
                 {"ID": item_id, **attrs}, Location(file, "Kostenpositionen", row), {})
        for row, (item_id, attrs, cost, funding) in enumerate(items, start=2))
    return InputBook(file, "0" * 64, parameters, m_records, i_records, (),
                     ("AGS", "Gemeinde", "Umlagegrundlagen", *municipality_columns),
                     ("ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger", *item_columns))


# ---------------------------------------------------------------------------------- input workbooks

E2E_RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
hit_policy: unique
state: NW
rules:
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: Umlage, Traeger: Kreis}
    route: district_levy
  - id: jugendamt
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: Jugend, Traeger: Kreis}
    route: differentiated_levy
    payers: {Jugendamt_Kreis: 1}
    components: [Personalkosten, Sachkosten]
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: Bus, Traeger: Kreis}
    route: direct_billing
    key: {Linienminuten: 70, Wagenkm: 30}
  - id: beratung
    legal_basis: "§ 23 GkG NRW"
    when: {Kategorie: Beratung, Traeger: Kreis}
    route: direct_billing
    key: Schluessel
  - id: traeger
    legal_basis: "§ 2 GO NRW"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
"""
E2E_COMPONENTS = {  # rule id -> eligible components (as E2E_RULES says)
    "umlage": COMPONENTS, "jugendamt": ("Personalkosten", "Sachkosten"), "bus": COMPONENTS,
    "beratung": COMPONENTS, "traeger": COMPONENTS,
}


@dataclass(frozen=True)
class InputSpec:
    rounding: str  # "Cent" | "Euro"
    decimals: int  # Hebesatz_Nachkommastellen
    # AGS, base (Decimal euros), Jugendamt_Kreis (0/1), Linienminuten, Wagenkm
    municipalities: tuple[tuple[str, Decimal, int, int, int], ...]
    # ID, Kategorie, (Personal, Sach, Gemein) Decimal euros, Foerderung Decimal euros, Traeger ("" | Kreis | AGS)
    items: tuple[tuple[str, str, tuple[Decimal, Decimal, Decimal], Decimal, str], ...]
    keys: tuple[tuple[str, str, int], ...] = field(default=())  # Schluessel: ID, AGS, Wert

    def rule_of(self, category: str, host: str) -> str:
        return _rule_of(category, host)


def _rule_of(category: str, host: str) -> str:
    """The rule of E2E_RULES (and E2E_LEVY_RULES) that decides an item."""
    if host not in ("", DISTRICT_HOST):
        return "traeger"
    return {"Umlage": "umlage", "Jugend": "jugendamt", "Bus": "bus", "Beratung": "beratung"}[category]


_euros = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)
_small_euros = st.decimals(min_value=0, max_value=50, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def input_specs(draw, max_municipalities: int = 8, max_items: int = 6) -> InputSpec:
    """Input workbooks whose items every rule of E2E_RULES can allocate (all keys have a positive sum)."""
    codes = draw(st.lists(ags_codes, min_size=1, max_size=max_municipalities, unique=True))
    rounding = draw(st.sampled_from(["Cent", "Euro"]))
    rows = []
    for code in codes:
        base = draw(st.one_of(_euros, st.just(Decimal(0)), _small_euros))
        rows.append([code, base, draw(st.integers(0, 1)), draw(st.integers(0, 500)), draw(st.integers(0, 900))])
    # keep every key usable: one municipality with a positive base in the youth office's payer set and
    # positive usage figures
    anchor = draw(st.integers(0, len(rows) - 1))
    rows[anchor][1] = max(rows[anchor][1], Decimal("0.01"))
    rows[anchor][2] = 1
    rows[anchor][3] = max(rows[anchor][3], 1)
    rows[anchor][4] = max(rows[anchor][4], 1)
    municipalities = tuple(tuple(r) for r in rows)
    count = draw(st.integers(1, max_items))
    items = []
    keys = []
    for i in range(count):
        item_id = f"P-{i + 1}"
        category = draw(st.sampled_from(["Umlage", "Jugend", "Bus", "Beratung"]))
        host = draw(st.sampled_from(["", DISTRICT_HOST, DISTRICT_HOST, "host"]))
        if host == "host":
            host = draw(st.sampled_from(codes))
        costs = tuple(draw(st.one_of(_euros, _small_euros)) for _ in range(3))
        funding = draw(st.one_of(st.just(Decimal(0)), _euros, _small_euros))
        if rounding == "Euro" and draw(st.booleans()):
            # the deficit (eligible components − funding) ends in exactly 50 Cent: a .5 tie of whole euros
            eligible = sum(dict(zip(COMPONENTS, costs))[c] for c in E2E_COMPONENTS[_rule_of(category, host)])
            cents = nudge_to_half(int(funding * 100), -1, int(eligible * 100), 100)
            funding = Decimal(cents).scaleb(-2)
        items.append((item_id, category, costs, funding, host))
        if category == "Beratung":
            chosen = draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
            values = [draw(st.integers(0, 400)) for _ in chosen]
            values[0] = max(values[0], 1)
            keys += [(item_id, code, value) for code, value in zip(chosen, values)]
    return InputSpec(rounding, draw(st.sampled_from([2, 4])), municipalities, tuple(items), tuple(keys))


# The rules of E2E_RULES with the two levy rules financing levies of the budget statute: the Kreisumlage on
# weighted components (Steuerkraft and Zuweisungen, weights drawn), the Jugendamtsumlage on Umlagegrundlagen
# with an extent factor (Mehr-/Minderbelastung, § 56 Abs. 4 KrO NRW). Rates come from the Umlagesaetze sheet.
E2E_LEVY_RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
hit_policy: unique
state: NW
levies:
  - id: kreisumlage
    name: Kreisumlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    base: {{Steuerkraft: {tax_weight}, Zuweisungen: {grant_weight}}}
  - id: jugendamtsumlage
    name: Jugendamtsumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    payers: {{Jugendamt_Kreis: 1}}
    extent: Faktor
rules:
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {{Kategorie: Umlage, Traeger: Kreis}}
    route: district_levy
    levy: kreisumlage
  - id: jugendamt
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {{Kategorie: Jugend, Traeger: Kreis}}
    route: differentiated_levy
    levy: jugendamtsumlage
    components: [Personalkosten, Sachkosten]
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {{Kategorie: Bus, Traeger: Kreis}}
    route: direct_billing
    key: {{Linienminuten: 70, Wagenkm: 30}}
  - id: beratung
    legal_basis: "§ 23 GkG NRW"
    when: {{Kategorie: Beratung, Traeger: Kreis}}
    route: direct_billing
    key: Schluessel
  - id: traeger
    legal_basis: "§ 2 GO NRW"
    when: {{Traeger: {{ne: Kreis}}}}
    route: host_bears
"""


@dataclass(frozen=True)
class StatuteSpec:
    """An input workbook of `input_specs` with statutory levies (E2E_LEVY_RULES): per municipality Steuerkraft and
    Zuweisungen (euros) and the extent factor Faktor; the component weights (whole percent, 1 to 100) and one rate
    per levy (percent, 4 decimals) in the Umlagesaetze sheet."""

    inputs: InputSpec
    tax: tuple[Decimal, ...]  # Steuerkraft per municipality (in the order of inputs.municipalities), euros
    grants: tuple[Decimal, ...]  # Zuweisungen, euros
    factors: tuple[Decimal, ...]  # Faktor
    tax_weight: int
    grant_weight: int
    county_rate: Decimal  # Kreisumlage, percent
    youth_rate: Decimal  # Jugendamtsumlage, percent

    def rules(self) -> str:
        return E2E_LEVY_RULES.format(tax_weight=self.tax_weight, grant_weight=self.grant_weight)


_rates = st.integers(0, 100 * 10**4).map(lambda n: Decimal(n).scaleb(-4))


@st.composite
def statute_specs(draw, max_municipalities: int = 6, max_items: int = 5) -> StatuteSpec:
    """Input workbooks for E2E_LEVY_RULES. The first municipality has Steuerkraft > 0 (the Kreisumlage's key sum
    is positive) and every payer of the Jugendamtsumlage with a positive base a positive factor. In about half
    the municipalities Steuerkraft is nudged so that its Kreisumlage is a .5 tie of the rounding unit, and in
    about half the payers the Umlagegrundlagen so that their Jugendamtsumlage is one."""
    inputs = draw(input_specs(max_municipalities, max_items))
    unit = 1 if inputs.rounding == "Cent" else 100
    tax_weight, grant_weight = draw(st.sampled_from([100, 80, 90, 50])), draw(st.integers(1, 100))
    county_rate, youth_rate = draw(_rates), draw(_rates)
    (county, county_d), (youth, youth_d) = _ratio_of(county_rate), _ratio_of(youth_rate)
    rows, tax, grants, factors = [], [], [], []
    for index, (ags, base, payer, minutes, km) in enumerate(inputs.municipalities):
        steuer = draw(st.one_of(st.integers(1 if index == 0 else 0, 10**9), st.integers(0, 10**5)))
        zuweisung = draw(st.one_of(st.integers(0, 10**9), st.integers(0, 10**5)))
        if county and draw(st.booleans()):
            # (S × tw + Z × gw) ÷ 100 × county ÷ county_d ÷ 100 cents, S and Z in cents
            nudged = nudge_to_half(steuer, tax_weight * county, zuweisung * grant_weight * county,
                                   10**4 * county_d * unit, 1 if index == 0 else 0)
            steuer = nudged if nudged is not None else steuer
        factor = draw(st.one_of(st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("1.5"), Decimal(0)]),
                                st.integers(1, 3000).map(lambda n: Decimal(n).scaleb(-3))))
        base_cents = int(base * 100)
        if payer == 1 and base_cents > 0:
            factor = factor or Decimal("0.25")
            (f, f_d) = _ratio_of(factor)
            if youth and draw(st.booleans()):  # B × youth ÷ youth_d ÷ 100 × f ÷ f_d cents, B in cents
                nudged = nudge_to_half(base_cents, youth * f, 0, 100 * youth_d * f_d * unit, 1)
                base_cents = nudged if nudged is not None else base_cents
        rows.append((ags, Decimal(base_cents).scaleb(-2), payer, minutes, km))
        tax.append(Decimal(steuer).scaleb(-2))
        grants.append(Decimal(zuweisung).scaleb(-2))
        factors.append(factor)
    inputs = InputSpec(inputs.rounding, inputs.decimals, tuple(rows), inputs.items, inputs.keys)
    return StatuteSpec(inputs, tuple(tax), tuple(grants), tuple(factors), tax_weight, grant_weight, county_rate,
                       youth_rate)


def write_input_workbook(path: Path, spec: InputSpec, statute: StatuteSpec | None = None) -> None:
    """The input workbook in the contract's layout (see allocation/workbook/inputs.py, allocation/workbook/template.py);
    with `statute`, also its columns Steuerkraft, Zuweisungen and Faktor and its Umlagesaetze sheet."""
    from openpyxl import Workbook

    workbook = Workbook()
    parameters = workbook.active
    parameters.title = "Parameter"
    for row in (["Parameter", "Wert"], ["Kreis", "Testkreis"], ["Haushaltsjahr", 2022],
                ["Rundung", spec.rounding], ["Hebesatz_Nachkommastellen", spec.decimals]):
        parameters.append(row)
    municipalities = workbook.create_sheet("Gemeinden")
    levy_columns = ["Steuerkraft", "Zuweisungen", "Faktor"] if statute is not None else []
    municipalities.append(["AGS", "Gemeinde", "Umlagegrundlagen", "Jugendamt_Kreis", "Linienminuten", "Wagenkm",
                           *levy_columns])
    for index, (ags, base, youth, minutes, km) in enumerate(spec.municipalities):
        extra = [statute.tax[index], statute.grants[index], statute.factors[index]] if statute is not None else []
        municipalities.append([ags, f"Gemeinde {ags}", base, youth, minutes, km, *extra])
    items = workbook.create_sheet("Kostenpositionen")
    items.append(["ID", "Bezeichnung", "Kategorie", *COMPONENTS, "Foerderung", "Traeger"])
    for item_id, category, costs, funding, host in spec.items:
        items.append([item_id, f"Leistung {item_id}", category, *costs, funding, host or None])
    if statute is not None:
        rates = workbook.create_sheet("Umlagesaetze")
        rates.append(["Umlage", "Satz"])
        rates.append(["kreisumlage", statute.county_rate])
        rates.append(["jugendamtsumlage", statute.youth_rate])
    if spec.keys:
        keys = workbook.create_sheet("Schluessel")
        keys.append(["ID", "AGS", "Wert"])
        for row in spec.keys:
            keys.append(list(row))
    for sheet, column in ((municipalities, 1), (items, 9)):
        for r in range(2, sheet.max_row + 1):
            sheet.cell(row=r, column=column).number_format = "@"
    workbook.save(path)
