"""Static checks across rules and rule files, before any workbook is read (`allocation check`).

The schema of one file (unknown keys, types, routes, operators, duplicate ids, missing legal basis,
weights) is checked by `rulefiles/validation.py`. This module adds what needs reasoning over several rules:

- **overlap** (`hit_policy: unique`): two rules whose conditions can both hold for one item;
- **shadowing** (`hit_policy: priority`): a rule that can never win;
- **gaps** (columns with a declared `domains:` list): a value for which no rule, or not every item, is covered
  (a domain column the rules use only in `payers`, `key` or `extent` constrains `Gemeinden` data, not items);
- **validity** across files: files of the same district with overlapping budget years, or a year inside
  the covered range that no file covers;
- **embedded examples**: each `examples:` entry is decided by durable_rules (`engine.match`, `allocate.winner`)
  and, with an expected split, apportioned by `allocate.allocate` (which calls `money.apportion`).

Why the reasoning is exact. A condition compares single columns with constants (`eq ne in` on text or
numbers, `lt le gt ge` on numbers) and combines the comparisons with all/any/not; no comparison relates
two columns. Take one column and the constants the rules compare it with. Two values that are equal to the
same constant (or to none of them) and lie in the same position relative to every numeric constant (equal to
it, or strictly between the same two neighbours) make every comparison on that column come out the same,
so every condition does. There are finitely many such classes: each text constant, "any other text", each
numeric constant, each open interval between neighbouring numeric constants, the interval below the
smallest and above the largest (or "any number" without numeric constants). Picking one representative per
class and column and searching the combinations therefore finds an item satisfying a condition whenever
one exists: satisfiability is decidable and the example item is concrete. A column that some rule compares
by size must hold numbers in every item (the run refuses text there), so only numeric classes are used for
it; a missing column is the empty text, one of the text classes. A column with a declared domain takes only
the domain's values in the gap check. Column names are matched as a run matches them with the workbook's
headers (`inputs.normalise_header`): `Jugendamt Kreis` and `Jugendamt_Kreis` are one column. The search
prunes with three-valued evaluation; if a pathological file needs more than `SEARCH_LIMIT` steps for one
question, the answer is reported as undecided, never guessed.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..rulefiles import conditions
from ..rulefiles.conditions import All, Any, Cmp, Condition, Not
from ..core.model import COMPONENTS, DISTRICT_HOST, ROUTE_LABELS, CostItem, Decision, InputBook, KeyEntry, Parameters, Rulebook
from ..core.problems import Location, Problem, ProblemsError, RuleFileError, did_you_mean

__all__ = [
    "SEARCH_LIMIT",
    "Undecided",
    "representatives",
    "find_item",
    "analyse",
    "check_validity",
    "run_examples",
    "check_paths",
    "check_for_run",
    "show_item",
]

SEARCH_LIMIT = 200_000
OTHER_TEXT = "anderer Wert"


class Undecided(Exception):
    """The search exceeded SEARCH_LIMIT steps."""


# ------------------------------------------------------------------------------------ representatives


def _fresh_text(taken: set[str]) -> str:
    text, n = OTHER_TEXT, 1
    while text in taken:
        n += 1
        text = f"{OTHER_TEXT} {n}"
    return text


def representatives(cmps: Iterable[Cmp], numeric_only: bool) -> list[object]:
    """One value per class of equivalent values of a column (see the module docstring)."""
    numbers: set[Decimal] = set()
    texts: set[str] = set()
    for cmp in cmps:
        for value in (cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)):
            (numbers if isinstance(value, Decimal) else texts).add(value)
    ordered = sorted(numbers)
    result: list[object] = []
    if not numeric_only:  # text first: example items then read like real ones
        result.extend(sorted(texts))
        result.append(_fresh_text(texts))
    if ordered:
        result.append(ordered[0] - 1)
        for low, high in zip(ordered, ordered[1:]):
            result.extend([low, (low + high) / 2])
        result.extend([ordered[-1], ordered[-1] + 1])
    else:
        result.append(Decimal(0))
    return result


# -------------------------------------------------------------------------------------------- search


def _value3(condition: Condition, assigned: Mapping[str, object]) -> bool | None:
    """True / False, or None while a column it depends on is unassigned."""
    if isinstance(condition, Cmp):
        if condition.column not in assigned:
            return None
        return conditions.evaluate(condition, assigned)
    if isinstance(condition, Not):
        inner = _value3(condition.child, assigned)
        return None if inner is None else not inner
    results = [_value3(child, assigned) for child in condition.children]
    if isinstance(condition, All):
        return False if False in results else (None if None in results else True)
    return True if True in results else (None if None in results else False)


def find_item(goals: Sequence[tuple[Condition, bool]], domains: Mapping[str, Sequence[object]],
              limit: int = SEARCH_LIMIT) -> dict[str, object] | None:
    """An assignment of the goals' columns (each from its representatives in `domains`) under which every
    condition has the wanted truth value, or None if there is none. Raises Undecided past `limit` steps."""
    columns = sorted({cmp.column for condition, _ in goals for cmp in conditions.columns(condition)})
    steps = 0

    def consistent(assigned: dict[str, object]) -> bool | None:
        complete = True
        for condition, wanted in goals:
            value = _value3(condition, assigned)
            if value is None:
                complete = False
            elif value != wanted:
                return False
        return True if complete else None

    def search(position: int, assigned: dict[str, object]) -> dict[str, object] | None:
        nonlocal steps
        steps += 1
        if steps > limit:
            raise Undecided
        state = consistent(assigned)
        if state is False:
            return None
        if position == len(columns):
            return dict(assigned) if state else None
        column = columns[position]
        for value in domains[column]:
            assigned[column] = value
            found = search(position + 1, assigned)
            if found is not None:
                return found
            del assigned[column]
        return None

    return search(0, {})


def show_item(item: Mapping[str, object]) -> str:
    """A concrete item as text: {Kategorie: „Kultur“, Traeger: „Kreis“}."""
    if not item:
        return "{jede Kostenposition}"
    parts = [f"{column}: „{value}“" if isinstance(value, str) else f"{column}: {value}"
             for column, value in sorted(item.items())]
    return "{" + ", ".join(parts) + "}"


# ------------------------------------------------------------------------------------- rule analysis


def _where(rulebook: Rulebook, rule) -> str:
    return f"{rule.id} ({Path(rulebook.path).name}:{rule.source.line})"


def _column_values(rulebook: Rulebook, with_domains: bool) -> dict[str, list[object]]:
    cmps: dict[str, list[Cmp]] = {}
    for rule in rulebook.rules:
        for cmp in conditions.columns(rule.when):
            cmps.setdefault(cmp.column, []).append(cmp)
    ordered = {column for rule in rulebook.rules for column in conditions.ordered_columns(rule.when)}
    values = {column: representatives(found, column in ordered) for column, found in cmps.items()}
    if with_domains:
        for column, domain in rulebook.domains.items():
            values[column] = list(domain)
    return values


def _undecided(rulebook: Rulebook, where: Location, question: str) -> Problem:
    return Problem(
        "rule-analysis-undecided", where,
        f"{question}: in {SEARCH_LIMIT:,} Suchschritten nicht entscheidbar".replace(",", "."),
        found="zu viele Kombinationen von Spaltenwerten", expected="eine Entscheidung",
        hint="die Bedingungen auf einfachere Regeln aufteilen; ein Lauf hält trotzdem bei jeder nicht "
             "entschiedenen Kostenposition an",
        severity="warning")


def _canonical(rulebook: Rulebook) -> Rulebook:
    """The rulebook with one spelling per column, as a run binds them (`inputs.normalise_header`): a column
    declared under `domains:` keeps that spelling, any other the first spelling a rule uses."""
    from ..core.model import normalise_header
    from ..rulefiles.rulebook import rename_columns

    spelling: dict[str, str] = {}
    for column in rulebook.domains:
        spelling.setdefault(normalise_header(column), column)
    for rule in rulebook.rules:
        named = [cmp.column for condition in (rule.when, rule.payers) if condition is not None
                 for cmp in conditions.columns(condition)]
        named += list(rule.key.weights) if rule.key is not None and not rule.key.is_item_key else []
        named += [rule.extent] if rule.extent else []
        for column in named:
            spelling.setdefault(normalise_header(column), column)

    def canonical(column: str) -> str:
        return spelling.get(normalise_header(column), column)

    return rename_columns(rulebook, canonical, canonical)


def _municipality_only(rulebook: Rulebook) -> set[str]:
    """Domain columns the rules and levies use only as `Gemeinden` columns (payers, key, extent, levy base),
    never in `when`: their domain constrains the municipalities' data, not which items the rules cover."""
    in_when = {cmp.column for rule in rulebook.rules for cmp in conditions.columns(rule.when)}
    named = set()
    for rule in rulebook.rules:
        named.update(cmp.column for cmp in (conditions.columns(rule.payers) if rule.payers is not None else ()))
        named.update(rule.key.weights if rule.key is not None and not rule.key.is_item_key else ())
        named.update((rule.extent,) if rule.extent else ())
    for levy in rulebook.levies:  # a levy's payers, extent and base are Gemeinden columns too
        named.update(cmp.column for cmp in (conditions.columns(levy.payers) if levy.payers is not None else ()))
        named.update((levy.extent,) if levy.extent else ())
        named.update(levy.base)
    return {column for column in rulebook.domains if column in named and column not in in_when}


def _domain_constants(rulebook: Rulebook) -> list[Problem]:
    """A rule constant (in `when` or `payers`) on a column with a declared domain that is not in the domain
    is a typo."""
    problems = []
    for rule in rulebook.rules:
        for cmp in conditions.columns(rule.when) + (conditions.columns(rule.payers) if rule.payers is not None
                                                    else []):
            domain = rulebook.domains.get(cmp.column)
            if domain is None:
                continue
            for value in (cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)):
                if cmp.op in conditions.ORDERED or any(conditions.evaluate(Cmp(cmp.column, "eq", value, cmp.source),
                                                                           {cmp.column: d}) for d in domain):
                    continue
                problems.append(Problem(
                    "rule-value-not-in-domain", cmp.source,
                    f'Regel "{rule.id}" vergleicht {cmp.column} mit "{value}", der im erklärten Wertebereich von '
                    f"{cmp.column} nicht vorkommt{did_you_mean(str(value), [str(d) for d in domain])}",
                    found=str(value), expected=", ".join(str(d) for d in domain),
                    hint=f"den Wert korrigieren oder unter `domains: {cmp.column}` ergänzen"))
    return problems


def analyse(rulebook: Rulebook, domain_sources: Mapping[tuple[str, int], Location] | None = None) -> list[Problem]:
    """Overlap (unique), shadowing (priority), never-matching rules, gaps and domain typos of one file.

    `domain_sources` locates each domain value ((column, index) -> place in the file) for gap messages."""
    rulebook = _canonical(rulebook)
    problems = _domain_constants(rulebook)
    free = _column_values(rulebook, with_domains=False)
    rules = list(rulebook.rules)
    satisfiable: dict[str, bool] = {}
    for rule in rules:
        try:
            satisfiable[rule.id] = find_item([(rule.when, True)], free) is not None
        except Undecided:
            problems.append(_undecided(rulebook, rule.source, f'ob Regel "{rule.id}" überhaupt zutreffen kann'))
            satisfiable[rule.id] = True
            continue
        if not satisfiable[rule.id]:
            problems.append(Problem(
                "rule-never-matches", rule.when.source if rule.when.source.line else rule.source,
                f'die Bedingung von Regel "{rule.id}" kann nie zutreffen: {conditions.describe(rule.when)}',
                found=conditions.describe(rule.when), expected="eine Bedingung, die eine Kostenposition erfüllen kann",
                hint="die Bedingung korrigieren oder die Regel entfernen"))
    if rulebook.hit_policy == "unique":
        for i, first in enumerate(rules):
            for second in rules[i + 1:]:
                try:
                    item = find_item([(first.when, True), (second.when, True)], free)
                except Undecided:
                    problems.append(_undecided(rulebook, second.source,
                                               f'ob sich die Regeln "{first.id}" und "{second.id}" überschneiden'))
                    continue
                if item is not None:
                    problems.append(Problem(
                        "rule-overlap", second.source,
                        f'die Regeln {_where(rulebook, first)} und {_where(rulebook, second)} können bei hit_policy: unique '
                        "beide auf dieselbe Kostenposition zutreffen", found=f"Beispiel: {show_item(item)}",
                        expected="Bedingungen, die einander ausschließen",
                        hint=f"eine Bedingung so eingrenzen, dass sie {show_item(item)} ausschließt, oder "
                             "hit_policy: priority mit Prioritäten verwenden"))
    else:
        order = sorted(rules, key=lambda rule: (-rule.priority, rule.index))
        for position, rule in enumerate(order):
            higher = order[:position]
            if not satisfiable[rule.id] or not higher:
                continue
            try:
                item = find_item([(rule.when, True)] + [(other.when, False) for other in higher], free)
            except Undecided:
                problems.append(_undecided(rulebook, rule.source, f'ob Regel "{rule.id}" je zum Zug kommen kann'))
                continue
            if item is None:
                try:
                    takers = [other for other in higher if find_item([(rule.when, True), (other.when, True)], free)]
                except Undecided:
                    takers = higher
                names = ", ".join(f"{_where(rulebook, other)} (Priorität {other.priority})" for other in takers)
                problems.append(Problem(
                    "rule-shadowed", rule.source,
                    f'Regel "{rule.id}" (Priorität {rule.priority}) kommt nie zum Zug: jede Kostenposition, auf die sie '
                    f"zutrifft, übernimmt bereits {names}", found=conditions.describe(rule.when),
                    expected="eine Kostenposition, die nur diese Regel entscheidet",
                    hint="ihre Priorität über die der genannten Regeln setzen, deren Bedingungen eingrenzen oder "
                         "die Regel entfernen"))
    problems.extend(_gaps(rulebook, domain_sources or {}))
    return problems


def _gaps(rulebook: Rulebook, sources: Mapping[tuple[str, int], Location]) -> list[Problem]:
    if not rulebook.domains:
        return []
    values = _column_values(rulebook, with_domains=True)
    problems = []
    anything = Any(tuple(rule.when for rule in rulebook.rules), rulebook.source)
    municipality_only = _municipality_only(rulebook)
    for column, domain in rulebook.domains.items():
        if column in municipality_only:
            continue
        for index, value in enumerate(domain):
            fixed = dict(values)
            fixed[column] = [value]
            pin = Cmp(column, "eq", value, rulebook.source)
            where = sources.get((column, index), rulebook.source)
            try:
                covered = find_item([(pin, True), (anything, True)], fixed)
                uncovered = find_item([(pin, True), (anything, False)], fixed)
            except Undecided:
                problems.append(_undecided(rulebook, where, f"ob {column} = {value} abgedeckt ist"))
                continue
            if covered is None:
                problems.append(Problem(
                    "rule-gap", where, f'keine Regel deckt {column} = "{value}" ab (in domains erklärt)',
                    found=f"Beispiel: {show_item(uncovered or {column: value})}",
                    expected=f"eine Regel für jeden Wert von {column}",
                    hint=f"eine Regel für {column}: {value} ergänzen oder den Wert aus `domains` entfernen"))
            elif uncovered is not None:
                problems.append(Problem(
                    "rule-gap-partial", where,
                    f'nicht jede Kostenposition mit {column} = "{value}" ist abgedeckt: keine Regel trifft auf die '
                    "Beispielposition zu",
                    found=f"Beispiel: {show_item(uncovered)}",
                    expected="eine Regel für jede Kombination, die vorkommen kann",
                    hint="eine Regel für diese Kombination ergänzen, falls sie vorkommen kann; ein Lauf hält bei "
                         "einer solchen Kostenposition an",
                    severity="warning"))
    return problems


# ------------------------------------------------------------------------------------------ validity


def check_validity(rulebooks: Sequence[Rulebook]) -> list[Problem]:
    """Files of one district must cover disjoint budget years without a gap inside the covered range."""
    problems = []
    by_district: dict[str, list[Rulebook]] = {}
    for book in rulebooks:
        by_district.setdefault(book.district.casefold(), []).append(book)
    for books in by_district.values():
        books = sorted(books, key=lambda b: (b.valid_from, b.valid_to, b.path))
        for i, first in enumerate(books):
            for second in books[i + 1:]:
                low, high = max(first.valid_from, second.valid_from), min(first.valid_to, second.valid_to)
                if low <= high:
                    for book, other in ((first, second), (second, first)):
                        problems.append(Problem(
                            "rules-validity-overlap", book.source,
                            f"{book.district} {book.valid_from}–{book.valid_to} überschneidet sich mit {other.path} "
                            f"({other.valid_from}–{other.valid_to}) in {_ranges(list(range(low, high + 1)))}",
                            found=f"{book.valid_from}–{book.valid_to}",
                            expected="überschneidungsfreie Haushaltsjahre je Kreis",
                            hint="valid_from/valid_to so kürzen, dass jedes Jahr genau eine Regeldatei hat"))
        covered = {year for book in books for year in range(book.valid_from, book.valid_to + 1)}
        if not covered:
            continue
        missing = [year for year in range(min(covered), max(covered) + 1) if year not in covered]
        if missing:
            before = max((b for b in books if b.valid_to < missing[0]), key=lambda b: b.valid_to)
            after = min((b for b in books if b.valid_from > missing[-1]), key=lambda b: b.valid_from)
            years = _ranges(missing)
            for book in (before, after):
                problems.append(Problem(
                    "rules-validity-gap", book.source,
                    f"{book.district}: keine Regeldatei deckt {years} ab (zwischen {before.path} und {after.path})",
                    found=f"{book.valid_from}–{book.valid_to}", expected="jedes Jahr des abgedeckten Zeitraums",
                    hint="eine Regeldatei für die fehlenden Jahre ergänzen oder valid_from/valid_to erweitern"))
    return problems


def _ranges(years: list[int]) -> str:
    parts, start = [], years[0]
    for previous, year in zip(years, years[1:] + [None]):
        if year != previous + 1 if year is not None else True:
            parts.append(str(start) if start == previous else f"{start}–{previous}")
            start = year
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------ examples


def _example_item(item: Mapping[str, object]) -> dict[str, object]:
    """An example's item as the input reader would present it (empty Traeger = Kreis)."""
    attrs = dict(item)
    host = attrs.get("Traeger", "")
    if host == "" or (isinstance(host, str) and host.casefold() == DISTRICT_HOST.casefold()):
        attrs["Traeger"] = DISTRICT_HOST
    return attrs


def run_examples(rulebook: Rulebook) -> list[Problem]:
    """Decide every embedded example with durable_rules and compare rule, route and split."""
    from ..rulefiles import engine
    from .allocate import allocate, winner

    if not rulebook.examples:
        return []
    problems: list[Problem] = []
    items = [_example_item(example.item) for example in rulebook.examples]
    matches = engine.match({rule.id: rule.when for rule in rulebook.rules}, items)
    for number, (example, item, matched) in enumerate(zip(rulebook.examples, items, matches), start=1):
        label = f"Beispiel {number}" + (f" ({example.description})" if example.description else "")
        decided = winner(rulebook, matched)
        ordered = [rule.id for rule in rulebook.rules if rule.id in matched]
        if decided is None:
            found = "keine Regel" if not matched else "mehrere Regeln: " + ", ".join(ordered)
            problems.append(Problem(
                "rule-example-failed", example.source, f"{label}: die Regeln entscheiden die Kostenposition {show_item(item)} nicht",
                found=found, expected=f"Regel {example.rule}" if example.rule else "genau eine Regel",
                hint="die Regeln oder das Beispiel korrigieren"))
            continue
        rule = rulebook.rule(decided)
        if example.rule is not None and example.rule != decided:
            problems.append(Problem(
                "rule-example-failed", example.source, f"{label}: Kostenposition {show_item(item)} wird von einer anderen Regel entschieden",
                found=f"{_where(rulebook, rule)}", expected=f"Regel {example.rule}",
                hint="die Regeln oder die erwartete Regel des Beispiels korrigieren"))
            continue
        if example.route is not None and example.route != rule.route:
            problems.append(Problem(
                "rule-example-failed", example.source, f"{label}: Regel {rule.id} leitet die Kostenposition anders weiter",
                found=rule.route, expected=example.route, hint="die route der Regel oder das Beispiel korrigieren"))
            continue
        if example.split is not None:
            problems.extend(_check_split(rulebook, example, item, rule, label, allocate))
    return problems


def _check_split(rulebook: Rulebook, example, item: dict, rule, label: str, allocate) -> list[Problem]:
    split = example.split
    where = split.source
    source = Location(rulebook.path, line=example.source.line, col=example.source.col)
    components = dict(split.components) or {c: 0 for c in COMPONENTS}
    funding = split.funding
    if split.deficit is not None:  # the stated deficit counts as the first eligible component, no funding
        components = {c: 0 for c in COMPONENTS}
        components[rule.components[0] if rule.components else COMPONENTS[0]] = split.deficit
        funding = 0
    host = str(item.get("Traeger", DISTRICT_HOST))
    attrs = dict(item) | {"ID": "Beispiel"}
    cost_item = CostItem("Beispiel", example.description, str(item.get("Kategorie", "")), components, funding, host,
                         attrs, source)
    parameters = Parameters(rulebook.district, rulebook.valid_from, split.rounding, 2, source)
    keys = tuple(KeyEntry("Beispiel", ags, value, source) for ags, value in split.keys.items())
    columns = tuple(dict.fromkeys(column for m in split.municipalities for column in m.attrs))
    book = InputBook(rulebook.path, "", parameters, split.municipalities, (cost_item,), keys, columns,
                     tuple(attrs))
    decision = Decision("Beispiel", rule.id, (rule.id,))
    try:
        allocation = allocate(rulebook, book, [decision])
    except ProblemsError as error:
        return [Problem("rule-example-failed", where, f"{label}: die Aufteilung lässt sich nicht berechnen: "
                        + "; ".join(p.message for p in error.problems),
                        found=error.problems[0].found if error.problems else None,
                        expected="eine berechenbare Aufteilung", hint="die Gemeinden des Beispiels vervollständigen")]
    found = {line.ags: line.amount for line in allocation.items[0].lines}
    from ..core.money import format_eur

    wrong = [ags for ags in sorted(split.expected) if found.get(ags) != split.expected[ags]]
    if not wrong:
        return []
    return [Problem(
        "rule-example-split", where,
        f"{label}: die Aufteilung auf {len(found)} Gemeinden weicht ab bei AGS " + ", ".join(wrong),
        found="; ".join(f"{ags}: {format_eur(found.get(ags, 0))}" for ags in wrong),
        expected="; ".join(f"{ags}: {format_eur(split.expected[ags])}" for ags in wrong),
        hint=f"das Beispiel von Hand nachrechnen ({ROUTE_LABELS[rule.route]}, Verfahren der größten Reste, "
             "bei Gleichstand nach AGS)")]


# ------------------------------------------------------------------------------------- entry points


def _rule_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return files


def check_paths(paths: Iterable[str | Path]) -> tuple[list[Rulebook], list[Problem]]:
    """`allocation check`: every problem of every file (schema, analysis, examples, validity), sorted."""
    from ..rulefiles.rulebook import domain_sources, load_rulebook

    books: list[Rulebook] = []
    problems: list[Problem] = []
    for file in _rule_files(paths):
        try:
            book, warnings = load_rulebook(file)
        except RuleFileError as error:
            problems.extend(error.problems)
            continue
        books.append(book)
        problems.extend(warnings)
        problems.extend(analyse(book, domain_sources(file)))
        problems.extend(run_examples(book))
    problems.extend(check_validity(books))
    problems.sort(key=lambda p: (p.location.file, p.location.line or 0, p.location.col or 0, p.code))
    return books, problems


def check_for_run(rules_path: str | Path) -> tuple[Rulebook, list[Problem]]:
    """The check at the start of every run: the rulebook and its warnings; raises RuleFileError on any error."""
    books, problems = check_paths([rules_path])
    if not books or any(p.severity == "error" for p in problems):
        raise RuleFileError(problems)
    return books[0], problems
