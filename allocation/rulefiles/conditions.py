"""The condition language of rule files: parse, evaluate, normalise, describe.

Syntax (YAML): a mapping `{Kategorie: KIM, Traeger: Kreis}` means every column equals its value;
`{Stellen: {gt: 0}}` uses an operator (`eq ne lt le gt ge in`); `all: [...]`, `any: [...]` and
`not: {...}` combine, nested at most `MAX_DEPTH` (32) deep. An empty mapping is always true.

Semantics (the reference for the durable_rules compilation in `engine.py`): values are text or numbers
(`Decimal`); `eq` holds when both are the same kind and equal (numbers compare by value, text exactly);
text never equals a number; ordered operators need numbers on both sides (the rule file and the input
are checked for that before any decision). `negation_normal_form` pushes `not` down to the comparisons,
since durable_rules has no `$not`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Iterator, Mapping, Union

from ..core.problems import Location, Problem, did_you_mean
from .yamlloc import LocDict, LocList

__all__ = [
    "Cmp",
    "All",
    "Any",
    "Not",
    "Condition",
    "TRUE",
    "OPERATORS",
    "ORDERED",
    "MAX_DEPTH",
    "parse",
    "evaluate",
    "columns",
    "ordered_columns",
    "negation_normal_form",
    "describe",
    "explain",
]

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in")
ORDERED = ("lt", "le", "gt", "ge")
COMBINATORS = ("all", "any", "not")
SYMBOLS = {"eq": "=", "ne": "≠", "lt": "<", "le": "≤", "gt": ">", "ge": "≥", "in": "∈"}
NUMBER_LIMIT = Decimal(10) ** 15
MAX_DEPTH = 32  # all/any/not inside each other (README, "Regeldateien"); deeper nesting is refused
NEGATED = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "le": "gt", "gt": "le"}


@dataclass(frozen=True, slots=True)
class Cmp:
    column: str
    op: str
    value: Union[str, Decimal, tuple]  # tuple of values for "in"
    source: Location


@dataclass(frozen=True, slots=True)
class All:
    children: tuple
    source: Location


@dataclass(frozen=True, slots=True)
class Any:
    children: tuple
    source: Location


@dataclass(frozen=True, slots=True)
class Not:
    child: object
    source: Location


Condition = Union[Cmp, All, Any, Not]
TRUE = All((), Location("<builtin>"))


# --------------------------------------------------------------------------------------------- parse


def _constant(value: object, where: Location, problems: list[Problem], column: str) -> str | Decimal | None:
    if isinstance(value, bool):
        problems.append(Problem(
            "rule-bad-value", where, f'"{column}": yes/no/true/false liest YAML als Wahrheitswert',
            found=str(value), expected="Text in Anführungszeichen oder eine Zahl",
            hint='für Kennzeichen 1/0 schreiben oder den Text in Anführungszeichen setzen, z. B. "ja"'))
        return None
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        if abs(value) >= NUMBER_LIMIT or len(value.as_tuple().digits) > 15:
            problems.append(Problem(
                "rule-bad-value", where, f'"{column}": Zahl außerhalb des zulässigen Bereichs', found=str(value),
                expected="höchstens 15 gültige Stellen, kleiner als 10^15", hint="eine kleinere Zahl schreiben"))
            return None
        return value
    if isinstance(value, str):
        return value
    problems.append(Problem(
        "rule-bad-value", where, f'"{column}": ein Bedingungswert muss Text oder eine Zahl sein',
        found=repr(value), expected="Text oder eine Zahl",
        hint="einen einzelnen Wert schreiben oder für eine Liste {in: [...]} verwenden"))
    return None


def parse(node: object, file: str, problems: list[Problem], at: tuple[int, int] = (0, 0)) -> Condition:
    """Parse a condition node of a rule file; problems are appended, a best-effort tree is returned.

    `all`/`any`/`not` may be nested at most MAX_DEPTH deep (`rule-too-deep`): every stage that walks a
    condition (normal form, engine compilation, analysis, descriptions) recurses once per level."""
    return _parse(node, file, problems, at, 0)


def _parse(node: object, file: str, problems: list[Problem], at: tuple[int, int], depth: int) -> Condition:
    where = Location(file, line=at[0] or getattr(node, "line", None), col=at[1] or getattr(node, "col", None))
    if depth > MAX_DEPTH:
        problems.append(Problem(
            "rule-too-deep", where, f"all/any/not sind hier mehr als {MAX_DEPTH} Ebenen tief geschachtelt",
            found=f"Ebene {depth}", expected=f"höchstens {MAX_DEPTH} Ebenen",
            hint="die Bedingung flacher schreiben: gleichartige all/any zusammenfassen, not nach innen ziehen "
                 "(z. B. ne statt not eq)"))
        return All((), where)
    if node is None:
        return All((), where)
    if not isinstance(node, dict):
        problems.append(Problem(
            "rule-bad-condition", where, "Eine Bedingung muss Spalten Werte zuordnen",
            found=repr(node), expected="z. B. {Kategorie: KIM}", hint="`when: {Spalte: Wert}` schreiben"))
        return All((), where)
    parts: list[Condition] = []
    for key, value in node.items():
        line, col = node.pos(key) if isinstance(node, LocDict) else (where.line, where.col)
        here = Location(file, line=line, col=col)
        vat = node.vpos(key) if isinstance(node, LocDict) else (line, col)
        if key in ("all", "any"):
            if not isinstance(value, list):
                problems.append(Problem(
                    "rule-bad-condition", here, f'"{key}" braucht eine Liste von Bedingungen', found=repr(value),
                    expected="eine YAML-Liste", hint=f"`{key}: [{{A: 1}}, {{B: 2}}]` schreiben"))
                continue
            children = tuple(
                _parse(child, file, problems, value.pos(i) if isinstance(value, LocList) else (line, col), depth + 1)
                for i, child in enumerate(value))
            parts.append(All(children, here) if key == "all" else Any(children, here))
        elif key == "not":
            parts.append(Not(_parse(value, file, problems, vat, depth + 1), here))
        elif not isinstance(key, str):
            problems.append(Problem(
                "rule-bad-condition", here, "Ein Spaltenname muss Text sein", found=repr(key),
                expected="eine Spaltenüberschrift", hint="den Spaltennamen in Anführungszeichen setzen"))
        elif isinstance(value, dict):
            if not value:
                problems.append(Problem("rule-bad-condition", here, f'"{key}": leere Operator-Zuordnung',
                                        expected="z. B. {gt: 0}", hint="einen Operator angeben"))
            for op, operand in value.items():
                op_at = value.pos(op) if isinstance(value, LocDict) else (line, col)
                op_here = Location(file, line=op_at[0], col=op_at[1])
                if op not in OPERATORS:
                    problems.append(Problem(
                        "rule-unknown-operator", op_here, f'unbekannter Operator "{op}"{did_you_mean(str(op), OPERATORS)}',
                        found=str(op), expected=", ".join(OPERATORS), hint="einen der aufgeführten Operatoren verwenden"))
                    continue
                if op == "in":
                    if not isinstance(operand, list) or not operand:
                        problems.append(Problem(
                            "rule-bad-value", op_here, f'"{key}: in" braucht eine nicht leere Liste', found=repr(operand),
                            expected="[a, b, ...]", hint="`in: [A, B]` schreiben"))
                        continue
                    values = tuple(_constant(v, op_here, problems, key) for v in operand)
                    parts.append(Cmp(key, "in", tuple(v for v in values if v is not None), op_here))
                    continue
                constant = _constant(operand, op_here, problems, key)
                if constant is None:
                    continue
                if op in ORDERED and not isinstance(constant, Decimal):
                    problems.append(Problem(
                        "rule-bad-value", op_here, f'"{key}: {op}" vergleicht der Größe nach und braucht eine Zahl',
                        found=repr(constant), expected="eine Zahl", hint="eine Zahl ohne Anführungszeichen schreiben"))
                    continue
                parts.append(Cmp(key, op, constant, op_here))
        else:
            constant = _constant(value, here, problems, key)
            if constant is not None:
                parts.append(Cmp(key, "eq", constant, here))
    if len(parts) == 1:
        return parts[0]
    return All(tuple(parts), where)


# ------------------------------------------------------------------------------------------ evaluate


def _equal(left: object, right: object) -> bool:
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return False


def _compare(op: str, left: object, right: object) -> bool:
    if op == "eq":
        return _equal(left, right)
    if op == "ne":
        return not _equal(left, right)
    if op == "in":
        return any(_equal(left, value) for value in right)
    if not (isinstance(left, Decimal) and isinstance(right, Decimal)):
        return False
    return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[op]


def evaluate(condition: Condition, attrs: Mapping[str, object]) -> bool:
    """Reference semantics: does `condition` hold for a record with these attribute values?"""
    if isinstance(condition, Cmp):
        return _compare(condition.op, attrs.get(condition.column, ""), condition.value)
    if isinstance(condition, All):
        return all(evaluate(child, attrs) for child in condition.children)
    if isinstance(condition, Any):
        return any(evaluate(child, attrs) for child in condition.children)
    return not evaluate(condition.child, attrs)


def _walk(condition: Condition) -> Iterator[Cmp]:
    if isinstance(condition, Cmp):
        yield condition
    elif isinstance(condition, (All, Any)):
        for child in condition.children:
            yield from _walk(child)
    else:
        yield from _walk(condition.child)


def columns(condition: Condition) -> list[Cmp]:
    """Every comparison in the condition (for column checks)."""
    return list(_walk(condition))


def ordered_columns(condition: Condition) -> set[str]:
    return {cmp.column for cmp in _walk(condition) if cmp.op in ORDERED}


def negation_normal_form(condition: Condition, negate: bool = False) -> Condition:
    """An equivalent condition without `Not` (given numeric values wherever an ordered operator applies)."""
    if isinstance(condition, Not):
        return negation_normal_form(condition.child, not negate)
    if isinstance(condition, (All, Any)):
        children = tuple(negation_normal_form(child, negate) for child in condition.children)
        flip = negate
        kind = (Any if isinstance(condition, All) else All) if flip else type(condition)
        return kind(children, condition.source)
    if not negate:
        if condition.op == "in":
            return Any(tuple(Cmp(condition.column, "eq", v, condition.source) for v in condition.value),
                       condition.source)
        return condition
    if condition.op == "in":
        return All(tuple(Cmp(condition.column, "ne", v, condition.source) for v in condition.value),
                   condition.source)
    return Cmp(condition.column, NEGATED[condition.op], condition.value, condition.source)


# ------------------------------------------------------------------------------------------ describe


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "{" + ", ".join(_show(v) for v in value) + "}"
    if isinstance(value, str):
        return f"„{value}“"
    return str(value)


def describe(condition: Condition, value_of: Callable[[str], object] | None = None) -> str:
    """German-friendly text of a condition; with `value_of`, each comparison shows the record's value."""
    if isinstance(condition, Cmp):
        text = f"{condition.column} {SYMBOLS[condition.op]} {_show(condition.value)}"
        if value_of is not None:
            text += f" [Wert: {_show(value_of(condition.column))}]"
        return text
    if isinstance(condition, (All, Any)):
        if not condition.children:
            return "immer" if isinstance(condition, All) else "nie"
        joiner = " und " if isinstance(condition, All) else " oder "
        inner = [describe(child, value_of) for child in condition.children]
        return joiner.join(f"({text})" if isinstance(child, (All, Any)) and len(child.children) > 1 else text
                           for child, text in zip(condition.children, inner))
    return f"nicht ({describe(condition.child, value_of)})"


def explain(condition: Condition, attrs: Mapping[str, object]) -> str:
    """The condition with the record's values, for the decision trace."""
    return describe(condition, lambda column: attrs.get(column, ""))
