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
- patterns of several hundred comparisons hang durable_rules (an `in` list of 700 values; 500 work):
  `rulebook.py` refuses conditions of more than `MAX_COMPARISONS` (tests/test_errors.py).
Distinct records are decided once (only the referenced columns are part of a record's identity).

Fast path (benchmarks/README.md; proven against a reference evaluator in tests/test_engine_fast_path.py):
- numbers travel as order codes among the column's number constants (`_Column`): exact for any decimal,
  and only small integers reach durable_rules (its parser rejects doubles like 5e-05).
- values no condition can tell apart are one case: a number is identified by its order code, a text by
  whether it equals one of the column's text constants. durable_rules decides one representative record
  of each case; the others reuse that decision. Columns with text compared by size, and text containing
  NUL, keep their exact values.
- facts are asserted and retracted in chunks (`assert_facts`), and the host runs without its background
  dispatch timers, so every action has run when the call returns (durable_rules otherwise finishes
  batched actions later on a timer thread).
"""
from __future__ import annotations

import bisect
import itertools
import operator
import threading
from decimal import Decimal
from typing import Mapping, Sequence

from . import conditions
from .conditions import All, Cmp, Condition

__all__ = ["match", "EngineFailure", "durable_version", "compile_condition"]

_TEXT_PREFIX = "s:"
_NUMBER_IN_TEXT = "\x00number"  # s<i> of a numeric value; never equal to a prefixed text constant
_TEXT_IN_NUMBER = -1  # n<i> of a text value; number codes are never negative
_CATCH_ALL = "__fact_seen__"
_CHUNK = 64  # facts per assert_facts call: fewer calls into the C core, bounded retained facts
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


class _Column:
    """One referenced column: its number constants in order and its text constants.

    Numbers reach durable_rules as order codes, never as their value: with the column's number constants
    c0 < c1 < ... (exact decimals), a value gets 2p+1 if it equals c_p and 2p if it lies between c_(p-1)
    and c_p (0 below all, 2m above all). Every comparison with a constant therefore has the same outcome on
    the codes as on the exact values, durable_rules only ever sees small integers (its JSON parser rejects
    doubles such as 5e-05, and doubles would round big or long decimals), and no float enters a decision.
    """

    def __init__(self, name: str, normal: Sequence[Condition]) -> None:
        numbers: set[Decimal] = set()
        texts: set[str] = set()
        self.exact_text = False
        for condition in normal:
            for cmp in conditions.columns(condition):
                if cmp.column != name:
                    continue
                if isinstance(cmp.value, Decimal):
                    numbers.add(cmp.value)
                else:
                    texts.add(cmp.value)
                    self.exact_text = self.exact_text or cmp.op not in ("eq", "ne")
        self.numbers = sorted(numbers)
        self.texts = texts

    def code(self, value: Decimal) -> int:
        position = bisect.bisect_left(self.numbers, value)
        equal = position < len(self.numbers) and self.numbers[position] == value
        return 2 * position + 1 if equal else 2 * position

    def encode(self, value: object) -> tuple[int, str]:
        if isinstance(value, Decimal):
            return self.code(value), _NUMBER_IN_TEXT
        return _TEXT_IN_NUMBER, _TEXT_PREFIX + str(value)

    def case(self, value: object) -> tuple:
        """A key equal for all values that every comparison on this column treats alike."""
        if isinstance(value, Decimal):
            return (1, self.code(value))
        text = str(value)
        if self.exact_text or text in self.texts or "\x00" in text:
            return (2, text)
        return (3, _OTHER_TEXT)


def _leaf(cmp: Cmp, index: Mapping[str, int], columns: Sequence[_Column]) -> dict:
    i = index[cmp.column]
    if isinstance(cmp.value, Decimal):
        attribute, constant = f"n{i}", columns[i].code(cmp.value)
    else:
        attribute, constant = f"s{i}", _TEXT_PREFIX + cmp.value
    operator = {"eq": None, "ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}[cmp.op]
    return {attribute: constant} if operator is None else {operator: {attribute: constant}}


def _compile(node: Condition, index: Mapping[str, int], columns: Sequence[_Column]) -> dict:
    if isinstance(node, Cmp):
        return _leaf(node, index, columns)
    if not node.children:
        # empty all = always true; empty any = never true ("_row" exists on every fact). A bare
        # `$nex` would also match durable_rules' own state object and fire forever: "never" must be
        # unsatisfiable for every object (tests/test_regressions.py).
        if isinstance(node, All):
            return {"$ex": {"_row": 1}}
        return {"$and": [{"$ex": {"_row": 1}}, {"$nex": {"_row": 1}}]}
    parts = [_compile(child, index, columns) for child in node.children]
    if len(parts) == 1:
        return parts[0]
    return {"$and" if isinstance(node, All) else "$or": parts}


def compile_condition(condition: Condition, index: Mapping[str, int], columns: Sequence[_Column]) -> dict:
    """A condition (in negation normal form) as a durable_rules pattern over the encoded attributes."""
    return _compile(condition, index, columns)


def match(named: Mapping[str, Condition], records: Sequence[Mapping[str, object]]) -> list[frozenset[str]]:
    """For each record, the names of the conditions that hold, as decided by durable_rules."""
    return _match(named, records, reduce_values=True)


class _CaseMemo(dict):
    """value -> case of one column, classifying each distinct value once (on first lookup)."""

    def __init__(self, column: _Column) -> None:
        super().__init__()
        self.column = column

    def __missing__(self, value: object) -> object:
        case = self[value] = self.column.case(value)
        return case


def _column_values(records: Sequence[Mapping[str, object]], column: str) -> list[object]:
    try:
        return list(map(operator.itemgetter(column), records))
    except KeyError:  # a record without the column: the reference semantics read it as empty text
        return [record.get(column, "") for record in records]


def _match(named: Mapping[str, Condition], records: Sequence[Mapping[str, object]],
           reduce_values: bool) -> list[frozenset[str]]:
    if not records:
        return []
    names = list(named)
    normal = [conditions.negation_normal_form(named[name]) for name in names]
    column_names = sorted({cmp.column for condition in normal for cmp in conditions.columns(condition)})
    index = {column: i for i, column in enumerate(column_names)}
    columns = [_Column(column, normal) for column in column_names]
    patterns = {name: compile_condition(condition, index, columns) for name, condition in zip(names, normal)}
    values = [_column_values(records, column) for column in column_names]
    for column_values in values:
        if not set(map(type, column_values)) <= {str, Decimal}:
            raise EngineFailure("record values must be text or Decimal")  # inputs.py guarantees it
    if not reduce_values:
        signatures = list(zip(*values)) if values else [()] * len(records)
        decided = _decide(patterns, columns, list(dict.fromkeys(signatures)))
        return [decided[signature] for signature in signatures]
    # Each value is hashed once, into its column's case memo (text and Decimal never compare equal, so one
    # dict holds both); records are then grouped by their tuple of cases, and durable_rules decides the first
    # record of each group.
    cases = [list(map(_CaseMemo(column).__getitem__, column_values))
             for column, column_values in zip(columns, values)]
    keys = list(zip(*cases)) if cases else [()] * len(records)
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))  # case tuple -> first record index
    representatives = [tuple(column_values[i] for column_values in values) for i in first.values()]
    decided = _decide(patterns, columns, representatives)
    by_case = {key: decided[representative] for key, representative in zip(first, representatives)}
    return list(map(by_case.__getitem__, keys))


def _decide(patterns: Mapping[str, dict], columns: Sequence[_Column],
            distinct: Sequence[tuple]) -> dict[tuple, frozenset[str]]:
    from durable.engine import MessageNotHandledException

    host = _get_host()
    hits: dict[int, set[str]] = {}

    def action_for(name: str):
        def action(c):  # durable_rules calls actions with exactly one argument
            hits.setdefault(c.m["_row"], set()).add(name)

        return action

    ruleset_name = f"allocation_{next(_names)}"
    definition = {f"r{i}": {"all": [{"m": pattern}], "run": action_for(name)}
                  for i, (name, pattern) in enumerate(patterns.items())}
    definition["seen"] = {"all": [{"m": {"$ex": {"_row": 1}}}], "run": action_for(_CATCH_ALL)}
    result: dict[tuple, frozenset[str]] = {}
    attributes = [(f"n{i}", f"s{i}", column) for i, column in enumerate(columns)]
    # One decision at a time per process: the Host and the C core behind it are shared, and durable_rules
    # documents no thread safety. Its C calls never release the GIL anyway, so threads (a batch on a
    # ThreadPoolExecutor, the web server) lose little by waiting here (tests/test_executors.py).
    with _host_lock:
        host.register_rulesets({ruleset_name: definition})
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start:start + _CHUNK]
            facts = []
            for row, signature in enumerate(chunk, start=start):
                fact = {"sid": "0", "_row": row}
                for (number_attribute, text_attribute, column), value in zip(attributes, signature):
                    fact[number_attribute], fact[text_attribute] = column.encode(value)
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
