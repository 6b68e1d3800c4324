"""The only module that talks to durable_rules. Its quirks stay here, each proven in tests/test_engine.py.

`match(conditions, records)` compiles named conditions into durable_rules rulesets (one for a usual rule
file, several for a large one, see below) and asserts each distinct record as a fact; since asserted facts fire *every* matching rule, the result is, per record, the
set of condition names that hold. Hit policies are applied by the caller on that set.

Quirks handled here (see ../shared/ENGINE-NOTES.md):
- durable_rules compares text and numbers loosely (`"1" == 1`, `"" == 1`, `"abc" > 0` all match). Every
  column therefore travels as two attributes that are always present: `n<i>` (the number, or a sentinel for
  text) and `s<i>` (the text with a prefix, or a sentinel for numbers). A number constant is only compared
  with `n<i>`, a text constant only with `s<i>`, so no loose comparison is ever made.
- a missing attribute never matches, not even `$neq`: both attributes are always set.
- no `$not` / `$in`: conditions go through `conditions.negation_normal_form` first.
- a fact that matches no rule raises `MessageNotHandledException`, and actions' exceptions are swallowed:
  an internal catch-all rule fires for every fact, and a fact whose catch-all did not fire is an error. A
  KeyboardInterrupt is swallowed too (so would the command line's SIGTERM be): Ctrl-C and SIGTERM are held
  while the engine runs and act after it (`signals.held`).
- asserting an identical fact twice raises: every fact carries a unique `_row`.
- `MemoryError` at 1,024 state ids: one state id per call, each fact retracted after its decision.
- ruleset names must be unique per host: one host per process, one fresh ruleset name per call.
- patterns of several hundred comparisons hang durable_rules (an `in` list of 513 values; 512 work):
  `validation.py` refuses conditions of more than `MAX_COMPARISONS` (tests/test_errors.py).
- a pattern of more than 15 `$and`/`$or` nodes is refused (error 113): `combinators` counts them (nested
  all-in-all is compiled as one node) and `validation.py` refuses larger conditions (`rule-too-large`).
- one ruleset holds at most 4,096 rules (error 106), at most 256 rules of one pattern (error 108), and
  *hangs* while being created when a node gets more than 512 successors (513 rules `Kategorie: K<i>`;
  the hang is shown by `benchmarks/bench_rules.py --limits`, not by a unit test):
  the rules are compiled as several rulesets of at most `RULES_PER_RULESET` rules and
  `COMPARISONS_PER_RULESET` comparisons (`_rulesets`), one alive at a time, every fact asserted into
  each; the hits are the union (benchmarks/README.md, "Rule files"). Run and check share this path
  (`compile_rules`, called by validation.py).
- matching uses a stack of 64 entries: a fact that satisfies rules and `any` alternatives of total
  `weight` above 64 in one ruleset fails with error 303 (64 rules `N > i`; one `any` of 64 `ne`).
  Groups stay below `WEIGHT_PER_RULESET`; validation.py refuses one condition heavier than `MAX_WEIGHT`.
- the host keeps every registered ruleset (and the C core its memory) until it is deleted: each ruleset
  is deleted after its call (`_drop`), so a long-running process (the web page, a batch) does not grow.
- a `durable_rules_engine.error` while creating a ruleset or asserting facts becomes `EngineFailure`
  (never a raw traceback). After such an error the C core of that process is not to be trusted (seen: a
  later ruleset it should refuse accepted, a segmentation fault), so every known cause is refused by
  validation.py first, and tests/test_engine.py provokes the limits only in child processes. A ruleset whose
  facts failed is never called into again (`_forget`): deleting it was what crashed the process.
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
import signal
import threading
from decimal import Decimal
from typing import Mapping, Sequence

from ..core.signals import held
from ..rulefiles import conditions
from .conditions import All, Cmp, Condition

__all__ = ["match", "compile_rules", "EngineFailure", "durable_version", "compile_condition", "combinators",
           "MAX_COMBINATORS",
           "weight", "MAX_WEIGHT"]

_TEXT_PREFIX = "s:"
_NUMBER_IN_TEXT = "\x00number"  # s<i> of a numeric value; never equal to a prefixed text constant
_TEXT_IN_NUMBER = -1  # n<i> of a text value; number codes are never negative
RULES_PER_RULESET = 200  # measured limits per ruleset: 256 rules of one pattern, 4,096 rules (see _rulesets)
MAX_COMBINATORS = 15  # measured: a pattern with 16 `$and`/`$or` nodes is refused (error 113)
COMPARISONS_PER_RULESET = 450  # measured limit: 512 successors of one node hang durable_rules
WEIGHT_PER_RULESET = 48  # measured limit: 64 (see weight); the margin covers shapes not measured
MAX_WEIGHT = WEIGHT_PER_RULESET - 1  # one condition alone, next to the catch-all rule
_CHUNK = 64  # facts per assert_facts call: fewer calls into the C core, bounded retained facts
_OTHER_TEXT = object()  # the case of every text that equals no text constant of its column

_host = None
_host_lock = threading.RLock()  # re-entrant: _decide holds it around _register / _drop
_names = itertools.count()


class EngineFailure(RuntimeError):
    """durable_rules did not behave as this module relies on (an internal error, never user input)."""

    rule: str | None = None  # compile_rules: the first condition of the ruleset durable_rules refused


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
        self.name = name
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
    kind = "$and" if isinstance(node, All) else "$or"
    parts = []
    for child in node.children:  # all-in-all and any-in-any are one combinator (each one counts, see below)
        part = _compile(child, index, columns)
        parts.extend(part[kind] if kind in part else [part])
    if len(parts) == 1:
        return parts[0]
    return {kind: parts}


def _combinators(pattern: dict) -> int:
    for kind in ("$and", "$or"):
        if kind in pattern:
            return 1 + sum(map(_combinators, pattern[kind]))
    return 0


def combinators(condition: Condition) -> int:
    """`$and`/`$or` nodes of the condition's pattern: durable_rules refuses a pattern with more than
    MAX_COMBINATORS of them (error 113, measured: 15 work, 16 fail). validation.py refuses such conditions."""
    return _combinators(_patterns({"c": condition})[0]["c"])


def compile_condition(condition: Condition, index: Mapping[str, int], columns: Sequence[_Column]) -> dict:
    """A condition (in negation normal form) as a durable_rules pattern over the encoded attributes."""
    return _compile(condition, index, columns)


def _patterns(named: Mapping[str, Condition]) -> tuple[dict[str, dict], list[_Column]]:
    """Each condition's durable_rules pattern, and the referenced columns in attribute order."""
    normal = {name: conditions.negation_normal_form(condition) for name, condition in named.items()}
    column_names = sorted({cmp.column for condition in normal.values() for cmp in conditions.columns(condition)})
    index = {column: i for i, column in enumerate(column_names)}
    columns = [_Column(column, list(normal.values())) for column in column_names]
    return {name: compile_condition(condition, index, columns) for name, condition in normal.items()}, columns


def compile_rules(named: Mapping[str, Condition]) -> None:
    """Create (and delete) the rulesets `match` would create for these conditions, asserting nothing.

    `allocation check` and every run call it through validation.py, so a rule file that durable_rules would
    refuse fails at `check` as it would at `run`. Raises EngineFailure naming the first condition of the
    refused ruleset (`.rule`)."""
    if not named:
        return
    patterns, _columns = _patterns(named)
    host = _get_host()
    for group in _rulesets(patterns):
        try:
            ruleset_name = _register(host, group, {}, {})
        except EngineFailure as failure:
            failure.rule = group[0][0] if group else None
            raise
        _drop(host, ruleset_name)


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
    patterns, columns = _patterns(named)
    values = [_column_values(records, column.name) for column in columns]
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


def _size(pattern: dict) -> int:
    """Comparisons in a compiled pattern (each value of an `in` list is one, after the normal form)."""
    for kind in ("$and", "$or"):
        if kind in pattern:
            return sum(map(_size, pattern[kind]))
    return 1


def _branches(pattern: dict) -> int:
    """Extra alternatives of a pattern that one fact can satisfy at once (0 for a chain of comparisons).

    An `$or` adds one per alternative beyond the first; equalities on the same attribute exclude each
    other (an `in` list) and count as one alternative."""
    if "$and" in pattern:
        return sum(map(_branches, pattern["$and"]))
    if "$or" not in pattern:
        return 0
    equal_attributes: set[str] = set()
    alternatives = 0
    for child in pattern["$or"]:
        plain = len(child) == 1 and not next(iter(child)).startswith("$")
        if plain and next(iter(child)) in equal_attributes:
            continue
        if plain:
            equal_attributes.add(next(iter(child)))
        alternatives += 1 + _branches(child)
    return alternatives - 1


def weight(condition: Condition) -> int:
    """The share of durable_rules' matching stack one fact can take in this condition's ruleset: 1 for the
    rule plus its extra alternatives (`_branches`). A ruleset of total weight 64 works, 65 fails with error
    303 at `assert_facts` (measured: 64 rules `N > i` matching one fact; one `any` of 64 `ne`; 32 rules
    `K = a and (L != b_i or M != c_i)`). validation.py refuses conditions heavier than MAX_WEIGHT."""
    return 1 + _branches(_patterns({"c": condition})[0]["c"])


def _rulesets(patterns: Mapping[str, dict]) -> list[list[tuple[str, dict]]]:
    """The named patterns in consecutive groups that each stay within durable_rules' measured limits.

    Limits found by measurement (benchmarks/README.md, "Rule files"): a ruleset refuses more than 4,096 rules
    (error 106) and more than 256 rules with the same pattern (error 108); it *hangs* while being created
    when one node of its network gets more than 512 different successors (e.g. 513 rules `Kategorie: K<i>`,
    or an `in` list of 513 values); and `assert_facts` fails (error 303, a matching stack of 64 entries)
    when one fact can satisfy rules and alternatives of total `weight` above 64. A node's successors are
    distinct comparisons of the ruleset, so a group of at most COMPARISONS_PER_RULESET comparisons and
    WEIGHT_PER_RULESET weight (the catch-all included) stays below all of them. A single heavier pattern
    keeps a group of its own (validation.py refuses those). Since an asserted fact fires every matching rule
    of every ruleset, the union of the groups' hits is the single ruleset's answer (tests/test_engine.py
    proves it against `conditions.evaluate`)."""
    groups: list[list[tuple[str, dict]]] = []
    size = load = 0
    for name, pattern in patterns.items():
        comparisons, stack = _size(pattern), 1 + _branches(pattern)
        if (not groups or len(groups[-1]) >= RULES_PER_RULESET or size + comparisons > COMPARISONS_PER_RULESET
                or load + stack > WEIGHT_PER_RULESET - 1):  # - 1: the catch-all rule
            groups.append([])
            size = load = 0
        groups[-1].append((name, pattern))
        size += comparisons
        load += stack
    return groups or [[]]


def _register(host, group: Sequence[tuple[str, dict]], hits: dict[int, set[str]], seen: dict[int, int]) -> str:
    def action_for(name: str):
        def action(c):  # durable_rules calls actions with exactly one argument
            hits.setdefault(c.m["_row"], set()).add(name)

        return action

    def catch_all(c):
        row = c.m["_row"]
        seen[row] = seen.get(row, 0) + 1

    ruleset_name = f"allocation_{next(_names)}"
    definition = {f"r{i}": {"all": [{"m": pattern}], "run": action_for(name)} for i, (name, pattern) in enumerate(group)}
    definition["seen"] = {"all": [{"m": {"$ex": {"_row": 1}}}], "run": catch_all}
    import durable_rules_engine

    with _host_lock:
        try:
            host.register_rulesets({ruleset_name: definition})
        except durable_rules_engine.error as error:  # validation.py refuses every pattern known to cause this
            raise EngineFailure(f"durable_rules refused a ruleset of {len(group)} rules: {error}") from None
    return ruleset_name


def _forget(host, ruleset_name: str) -> None:
    """Remove a ruleset from the host without calling into the C core: after durable_rules has reported an
    error on it (e.g. 303, matching stack full), deleting its state or the ruleset itself crashed the process
    with a segmentation fault, deterministically for some memory layouts (tests/test_engine.py). Its handle
    stays taken; such a failure is an internal error that validation.py's checks keep a run from reaching."""
    with _host_lock:
        ruleset = host._ruleset_directory.pop(ruleset_name, None)
        if ruleset is not None:
            host._ruleset_list.remove(ruleset)


def _drop(host, ruleset_name: str) -> None:
    """Delete a ruleset after its call: the C core has a fixed table of ruleset handles, and the host would
    otherwise keep every ruleset of every call of a long-running process (the web page, a batch)."""
    import durable_rules_engine

    with _host_lock:
        ruleset = host._ruleset_directory.pop(ruleset_name, None)
        if ruleset is None:  # pragma: no cover - registered above
            return
        host._ruleset_list.remove(ruleset)
    try:
        ruleset.delete_state("0")
    except durable_rules_engine.error:  # code 309: no state "0", a call that posted no fact (tests/test_engine.py)
        pass
    durable_rules_engine.delete_ruleset(ruleset._handle)


def _decide(patterns: Mapping[str, dict], columns: Sequence[_Column],
            distinct: Sequence[tuple]) -> dict[tuple, frozenset[str]]:
    host = _get_host()
    hits: dict[int, set[str]] = {}
    seen: dict[int, int] = {}
    attributes = [(f"n{i}", f"s{i}", column) for i, column in enumerate(columns)]
    facts = []
    for row, signature in enumerate(distinct):
        fact = {"sid": "0", "_row": row}
        for (number_attribute, text_attribute, column), value in zip(attributes, signature):
            fact[number_attribute], fact[text_attribute] = column.encode(value)
        facts.append(fact)
    groups = _rulesets(patterns)
    # One decision at a time per process: the Host and the C core behind it are shared, and durable_rules
    # documents no thread safety. Its C calls never release the GIL anyway, so threads (a batch on a
    # ThreadPoolExecutor, the web server) lose little by waiting here (tests/test_executors.py).
    # durable_rules swallows whatever its actions raise, a Ctrl-C or the command line's SIGTERM too (a false
    # EngineFailure, a missed rule; tests/test_engine.py): both are held while it runs and act after it
    with _host_lock, held(signal.SIGINT, signal.SIGTERM):
        for group in groups:  # one ruleset alive at a time: memory stays that of one group
            ruleset_name = _register(host, group, hits, seen)
            try:
                _assert_all(host, ruleset_name, facts)
            except EngineFailure:
                _forget(host, ruleset_name)  # never call into a ruleset the C core failed on (see _forget)
                raise
            _drop(host, ruleset_name)
    result: dict[tuple, frozenset[str]] = {}
    for row, signature in enumerate(distinct):
        if seen.get(row, 0) != len(groups):
            raise EngineFailure(f"durable_rules ran no action for fact {row} in some ruleset "
                                "(swallowed error or async action)")
        result[signature] = frozenset(hits.get(row, ()))
    return result


def _assert_all(host, ruleset_name: str, facts: Sequence[dict]) -> None:
    import durable_rules_engine
    from durable.engine import MessageNotHandledException

    for start in range(0, len(facts), _CHUNK):
        chunk = facts[start:start + _CHUNK]
        try:
            host.assert_facts(ruleset_name, chunk)
            host.retract_facts(ruleset_name, chunk)
        except MessageNotHandledException as error:  # cannot happen with the catch-all rule
            raise EngineFailure(f"durable_rules did not handle facts {start}..: {error}") from None
        except durable_rules_engine.error as error:  # e.g. error 303; validation.py refuses the known causes
            raise EngineFailure(f"durable_rules failed on facts {start}..: {error}") from None
