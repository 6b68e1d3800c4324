"""The only module that talks to durable_rules. Its quirks stay here, each proven in tests/test_engine.py.

`match(conditions, records)` compiles named conditions into one durable_rules ruleset and asserts each
distinct record as a fact; since asserted facts fire *every* matching rule, the result is, per record, the
set of condition names that hold. Hit policies are applied by the caller on that set.

Quirks handled here (see ../shared/ENGINE-NOTES.md):
- durable_rules compares text and numbers loosely (`"1" == 1`, `"" == 1`, `"abc" > 0` all match). Every
  column therefore travels as two attributes that are always present: `n<i>` (the number, or a sentinel for
  text) and `s<i>` (the text with a prefix, or a sentinel for numbers). A number constant is only compared
  with `n<i>`, a text constant only with `s<i>`, so no loose comparison is ever made.
- a missing attribute never matches, not even `$neq`: both attributes are always set.
- no `$not` / `$in`: conditions go through `conditions.negation_normal_form` first.
- a fact that matches no rule raises `MessageNotHandledException`, and actions' exceptions are swallowed:
  an internal catch-all rule fires for every fact, and a fact whose catch-all did not fire is an error.
- asserting an identical fact twice raises: every fact carries a unique `_row`.
- `MemoryError` at 1,024 state ids: one state id per call, each fact retracted after its decision.
- ruleset names must be unique per host: one host per process, one fresh ruleset name per call.
Distinct records are decided once (only the referenced columns are part of a record's identity).

Fast path (benchmarks/README.md; proven against a reference evaluator in tests/test_engine_fast_path.py):
- values no condition can tell apart are one case: a number is identified by its position among the
  column's number constants (below, equal, between, above; compared as the encoded numbers durable_rules
  sees), a text by whether it equals one of the column's text constants. durable_rules decides one
  representative record of each case; the others reuse that decision. Columns with text compared by
  size, text containing NUL, or numbers beyond 2**53 keep their exact values.
- facts are asserted and retracted in chunks (`assert_facts`), and the host runs without its background
  dispatch timers, so every action has run when the call returns (durable_rules otherwise finishes
  batched actions later on a timer thread).
"""
from __future__ import annotations

import bisect
import itertools
import threading
from decimal import Decimal
from typing import Mapping, Sequence

from . import conditions
from .conditions import All, Cmp, Condition

__all__ = ["match", "EngineFailure", "durable_version", "compile_condition"]

_TEXT_PREFIX = "s:"
_NUMBER_IN_TEXT = "\x00number"  # s<i> of a numeric value; never equal to a prefixed text constant
_TEXT_IN_NUMBER = -1.5e308  # n<i> of a text value; constants are bounded far below it
_CATCH_ALL = "__fact_seen__"
_CHUNK = 64  # facts per assert_facts call: fewer calls into the C core, bounded retained facts
_EXACT_LIMIT = 2**53  # int/double comparisons are exact below this (durable_rules compares doubles)
_OTHER_TEXT = object()  # the case of every text that equals no text constant of its column

_host = None
_host_lock = threading.Lock()
_names = itertools.count()


class EngineFailure(RuntimeError):
    """durable_rules did not behave as this module relies on (an internal error, never user input)."""


def durable_version() -> str:
    from importlib.metadata import version

    return version("durable_rules")


def _get_host():
    global _host
    with _host_lock:
        if _host is None:
            from durable import engine as durable_engine

            class _SynchronousHost(durable_engine.Host):
                def _run(self):  # no background dispatch timers: actions run inside assert_facts only
                    pass

            _host = _SynchronousHost()
        return _host


def _number(value: Decimal) -> int | float:
    # Decisions only, never amounts: durable_rules compares JSON numbers. Integral values stay exact
    # ints; other values become the nearest double, which preserves equality and order of the decimals
    # used in rule files and workbooks (up to 15 significant digits, enforced by conditions.parse).
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _encode(value: object) -> tuple[int | float, str]:
    if isinstance(value, Decimal):
        return _number(value), _NUMBER_IN_TEXT
    return _TEXT_IN_NUMBER, _TEXT_PREFIX + str(value)


def _leaf(cmp: Cmp, index: Mapping[str, int]) -> dict:
    i = index[cmp.column]
    if isinstance(cmp.value, Decimal):
        attribute, constant = f"n{i}", _number(cmp.value)
    else:
        attribute, constant = f"s{i}", _TEXT_PREFIX + cmp.value
    operator = {"eq": None, "ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}[cmp.op]
    return {attribute: constant} if operator is None else {operator: {attribute: constant}}


def _compile(node: Condition, index: Mapping[str, int]) -> dict:
    if isinstance(node, Cmp):
        return _leaf(node, index)
    if not node.children:
        # empty all = always true; empty any = never true ("_row" exists on every fact). A bare
        # `$nex` would also match durable_rules' own state object and fire forever: "never" must be
        # unsatisfiable for every object (tests/test_regressions.py).
        if isinstance(node, All):
            return {"$ex": {"_row": 1}}
        return {"$and": [{"$ex": {"_row": 1}}, {"$nex": {"_row": 1}}]}
    parts = [_compile(child, index) for child in node.children]
    if len(parts) == 1:
        return parts[0]
    return {"$and" if isinstance(node, All) else "$or": parts}


def compile_condition(condition: Condition, index: Mapping[str, int]) -> dict:
    """A condition as a durable_rules pattern over the encoded attributes."""
    return _compile(conditions.negation_normal_form(condition), index)


def match(named: Mapping[str, Condition], records: Sequence[Mapping[str, object]]) -> list[frozenset[str]]:
    """For each record, the names of the conditions that hold, as decided by durable_rules."""
    return _match(named, records, reduce_values=True)


def _match(named: Mapping[str, Condition], records: Sequence[Mapping[str, object]],
           reduce_values: bool) -> list[frozenset[str]]:
    columns = sorted({cmp.column for condition in named.values() for cmp in conditions.columns(condition)})
    index = {column: i for i, column in enumerate(columns)}
    if not columns:
        signatures = [()] * len(records)
    elif len(columns) == 1:
        column = columns[0]
        signatures = [(record.get(column, ""),) for record in records]
    else:
        signatures = [tuple(record.get(column, "") for column in columns) for record in records]
    distinct = list(dict.fromkeys(signatures))
    if not distinct:
        return []
    if not reduce_values:
        decided = _decide(named, index, distinct)
        return [decided[signature] for signature in signatures]
    normal = [conditions.negation_normal_form(condition) for condition in named.values()]
    case_of = [_case_function(column, normal) for column in columns]
    cases: dict[tuple, tuple] = {}  # case -> representative signature
    signature_case: dict[tuple, tuple] = {}
    # classify each distinct value of a column once (str and Decimal never compare equal, so they can share
    # one dict; other types keep a per-value call)
    memos = []
    for i, classify in enumerate(case_of):
        values = {signature[i] for signature in distinct}
        if all(type(value) is str or type(value) is Decimal for value in values):
            memos.append({value: classify(value) for value in values}.__getitem__)
        else:
            memos.append(classify)
    for signature in distinct:
        case = tuple([memo(value) for memo, value in zip(memos, signature)])
        signature_case[signature] = case
        cases.setdefault(case, signature)
    decided = _decide(named, index, list(cases.values()))
    by_case = {case: decided[representative] for case, representative in cases.items()}
    by_signature = {signature: by_case[case] for signature, case in signature_case.items()}
    return [by_signature[signature] for signature in signatures]


def _case_function(column: str, normal: Sequence[Condition]):
    """value -> a key equal for all values that every comparison on `column` treats alike."""
    numbers: set[int | float] = set()
    texts: set[str] = set()
    exact_text = False
    for condition in normal:
        for cmp in conditions.columns(condition):
            if cmp.column != column:
                continue
            if isinstance(cmp.value, Decimal):
                numbers.add(_number(cmp.value))
            else:
                texts.add(cmp.value)
                exact_text = exact_text or cmp.op not in ("eq", "ne")
    exact_numbers = any(abs(number) >= _EXACT_LIMIT for number in numbers)
    bounds = sorted(numbers)
    size = len(bounds)

    def classify(value: object) -> tuple:
        if isinstance(value, Decimal):
            # float(value) is what durable_rules compares: the encoded double, or for an integral value below
            # 2**53 exactly the encoded int
            encoded = float(value)
            if exact_numbers or not abs(encoded) < _EXACT_LIMIT:
                return (0, _number(value))
            position = bisect.bisect_left(bounds, encoded)
            return (1, position, position < size and bounds[position] == encoded)
        text = str(value)
        if exact_text or text in texts or "\x00" in text:
            return (2, text)
        return (3, _OTHER_TEXT)

    return classify


def _decide(named: Mapping[str, Condition], index: Mapping[str, int],
            distinct: Sequence[tuple]) -> dict[tuple, frozenset[str]]:
    from durable.engine import MessageNotHandledException

    host = _get_host()
    names = list(named)
    hits: dict[int, set[str]] = {}

    def action_for(name: str):
        def action(c):  # durable_rules calls actions with exactly one argument
            hits.setdefault(c.m["_row"], set()).add(name)

        return action

    ruleset_name = f"allocation_{next(_names)}"
    definition = {f"r{i}": {"all": [{"m": compile_condition(named[name], index)}], "run": action_for(name)}
                  for i, name in enumerate(names)}
    definition["seen"] = {"all": [{"m": {"$ex": {"_row": 1}}}], "run": action_for(_CATCH_ALL)}
    with _host_lock:
        host.register_rulesets({ruleset_name: definition})
    result: dict[tuple, frozenset[str]] = {}
    attributes = [(f"n{i}", f"s{i}") for i in range(len(index))]
    for start in range(0, len(distinct), _CHUNK):
        chunk = distinct[start:start + _CHUNK]
        facts = []
        for row, signature in enumerate(chunk, start=start):
            fact = {"sid": "0", "_row": row}
            for (number_attribute, text_attribute), value in zip(attributes, signature):
                fact[number_attribute], fact[text_attribute] = _encode(value)
            facts.append(fact)
        try:
            host.assert_facts(ruleset_name, facts)
            host.retract_facts(ruleset_name, facts)
        except MessageNotHandledException as error:  # cannot happen with the catch-all rule
            raise EngineFailure(f"durable_rules did not handle facts {start}..: {error}") from None
        for row, signature in enumerate(chunk, start=start):
            fired = hits.pop(row, set())
            if _CATCH_ALL not in fired:
                raise EngineFailure(f"durable_rules ran no action for fact {row} (swallowed error or async action)")
            fired.discard(_CATCH_ALL)
            result[signature] = frozenset(fired)
    try:
        host.delete_state(ruleset_name, "0")
    except Exception:  # pragma: no cover - state cleanup is best effort
        pass
    return result
