"""Rule files (YAML) -> `Rulebook`, with a schema check that names file:line:column for every problem.

The rule file format is a contract with auditors (see README, "Regeldateien"). This module reads a file,
checks its structure and values, and builds frozen `Rule` records that remember their line. Checks that
need the input workbook's columns live in `check_columns`; checks across rules (overlap, shadowing, gaps)
live in `analysis.py`.
"""
from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from . import conditions
from .model import COMPONENTS, ROUTES, Example, ExampleSplit, InputBook, KeySpec, Municipality, Rule, Rulebook
from .problems import Location, Problem, RuleFileError, did_you_mean
from .yamlloc import LocDict, LocList, YamlProblem, load

__all__ = ["load_rulebook", "load_rulebooks", "parse_rulebook", "check_columns", "TOP_KEYS", "RULE_KEYS", "HIT_POLICIES"]

TOP_KEYS = ("district", "valid_from", "valid_to", "hit_policy", "description", "domains", "rules", "examples")
RULE_KEYS = ("id", "description", "legal_basis", "when", "route", "payers", "key", "components", "extent",
             "priority", "credit_hosts")
EXAMPLE_KEYS = ("item", "rule", "route", "description", "municipalities", "deficit", "costs", "funding", "rounding",
                "split")
SPLIT_KEYS = ("municipalities", "deficit", "costs", "funding", "rounding", "split")
HIT_POLICIES = ("unique", "priority")
ITEM_KEY = "Schluessel"
PARAMETERS_BY_ROUTE = {
    "district_levy": {"components", "credit_hosts"},
    "differentiated_levy": {"components", "payers", "extent", "credit_hosts"},
    "direct_billing": {"components", "payers", "key"},
    "host_bears": {"components"},
}


class _Reader:
    """Collects problems while reading one rule file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def at(self, node: object, key: object | None = None, value: bool = False) -> Location:
        if isinstance(node, LocDict) and key is not None:
            line, col = node.vpos(key) if value else node.pos(key)
        elif isinstance(node, LocList) and isinstance(key, int):
            line, col = node.pos(key)
        else:
            line, col = getattr(node, "line", 1), getattr(node, "col", 1)
        return Location(self.file, line=line, col=col)

    def error(self, code: str, where: Location, message: str, **kw: str | None) -> None:
        self.problems.append(Problem(code, where, message, **kw))

    def warning(self, code: str, where: Location, message: str, **kw: str | None) -> None:
        self.problems.append(Problem(code, where, message, severity="warning", **kw))

    def unknown_keys(self, node: LocDict, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                self.error("rule-unknown-key", self.at(node, key),
                           f'unknown key "{key}" in {what}{did_you_mean(str(key), allowed)}',
                           found=str(key), expected=", ".join(allowed), hint="correct or remove the key")

    def text(self, node: LocDict, key: str, required: bool = True) -> str:
        value = node.get(key)
        if value is None:
            if required:
                self.error("rule-missing-key", self.at(node), f'"{key}" is missing',
                           expected=f"`{key}: ...`", hint=f"add `{key}`")
            return ""
        if isinstance(value, (dict, list)) or isinstance(value, bool):
            self.error("rule-bad-type", self.at(node, key, True), f'"{key}" must be text', found=repr(value),
                       expected="text", hint="write a single line of text")
            return ""
        return str(value)

    def year(self, node: LocDict, key: str) -> int:
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 1900 <= value <= 2200:
            return value
        if value is None:
            self.error("rule-missing-key", self.at(node), f'"{key}" is missing', expected="a budget year",
                       hint=f"add `{key}: 2022`")
        else:
            self.error("rule-bad-type", self.at(node, key, True), f'"{key}" must be a budget year',
                       found=repr(value), expected="a year such as 2022", hint="write the year without quotes")
        return 0


def _key_spec(reader: _Reader, rule: LocDict) -> KeySpec | None:
    where = reader.at(rule, "key", True)
    raw = rule.get("key")
    if isinstance(raw, str):
        return KeySpec({raw: Decimal(100)}, where)
    if not isinstance(raw, dict) or not raw:
        reader.error("rule-bad-key", where, '"key" must name a column, `Schluessel`, or weighted columns',
                     found=repr(raw), expected="Einwohner | Schluessel | {Linienminuten: 70, Wagenkm: 30}",
                     hint="name the usage key")
        return None
    weights: dict[str, Decimal] = {}
    for column, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, Decimal)) or weight <= 0:
            reader.error("rule-bad-weight", reader.at(raw, column, True), f'weight of "{column}" must be a positive number',
                         found=repr(weight), expected="a percentage such as 70", hint="write the weight in percent")
            continue
        weights[str(column)] = Decimal(weight)
    total = sum(weights.values(), Decimal(0))
    if weights and len(weights) == len(raw) and total != 100:
        reader.error("rule-weights-sum", where, "the weights of a composite key must add up to 100",
                     found=str(total), expected="100", hint=f"adjust the weights by {100 - total}")
    if ITEM_KEY in weights and len(weights) > 1:
        reader.error("rule-bad-key", where, f"`{ITEM_KEY}` (item-specific keys) cannot be combined with columns",
                     found=", ".join(weights), expected=f"`key: {ITEM_KEY}` alone", hint="use one key type")
    return KeySpec(weights, where)


def _rule(reader: _Reader, node: object, index: int, where: Location) -> Rule | None:
    if not isinstance(node, LocDict):
        reader.error("rule-bad-type", where, "a rule must be a mapping", found=repr(node),
                     expected="id, description, legal_basis, when, route, ...", hint="indent the rule's keys")
        return None
    reader.unknown_keys(node, RULE_KEYS, "a rule")
    rule_id = reader.text(node, "id")
    description = reader.text(node, "description", required=False)
    legal_basis = reader.text(node, "legal_basis", required=False)
    if not legal_basis:
        reader.warning("rule-no-legal-basis", reader.at(node), f'rule "{rule_id}" has no legal_basis',
                       expected='e.g. legal_basis: "§ 56 Abs. 4 KrO NRW"', hint="name the legal basis for auditors")
    route = reader.text(node, "route")
    if route and route not in ROUTES:
        reader.error("rule-unknown-route", reader.at(node, "route", True),
                     f'unknown route "{route}"{did_you_mean(route, ROUTES)}', found=route,
                     expected=", ".join(ROUTES), hint="use one of the four routes")
    if "when" not in node:
        reader.error("rule-missing-key", reader.at(node), f'rule "{rule_id}" has no "when" condition',
                     expected="when: {Spalte: Wert}", hint="write `when: {}` for a rule that always applies")
    when = conditions.parse(node.get("when"), reader.file, reader.problems, node.vpos("when"))
    allowed = PARAMETERS_BY_ROUTE.get(route, set())
    for parameter in ("payers", "key", "extent", "credit_hosts"):
        if parameter in node and route in ROUTES and parameter not in allowed:
            reader.error("rule-bad-parameter", reader.at(node, parameter),
                         f'"{parameter}" does not apply to route {route}', found=parameter,
                         expected=", ".join(sorted(allowed)) or "no parameters", hint=f"remove `{parameter}`")
    payers = None
    if "payers" in node:
        payers = conditions.parse(node["payers"], reader.file, reader.problems, node.vpos("payers"))
    elif route == "differentiated_levy":
        reader.error("rule-missing-key", reader.at(node), "a differentiated levy needs `payers`",
                     expected="payers: {Jugendamt_Kreis: 1}", hint="select the paying municipalities")
    key = None
    if "key" in node:
        key = _key_spec(reader, node)
    elif route == "direct_billing":
        reader.error("rule-missing-key", reader.at(node), "direct billing needs a usage `key`",
                     expected="key: Einwohner", hint="name the key column")
    components = COMPONENTS
    if "components" in node:
        raw = node["components"]
        if not isinstance(raw, list) or not raw:
            reader.error("rule-bad-type", reader.at(node, "components", True), '"components" must be a list',
                         found=repr(raw), expected=f"a subset of {list(COMPONENTS)}", hint="list the eligible components")
        else:
            for i, component in enumerate(raw):
                if component not in COMPONENTS:
                    reader.error("rule-unknown-component", reader.at(raw, i),
                                 f'unknown cost component "{component}"{did_you_mean(str(component), COMPONENTS)}',
                                 found=str(component), expected=", ".join(COMPONENTS), hint="use a listed component")
            components = tuple(c for c in COMPONENTS if c in raw)
    extent = None
    if "extent" in node:
        extent = reader.text(node, "extent")
    priority = node.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        reader.error("rule-bad-type", reader.at(node, "priority", True), '"priority" must be a whole number',
                     found=repr(priority), expected="e.g. 10", hint="higher numbers win under hit_policy: priority")
        priority = 0
    credit_hosts = node.get("credit_hosts", False)
    if not isinstance(credit_hosts, bool):
        reader.error("rule-bad-type", reader.at(node, "credit_hosts", True), '"credit_hosts" must be true or false',
                     found=repr(credit_hosts), expected="true or false",
                     hint="write `credit_hosts: true` to exempt hosting municipalities from this levy")
        credit_hosts = False
    return Rule(rule_id, description, legal_basis, when, route, payers, key, components, extent, priority, index,
                where, credit_hosts=credit_hosts)


def _example(reader: _Reader, node: object, where: Location) -> Example | None:
    if not isinstance(node, LocDict) or not isinstance(node.get("item"), dict):
        reader.error("rule-bad-example", where, "an example needs an `item` mapping", found=repr(node),
                     expected="item: {Kategorie: KIM}, rule: kim, route: district_levy", hint="add `item:`")
        return None
    reader.unknown_keys(node, EXAMPLE_KEYS, "an example")
    item = {}
    for column, value in node["item"].items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            reader.error("rule-bad-example", reader.at(node["item"], column, True),
                         f'example value of "{column}" must be text or a number', found=repr(value),
                         expected="text or a number", hint="quote text")
            continue
        item[str(column)] = Decimal(value) if isinstance(value, int) else value
    rule = node.get("rule")
    route = node.get("route")
    split = _example_split(reader, node, where) if any(key in node for key in SPLIT_KEYS) else None
    description = node.get("description")
    return Example(item, None if rule is None else str(rule), None if route is None else str(route), where,
                   "" if description is None else str(description), split)


def _euros(reader: _Reader, node: LocDict, key: object, what: str) -> int | None:
    """A euro amount of an example (at most cents) as int cents, or None after reporting a problem."""
    from .money import cents_from_decimal

    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        reader.error("rule-bad-example", reader.at(node, key, True), f"{what} must be an amount in euros",
                     found=repr(value), expected="a number such as 76000 or 1234.56", hint="write the amount without quotes")
        return None
    try:
        return cents_from_decimal(Decimal(value))
    except ValueError:
        reader.error("rule-bad-example", reader.at(node, key, True), f"{what} has fractions of a cent",
                     found=str(value), expected="at most two decimals", hint="round the amount to the cent")
        return None


def _ags(reader: _Reader, where: Location, value: object) -> str | None:
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        return value
    reader.error("rule-bad-example", where, "an AGS must be 8 digits in quotes", found=repr(value),
                 expected='e.g. "05170044"', hint='quote the AGS: YAML reads 05170044 without quotes as a number')
    return None


def _example_split(reader: _Reader, node: LocDict, where: Location) -> ExampleSplit | None:
    """The optional expected split: `municipalities`, `deficit` or `costs` (+ `funding`), `rounding`, `split`."""
    problems_before = len(reader.problems)
    missing = [key for key in ("municipalities", "split") if key not in node]
    if "deficit" not in node and "costs" not in node:
        missing.append("deficit")
    if missing:
        reader.error("rule-bad-example", where, "an example with an expected split needs "
                     + ", ".join(f"`{key}`" for key in missing), found=", ".join(k for k in SPLIT_KEYS if k in node),
                     expected="municipalities, deficit (or costs), split",
                     hint="add the missing keys, or remove the split keys to test only the rule and route")
        return None
    if "deficit" in node and "costs" in node:
        reader.error("rule-bad-example", reader.at(node, "costs"), "give either `deficit` or `costs`, not both",
                     found="deficit, costs", expected="one of them", hint="remove one")
    rounding = str(node.get("rounding", "Cent"))
    if rounding not in ("Cent", "Euro"):
        reader.error("rule-bad-example", reader.at(node, "rounding", True), f'unknown rounding "{rounding}"',
                     found=rounding, expected="Cent or Euro", hint="write `rounding: Cent` or `rounding: Euro`")
    deficit = _euros(reader, node, "deficit", '"deficit"') if "deficit" in node else None
    components: dict[str, int] = {}
    raw_costs = node.get("costs")
    if raw_costs is not None:
        if not isinstance(raw_costs, LocDict):
            reader.error("rule-bad-example", reader.at(node, "costs", True), '"costs" must map cost components to euros',
                         found=repr(raw_costs), expected="{Personalkosten: 296000, Sachkosten: 0}",
                         hint="list the components")
        else:
            for component in raw_costs:
                if component not in COMPONENTS:
                    reader.error("rule-unknown-component", reader.at(raw_costs, component),
                                 f'unknown cost component "{component}"{did_you_mean(str(component), COMPONENTS)}',
                                 found=str(component), expected=", ".join(COMPONENTS), hint="use a listed component")
                    continue
                cents = _euros(reader, raw_costs, component, f'"{component}"')
                if cents is not None:
                    components[component] = cents
            components = {c: components.get(c, 0) for c in COMPONENTS}
    funding = _euros(reader, node, "funding", '"funding"') or 0 if "funding" in node else 0
    municipalities: list[Municipality] = []
    keys: dict[str, Decimal] = {}
    raw_municipalities = node.get("municipalities")
    if not isinstance(raw_municipalities, LocList) or not raw_municipalities:
        reader.error("rule-bad-example", reader.at(node, "municipalities", True),
                     '"municipalities" must be a non-empty list', found=repr(raw_municipalities),
                     expected='- {AGS: "05170044", Umlagegrundlagen: 1000000}', hint="list the municipalities")
        raw_municipalities = LocList()
    for index, entry in enumerate(raw_municipalities):
        here = reader.at(raw_municipalities, index)
        if not isinstance(entry, LocDict) or "AGS" not in entry:
            reader.error("rule-bad-example", here, "a municipality needs at least `AGS`", found=repr(entry),
                         expected='{AGS: "05170044", Umlagegrundlagen: 1000000}', hint="add the AGS")
            continue
        ags = _ags(reader, reader.at(entry, "AGS", True), entry["AGS"])
        base = _euros(reader, entry, "Umlagegrundlagen", '"Umlagegrundlagen"') if "Umlagegrundlagen" in entry else 0
        attrs: dict = {}
        for column, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
                reader.error("rule-bad-example", reader.at(entry, column, True),
                             f'value of "{column}" must be text or a number', found=repr(value),
                             expected="text or a number", hint="quote text")
                continue
            attrs[str(column)] = Decimal(value) if isinstance(value, int) else value
        if isinstance(attrs.get("Schluessel"), Decimal) and ags is not None:
            keys[ags] = attrs["Schluessel"]
        if ags is not None and base is not None:
            if any(m.ags == ags for m in municipalities):
                reader.error("rule-bad-example", here, f"AGS {ags} is listed twice", found=ags,
                             expected="each municipality once", hint="remove one entry")
                continue
            municipalities.append(Municipality(ags, str(entry.get("Gemeinde", ags)), base, attrs, here))
    expected: dict[str, int] = {}
    raw_split = node.get("split")
    if not isinstance(raw_split, LocDict) or not raw_split:
        reader.error("rule-bad-example", reader.at(node, "split", True), '"split" must map AGS to euros',
                     found=repr(raw_split), expected='{"05170044": 19000.00}', hint="list every municipality's share")
        raw_split = LocDict()
    for key in raw_split:
        ags = _ags(reader, reader.at(raw_split, key), key)
        cents = _euros(reader, raw_split, key, f"the share of {key}")
        if ags is not None and cents is not None:
            expected[ags] = cents
    listed = {m.ags for m in municipalities}
    for ags in sorted(set(expected) - listed):
        reader.error("rule-bad-example", reader.at(raw_split, ags), f"split names AGS {ags}, which is not in `municipalities`",
                     found=ags, expected=", ".join(sorted(listed)), hint="add the municipality or remove the share")
    for ags in sorted(listed - set(expected)) if expected else ():
        reader.error("rule-bad-example", reader.at(node, "split", True), f"split has no amount for AGS {ags}",
                     found="missing", expected="an amount for every listed municipality (0 for non-payers)",
                     hint=f'add `"{ags}": 0`')
    if len(reader.problems) > problems_before:
        return None
    return ExampleSplit(tuple(municipalities), components, funding, deficit, rounding, keys, expected,
                        reader.at(node, "split"))


def parse_rulebook(text: str, path: str, sha256: str = "") -> tuple[Rulebook, list[Problem]]:
    """Parse and schema-check a rule file's text; returns it with its warnings. Raises RuleFileError."""
    reader = _Reader(path)
    try:
        document, duplicates = load(text)
    except YamlProblem as error:
        hint = "remove the tag; rule files contain plain data only" if "tag" in error.message else \
            "check indentation and quoting around this place"
        raise RuleFileError([Problem("rule-yaml", Location(path, line=error.line, col=error.col),
                                     f"not valid YAML: {error.message}", found=error.found,
                                     expected="a YAML mapping", hint=hint)]) from None
    for duplicate in duplicates:
        reader.error("rule-duplicate-key", Location(path, line=duplicate.line, col=duplicate.col),
                     duplicate.message, found=duplicate.found, expected="each key once", hint="remove one of them")
    if not isinstance(document, LocDict):
        raise RuleFileError([Problem("rule-bad-type", Location(path, line=1, col=1),
                                     "a rule file must be a mapping with district, valid_from, valid_to, rules",
                                     found=type(document).__name__, expected="a YAML mapping",
                                     hint="start from rules/kreis-wesel.yaml")])
    reader.unknown_keys(document, TOP_KEYS, "the rule file")
    district = reader.text(document, "district")
    valid_from = reader.year(document, "valid_from")
    valid_to = reader.year(document, "valid_to")
    if valid_from and valid_to and valid_from > valid_to:
        reader.error("rule-bad-validity", reader.at(document, "valid_to", True), "valid_to is before valid_from",
                     found=f"{valid_from}–{valid_to}", expected="valid_from ≤ valid_to", hint="swap the years")
    hit_policy = document.get("hit_policy", "unique")
    if hit_policy not in HIT_POLICIES:
        reader.error("rule-bad-hit-policy", reader.at(document, "hit_policy", True),
                     f'unknown hit_policy "{hit_policy}"{did_you_mean(str(hit_policy), HIT_POLICIES)}',
                     found=str(hit_policy), expected="unique or priority", hint="use unique or priority")
    domains: dict[str, tuple] = {}
    raw_domains = document.get("domains") or {}
    if not isinstance(raw_domains, dict):
        reader.error("rule-bad-type", reader.at(document, "domains", True), '"domains" must map columns to lists',
                     found=repr(raw_domains), expected="{Kategorie: [KIM, Jugendhilfe]}", hint="list the values")
    else:
        for column, values in raw_domains.items():
            if not isinstance(values, list) or not values:
                reader.error("rule-bad-type", reader.at(raw_domains, column, True),
                             f'domain of "{column}" must be a non-empty list', found=repr(values),
                             expected="[A, B, ...]", hint="list every allowed value")
                continue
            domains[str(column)] = tuple(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
                                         for v in values)
    rules: list[Rule] = []
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        reader.error("rule-missing-key", reader.at(document, "rules" if "rules" in document else None),
                     "the rule file has no rules", found=repr(raw_rules), expected="a list under `rules:`",
                     hint="add at least one rule")
    else:
        for index, node in enumerate(raw_rules):
            rule = _rule(reader, node, index, reader.at(raw_rules, index))
            if rule is not None:
                rules.append(rule)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id and rule.id in seen:
            reader.error("rule-duplicate-id", rule.source, f'rule id "{rule.id}" is used twice',
                         found=rule.id, expected="unique ids",
                         hint=f"rename one; the first is at line {seen[rule.id].source.line}")
        seen.setdefault(rule.id, rule)
    examples: list[Example] = []
    raw_examples = document.get("examples") or []
    if isinstance(raw_examples, list):
        for index, node in enumerate(raw_examples):
            example = _example(reader, node, reader.at(raw_examples, index))
            if example is not None:
                examples.append(example)
    errors = [p for p in reader.problems if p.severity == "error"]
    if errors:
        raise RuleFileError(reader.problems)
    return Rulebook(path, sha256, district, valid_from, valid_to, str(hit_policy), tuple(rules), domains,
                    tuple(examples), Location(path, line=1, col=1)), [
        p for p in reader.problems if p.severity == "warning"]


def load_rulebook(path: str | Path) -> tuple[Rulebook, list[Problem]]:
    """Read a rule file; returns the rulebook and its warnings. Raises RuleFileError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RuleFileError([Problem("rule-file-unreadable", Location(str(path)), "rule file cannot be read",
                                     found=error.strerror, expected="a readable YAML file",
                                     hint="check the path given with --rules")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RuleFileError([Problem("rule-encoding", Location(str(path), line=line), "rule file is not UTF-8",
                                     found=repr(data[error.start:error.start + 4]), expected="UTF-8 text",
                                     hint="save the file as UTF-8")]) from None
    return parse_rulebook(text, str(path), hashlib.sha256(data).hexdigest())


def load_rulebooks(paths: Iterable[str | Path]) -> list[Rulebook]:
    """Several rule files; every broken file's problems are collected into one RuleFileError."""
    books: list[Rulebook] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            books.append(load_rulebook(path)[0])
        except RuleFileError as error:
            problems.extend(error.problems)
    if problems:
        raise RuleFileError(problems)
    return books


def check_columns(rulebook: Rulebook, book: InputBook) -> list[Problem]:
    """Every column a rule names must exist in the input workbook."""
    problems: list[Problem] = []
    item_columns = set(book.item_columns)
    municipality_columns = set(book.municipality_columns)

    def need(column: str, available: set[str], where: Location, sheet: str, rule: Rule) -> None:
        if column not in available:
            problems.append(Problem(
                "rule-unknown-column", where,
                f'rule "{rule.id}" names column "{column}", which sheet {sheet} does not have'
                f"{did_you_mean(column, available)}", found=column,
                expected=", ".join(sorted(available)), hint=f"correct the rule or add the column to {sheet}"))

    for rule in rulebook.rules:
        for cmp in conditions.columns(rule.when):
            need(cmp.column, item_columns, cmp.source, "Kostenpositionen", rule)
        if rule.payers is not None:
            for cmp in conditions.columns(rule.payers):
                need(cmp.column, municipality_columns, cmp.source, "Gemeinden", rule)
        if rule.key is not None and not rule.key.is_item_key:
            for column in rule.key.weights:
                need(column, municipality_columns, rule.key.source, "Gemeinden", rule)
        if rule.extent:
            need(rule.extent, municipality_columns, rule.source, "Gemeinden", rule)
    return problems
