"""Rule-level properties: durable_rules decides exactly what an obviously correct evaluator decides.

Generated rule files (conditions with eq, ne, lt, le, gt, ge, in, all, any, not over random columns) go
through the real YAML parser (`parse_rulebook`), then through `engine.match` (durable_rules) and through
`holds` below, a reference evaluator written here from the docs' semantics: `eq` holds when both sides
are of the same kind and equal (numbers by value, text exactly), text never equals a number, a missing
column is the empty text, ordered operators compare numbers (generated only on all-number columns).
The generators aim at the corners where durable_rules itself compares loosely ("1" vs 1, "" vs 0, 1 vs 1.0).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from decimal import Decimal

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from allocation.rulefiles import conditions
from allocation.rulefiles import engine
from allocation.calc.allocate import decide, winner
from allocation.core.problems import DecisionError
from allocation.rulefiles.rulebook import parse_rulebook
from strategies import conditions_over, make_book, records_over, rulebook_text, schemas


def same(left, right) -> bool:
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    return left == right  # two Decimals: by value


def holds(tree, record) -> bool:
    kind = tree[0]
    if kind == "all":
        return all(holds(child, record) for child in tree[1])
    if kind == "any":
        return any(holds(child, record) for child in tree[1])
    if kind == "not":
        return not holds(tree[1], record)
    _, column, op, constant = tree
    value = record.get(column, "")
    if op == "eq":
        return same(value, constant)
    if op == "ne":
        return not same(value, constant)
    if op == "in":
        return any(same(value, c) for c in constant)
    assert isinstance(value, Decimal) and isinstance(constant, Decimal), "generator broke its own contract"
    return {"lt": value < constant, "le": value <= constant, "gt": value > constant, "ge": value >= constant}[op]


@st.composite
def partitions(draw, schema, max_splits: int = 4):
    """Condition trees that are disjoint and cover every record by construction: start from "always" and
    split a part by a random condition t into (part and t, part and not t)."""
    parts: list[list] = [[]]
    for _ in range(draw(st.integers(0, max_splits))):
        index = draw(st.integers(0, len(parts) - 1))
        split = draw(conditions_over(schema, max_leaves=3))
        base = parts.pop(index)
        parts[index:index] = [base + [split], base + [("not", split)]]
    return [("all", part) for part in parts]


@st.composite
def rule_sets(draw, min_records: int = 20, max_records: int = 80):
    """(rule file text, {rule id: tree}, {rule id: priority}, records, hit policy).

    Half of the cases are partitions (disjoint, covering rules), so that the `unique` hit policy decides
    every item in a fair share of the examples: with random trees alone that path ran in about 1.5 % of the
    examples (issue 11); the measured shares are in test_hit_policy_gives_one_route_per_item_or_names_item_and_rules."""
    schema = draw(schemas())
    if draw(st.booleans()):
        trees = draw(partitions(schema))
    else:
        trees = draw(st.lists(conditions_over(schema), min_size=1, max_size=6))
    priorities = draw(st.lists(st.integers(-3, 3), min_size=len(trees), max_size=len(trees)))
    records = draw(records_over(schema, min_records, max_records))
    policy = draw(st.sampled_from(["unique", "priority"]))
    rules = [(f"r{i}", tree, priority) for i, (tree, priority) in enumerate(zip(trees, priorities))]
    text = rulebook_text(rules, policy, draw(st.randoms(use_true_random=False)))
    note(text)
    return text, {r[0]: r[1] for r in rules}, {r[0]: r[2] for r in rules}, records, policy


@given(rule_sets())
def test_durable_rules_matches_reference_evaluator(case):
    text, trees, _priorities, records, _policy = case
    rulebook, _ = parse_rulebook(text, "generated.yaml")
    assert [rule.id for rule in rulebook.rules] == list(trees)
    got = engine.match({rule.id: rule.when for rule in rulebook.rules}, records)
    expected = [frozenset(rule_id for rule_id, tree in trees.items() if holds(tree, record)) for record in records]
    for record, g, e in zip(records, got, expected):
        assert g == e, f"record {record!r}: durable_rules {sorted(g)}, reference {sorted(e)}"
    # the package's own evaluator (used for traces) agrees as well
    for record, e in zip(records, expected):
        assert frozenset(r.id for r in rulebook.rules if conditions.evaluate(r.when, record)) == e


def _book(records):
    columns = sorted({column for record in records for column in record})
    items = [(f"P{i}", record, 0, 0) for i, record in enumerate(records, start=1)]
    return make_book([("05170004", 100, {})], items, 1, (), tuple(columns))


def _expected_winner(policy, matched, priorities, order):
    if not matched:
        return None
    if policy == "unique":
        return next(iter(matched)) if len(matched) == 1 else None
    return max(matched, key=lambda r: (priorities[r], -order.index(r)))


@given(rule_sets(min_records=5, max_records=30))
def test_hit_policy_gives_one_route_per_item_or_names_item_and_rules(case):
    """unique: exactly one route per item, else the failure names each undecided item and its rules;
    priority: the highest-priority matching rule, the earlier rule on equal priority."""
    text, trees, priorities, records, policy = case
    rulebook, _ = parse_rulebook(text, "generated.yaml")
    book = _book(records)
    order = list(trees)
    matched = [frozenset(r for r, tree in trees.items() if holds(tree, record)) for record in records]
    expected = [_expected_winner(policy, m, priorities, order) for m in matched]
    undecided = {item.id: m for item, m, e in zip(book.items, matched, expected) if e is None}
    # Share of each path (default profile, `--hypothesis-show-statistics --hypothesis-seed=0`): unique,
    # every item decided 20 %; unique, some undecided 33 %; priority decided 31 %; priority undecided 1 %
    # (before the partitions in rule_sets: unique decided about 1.5 %).
    event(f"{policy}: {'every item decided' if not undecided else 'some item undecided'}")
    if not undecided:
        decisions = decide(rulebook, book)
        assert [d.item_id for d in decisions] == [item.id for item in book.items]
        assert [d.rule_id for d in decisions] == expected
        for decision, m in zip(decisions, matched):
            assert decision.matched == tuple(r for r in order if r in m)
        return
    with pytest.raises(DecisionError) as failure:
        decide(rulebook, book)
    named = {}
    for problem in failure.value.problems:
        item_id = re.search(r'"([^"]+)"', problem.message).group(1)
        item = next(i for i in book.items if i.id == item_id)
        assert problem.location == item.source
        named[item_id] = problem
    assert set(named) == set(undecided)
    for item_id, m in undecided.items():
        problem = named[item_id]
        if m:
            assert problem.code == "decision-ambiguous"
            assert set(re.findall(r"(r\d+) \(generated\.yaml:\d+\)", problem.found)) == set(m)
        else:
            assert problem.code == "decision-no-rule"


@given(rule_sets(min_records=5, max_records=30))
def test_winner_is_highest_priority_then_earliest_rule(case):
    text, trees, priorities, records, _policy = case
    rulebook, _ = parse_rulebook(text.replace("hit_policy: unique", "hit_policy: priority"), "generated.yaml")
    order = list(trees)
    for record in records:
        m = frozenset(r for r, tree in trees.items() if holds(tree, record))
        assert winner(rulebook, m) == _expected_winner("priority", m, priorities, order)


@given(rule_sets(min_records=5, max_records=30))
def test_every_decision_trace_names_a_rule_that_matches_the_item(case):
    text, trees, _priorities, records, _policy = case
    # a catch-all rule of the lowest priority, so that every item is decided
    text = text.replace("hit_policy: unique", "hit_policy: priority") + (
        "  - id: rest\n    legal_basis: x\n    when: {}\n    route: district_levy\n    priority: -100\n")
    rulebook, _ = parse_rulebook(text, "generated.yaml")
    book = _book(records)
    decisions = decide(rulebook, book)
    trees = {**trees, "rest": ("all", [])}
    for decision, item in zip(decisions, book.items):
        assert decision.item_id == item.id
        assert holds(trees[decision.rule_id], item.attrs)
        assert all(holds(trees[r], item.attrs) for r in decision.matched)
        assert conditions.evaluate(rulebook.rule(decision.rule_id).when, item.attrs)


@contextmanager
def small_rulesets(rules: int, weight: int, comparisons: int):
    """The engine's ruleset limits made tiny, so that every generated rule file is split into many rulesets."""
    saved = engine.RULES_PER_RULESET, engine.WEIGHT_PER_RULESET, engine.COMPARISONS_PER_RULESET
    engine.RULES_PER_RULESET, engine.WEIGHT_PER_RULESET, engine.COMPARISONS_PER_RULESET = rules, weight, comparisons
    try:
        yield
    finally:
        engine.RULES_PER_RULESET, engine.WEIGHT_PER_RULESET, engine.COMPARISONS_PER_RULESET = saved


def _outcome(rulebook, book):
    try:
        return "decided", [(d.item_id, d.rule_id, d.matched) for d in decide(rulebook, book)]
    except DecisionError as error:
        return "undecided", sorted((p.code, p.message) for p in error.problems)


@given(rule_sets(min_records=5, max_records=30), st.integers(1, 3), st.integers(2, 6), st.integers(1, 12))
def test_rules_split_into_several_rulesets_decide_like_one_ruleset(case, rules, weight, comparisons):
    """engine.py compiles large rule files as several rulesets and unions their hits: with tiny groups the
    decisions (unique and priority, incl. the failures) equal those of one ruleset and the reference."""
    text, trees, _priorities, records, policy = case
    rulebook, _ = parse_rulebook(text, "generated.yaml")
    book = _book(records)
    named = {rule.id: rule.when for rule in rulebook.rules}
    with small_rulesets(rules, weight, comparisons):
        event("several rulesets" if len(engine._rulesets({n: {"$ex": {"_row": 1}} for n in named})) > 1
              else "one ruleset")
        split_matches = engine.match(named, records)
        split_outcome = _outcome(rulebook, book)
    assert split_matches == [frozenset(r for r, tree in trees.items() if holds(tree, record)) for record in records]
    assert split_outcome == _outcome(rulebook, book)
    event(f"{policy}: {split_outcome[0]}")
