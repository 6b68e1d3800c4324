"""A rulebook bound to an input workbook.

A rule names columns as its author spelled them; the workbook names them as the controller did. Binding resolves
every column a rule names (when, payers, key, extent, domains) to the workbook's header with
`inputs.normalise_header`, the one definition of "the same column name" (`check_columns`), and checks, before any
decision, that every cell a condition compares holds a value of the compared type and every cell of a domain column
a value of its domain (`check_data`). Engine, explanations and the decision trace then use the workbook's headers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator, Mapping

from ..core.model import CostItem, InputBook, KeySpec, Levy, Municipality, Rule, Rulebook, normalise_header
from ..core.problems import InputError, Location, Problem, RuleFileError, did_you_mean
from ..rulefiles import conditions
from .loading import domain_sources

__all__ = ["bind", "check_columns", "check_data", "check_levy_columns", "rename_columns"]

ITEM_SHEET = "Kostenpositionen"
MUNICIPALITY_SHEET = "Gemeinden"
EMPTY_MEANS_DISTRICT = "Traeger"  # an empty Traeger cell means the Kreis runs the item (README, input workbook)
FLAG_WORDS = ("ja", "nein", "yes", "no", "x", "wahr", "falsch", "true", "false", "j", "n")


@dataclass(frozen=True, slots=True)
class _Headers:
    """One sheet's headers as the workbook spells them, and where they stand."""

    sheet: str
    file: str
    names: tuple[str, ...]
    places: Mapping[str, int]  # header -> 1-based column (from a record; empty for a sheet without rows)

    def resolve(self, column: str) -> str | None:
        """The workbook's header for a column a rule names: the same text, else the one header that
        normalises alike (two such headers are an input error of their own)."""
        if column in self.names:
            return column
        wanted = normalise_header(column)
        return next((name for name in self.names if normalise_header(name) == wanted), None)

    def ambiguous(self) -> set[str]:
        """Normalised names that two or more headers of this sheet share."""
        seen: dict[str, int] = {}
        for name in self.names:
            seen[normalise_header(name)] = seen.get(normalise_header(name), 0) + 1
        return {key for key, count in seen.items() if count > 1}

    def at(self, name: str | None = None) -> Location:
        return Location(self.file, self.sheet, 1, self.places.get(name) if name is not None else None)


def _headers(book: InputBook) -> dict[str, _Headers]:
    fallback = Path(book.path).name

    def headers(sheet: str, names: tuple[str, ...], records: tuple) -> _Headers:
        first = records[0] if records else None
        return _Headers(sheet, first.source.file if first is not None else fallback, tuple(names),
                        dict(first.columns) if first is not None else {})

    return {ITEM_SHEET: headers(ITEM_SHEET, book.item_columns, book.items),
            MUNICIPALITY_SHEET: headers(MUNICIPALITY_SHEET, book.municipality_columns, book.municipalities)}


@dataclass(frozen=True, slots=True)
class _Ref:
    """One column a rule names, the sheet it belongs to and where the rule file names it."""

    sheet: str
    column: str
    where: Location
    rule: Rule


def _refs(rulebook: Rulebook) -> Iterator[_Ref]:
    for rule in rulebook.rules:
        for cmp in conditions.columns(rule.when):
            yield _Ref(ITEM_SHEET, cmp.column, cmp.source, rule)
        if rule.payers is not None:
            for cmp in conditions.columns(rule.payers):
                yield _Ref(MUNICIPALITY_SHEET, cmp.column, cmp.source, rule)
        if rule.key is not None and not rule.key.is_item_key:
            for column in rule.key.weights:
                yield _Ref(MUNICIPALITY_SHEET, column, rule.key.source, rule)
        if rule.extent:
            yield _Ref(MUNICIPALITY_SHEET, rule.extent, rule.source, rule)


def _domain_sheets(rulebook: Rulebook, column: str, headers: Mapping[str, _Headers]) -> list[str]:
    """The sheets whose column a domain constrains: those where the rules use it, else every sheet holding it."""
    wanted = normalise_header(column)
    used = [sheet for sheet in (ITEM_SHEET, MUNICIPALITY_SHEET)
            if any(ref.sheet == sheet and normalise_header(ref.column) == wanted for ref in _refs(rulebook))]
    return used or [sheet for sheet in (ITEM_SHEET, MUNICIPALITY_SHEET) if headers[sheet].resolve(column)]


def check_columns(rulebook: Rulebook, book: InputBook) -> list[Problem]:
    """Every column a rule names (and every `domains:` column) must exist in the input workbook; names match
    as `inputs.normalise_header` has them (case, spaces, underscores, hyphens, umlaut spelling)."""
    headers = _headers(book)
    problems: list[Problem] = []
    for ref in _refs(rulebook):
        available = headers[ref.sheet].names
        if headers[ref.sheet].resolve(ref.column) is None:
            problems.append(Problem(
                "rule-unknown-column", ref.where,
                f'Regel "{ref.rule.id}" nennt Spalte "{ref.column}", die es im Blatt {ref.sheet} nicht gibt'
                f"{did_you_mean(ref.column, available)}", found=ref.column, expected=", ".join(sorted(available)),
                hint=f"die Regel korrigieren oder die Spalte im Blatt {ref.sheet} ergänzen"))
    places = domain_sources(rulebook.path) if rulebook.domains else {}
    for column in rulebook.domains:
        if not _domain_sheets(rulebook, column, headers):
            available = headers[ITEM_SHEET].names + headers[MUNICIPALITY_SHEET].names
            problems.append(Problem(
                "rule-unknown-column", places.get((column, 0), rulebook.source),
                f'`domains:` erklärt einen Wertebereich für die Spalte "{column}", die es weder im Blatt '
                f"{ITEM_SHEET} noch im Blatt {MUNICIPALITY_SHEET} gibt{did_you_mean(column, available)}",
                found=column, expected=", ".join(sorted(available)),
                hint="den Spaltennamen unter `domains:` korrigieren oder die Spalte in der Arbeitsmappe ergänzen"))
    return problems


def _duplicate_headers(headers: _Headers) -> list[Problem]:
    """Two headers of one sheet that normalise alike name the same column twice."""
    problems = []
    first: dict[str, str] = {}
    for name in headers.names:
        key = normalise_header(name)
        if key not in first:
            first[key] = name
            continue
        problems.append(Problem(
            "input-duplicate-column", headers.at(name),
            f'Spalte "{name}" gilt als dieselbe Spalte wie "{first[key]}" (Groß-/Kleinschreibung, Leerzeichen, '
            "Unter- und Bindestriche und die Schreibung der Umlaute zählen nicht)", found=name,
            expected="jede Spalte nur einmal", hint="eine der beiden Spalten löschen oder eindeutig umbenennen"))
    return problems


def _renamed(condition: conditions.Condition, name: Callable[[str], str]) -> conditions.Condition:
    if isinstance(condition, conditions.Cmp):
        return replace(condition, column=name(condition.column))
    if isinstance(condition, conditions.Not):
        return replace(condition, child=_renamed(condition.child, name))
    return replace(condition, children=tuple(_renamed(child, name) for child in condition.children))


def rename_columns(rulebook: Rulebook, item_column: Callable[[str], str],
                   municipality_column: Callable[[str], str]) -> Rulebook:
    """The rulebook with every column of `when` renamed by `item_column` and every column of `payers`, `key`
    and `extent` (of rules and of levies) and of levy bases by `municipality_column` (conditions are frozen: the
    trees are rebuilt)."""
    rules = []
    for rule in rulebook.rules:
        key = rule.key
        if key is not None and not key.is_item_key:
            key = KeySpec({municipality_column(column): weight for column, weight in key.weights.items()}, key.source)
        rules.append(replace(rule, when=_renamed(rule.when, item_column),
                             payers=None if rule.payers is None else _renamed(rule.payers, municipality_column),
                             key=key, extent=municipality_column(rule.extent) if rule.extent else rule.extent))
    levies = tuple(replace(levy, payers=None if levy.payers is None else _renamed(levy.payers, municipality_column),
                           extent=municipality_column(levy.extent) if levy.extent else levy.extent,
                           base={municipality_column(column): weight for column, weight in levy.base.items()})
                   for levy in rulebook.levies)
    return replace(rulebook, rules=tuple(rules), levies=levies)


@dataclass(slots=True)
class _Compared:
    """How the rules compare one column: with numbers (by size or equality), with text, and who does."""

    numbers: Rule | None = None  # the first rule comparing it with a number
    by_size: Rule | None = None  # the first rule comparing it with lt/le/gt/ge
    text: Rule | None = None  # the first rule comparing it with text
    texts: tuple = ()

    def expected(self) -> str:
        if self.by_size is not None or self.text is None:
            return "number"
        return "text" if self.numbers is None else "any"


def _compared(rulebook: Rulebook) -> dict[tuple[str, str], _Compared]:
    """(sheet, column) -> how `when` (Kostenpositionen) and `payers` (Gemeinden; of rules and levies) compare it."""
    result: dict[tuple[str, str], _Compared] = {}
    compared = [(rule, ((ITEM_SHEET, rule.when), (MUNICIPALITY_SHEET, rule.payers))) for rule in rulebook.rules]
    compared += [(levy, ((MUNICIPALITY_SHEET, levy.payers),)) for levy in rulebook.levies]  # a levy's payers too
    for rule, where in compared:
        for sheet, condition in where:
            if condition is None:
                continue
            for cmp in conditions.columns(condition):
                seen = result.setdefault((sheet, cmp.column), _Compared())
                values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
                if cmp.op in conditions.ORDERED and seen.by_size is None:
                    seen.by_size = rule
                if any(isinstance(v, Decimal) for v in values) and seen.numbers is None:
                    seen.numbers = rule
                texts = tuple(v for v in values if isinstance(v, str))
                if texts:
                    seen.text = seen.text or rule
                    seen.texts += tuple(t for t in texts if t not in seen.texts)
    return result


def _place(rulebook: Rulebook, rule: Rule | Levy) -> str:
    kind = "Umlage" if isinstance(rule, Levy) else "Regel"
    return f'{kind} "{rule.id}" ({Path(rulebook.path).name}:{rule.source.line})'


def _show_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _typed_cell(rulebook: Rulebook, record: CostItem | Municipality, column: str, how: _Compared) -> Problem | None:
    """A problem if this cell cannot be compared as the rules compare its column."""
    value = record.attrs.get(column, "")
    expected = how.expected()
    if value == "":
        if column == EMPTY_MEANS_DISTRICT and record.source.sheet == ITEM_SHEET:
            return None
        rule = how.by_size or how.numbers or how.text
        wanted = {"number": "eine Zahl", "text": "ein Text", "any": "ein Wert"}[expected]
        return Problem(
            "input-empty-cell", record.cell(column),
            f"{column} ist leer, aber {_place(rulebook, rule)} vergleicht diese Spalte: eine leere Zelle "
            "würde stillschweigend mitentscheiden, wer zahlt", found="leer", expected=wanted,
            hint=f"{column} ausfüllen" + (" (für ein Kennzeichen 1 oder 0)" if expected == "number" else ""))
    if expected == "number" and not isinstance(value, Decimal):
        rule = how.by_size or how.numbers
        way = "der Größe nach" if how.by_size is not None else "mit Zahlen"
        hint = f"in {column} eine Zahl eintragen"
        if value.strip().casefold() in FLAG_WORDS:
            hint = "für ein Kennzeichen 1 (ja) oder 0 (nein) als Zahl eintragen"
        else:
            try:
                number = Decimal(value.strip().replace(",", "."))
            except ArithmeticError:
                number = None
            if number is not None and number.is_finite():
                hint = f"{number} als Zahl eintragen (die Zelle als Zahl formatieren, nicht als Text)"
        return Problem(
            "input-not-a-number", record.cell(column),
            f"{_show_value(value)} ist keine Zahl, aber {_place(rulebook, rule)} vergleicht {column} {way}",
            found=_show_value(value), expected="eine Zahl", hint=hint)
    if expected == "text" and not isinstance(value, str):
        shown = ", ".join(f'"{t}"' for t in how.texts[:5])
        return Problem(
            "input-not-text", record.cell(column),
            f"{value} ist eine Zahl, aber {_place(rulebook, how.text)} vergleicht {column} nur mit Text ({shown}); "
            "eine Zahl ist nie gleich einem Text", found=str(value), expected=f"ein Text wie {shown}",
            hint="die Zelle als Text formatieren und den Wert so eintragen, wie die Regel ihn nennt "
                 "(z. B. mit führender Null), oder die Regel korrigieren")
    return None


def _domain_cell(rulebook: Rulebook, record: CostItem | Municipality, column: str, domain: tuple,
                 declared: str) -> Problem | None:
    value = record.attrs.get(column, "")
    probe = conditions.Cmp(column, "in", tuple(domain), rulebook.source)
    if conditions.evaluate(probe, {column: value}):
        return None
    if value == "" and column == EMPTY_MEANS_DISTRICT and record.source.sheet == ITEM_SHEET:
        return None
    listed = ", ".join(_show_value(v) for v in domain)
    if value == "":
        return Problem("input-empty-cell", record.cell(column),
                       f"{column} ist leer; die Regeldatei erklärt für {declared} nur bestimmte Werte",
                       found="leer", expected=f"einer der Werte {listed}", hint=f"{column} ausfüllen")
    return Problem(
        "input-value-not-in-domain", record.cell(column),
        f"{column} = {_show_value(value)} liegt nicht im Wertebereich, den {Path(rulebook.path).name} unter "
        f"`domains: {declared}` erklärt{did_you_mean(str(value), [str(v) for v in domain])}",
        found=_show_value(value), expected=f"einer der Werte {listed}",
        hint=f"einen dieser Werte eintragen oder den Wert unter `domains: {declared}` in der Regeldatei ergänzen")


def check_data(bound: Rulebook, book: InputBook, skip: Mapping[str, set[str]] | None = None) -> list[Problem]:
    """Every cell a condition compares holds a value of the compared type, every cell of a domain column a
    value of its domain (one problem per cell). `bound` names the workbook's headers; `skip` holds, per
    sheet, normalised names not to check (their headers are ambiguous, reported elsewhere)."""
    skip = skip or {}
    records = {ITEM_SHEET: book.items, MUNICIPALITY_SHEET: book.municipalities}
    headers = _headers(book)
    problems: dict[Location, Problem] = {}
    for (sheet, column), how in _compared(bound).items():
        if normalise_header(column) in skip.get(sheet, ()) or column not in headers[sheet].names:
            continue
        kinds = {"number": (Decimal,), "text": (str,), "any": (str, Decimal)}[how.expected()]
        for record in records[sheet]:  # a cheap test first: most cells are fine
            value = record.attrs.get(column, "")
            if type(value) in kinds and value != "":
                continue
            problem = _typed_cell(bound, record, column, how)
            if problem is not None:
                problems.setdefault(problem.location, problem)
    for declared, domain in bound.domains.items():
        for sheet in _domain_sheets(bound, declared, headers):
            column = headers[sheet].resolve(declared)
            if column is None or normalise_header(column) in skip.get(sheet, ()):
                continue
            allowed = frozenset(v for v in domain if type(v) in (str, Decimal))  # Decimal hashes by value
            for record in records[sheet]:
                value = record.attrs.get(column, "")
                if type(value) in (str, Decimal) and value in allowed:
                    continue
                problem = _domain_cell(bound, record, column, domain, declared)
                if problem is not None:
                    problems.setdefault(problem.location, problem)
    return sorted(problems.values(), key=lambda p: (p.location.sheet != ITEM_SHEET, p.location.row or 0,
                                                    p.location.column or 0))


def bind(rulebook: Rulebook, book: InputBook) -> Rulebook:
    """The rulebook as this workbook names its columns, once the data the rules read is checked.

    Raises RuleFileError when a rule names a column the workbook lacks (exit 4; input problems found on the
    way are listed too), InputError for two headers of a sheet that normalise alike, a compared cell that is
    empty or of the wrong type, or a value outside its declared domain (exit 3)."""
    headers = _headers(book)
    input_problems = [p for sheet in headers.values() for p in _duplicate_headers(sheet)]
    rule_problems = check_columns(rulebook, book)
    if rule_problems:
        raise RuleFileError(rule_problems + input_problems)

    def to(sheet: str) -> Callable[[str], str]:
        return lambda column: headers[sheet].resolve(column) or column

    bound = rename_columns(rulebook, to(ITEM_SHEET), to(MUNICIPALITY_SHEET))
    input_problems += check_data(bound, book, {sheet: h.ambiguous() for sheet, h in headers.items()})
    if input_problems:
        raise InputError(input_problems)
    return bound
def check_levy_columns(rulebook: Rulebook, book: InputBook) -> list[Problem]:
    """Every column a levy names (base components, payers, extent) must exist in the `Gemeinden` sheet."""
    problems: list[Problem] = []
    available = set(book.municipality_columns)
    for levy in rulebook.levies:
        named = [(column, levy.source) for column in levy.base]
        named += [(cmp.column, cmp.source) for cmp in conditions.columns(levy.payers)] if levy.payers is not None else []
        named += [(levy.extent, levy.source)] if levy.extent else []
        for column, where in named:
            if column not in available:
                problems.append(Problem(
                    "rule-unknown-column", where,
                    f'Umlage "{levy.id}" nennt Spalte "{column}", die es im Blatt Gemeinden nicht gibt'
                    f"{did_you_mean(column, available)}", found=column, expected=", ".join(sorted(available)),
                    hint="die Umlage korrigieren oder die Spalte im Blatt Gemeinden ergänzen"))
    return problems
