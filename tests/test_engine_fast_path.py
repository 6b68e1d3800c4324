"""engine.match's fast path (cases of indistinguishable values, chunked facts, synchronous host) decides
exactly what a plain evaluation of the conditions decides.

The oracle is `reference`, written here from the condition language's documented semantics (text never
equals a number, numbers compare by value, `in` is any equality, `not` negates), independent of
engine.py and of conditions.evaluate. Records hold numbers in every column that a condition compares by
size, as `allocate.decide` guarantees before calling the engine.
"""
from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, strategies as st

from allocation.rulefiles import engine
from allocation.rulefiles.conditions import All, Any, Cmp, Not
from allocation.core.problems import Location

HERE = Location("test")
TEXT_COLUMNS = ("Kategorie", "Traeger", "Mix")
NUMBER_COLUMNS = ("Stellen", "Betrag")
TEXTS = ("KIM", "Jugendhilfe", "OEPNV", "Kreis", "05170024", "", "kim", "KIM ", "Ä", "x")
NUMBERS = tuple(Decimal(v) for v in ("0", "1", "-1", "4", "0.5", "0.1", "2.25", "1000000", "-0.3", "99999.99"))


def reference(condition, record) -> bool:
    if isinstance(condition, Cmp):
        value = record.get(condition.column, "")

        def equal(constant) -> bool:
            if isinstance(value, Decimal) and isinstance(constant, Decimal):
                return value == constant
            if isinstance(value, str) and isinstance(constant, str):
                return value == constant
            return False

        op = condition.op
        if op == "eq":
            return equal(condition.value)
        if op == "ne":
            return not equal(condition.value)
        if op == "in":
            return any(equal(v) for v in condition.value)
        left, right = value, condition.value
        return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[op]
    if isinstance(condition, All):
        return all(reference(child, record) for child in condition.children)
    if isinstance(condition, Any):
        return any(reference(child, record) for child in condition.children)
    return not reference(condition.child, record)


def random_leaf(rng: random.Random):
    if rng.random() < 0.5:
        column = rng.choice(NUMBER_COLUMNS)
        op = rng.choice(("eq", "ne", "lt", "le", "gt", "ge", "in"))
        if op == "in":
            return Cmp(column, "in", tuple(rng.sample(NUMBERS, rng.randint(1, 3))), HERE)
        return Cmp(column, op, rng.choice(NUMBERS), HERE)
    column = rng.choice(TEXT_COLUMNS)
    op = rng.choice(("eq", "ne", "in"))
    pool = TEXTS + NUMBERS if column == "Mix" else TEXTS  # Mix compares text and numbers by equality
    if op == "in":
        return Cmp(column, "in", tuple(rng.sample(pool, rng.randint(1, 3))), HERE)
    return Cmp(column, op, rng.choice(pool), HERE)


def random_condition(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth >= 3 or roll < 0.4:
        return random_leaf(rng)
    if roll < 0.55:
        return Not(random_condition(rng, depth + 1), HERE)
    children = tuple(random_condition(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    return (All if roll < 0.8 else Any)(children, HERE)


def random_number(rng: random.Random) -> Decimal:
    base = rng.choice(NUMBERS)
    return rng.choice((base, base + Decimal("0.01"), base - Decimal("0.01"), base * 3,
                       Decimal(rng.randint(-2000, 2000)) / 4, Decimal("1E+16"), Decimal("-9007199254740993")))


def random_record(rng: random.Random) -> dict:
    record = {column: random_number(rng) for column in NUMBER_COLUMNS}
    for column in TEXT_COLUMNS:
        roll = rng.random()
        if roll < 0.5:
            record[column] = rng.choice(TEXTS)
        elif roll < 0.7:
            record[column] = rng.choice(NUMBERS)
        elif roll < 0.8:
            record[column] = f"andere {rng.randint(0, 10**6)}"
        elif roll < 0.85:
            record[column] = "KIM\x00x"
    if rng.random() < 0.1:
        record.pop("Mix", None)  # a missing column is empty text
    return record


def check(named, records) -> None:
    got = engine.match(named, records)
    assert len(got) == len(records)
    for record, names in zip(records, got):
        expected = frozenset(name for name, condition in named.items() if reference(condition, record))
        assert names == expected, (record, names, expected)


def test_fast_path_matches_reference_on_random_rules_and_records():
    rng = random.Random(20240607)
    for _ in range(15):
        named = {f"r{i}": random_condition(rng) for i in range(rng.randint(1, 20))}
        check(named, [random_record(rng) for _ in range(rng.randint(1, 300))])


@given(st.integers(min_value=0, max_value=2**32))
def test_fast_path_matches_reference_for_any_seed(seed):
    rng = random.Random(seed)
    named = {f"r{i}": random_condition(rng) for i in range(rng.randint(1, 8))}
    check(named, [random_record(rng) for _ in range(rng.randint(1, 40))])


def test_more_than_1024_distinct_cases_in_one_call():
    # 400 number constants give 801 cases on Stellen (below, equal to and between the constants); with two
    # Kategorie cases that is 1,602 facts in one call: more than one durable_rules state could hold by id,
    # asserted in several chunks.
    constants = tuple(Decimal(2 * i) for i in range(400))
    named = {"listed": Cmp("Stellen", "in", constants, HERE),
             "small": Cmp("Stellen", "lt", Decimal(300), HERE),
             "kim": Cmp("Kategorie", "eq", "KIM", HERE)}
    records = [{"Stellen": Decimal(v), "Kategorie": category} for category in ("KIM", "OEPNV") for v in range(-1, 800)]
    records += [{"Stellen": Decimal(v) + Decimal("0.5"), "Kategorie": "x"} for v in range(0, 800, 7)]
    check(named, records)
    # the hand count: every even number 0..798 is listed (twice, once per Kategorie); odd and .5 values not
    listed = [r for r, names in zip(records, engine.match(named, records)) if "listed" in names]
    assert len(listed) == 800


def test_many_distinct_records_reuse_few_cases():
    # 20,000 distinct amounts 0.0 .. 1999.9, but only three cases (below, equal to, above 1000)
    named = {"big": Cmp("Betrag", "gt", Decimal(1000), HERE), "exact": Cmp("Betrag", "eq", Decimal(1000), HERE)}
    records = [{"Betrag": Decimal(v) / 10} for v in range(20000)]
    got = engine.match(named, records)
    assert got[10000] == frozenset({"exact"})  # 10000 / 10 = 1000
    assert got[10001:] == [frozenset({"big"})] * 9999
    assert got[:10000] == [frozenset()] * 10000
