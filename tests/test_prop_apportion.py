"""Properties of apportionment (allocation.money.apportion and the keys allocate builds for it).

The expected shares come from `largest_remainder_oracle` below: an independent, deliberately plain
implementation with `fractions.Fraction` (quota = units × key ÷ key sum, floor, remaining units to the
largest remainders, ties by AGS ascending; a negative total is the negated split of its absolute value).
Monotonicity is NOT a property of this method (Alabama paradox, see tests/test_regressions.py).
"""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given
from hypothesis import strategies as st

from allocation.calc.allocate import allocate, decide
from allocation.core.money import apportion
from allocation.rulefiles.rulebook import parse_rulebook
from strategies import ags_codes, apportion_cases, cost_and_funding, key_values, make_book


def largest_remainder_oracle(total: int, keys: dict, unit: int) -> dict[str, int]:
    """AGS -> cents, by the method the published allocations use (written independently of money.py)."""
    key_sum = sum((Fraction(k) for k in keys.values()), Fraction(0))
    sign = -1 if total < 0 else 1
    units = abs(total) // unit
    quota = {ags: units * Fraction(k) / key_sum for ags, k in keys.items()}
    floor = {ags: math.floor(q) for ags, q in quota.items()}
    left = units - sum(floor.values())
    by_remainder = sorted(keys, key=lambda ags: (-(quota[ags] - floor[ags]), ags))
    extra = set(by_remainder[:left])
    return {ags: sign * (floor[ags] + (1 if ags in extra else 0)) * unit for ags in keys}


def amounts(shares) -> dict[str, int]:
    return {ags: share.amount for ags, share in shares.items()}


@given(apportion_cases())
def test_split_conserves_total(case):
    shares = apportion(case.total, case.keys, case.unit)
    assert set(shares) == set(case.keys)
    assert sum(s.amount for s in shares.values()) == case.total
    assert all(s.amount % case.unit == 0 for s in shares.values())


@given(apportion_cases())
def test_share_lies_between_floor_and_ceiling_of_exact_quota(case):
    key_sum = sum(Fraction(k) for k in case.keys.values())
    shares = apportion(case.total, case.keys, case.unit)
    for ags, key in case.keys.items():
        quota_units = Fraction(case.total, case.unit) * Fraction(key) / key_sum
        assert math.floor(quota_units) <= shares[ags].amount // case.unit <= math.ceil(quota_units)
        assert shares[ags].exact == case.total * Fraction(key) / key_sum


@given(apportion_cases())
def test_split_equals_fraction_oracle(case):
    shares = apportion(case.total, case.keys, case.unit)
    assert amounts(shares) == largest_remainder_oracle(case.total, case.keys, case.unit)


@given(apportion_cases())
def test_trace_fields_describe_the_split(case):
    """floor units + extra unit = amount; ranks number the non-zero remainders by size, ties by AGS."""
    key_sum = sum(Fraction(k) for k in case.keys.values())
    units = abs(case.total) // case.unit
    sign = -1 if case.total < 0 else 1
    shares = apportion(case.total, case.keys, case.unit)
    remainder = {ags: units * Fraction(k) / key_sum - math.floor(units * Fraction(k) / key_sum)
                 for ags, k in case.keys.items()}
    ranked = sorted((ags for ags in case.keys if remainder[ags]), key=lambda a: (-remainder[a], a))
    for ags, share in shares.items():
        assert share.amount == sign * (share.floor_units + share.extra_units) * case.unit
        assert share.rank == (ranked.index(ags) + 1 if ags in ranked else None)
        assert share.extra_units in (0, 1)


@given(apportion_cases(), st.randoms(use_true_random=False))
def test_split_ignores_row_order(case, rnd):
    order = list(case.keys)
    rnd.shuffle(order)
    shuffled = {ags: case.keys[ags] for ags in order}
    assert amounts(apportion(case.total, shuffled, case.unit)) == amounts(apportion(case.total, case.keys, case.unit))


@given(apportion_cases(), st.integers(min_value=2, max_value=10**6))
def test_split_is_invariant_under_scaling_the_keys(case, factor):
    scaled_keys = {ags: key * factor for ags, key in case.keys.items()}
    assert amounts(apportion(case.total, scaled_keys, case.unit)) == amounts(apportion(case.total, case.keys, case.unit))


@given(apportion_cases(), st.lists(ags_codes, min_size=1, max_size=5))
def test_zero_key_pays_exactly_zero(case, zero_codes):
    keys = dict(case.keys)
    for ags in zero_codes:
        keys.setdefault(ags, 0)
    assume(sum(Fraction(k) for k in keys.values()) > 0)
    shares = apportion(case.total, keys, case.unit)
    for ags, key in keys.items():
        if key == 0:
            assert shares[ags].amount == 0
            assert shares[ags].extra_units == 0
    # the zero-key rows change nobody else's share
    positive = {ags: k for ags, k in keys.items() if k != 0}
    assert {a: s.amount for a, s in shares.items() if a in positive} == amounts(apportion(case.total, positive, case.unit))


@given(apportion_cases())
def test_negative_total_gives_exactly_the_negated_shares(case):
    positive = apportion(abs(case.total), case.keys, case.unit)
    negative = apportion(-abs(case.total), case.keys, case.unit)
    assert {a: -s.amount for a, s in positive.items()} == amounts(negative)


# ------------------------------------------------------------------- through decide + allocate

_figures = st.one_of(st.integers(0, 1000).map(Decimal),
                     st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False))


@st.composite
def _municipalities(draw, columns: tuple[str, ...]):
    codes = draw(st.lists(ags_codes, min_size=1, max_size=10, unique=True))
    rows = []
    for code in codes:
        base = draw(st.integers(0, 10**11))
        rows.append((code, base, {column: draw(_figures) for column in columns}))
    return rows


def _expected_deficit(cost: int, funding: int, unit: int) -> int:
    exact = Fraction(cost - funding, unit)
    sign = -1 if exact < 0 else 1
    return sign * math.floor(abs(exact) + Fraction(1, 2)) * unit


COMPOSITE_RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
rules:
  - id: komposit
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {{Kategorie: K}}
    route: direct_billing
    key: {{A: {wa}, B: {wb}}}
  - id: nur-a
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {{Kategorie: KA}}
    route: direct_billing
    key: A
  - id: nur-b
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {{Kategorie: KB}}
    route: direct_billing
    key: B
"""


@given(_municipalities(("A", "B")), st.one_of(st.integers(1, 99).map(Decimal),
                                              st.decimals(min_value=Decimal("0.5"), max_value=Decimal("99.5"),
                                                          places=1, allow_nan=False, allow_infinity=False)),
       cost_and_funding(), st.sampled_from([1, 100]))
def test_composite_key_is_weighted_sum_of_single_key_quotas(rows, weight, money, unit):
    cost, funding = money
    assume(sum(r[2]["A"] for r in rows) > 0 and sum(r[2]["B"] for r in rows) > 0)
    rulebook, _ = parse_rulebook(COMPOSITE_RULES.format(wa=weight, wb=100 - weight), "komposit.yaml")
    items = [(f"I-{c}", {"Kategorie": c}, cost, funding) for c in ("K", "KA", "KB")]
    book = make_book(rows, items, unit, ("A", "B"))
    result = allocate(rulebook, book, decide(rulebook, book))
    by_rule = {item.rule.id: {line.ags: line for line in item.lines} for item in result.items}
    deficit = _expected_deficit(cost, funding, unit)
    sum_a = sum(Fraction(r[2]["A"]) for r in rows)
    sum_b = sum(Fraction(r[2]["B"]) for r in rows)
    w = Fraction(weight) / 100
    composite_keys = {}
    for ags, _base, figures in rows:
        share = w * Fraction(figures["A"]) / sum_a + (1 - w) * Fraction(figures["B"]) / sum_b
        composite_keys[ags] = share
        line = by_rule["komposit"][ags]
        assert line.share == share
        # exactly the weighted sum of the single-key quotas, before any rounding
        assert line.exact == w * by_rule["nur-a"][ags].exact + (1 - w) * by_rule["nur-b"][ags].exact
        assert line.exact == deficit * share
    assert {a: l.amount for a, l in by_rule["komposit"].items()} == \
        largest_remainder_oracle(deficit, composite_keys, unit)


PAYER_RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
rules:
  - id: teilumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {}
    route: differentiated_levy
    payers: {Zahlt: 1}
"""


@given(_municipalities(()), st.data(), cost_and_funding(), st.sampled_from([1, 100]))
def test_municipality_outside_payer_set_pays_exactly_zero(rows, data, money, unit):
    cost, funding = money
    flags = data.draw(st.lists(st.sampled_from([Decimal(0), Decimal(1), Decimal("1.0")]),
                               min_size=len(rows), max_size=len(rows)))
    rows = [(ags, base, {"Zahlt": flag}) for (ags, base, _), flag in zip(rows, flags)]
    payers = {ags: Fraction(base, 100) for ags, base, attrs in rows if attrs["Zahlt"] == 1}
    assume(sum(payers.values()) > 0)
    rulebook, _ = parse_rulebook(PAYER_RULES, "teilumlage.yaml")
    book = make_book(rows, [("T-1", {}, cost, funding)], unit, ("Zahlt",))
    (item,) = allocate(rulebook, book, decide(rulebook, book)).items
    got = {line.ags: line.amount for line in item.lines}
    expected = largest_remainder_oracle(_expected_deficit(cost, funding, unit), payers, unit)
    for ags, _base, _attrs in rows:
        assert got[ags] == expected.get(ags, 0)


def test_key_values_strategy_reaches_every_kind():
    """Guard for the generators: ties need small integers; Decimal and Fraction keys must occur too."""
    from hypothesis import find

    for kind in (int, Decimal, Fraction):
        find(key_values, lambda v, kind=kind: isinstance(v, kind) and v > 0)


@given(_municipalities(("A", "B")), st.lists(cost_and_funding(), min_size=2, max_size=5),
       st.sampled_from([1, 100]))
def test_items_sharing_a_key_each_get_their_own_exact_split(rows, costs, unit):
    """allocate builds a key that depends only on the rule and its payers once and shares it between items:
    every item must still get the oracle's split of its own deficit, and the same exact shares."""
    assume(sum(r[2]["A"] for r in rows) > 0 and sum(r[2]["B"] for r in rows) > 0)
    rulebook, _ = parse_rulebook(COMPOSITE_RULES.format(wa=60, wb=40), "komposit.yaml")
    items = [(f"I-{n}", {"Kategorie": "K"}, cost, funding) for n, (cost, funding) in enumerate(costs)]
    book = make_book(rows, items, unit, ("A", "B"))
    result = allocate(rulebook, book, decide(rulebook, book))
    sum_a = sum(Fraction(r[2]["A"]) for r in rows)
    sum_b = sum(Fraction(r[2]["B"]) for r in rows)
    keys = {ags: Fraction(60, 100) * Fraction(f["A"]) / sum_a + Fraction(40, 100) * Fraction(f["B"]) / sum_b
            for ags, _base, f in rows}
    assert len(result.items) == len(costs)
    for item, (cost, funding) in zip(result.items, costs):
        deficit = _expected_deficit(cost, funding, unit)
        assert {line.ags: line.amount for line in item.lines} == largest_remainder_oracle(deficit, keys, unit)
        assert {line.ags: line.share for line in item.lines} == {ags: k / sum(keys.values()) for ags, k in keys.items()}
        assert all(line.exact == deficit * line.share for line in item.lines)


@given(apportion_cases())
def test_prepared_keys_split_like_the_oracle(case):
    from allocation.core.money import prepare_keys
    prepared = prepare_keys(case.keys)
    key_sum = sum(Fraction(k) for k in case.keys.values())
    assert prepared.shares() == {ags: Fraction(k) / key_sum for ags, k in case.keys.items()}
    assert amounts(apportion(case.total, prepared, case.unit)) == \
        largest_remainder_oracle(case.total, case.keys, case.unit)
