"""Decide each cost item's route (through durable_rules) and split its deficit over municipalities.

`decide` asks `engine.match` which rules hold for each item and applies the file's hit policy (`unique`:
exactly one rule; `priority`: the highest `priority`, then the earlier rule). `allocate` computes each
item's deficit (eligible components − funding, rounded to the unit) and apportions it by the route's key
via `money.apportion`. Both collect every problem before raising.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from ..core.model import (DISTRICT_HOST, LEVY_ROUTES, Allocation, AllocationLine, CostItem, Decision, InputBook,
                          ItemAllocation, Municipality, Rule, Rulebook, service_of)
from ..rulefiles import conditions, engine
from .levies import item_keys, levy_bases
from ..core.money import Keys, apportion, prepare_keys, round_to_unit
from ..core.problems import DecisionError, InputError, Problem

__all__ = ["decide", "allocate", "select_payers", "winner"]


def winner(rulebook: Rulebook, matched: frozenset[str]) -> str | None:
    """The rule id that decides under the file's hit policy, or None if that is not exactly one rule."""
    if not matched:
        return None
    if rulebook.hit_policy == "unique":
        return next(iter(matched)) if len(matched) == 1 else None
    order = {rule.id: (-rule.priority, rule.index) for rule in rulebook.rules}
    return min(matched, key=order.__getitem__)


def _check_ordered_columns(rulebook: Rulebook, records: tuple, sheet: str) -> list[Problem]:
    """A column compared by size must hold numbers in every record: durable_rules compares loosely (`"abc" < 5`
    holds). A run has checked this and more when it bound the rulebook (`rulebook.check_data`); this guard
    keeps every other caller of `decide` from reaching the engine with such a record."""
    columns: dict[str, Rule] = {}
    for rule in rulebook.rules:
        condition = rule.when if sheet == "Kostenpositionen" else rule.payers
        for column in sorted(conditions.ordered_columns(condition)) if condition is not None else ():
            columns.setdefault(column, rule)
    problems = []
    for column, rule in columns.items():
        for record in records:
            value = record.attrs.get(column, "")
            if not isinstance(value, Decimal):
                problems.append(Problem(
                    "input-not-a-number", record.cell(column),
                    f'Regel "{rule.id}" vergleicht {column} der Größe nach, aber diese Zelle enthält keine Zahl',
                    found=f'"{value}"' if value != "" else "leer", expected="eine Zahl",
                    hint=f"in {column} eine Zahl eintragen (0, wenn nichts anfällt)"))
    return problems


def _no_host(rulebook: Rulebook, rule: Rule, item: CostItem) -> Problem:
    """`host_bears` needs a hosting municipality: an item the Kreis runs (or whose host is not a listed
    municipality) has none."""
    found = "der Kreis" if item.host == DISTRICT_HOST else f"{item.host}, keine der Gemeinden"
    return Problem(
        "decision-no-host", item.cell("Traeger"),
        f'Regel "{rule.id}" ({rulebook.path}:{rule.source.line}) weist "{item.id}" host_bears zu '
        f"(Trägergemeinde trägt), aber Träger ist {found}", found=item.host,
        expected="der AGS der Trägergemeinde",
        hint="den AGS der Trägergemeinde in Traeger eintragen oder die Regel mit `Traeger: {ne: Kreis}` "
             "einschränken")


def decide(rulebook: Rulebook, book: InputBook) -> list[Decision]:
    """One decision per cost item, made by durable_rules. Raises InputError / DecisionError."""
    items = book.items
    input_problems = _check_ordered_columns(rulebook, items, "Kostenpositionen")
    if input_problems:
        raise InputError(input_problems)
    matches = engine.match({rule.id: rule.when for rule in rulebook.rules}, [item.attrs for item in items])
    decisions: list[Decision] = []
    problems: list[Problem] = []
    for item, matched in zip(items, matches):
        rule_id = winner(rulebook, matched)
        ordered = tuple(rule.id for rule in rulebook.rules if rule.id in matched)
        if rule_id is None:
            if not matched:
                problems.append(Problem(
                    "decision-no-rule", item.source, f'keine Regel passt auf Kostenposition "{item.id}"',
                    found=f"Kategorie={item.category!r}, Traeger={item.host!r}",
                    expected=f"eine Regel aus {rulebook.path}",
                    hint="die Spalten der Kostenposition korrigieren oder eine Regel ergänzen, die sie erfasst"))
            else:
                places = ", ".join(f"{r} ({rulebook.path}:{rulebook.rule(r).source.line})" for r in ordered)
                problems.append(Problem(
                    "decision-ambiguous", item.source, f'Kostenposition "{item.id}" passt auf {len(matched)} Regeln: {places}',
                    found=places, expected="genau eine Regel bei hit_policy: unique",
                    hint="die Bedingungen der Regeln enger fassen oder hit_policy: priority mit Prioritäten "
                         "verwenden"))
            continue
        rule = rulebook.rule(rule_id)
        if rule.route == "host_bears" and item.host == DISTRICT_HOST:
            problems.append(_no_host(rulebook, rule, item))
            continue
        decisions.append(Decision(item.id, rule_id, ordered))
    if problems:
        raise DecisionError(problems)
    return decisions


def select_payers(rulebook: Rulebook, book: InputBook) -> dict[str, frozenset[str]]:
    """Rule id -> AGS of the municipalities its `payers` condition selects (decided by durable_rules)."""
    with_payers = {rule.id: rule.payers for rule in rulebook.rules if rule.payers is not None}
    if not with_payers:
        return {}
    problems = _check_ordered_columns(rulebook, book.municipalities, "Gemeinden")
    if problems:
        raise InputError(problems)
    matches = engine.match(with_payers, [m.attrs for m in book.municipalities])
    return {rule_id: frozenset(m.ags for m, matched in zip(book.municipalities, matches) if rule_id in matched)
            for rule_id in with_payers}


def _column_number(municipality: Municipality, column: str, book: InputBook, problems: list[Problem]) -> Fraction | None:
    value = municipality.attrs.get(column, "")
    where = municipality.cell(column)
    if not isinstance(value, Decimal) or value < 0:
        problems.append(Problem(
            "input-bad-key", where, f"{column} von {municipality.name} ist kein brauchbarer Schlüsselwert",
            found=repr(value) if value != "" else "leer", expected="eine Zahl ≥ 0",
            hint=f"{column} als Zahl eintragen (0, wenn nichts anfällt)"))
        return None
    return Fraction(value)


def _keys(item: CostItem, rule: Rule, payers: list[Municipality], book: InputBook,
          problems: list[Problem]) -> tuple[dict[str, Fraction], str]:
    """AGS -> key (exact) for the payers of this item, and a label of the key."""
    if rule.route in ("district_levy", "differentiated_levy"):
        keys = {m.ags: Fraction(m.base, 100) for m in payers}  # euros
        if rule.extent:
            for m in payers:
                factor = _column_number(m, rule.extent, book, problems)
                keys[m.ags] = keys[m.ags] * (factor if factor is not None else 0)
            return keys, f"Umlagegrundlagen × {rule.extent}"
        return keys, "Umlagegrundlagen"
    if rule.route == "host_bears":
        return {item.host: Fraction(1)}, "Trägerkommune"
    assert rule.key is not None
    if rule.key.is_item_key:
        given = book.key_values(item.id)
        return {m.ags: Fraction(given.get(m.ags, Decimal(0))) for m in payers}, "Schluessel (je Kostenposition)"
    keys = {m.ags: Fraction(0) for m in payers}
    for column, weight in rule.key.weights.items():
        values = {m.ags: _column_number(m, column, book, problems) for m in payers}
        if any(v is None for v in values.values()):
            continue
        total = sum(values.values(), Fraction(0))
        if total == 0:
            # a weighted component without any usage cannot be normalised: the whole key is unusable
            # (silently dropping it would change the agreed weights); the caller reports a zero key
            return ({ags: Fraction(0) for ags in keys},
                    f"{rule.key.describe()}: Spalte {column} ist bei allen Zahlern 0")
        for ags, value in values.items():
            keys[ags] += Fraction(weight) / 100 * value / total
    return keys, rule.key.describe()


def _hosts_by_category(rulebook: Rulebook, items: dict[str, CostItem],
                       decisions: list[Decision]) -> dict[str, frozenset[str]]:
    """Service (`model.service_of`) -> AGS of the municipalities that bear an item of that service themselves
    (host_bears): the same notion of "same service" as the double-burden finding."""
    hosts: dict[str, set[str]] = {}
    for decision in decisions:
        rule = rulebook.rule(decision.rule_id)
        if rule.route == "host_bears":
            item = items[decision.item_id]
            hosts.setdefault(service_of(item, rule), set()).add(item.host)
    return {category: frozenset(ags) for category, ags in hosts.items()}


def _credit_hosts(item: CostItem, rule: Rule, payers: list[Municipality], hosting: frozenset[str], deficit: int,
                  unit: int, book: InputBook, problems: list[Problem]) -> tuple[list[Municipality], dict[str, int]]:
    """`credit_hosts: true`: hosting municipalities leave the payers of this levy item (so the remaining
    shares still add up exactly to the deficit); each is credited what it would have paid as a payer."""
    credited = [m for m in payers if m.ags in hosting]
    if not credited:
        return payers, {}
    before = len(problems)
    full_keys, _ = _keys(item, rule, payers, book, problems)
    credits: dict[str, int] = {}
    if len(problems) == before and sum(full_keys.values()) > 0:
        full = apportion(deficit, full_keys, unit)
        credits = {m.ags: full[m.ags].amount for m in credited}
    return [m for m in payers if m.ags not in hosting], credits


_ZERO = Fraction(0)  # immutable: every non-payer line shares it (memory of large districts)


class _SplitKey:
    """An item's key, ready to split: its label, the keys' sum, the prepared keys (None where they sum to
    zero) and each payer's share of the whole."""

    __slots__ = ("label", "total", "prepared", "shares")

    def __init__(self, keys: dict[str, Fraction], label: str) -> None:
        self.label = label
        self.total = sum(keys.values(), Fraction(0))
        self.prepared: Keys | None = prepare_keys(keys) if self.total != 0 else None
        self.shares = self.prepared.shares() if self.prepared is not None else {}


def _split_key(memo: dict[tuple, _SplitKey], item: CostItem, rule: Rule, payers: list[Municipality],
               book: InputBook, bases: dict, problems: list[Problem]) -> _SplitKey | None:
    """The item's `_SplitKey`, or None after reporting a bad key value. A key that depends only on the rule
    and its payers (levy bases, usage columns; not an item's own key row, not a host) is built once per run
    and shared by every item that splits over it: its keys and shares are the same exact Fractions."""
    shared = rule.route != "host_bears" and not (rule.key is not None and rule.key.is_item_key)
    memo_key = (id(rule), tuple(m.ags for m in payers)) if shared else None
    if memo_key is not None and memo_key in memo:
        return memo[memo_key]
    before = len(problems)
    keys, label = item_keys(bases[rule.levy]) if rule.levy is not None else \
        _keys(item, rule, payers, book, problems)
    if len(problems) > before:
        return None  # not kept: every item of the rule reports its own problems, as before
    split = _SplitKey(keys, label)
    if memo_key is not None:
        memo[memo_key] = split
    return split


def allocate(rulebook: Rulebook, book: InputBook, decisions: list[Decision]) -> Allocation:
    """Apportion every item's deficit. Raises InputError / DecisionError with all problems."""
    unit = book.parameters.unit
    payer_sets = select_payers(rulebook, book)
    by_ags = {m.ags: m for m in book.municipalities}
    items = {item.id: item for item in book.items}
    input_problems: list[Problem] = []
    decision_problems: list[Problem] = []
    results: list[ItemAllocation] = []
    hosts_by_category = _hosts_by_category(rulebook, items, decisions)
    bases = levy_bases(rulebook, book) if rulebook.levies else {}  # a levy rule splits over its levy's base
    split_keys: dict[tuple, _SplitKey] = {}
    for decision in decisions:
        item, rule = items[decision.item_id], rulebook.rule(decision.rule_id)
        if rule.route == "host_bears":
            if item.host not in by_ags:  # decide refuses a Kreis item; a rule file example reaches here directly
                decision_problems.append(_no_host(rulebook, rule, item))
                continue
            payers = [by_ags[item.host]]
        elif rule.levy is not None:
            payers = [by_ags[line.ags] for line in bases[rule.levy].lines]
        elif rule.payers is not None:
            payers = [m for m in book.municipalities if m.ags in payer_sets[rule.id]]
        else:
            payers = list(book.municipalities)
        eligible = sum(item.components[c] for c in rule.components)
        deficit_exact = eligible - item.funding
        deficit = round_to_unit(deficit_exact, unit)
        credits: dict[str, int] = {}
        if rule.credit_hosts and rule.route in LEVY_ROUTES:
            payers, credits = _credit_hosts(item, rule, payers, hosts_by_category.get(service_of(item, rule), frozenset()),
                                            deficit, unit, book, input_problems)
        if not payers:
            decision_problems.append(Problem(
                "decision-no-payers", rule.payers.source if rule.payers is not None else (
                    rulebook.levy(rule.levy).source if rule.levy is not None else rule.source),
                f'Regel "{rule.id}" wählt für "{item.id}" keine zahlende Gemeinde aus',
                found="keine Gemeinde", expected="mindestens eine zahlende Gemeinde",
                hint="die payers-Bedingung und die Spalten im Blatt Gemeinden prüfen"))
            continue
        split = _split_key(split_keys, item, rule, payers, book, bases, input_problems)
        if split is None:
            continue
        if split.prepared is None:
            where = rule.key.source if rule.key is not None else rule.source
            decision_problems.append(Problem(
                "decision-zero-key", where,
                f'der Schlüssel "{split.label}" ergibt über die Zahler von "{item.id}" die Summe null',
                found="0", expected="eine positive Schlüsselsumme",
                hint="für mindestens eine zahlende Gemeinde Schlüsselwerte eintragen (Gemeinden oder Schluessel)"))
            continue
        shares = apportion(deficit, split.prepared, unit)
        of_whole = split.shares
        lines = []
        for m in book.municipalities:
            share = shares.get(m.ags)
            if share is None:
                lines.append(AllocationLine(item.id, m.ags, _ZERO, _ZERO, 0, 0, 0, None))  # one shared 0
            else:
                lines.append(AllocationLine(item.id, m.ags, share.key, of_whole[m.ags], deficit,
                                            share.amount, share.extra_units, share.rank))
        results.append(ItemAllocation(item, rule, decision, eligible, deficit_exact, deficit, split.label,
                                      split.total, tuple(lines), credits=credits))
    if input_problems:
        raise InputError(input_problems + decision_problems)
    if decision_problems:
        raise DecisionError(decision_problems)
    return Allocation(book, rulebook, tuple(results))
