"""The durable_rules quirks that allocation/engine.py relies on, each proven on the real engine, and the fixes."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from durable import engine as durable

from allocation import conditions, engine
from allocation.problems import Location

_names = itertools.count()


def fired(rules: dict, fact: dict) -> set[str]:
    """Assert one fact into a fresh ruleset of raw durable_rules patterns; the rule names whose action ran."""
    host = durable.Host()
    hits: set[str] = set()
    name = f"quirk_{next(_names)}"

    def action_for(rule_name):
        def action(c):
            hits.add(rule_name)
        return action

    host.register_rulesets({name: {rule: {"all": [{"m": pattern}], "run": action_for(rule)}
                                   for rule, pattern in rules.items()}})
    try:
        host.assert_fact(name, {"sid": "1", **fact})
    except durable.MessageNotHandledException:
        pass
    return hits


def test_quirk_text_and_numbers_compare_loosely():
    # Why engine.py encodes every value as two attributes that are only ever compared within one type: raw
    # durable_rules lets text match number constants. Which cross-type pairs match was seen to vary between
    # processes (e.g. "" == 1, "1" == 1 once a ruleset also holds "1"), so this asserts only that it happens.
    assert fired({"gt0": {"$gt": {"K": 0}}}, {"K": "abc"}) == {"gt0"}
    cross_type = [
        fired({"eq1": {"K": 1}, "eqs1": {"K": "1"}}, {"K": "1"}) - {"eqs1"},
        fired({"eq1": {"K": 1}, "eqs1": {"K": "1"}}, {"K": 1}) - {"eq1"},
        fired({"eq1": {"K": 1}}, {"K": ""}),
        fired({"eqs1": {"K": "1"}}, {"K": 1}),
    ]
    assert any(cross_type)


def test_quirk_missing_attribute_never_matches_not_even_neq():
    assert fired({"ne": {"$neq": {"K": "KIM"}}}, {"other": 1}) == set()


def test_quirk_facts_fire_every_matching_rule():
    assert fired({"a": {"K": 1}, "b": {"$gt": {"K": 0}}}, {"K": 1}) == {"a", "b"}


def test_quirk_unmatched_fact_raises_and_identical_fact_twice_raises():
    host = durable.Host()
    host.register_rulesets({"quirk_unmatched": {"r": {"all": [{"m": {"K": 1}}], "run": lambda c: None}}})
    with pytest.raises(durable.MessageNotHandledException):
        host.assert_fact("quirk_unmatched", {"sid": "1", "K": 2})
    host.assert_fact("quirk_unmatched", {"sid": "1", "K": 1})
    with pytest.raises(durable.MessageObservedException):
        host.assert_fact("quirk_unmatched", {"sid": "1", "K": 1})


def test_quirk_action_exceptions_are_swallowed():
    host = durable.Host()

    def broken(c):
        raise RuntimeError("boom")

    host.register_rulesets({"quirk_swallow": {"r": {"all": [{"m": {"K": 1}}], "run": broken}}})
    host.assert_fact("quirk_swallow", {"sid": "1", "K": 1})  # no exception reaches the caller


def cmp(column, op, value):
    return conditions.Cmp(column, op, value, Location("t"))


@pytest.mark.parametrize("value, expected", [
    ("1", set()), ("", set()), (Decimal(1), {"eq1"}), (Decimal("1.0"), {"eq1"}), ("abc", set()),
])
def test_match_compares_text_and_numbers_strictly(value, expected):
    named = {"eq1": cmp("K", "eq", Decimal(1))}
    assert engine.match(named, [{"K": value}]) == [frozenset(expected)]


def test_match_text_constant_never_equals_a_number():
    named = {"eqs": cmp("K", "eq", "1"), "nes": cmp("K", "ne", "1")}
    assert engine.match(named, [{"K": Decimal(1)}, {"K": "1"}]) == [frozenset({"nes"}), frozenset({"eqs"})]


def test_match_not_is_pushed_down_and_empty_text_is_a_value():
    named = {"not_kim": conditions.Not(cmp("K", "eq", "KIM"), Location("t")),
             "not_in": conditions.Not(cmp("K", "in", ("A", "B")), Location("t")),
             "always": conditions.All((), Location("t")),
             "never": conditions.Any((), Location("t"))}
    records = [{"K": "KIM"}, {"K": ""}, {"K": "A"}, {"K": "C"}]
    assert engine.match(named, records) == [
        frozenset({"not_in", "always"}),
        frozenset({"not_kim", "not_in", "always"}),
        frozenset({"not_kim", "always"}),
        frozenset({"not_kim", "not_in", "always"}),
    ]


def test_match_ordered_operators_on_decimals():
    named = {"lt": cmp("S", "lt", Decimal("0.5")), "ge": cmp("S", "ge", Decimal("0.5"))}
    records = [{"S": Decimal("0.25")}, {"S": Decimal("0.50")}, {"S": Decimal(3)}]
    assert engine.match(named, records) == [frozenset({"lt"}), frozenset({"ge"}), frozenset({"ge"})]


def test_match_survives_more_than_1024_distinct_records():
    named = {"even": cmp("N", "eq", Decimal(0)), "big": cmp("M", "gt", Decimal(1500))}
    records = [{"N": Decimal(n % 2), "M": Decimal(n)} for n in range(3000)]
    result = engine.match(named, records)
    assert result[0] == frozenset({"even"})
    assert result[1501] == frozenset({"big"})
    assert result[1502] == frozenset({"even", "big"})
    assert sum(1 for r in result if "even" in r) == 1500


def test_match_can_be_called_many_times_in_one_process():
    named = {"a": cmp("K", "eq", "x")}
    for _ in range(50):
        assert engine.match(named, [{"K": "x"}, {"K": "y"}]) == [frozenset({"a"}), frozenset()]


def test_match_compares_long_and_big_numbers_exactly():
    # As doubles these would tie with the constant (0.30000000000000004 vs 0.3 differ only in the 17th digit;
    # 2**53 + 1 rounds to 2**53); order codes keep the exact decimal comparison.
    named = {"gt": cmp("X", "gt", Decimal("0.3")), "eq": cmp("X", "eq", Decimal("0.3")),
             "big": cmp("Y", "gt", Decimal(2**53 - 1))}
    records = [{"X": Decimal("0.30000000000000004"), "Y": Decimal(2**53 + 1)},
               {"X": Decimal("0.3"), "Y": Decimal(2**53 - 1)},
               {"X": Decimal("0.30"), "Y": Decimal("1E+20")}]
    assert engine.match(named, records) == [frozenset({"gt", "big"}), frozenset({"eq"}),
                                            frozenset({"eq", "big"})]
