"""Rule files (YAML) -> `Rulebook`, with a schema check that names file:line:column for every problem.

The rule file format is a contract with auditors (see README, "Regeldateien"). This module reads a file,
checks its structure and values, and builds frozen `Rule` records that remember their line. `bind` meets
a rulebook with an input workbook: every column a rule names is resolved to the workbook's header
(`check_columns`), and the cells the rules compare are checked for type and declared domain (`check_data`).
Checks across rules (overlap, shadowing, gaps) live in `analysis.py`.

Limits (README, "Rule files", Limits): a file of at most MAX_FILE_BYTES, no YAML anchors or aliases and at
most 100 nesting levels (yamlloc.py), conditions within durable_rules' measured limits (`_check_size`).
A file that passes is finally compiled into the same durable_rules rulesets a run uses (`_compile`), so
`check` and `run` never disagree about it.
"""
from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from ..rulefiles import conditions
from ..core.model import normalise_header
from ..core.instalments import CHANGE_POLICIES, QUARTERLY_DEFAULT, SCHEDULES, SPLITS, Schedule
from ..core.model import (COMPONENTS, LEVY_ROUTES, ROUTES, CostItem, Example, ExampleSplit, InputBook, KeySpec, Levy,
                    Municipality, Rule, Rulebook)
from ..core.filenames import open_regular, read_regular
from ..core import states as state_law
from ..core.problems import InputError, Location, Problem, RuleFileError, did_you_mean
from .yamlloc import MAX_DEPTH as MAX_YAML_DEPTH
from .yamlloc import LocDict, LocList, YamlProblem, load

__all__ = ["load_rulebook", "load_rulebooks", "parse_rulebook", "check_columns", "check_levy_columns", "check_data",
           "bind", "rename_columns", "domain_sources", "TOP_KEYS", "RULE_KEYS", "LEVY_KEYS", "RATE_LIMITS",
           "HIT_POLICIES", "NoticeSettings", "LevyNoticeText", "load_notice_settings", "KASSENZEICHEN_FIELDS",
           "Letterhead"]

TOP_KEYS = ("district", "valid_from", "valid_to", "hit_policy", "description", "domains", "rules", "examples",
            "levies", "rate_limits", "instalments", "notices", "state")
RULE_KEYS = ("id", "description", "legal_basis", "when", "route", "payers", "key", "components", "extent",
             "priority", "credit_hosts", "service", "levy")
LEVY_KEYS = ("id", "name", "legal_basis", "payers", "extent", "base")
DEFAULT_LEVY_BASE = "Umlagegrundlagen"
# `rate_limits:` values. bavaria: Art. 18 Abs. 3 Satz 3 and 4 BayFAG; bavaria-approved: the supervisory
# authority approved a wider spread (Satz 3 Halbsatz 2), so only Satz 4 is checked.
RATE_LIMITS = ("bavaria", "bavaria-approved")
EXAMPLE_KEYS = ("item", "rule", "route", "description", "municipalities", "deficit", "costs", "funding", "rounding",
                "split")
SPLIT_KEYS = ("municipalities", "deficit", "costs", "funding", "rounding", "split")
HIT_POLICIES = ("unique", "priority")
ITEM_KEY = "Schluessel"
MAX_COMPARISONS = 400
# What `check` answers within 5 s on 2 cores (benchmarks/bench_hostile.py): PyYAML reads ~100 kB/s (pure Python,
# for line:column), and the static analysis compares rules pairwise (500 rules under `priority`: ~3 s; 1,000:
# ~8 s). The engine itself decides 10,000 rules (benchmarks/README.md, 1b); a district's file has a few dozen.
MAX_FILE_BYTES = 256 * 1024
MAX_RULES = 500
PARAMETERS_BY_ROUTE = {
    "district_levy": {"components", "credit_hosts", "levy"},
    "differentiated_levy": {"components", "payers", "extent", "credit_hosts", "levy"},
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
                           f'unbekannter Schlüssel "{key}" in {what}{did_you_mean(str(key), allowed)}',
                           found=str(key), expected=", ".join(allowed), hint="den Schlüssel korrigieren oder entfernen")

    def text(self, node: LocDict, key: str, required: bool = True) -> str:
        value = node.get(key)
        if value is None:
            if required:
                self.error("rule-missing-key", self.at(node), f'"{key}" fehlt',
                           expected=f"`{key}: ...`", hint=f"`{key}` ergänzen")
            return ""
        if isinstance(value, (dict, list)) or isinstance(value, bool):
            self.error("rule-bad-type", self.at(node, key, True), f'"{key}" muss ein Text sein', found=repr(value),
                       expected="Text", hint="eine einzelne Textzeile schreiben")
            return ""
        return str(value)

    def year(self, node: LocDict, key: str) -> int:
        value = node.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 1900 <= value <= 2200:
            return value
        if value is None:
            self.error("rule-missing-key", self.at(node), f'"{key}" fehlt', expected="ein Haushaltsjahr",
                       hint=f"`{key}: 2022` ergänzen")
        else:
            self.error("rule-bad-type", self.at(node, key, True), f'"{key}" muss ein Haushaltsjahr sein',
                       found=repr(value), expected="eine Jahreszahl wie 2022", hint="die Jahreszahl ohne Anführungszeichen schreiben")
        return 0


def _key_spec(reader: _Reader, rule: LocDict) -> KeySpec | None:
    where = reader.at(rule, "key", True)
    raw = rule.get("key")
    if isinstance(raw, str):
        return KeySpec({raw: Decimal(100)}, where)
    if not isinstance(raw, dict) or not raw:
        reader.error("rule-bad-key", where, '"key" muss eine Spalte, `Schluessel` oder gewichtete Spalten nennen',
                     found=repr(raw), expected="Einwohner | Schluessel | {Linienminuten: 70, Wagenkm: 30}",
                     hint="den Verteilungsschlüssel angeben")
        return None
    weights: dict[str, Decimal] = {}
    for column, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, Decimal)) or weight <= 0:
            reader.error("rule-bad-weight", reader.at(raw, column, True), f'Gewicht von "{column}" muss eine positive Zahl sein',
                         found=repr(weight), expected="ein Prozentsatz wie 70", hint="das Gewicht in Prozent angeben")
            continue
        weights[str(column)] = Decimal(weight)
    total = sum(weights.values(), Decimal(0))
    if weights and len(weights) == len(raw) and total != 100:
        reader.error("rule-weights-sum", where, "Die Gewichte eines zusammengesetzten Schlüssels müssen zusammen 100 ergeben",
                     found=str(total), expected="100", hint=f"die Gewichte um {100 - total} anpassen")
    if ITEM_KEY in weights and len(weights) > 1:
        reader.error("rule-bad-key", where, f"`{ITEM_KEY}` (Schlüssel je Kostenposition) lässt sich nicht mit Spalten kombinieren",
                     found=", ".join(weights), expected=f"nur `key: {ITEM_KEY}`", hint="nur eine Schlüsselart verwenden")
    return KeySpec(weights, where)


def _check_size(reader: _Reader, condition: conditions.Condition, node: LocDict, key: str) -> None:
    """durable_rules stops answering on patterns of several hundred comparisons (measured: 512 values in an
    `in` list work, 513 hang), so a condition may hold at most MAX_COMPARISONS of them (`in` counts each value);
    it refuses patterns of more than 15 and/or groups (engine.MAX_COMBINATORS)."""
    size = sum(len(cmp.value) if cmp.op == "in" else 1 for cmp in conditions.columns(condition))
    if size > MAX_COMPARISONS:
        reader.error("rule-too-large", reader.at(node, key, True),
                     f"die Bedingung hat {size} Vergleiche; höchstens {MAX_COMPARISONS} sind möglich",
                     found=str(size), expected=f"höchstens {MAX_COMPARISONS} Vergleiche (jeder Wert einer in-Liste zählt)",
                     hint="eine Kennzeichen-Spalte (z. B. 1/0) in der Arbeitsmappe anlegen und darauf prüfen, "
                          "oder die Regel aufteilen")
        return
    from .engine import MAX_COMBINATORS, MAX_WEIGHT, combinators, weight

    alternatives = weight(condition)
    if alternatives > MAX_WEIGHT:
        reader.error("rule-too-large", reader.at(node, key, True),
                     f"die Bedingung hat {alternatives - 1} Alternativen, die zugleich zutreffen können; höchstens "
                     f"{MAX_WEIGHT - 1} sind möglich", found=f"{alternatives - 1} Alternativen",
                     expected=f"höchstens {MAX_WEIGHT - 1} (jede weitere Möglichkeit eines any zählt; Werte einer "
                              "in-Liste zählen zusammen als eine)",
                     hint="die Bedingung umformen, z. B. not mit in statt vieler any-Zweige mit ne, oder eine "
                          "Kennzeichen-Spalte in der Arbeitsmappe anlegen")
        return
    groups = combinators(condition)
    if groups > MAX_COMBINATORS:
        reader.error("rule-too-large", reader.at(node, key, True),
                     f"die Bedingung verknüpft {groups} Gruppen mit und/oder; höchstens {MAX_COMBINATORS} sind möglich",
                     found=f"{groups} Gruppen", expected=f"höchstens {MAX_COMBINATORS} Gruppen (jedes all, any und "
                     "jede in-Liste zählt; not kehrt all und any um)",
                     hint="die Bedingung vereinfachen, z. B. mehrere in-Listen über eine Kennzeichen-Spalte der "
                          "Arbeitsmappe zusammenfassen, oder die Regel in mehrere Regeln aufteilen")


def _compile(reader: _Reader, rules: list[Rule]) -> None:
    """Let durable_rules create the rulesets of these rules, as every run will: `check` and `run` never
    disagree about a rule file durable_rules refuses (only its known limits are refused by name above)."""
    from .engine import EngineFailure, compile_rules

    try:  # the same two rule sets as allocate.py matches: every `when`, and every `payers` together
        compile_rules({rule.id: rule.when for rule in rules})
        compile_rules({rule.id: rule.payers for rule in rules if rule.payers is not None})
    except EngineFailure as failure:
        rule = next((r for r in rules if r.id == failure.rule), rules[0] if rules else None)
        reader.error("rule-too-large", rule.source if rule else Location(reader.file, line=1, col=1),
                     "durable_rules kann die Regeln ab hier nicht übersetzen", found=str(failure),
                     expected="Bedingungen innerhalb der Grenzen der Regel-Engine (README, Regeldateien)",
                     hint="die Bedingungen dieser und der folgenden Regeln vereinfachen oder aufteilen")


def _rule(reader: _Reader, node: object, index: int, where: Location) -> Rule | None:
    if not isinstance(node, LocDict):
        reader.error("rule-bad-type", where, "Eine Regel muss eine Zuordnung (Mapping) sein", found=repr(node),
                     expected="id, description, legal_basis, when, route, ...", hint="die Schlüssel der Regel einrücken")
        return None
    reader.unknown_keys(node, RULE_KEYS, "einer Regel")
    rule_id = reader.text(node, "id")
    description = reader.text(node, "description", required=False)
    legal_basis = reader.text(node, "legal_basis", required=False)
    if not legal_basis:
        reader.warning("rule-no-legal-basis", reader.at(node), f'Regel "{rule_id}" hat keine legal_basis',
                       expected='z. B. legal_basis: "§ 56 Abs. 4 KrO NRW"',
                       hint="die Rechtsgrundlage für die Prüfung angeben")
    route = reader.text(node, "route")
    if route and route not in ROUTES:
        reader.error("rule-unknown-route", reader.at(node, "route", True),
                     f'unbekannte route "{route}"{did_you_mean(route, ROUTES)}', found=route,
                     expected=", ".join(ROUTES), hint="eine der vier routes verwenden")
    if "when" not in node:
        reader.error("rule-missing-key", reader.at(node), f'Regel "{rule_id}" hat keine "when"-Bedingung',
                     expected="when: {Spalte: Wert}", hint="`when: {}` schreiben, wenn die Regel immer gelten soll")
    when = conditions.parse(node.get("when"), reader.file, reader.problems, node.vpos("when"))
    _check_size(reader, when, node, "when")
    allowed = PARAMETERS_BY_ROUTE.get(route, set())
    for parameter in ("payers", "key", "extent", "credit_hosts", "levy"):
        if parameter in node and route in ROUTES and parameter not in allowed:
            reader.error("rule-bad-parameter", reader.at(node, parameter),
                         f'"{parameter}" gilt nicht für route {route}', found=parameter,
                         expected=", ".join(sorted(allowed)) or "keine Parameter", hint=f"`{parameter}` entfernen")
    payers = None
    if "payers" in node:
        payers = conditions.parse(node["payers"], reader.file, reader.problems, node.vpos("payers"))
        _check_size(reader, payers, node, "payers")
    elif route == "differentiated_levy" and "levy" not in node:  # with `levy:` the levy names its payers
        reader.error("rule-missing-key", reader.at(node), "Eine differenzierte Umlage braucht `payers`",
                     expected="payers: {Jugendamt_Kreis: 1}", hint="die zahlenden Gemeinden auswählen")
    key = None
    if "key" in node:
        key = _key_spec(reader, node)
    elif route == "direct_billing":
        reader.error("rule-missing-key", reader.at(node), "Eine Direktabrechnung braucht einen Verteilungsschlüssel `key`",
                     expected="key: Einwohner", hint="die Schlüsselspalte angeben")
    components = COMPONENTS
    if "components" in node:
        raw = node["components"]
        if not isinstance(raw, list) or not raw:
            reader.error("rule-bad-type", reader.at(node, "components", True), '"components" muss eine Liste sein',
                         found=repr(raw), expected=f"eine Auswahl aus {list(COMPONENTS)}",
                         hint="die anrechenbaren Kostenarten aufzählen")
        else:
            for i, component in enumerate(raw):
                if component not in COMPONENTS:
                    reader.error("rule-unknown-component", reader.at(raw, i),
                                 f'unbekannte Kostenart "{component}"{did_you_mean(str(component), COMPONENTS)}',
                                 found=str(component), expected=", ".join(COMPONENTS),
                                 hint="eine der aufgeführten Kostenarten verwenden")
            components = tuple(c for c in COMPONENTS if c in raw)
    extent = None
    if "extent" in node:
        extent = reader.text(node, "extent")
    priority = node.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        reader.error("rule-bad-type", reader.at(node, "priority", True), '"priority" muss eine ganze Zahl sein',
                     found=repr(priority), expected="z. B. 10", hint="bei hit_policy: priority gewinnt die höhere Zahl")
        priority = 0
    credit_hosts = node.get("credit_hosts", False)
    if not isinstance(credit_hosts, bool):
        reader.error("rule-bad-type", reader.at(node, "credit_hosts", True), '"credit_hosts" muss true oder false sein',
                     found=repr(credit_hosts), expected="true oder false",
                     hint="`credit_hosts: true` schreiben, um Trägergemeinden von dieser Umlage freizustellen")
        credit_hosts = False
    service = reader.text(node, "service", required=False).strip() or None
    levy = reader.text(node, "levy") or None if "levy" in node else None
    return Rule(rule_id, description, legal_basis, when, route, payers, key, components, extent, priority, index,
                where, credit_hosts=credit_hosts, service=service, levy=levy)


def _example(reader: _Reader, node: object, where: Location) -> Example | None:
    if not isinstance(node, LocDict) or not isinstance(node.get("item"), dict):
        reader.error("rule-bad-example", where, "Ein Beispiel braucht eine Zuordnung `item`", found=repr(node),
                     expected="item: {Kategorie: KIM}, rule: kim, route: district_levy", hint="`item:` ergänzen")
        return None
    reader.unknown_keys(node, EXAMPLE_KEYS, "einem Beispiel")
    item = {}
    for column, value in node["item"].items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            reader.error("rule-bad-example", reader.at(node["item"], column, True),
                         f'Beispielwert von "{column}" muss Text oder eine Zahl sein', found=repr(value),
                         expected="Text oder eine Zahl", hint="Text in Anführungszeichen setzen")
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
    from ..core.money import cents_from_decimal

    value = node.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        reader.error("rule-bad-example", reader.at(node, key, True), f"{what} muss ein Betrag in Euro sein",
                     found=repr(value), expected="eine Zahl wie 76000 oder 1234.56",
                     hint="den Betrag ohne Anführungszeichen schreiben")
        return None
    try:
        return cents_from_decimal(Decimal(value))
    except ValueError:
        reader.error("rule-bad-example", reader.at(node, key, True), f"{what} enthält Bruchteile eines Cents",
                     found=str(value), expected="höchstens zwei Nachkommastellen", hint="den Betrag auf Cent runden")
        return None


def _ags(reader: _Reader, where: Location, value: object) -> str | None:
    if isinstance(value, str) and state_law.MEMBER_KEY.fullmatch(value):
        return value
    reader.error("rule-bad-example", where, "Ein AGS muss aus 8 Ziffern in Anführungszeichen bestehen (ein "
                 "Kreisschlüssel aus 5, ein Regionalschlüssel aus 12)", found=repr(value),
                 expected='z. B. "05170044"',
                 hint='den AGS in Anführungszeichen setzen: ohne sie liest YAML 05170044 als Zahl')
    return None


def _example_split(reader: _Reader, node: LocDict, where: Location) -> ExampleSplit | None:
    """The optional expected split: `municipalities`, `deficit` or `costs` (+ `funding`), `rounding`, `split`."""
    problems_before = len(reader.problems)
    missing = [key for key in ("municipalities", "split") if key not in node]
    if "deficit" not in node and "costs" not in node:
        missing.append("deficit")
    if missing:
        reader.error("rule-bad-example", where, "Ein Beispiel mit erwarteter Aufteilung braucht "
                     + ", ".join(f"`{key}`" for key in missing), found=", ".join(k for k in SPLIT_KEYS if k in node),
                     expected="municipalities, deficit (oder costs), split",
                     hint="die fehlenden Schlüssel ergänzen oder die Aufteilungs-Schlüssel entfernen, um nur Regel "
                          "und route zu prüfen")
        return None
    if "deficit" in node and "costs" in node:
        reader.error("rule-bad-example", reader.at(node, "costs"), "entweder `deficit` oder `costs` angeben, nicht beides",
                     found="deficit, costs", expected="eines von beiden", hint="eines entfernen")
    rounding = str(node.get("rounding", "Cent"))
    if rounding not in ("Cent", "Euro"):
        reader.error("rule-bad-example", reader.at(node, "rounding", True), f'unbekannte Rundung "{rounding}"',
                     found=rounding, expected="Cent oder Euro", hint="`rounding: Cent` oder `rounding: Euro` schreiben")
    deficit = _euros(reader, node, "deficit", '"deficit"') if "deficit" in node else None
    components: dict[str, int] = {}
    raw_costs = node.get("costs")
    if raw_costs is not None:
        if not isinstance(raw_costs, LocDict):
            reader.error("rule-bad-example", reader.at(node, "costs", True), '"costs" muss Kostenarten Euro-Beträge zuordnen',
                         found=repr(raw_costs), expected="{Personalkosten: 296000, Sachkosten: 0}",
                         hint="die Kostenarten aufzählen")
        else:
            for component in raw_costs:
                if component not in COMPONENTS:
                    reader.error("rule-unknown-component", reader.at(raw_costs, component),
                                 f'unbekannte Kostenart "{component}"{did_you_mean(str(component), COMPONENTS)}',
                                 found=str(component), expected=", ".join(COMPONENTS),
                                 hint="eine der aufgeführten Kostenarten verwenden")
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
                     '"municipalities" muss eine nicht leere Liste sein', found=repr(raw_municipalities),
                     expected='- {AGS: "05170044", Umlagegrundlagen: 1000000}', hint="die Gemeinden aufzählen")
        raw_municipalities = LocList()
    for index, entry in enumerate(raw_municipalities):
        here = reader.at(raw_municipalities, index)
        if not isinstance(entry, LocDict) or "AGS" not in entry:
            reader.error("rule-bad-example", here, "Eine Gemeinde braucht mindestens `AGS`", found=repr(entry),
                         expected='{AGS: "05170044", Umlagegrundlagen: 1000000}', hint="den AGS ergänzen")
            continue
        ags = _ags(reader, reader.at(entry, "AGS", True), entry["AGS"])
        base = _euros(reader, entry, "Umlagegrundlagen", '"Umlagegrundlagen"') if "Umlagegrundlagen" in entry else 0
        attrs: dict = {}
        for column, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
                reader.error("rule-bad-example", reader.at(entry, column, True),
                             f'Wert von "{column}" muss Text oder eine Zahl sein', found=repr(value),
                             expected="Text oder eine Zahl", hint="Text in Anführungszeichen setzen")
                continue
            attrs[str(column)] = Decimal(value) if isinstance(value, int) else value
        if isinstance(attrs.get("Schluessel"), Decimal) and ags is not None:
            keys[ags] = attrs["Schluessel"]
        if ags is not None and base is not None:
            if any(m.ags == ags for m in municipalities):
                reader.error("rule-bad-example", here, f"AGS {ags} ist doppelt aufgeführt", found=ags,
                             expected="jede Gemeinde nur einmal", hint="einen Eintrag entfernen")
                continue
            municipalities.append(Municipality(ags, str(entry.get("Gemeinde", ags)), base, attrs, here))
    expected: dict[str, int] = {}
    raw_split = node.get("split")
    if not isinstance(raw_split, LocDict) or not raw_split:
        reader.error("rule-bad-example", reader.at(node, "split", True), '"split" muss AGS Euro-Beträge zuordnen',
                     found=repr(raw_split), expected='{"05170044": 19000.00}', hint="den Anteil jeder Gemeinde angeben")
        raw_split = LocDict()
    for key in raw_split:
        ags = _ags(reader, reader.at(raw_split, key), key)
        cents = _euros(reader, raw_split, key, f"der Anteil von {key}")
        if ags is not None and cents is not None:
            expected[ags] = cents
    listed = {m.ags for m in municipalities}
    for ags in sorted(set(expected) - listed):
        reader.error("rule-bad-example", reader.at(raw_split, ags), f"split nennt AGS {ags}, der nicht in `municipalities` steht",
                     found=ags, expected=", ".join(sorted(listed)), hint="die Gemeinde ergänzen oder den Anteil entfernen")
    for ags in sorted(listed - set(expected)) if expected else ():
        reader.error("rule-bad-example", reader.at(node, "split", True), f"split hat keinen Betrag für AGS {ags}",
                     found="fehlt", expected="ein Betrag für jede aufgeführte Gemeinde (0 für Nichtzahler)",
                     hint=f'`"{ags}": 0` ergänzen')
    if len(reader.problems) > problems_before:
        return None
    return ExampleSplit(tuple(municipalities), components, funding, deficit, rounding, keys, expected,
                        reader.at(node, "split"))


def _levy_base(reader: _Reader, node: LocDict, levy_id: str) -> dict[str, Decimal]:
    """`base:` of a levy: one Gemeinden column (weight 100) or columns with percent weights (0 < w ≤ 100)."""
    if "base" not in node:
        return {DEFAULT_LEVY_BASE: Decimal(100)}
    raw = node["base"]
    where = reader.at(node, "base", True)
    if isinstance(raw, str) and raw.strip():
        return {raw.strip(): Decimal(100)}
    if not isinstance(raw, LocDict) or not raw:
        reader.error("rule-bad-levy", where, f'"base" der Umlage "{levy_id}" muss eine Spalte oder gewichtete Spalten nennen',
                     found=repr(raw), expected="Umlagegrundlagen | {Steuerkraftzahlen: 100, Schluesselzuweisungen: 80}",
                     hint="die Spalte(n) des Blatts Gemeinden angeben, auf die die Umlage erhoben wird")
        return {}
    weights: dict[str, Decimal] = {}
    for column, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, Decimal)) or not 0 < weight <= 100:
            reader.error("rule-bad-weight", reader.at(raw, column, True),
                         f'Gewicht von "{column}" in der Umlage "{levy_id}" muss ein Prozentsatz über 0 bis 100 sein',
                         found=repr(weight), expected="z. B. 100 oder 80",
                         hint="den Anteil der Spalte an der Bemessungsgrundlage in Prozent angeben")
            continue
        weights[str(column)] = Decimal(weight)
    return weights


def _levy(reader: _Reader, node: object, where: Location) -> Levy | None:
    if not isinstance(node, LocDict):
        reader.error("rule-bad-levy", where, "Eine Umlage muss eine Zuordnung (Mapping) sein", found=repr(node),
                     expected="id, name, legal_basis, base, ...", hint="die Schlüssel der Umlage einrücken")
        return None
    reader.unknown_keys(node, LEVY_KEYS, "einer Umlage")
    levy_id = reader.text(node, "id")
    name = reader.text(node, "name")
    legal_basis = reader.text(node, "legal_basis", required=False)
    if not legal_basis:
        reader.warning("rule-no-legal-basis", reader.at(node), f'Umlage "{levy_id}" hat keine legal_basis',
                       expected='z. B. legal_basis: "§ 56 Abs. 1 KrO NRW; Haushaltssatzung 2022 § 6"',
                       hint="die Rechtsgrundlage für die Prüfung angeben")
    payers = None
    if "payers" in node:
        payers = conditions.parse(node["payers"], reader.file, reader.problems, node.vpos("payers"))
        _check_size(reader, payers, node, "payers")
    extent = reader.text(node, "extent") or None if "extent" in node else None
    base = _levy_base(reader, node, levy_id)
    return Levy(levy_id, name, legal_basis, payers, extent, base, where)


def _levies(reader: _Reader, document: LocDict) -> list[Levy]:
    """The optional top-level `levies:`; ids and names must be unique (a name is an Uebersicht column)."""
    if "levies" not in document:
        return []
    raw = document["levies"]
    if not isinstance(raw, LocList) or not raw:
        reader.error("rule-bad-levy", reader.at(document, "levies", True), '"levies" muss eine nicht leere Liste sein',
                     found=repr(raw), expected="- {id: kreisumlage, name: Kreisumlage, legal_basis: ...}",
                     hint="die Umlagen aufzählen oder `levies:` entfernen")
        return []
    levies = [levy for index, node in enumerate(raw) if (levy := _levy(reader, node, reader.at(raw, index)))]
    for attribute, what in (("id", "id"), ("name", "Name")):
        seen: dict[str, Levy] = {}
        for levy in levies:
            value = getattr(levy, attribute)
            if value and value in seen:
                reader.error("rule-duplicate-levy", levy.source, f'Umlage-{what} "{value}" wird doppelt verwendet',
                             found=value, expected=f"eindeutige {what}s",
                             hint=f"eine umbenennen; die erste steht in Zeile {seen[value].source.line}")
            seen.setdefault(value, levy)
    return levies


def _check_levy_rules(reader: _Reader, rules: list[Rule], levies: list[Levy], document: LocDict) -> None:
    """With `levies:`, every levy rule names its levy (`levy: ID`), and the levy carries payers and extent;
    without `levies:`, `levy:` is an error (nothing to name)."""
    by_id = {levy.id: levy for levy in levies}
    for rule in rules:
        if rule.route not in LEVY_ROUTES:
            continue
        if not levies:
            if rule.levy is not None:
                reader.error("rule-unknown-levy", rule.source,
                             f'Regel "{rule.id}" nennt die Umlage "{rule.levy}", aber die Regeldatei hat keine `levies:`',
                             found=rule.levy, expected="`levies:` mit dieser Umlage",
                             hint="die Umlage unter `levies:` anlegen oder `levy:` entfernen")
            continue
        if rule.levy is None:
            reader.error("rule-levy-missing", rule.source,
                         f'Regel "{rule.id}" (route {rule.route}) nennt keine Umlage; die Regeldatei hat `levies:`',
                         found="kein `levy:`", expected=", ".join(by_id),
                         hint="`levy: ID` mit der Umlage ergänzen, über die das Defizit finanziert wird")
            continue
        levy = by_id.get(rule.levy)
        if levy is None:
            reader.error("rule-unknown-levy", rule.source, f'Regel "{rule.id}" nennt die unbekannte Umlage "{rule.levy}"'
                         f"{did_you_mean(rule.levy, tuple(by_id))}", found=rule.levy, expected=", ".join(by_id),
                         hint="eine id aus `levies:` verwenden")
            continue
        for parameter in ("payers", "extent", "credit_hosts"):
            if getattr(rule, parameter) not in (None, False):
                reader.error("rule-bad-parameter", rule.source,
                             f'"{parameter}" gehört bei Regeln mit `levy:` zur Umlage "{levy.id}", nicht zur Regel',
                             found=parameter, expected="payers und extent unter `levies:`; kein credit_hosts",
                             hint="eine Umlage hat einen Zahlerkreis und einen Satz je Haushaltssatzung: "
                                  f"`{parameter}` bei der Umlage angeben oder eine eigene Umlage anlegen")
        if rule.route == "district_levy" and (levy.payers is not None or levy.extent):
            reader.error("rule-levy-mismatch", rule.source,
                         f'Regel "{rule.id}" ist district_levy (alle Gemeinden), aber die Umlage "{levy.id}" hat '
                         "payers oder extent", found=rule.route, expected="route differentiated_levy",
                         hint="route: differentiated_levy verwenden oder payers/extent bei der Umlage entfernen")
        if rule.route == "differentiated_levy" and levy.payers is None and not levy.extent:
            reader.error("rule-levy-mismatch", rule.source,
                         f'Regel "{rule.id}" ist differentiated_levy, aber die Umlage "{levy.id}" hat weder payers '
                         "noch extent", found=levy.id, expected="payers oder extent bei der Umlage",
                         hint="payers bei der Umlage angeben oder route: district_levy verwenden")


def _rate_limits(reader: _Reader, document: LocDict) -> str:
    value = document.get("rate_limits")
    if value is None:
        return ""
    if value not in RATE_LIMITS:
        reader.error("rule-bad-rate-limits", reader.at(document, "rate_limits", True),
                     f'unbekannte rate_limits "{value}"{did_you_mean(str(value), RATE_LIMITS)}', found=repr(value),
                     expected=", ".join(RATE_LIMITS),
                     hint="bavaria: Art. 18 Abs. 3 BayFAG prüfen; bavaria-approved: mit Genehmigung der "
                          "Aufsichtsbehörde für eine größere Spreizung")
        return ""
    if "levies" not in document:
        reader.error("rule-bad-rate-limits", reader.at(document, "rate_limits"), "rate_limits ohne `levies:`",
                     found=str(value), expected="`levies:` mit den Umlagen, deren Sätze zu prüfen sind",
                     hint="`levies:` ergänzen oder rate_limits entfernen")
    return str(value)


def _state(reader: _Reader, document: LocDict) -> tuple[str, bool]:
    """`state:` (a Flächenland's code); a file without it is read as NW, with a Hinweis (README, migration note)."""
    value = document.get("state")
    if value is None:
        reader.warning("rule-state-assumed", reader.at(document, "state") if "state" in document else Location(
            reader.file, line=1, col=1),
                       f"die Regeldatei nennt kein Land; sie wird nach dem Recht von {state_law.DEFAULT_STATE} "
                       f"({state_law.STATE_NAMES[state_law.DEFAULT_STATE]}) gelesen",
                       found="kein `state:`", expected="`state:` mit dem Kürzel des Landes",
                       hint=f"`state: {state_law.DEFAULT_STATE}` (oder das Kürzel des Landes, z. B. BY) ergänzen; "
                            "`allocation states` listet die Länder")
        return state_law.DEFAULT_STATE, False
    if value not in state_law.STATES:
        wanted = str(value).strip().casefold()
        meant = next((code for code, name in state_law.STATE_NAMES.items()
                      if wanted in (code.casefold(), name.casefold())), None)
        suggestion = f" – gemeint ist wohl {meant} ({state_law.STATE_NAMES[meant]})?" if meant else did_you_mean(
            str(value), state_law.STATES)
        reader.error("rule-bad-state", reader.at(document, "state", True),
                     f'unbekanntes Land "{value}"{suggestion}', found=repr(value),
                     expected=", ".join(state_law.STATES),
                     hint="das Kürzel des Flächenlandes schreiben, z. B. `state: BY` (`allocation states` listet sie)")
        return state_law.DEFAULT_STATE, True
    return str(value), True


def _departure(reader: _Reader, where: Location, fact: "state_law.Fact", message: str, found: str, expected: str,
               hint: str) -> None:
    reader.warning("rule-state-departure", where, f"{message} ({fact.norm})", found=found, expected=expected, hint=hint)


def _state_departures(reader: _Reader, document: LocDict, state: str, year: int, levies: list[Levy],
                      rate_limits: str, settings: "NoticeSettings") -> None:
    """Every departure of the rule file from its state's profile, with the norm it departs from (a warning:
    `check` reports it, the Kreis decides; only verified facts count, `Profile.applied`)."""
    law = state_law.profile(state)
    name = f"{state} ({law.name})"
    if rate_limits and state != "BY":
        reader.warning("rule-state-departure", reader.at(document, "rate_limits", True),
                       f"rate_limits: {rate_limits} prüft Art. 18 Abs. 3 BayFAG, die Regeldatei gilt aber für {name}",
                       found=f"rate_limits: {rate_limits}", expected=f"die Satzregeln von {state} (aus dem Profil)",
                       hint="rate_limits entfernen: die Satzregeln des Landes gelten aus seinem Profil")
    schedule = settings.schedule
    due = law.applied("instalments", year or None)
    fact = law.fact("instalments", year or None)
    if due is not None and fact is not None and schedule is not None:
        wanted = (state_law_schedule(due))
        if (schedule.kind, schedule.days, schedule.split) != (wanted.kind, wanted.days, wanted.split):
            _departure(reader, reader.at(document, "instalments", True), fact,
                       f"der Zahlungsplan weicht vom Recht von {name} ab", found=schedule.describe(),
                       expected=wanted.describe() + (" (saarland)" if wanted.split == "saarland" else ""),
                       hint="`instalments:` entfernen (dann gilt der Plan des Landes) oder die Abweichung "
                            "(z. B. eine Vereinbarung) im Bescheid begründen")
    base = law.applied("levy_base", year or None)
    fact = law.fact("levy_base", year or None)
    if base is None or fact is None:
        return
    wanted = {normalise_header(column): (column, Decimal(str(weight))) for column, weight in base["components"].items()}
    for levy in levies:
        if list(levy.base) == [DEFAULT_LEVY_BASE]:
            continue  # the workbook gives the base already summed up
        given = {normalise_header(column): (column, weight) for column, weight in levy.base.items()}
        if base.get("deductions"):  # the law subtracts: components alone overstate the base
            _departure(reader, levy.source, fact,
                       f'die Bemessungsgrundlage der Umlage "{levy.id}" lässt den Abzug nach dem Recht von {name} aus',
                       found=levy.describe_base(),
                       expected=" + ".join(c if w == 100 else f"{w} % {c}" for c, w in wanted.values())
                       + "".join(f" − {d}" for d in base["deductions"]),
                       hint="die Umlagegrundlagen nach Abzug als Spalte Umlagegrundlagen geben (`base:` weglassen); "
                            "einen Abzug rechnet `base:` noch nicht")
        elif {key: weight for key, (_, weight) in given.items()} != {key: weight for key, (_, weight) in wanted.items()}:
            _departure(reader, levy.source, fact,
                       f'die Bemessungsgrundlage der Umlage "{levy.id}" weicht vom Recht von {name} ab',
                       found=levy.describe_base(),
                       expected=" + ".join(c if w == 100 else f"{w} % {c}" for c, w in wanted.values()),
                       hint="`base:` der Umlage wie im Gesetz schreiben, oder die Abweichung (z. B. eine Sonderumlage) "
                            "in `legal_basis` begründen")


def state_law_schedule(value: Mapping[str, object]) -> Schedule:
    """A profile's `instalments` value as a Schedule."""
    split = str(value.get("split", "equal"))
    if value["schedule"] == "monthly":
        return Schedule.monthly(int(value["day"]), split)
    days = tuple((int(d[:2]), int(d[3:])) for d in value["days"])
    return Schedule.quarterly(days, split)


def _too_large_file(path: str, size: int | None) -> Problem:
    """`size` None: not a regular file (a device or pipe), only known to exceed the limit."""
    found = f"{size:,} Bytes" if size is not None else f"mehr als {MAX_FILE_BYTES:,} Bytes"
    return Problem("rule-file-too-large", Location(path), "Die Regeldatei ist zu groß",
                   found=found.replace(",", "."), expected=f"höchstens {MAX_FILE_BYTES:,} Bytes ({MAX_FILE_BYTES // 1024} KiB)".replace(",", "."),
                   hint="die Regeln auf mehrere Dateien mit getrennten Gültigkeitsjahren aufteilen oder gleichartige "
                        "Regeln über eine Kennzeichen-Spalte der Arbeitsmappe zusammenfassen")


def _yaml_problem(path: str, error: YamlProblem) -> Problem:
    where = Location(path, line=error.line, col=error.col)
    if error.code == "rule-yaml-alias":
        return Problem("rule-yaml-alias", where, f"YAML-Anker und -Verweise sind in Regeldateien nicht erlaubt: "
                       f"{error.message}", found=error.found, expected="jeden Wert ausgeschrieben",
                       hint="den Anker (&name) entfernen und jeden Verweis (*name) durch den ausgeschriebenen Wert "
                            "ersetzen")
    if error.code == "rule-too-deep":
        return Problem("rule-too-deep", where, f"Die Regeldatei ist zu tief geschachtelt: {error.message}",
                       found=error.found, expected=f"höchstens {MAX_YAML_DEPTH} Ebenen",
                       hint="die Bedingung flacher schreiben, z. B. not über eine Liste durch ne/any ersetzen")
    hint = "das Tag entfernen; Regeldateien enthalten nur einfache Daten" if "tag" in error.message else \
        "das Steuerzeichen entfernen (oft beim Kopieren aus anderen Programmen eingefügt)" \
        if error.message.startswith("Zeichen U+") else "Einrückung und Anführungszeichen an dieser Stelle prüfen"
    return Problem("rule-yaml", where, f"kein gültiges YAML: {error.message}", found=error.found,
                   expected="eine YAML-Zuordnung (Mapping)", hint=hint)


def parse_rulebook(text: str, path: str, sha256: str = "") -> tuple[Rulebook, list[Problem]]:
    """Parse and schema-check a rule file's text; returns it with its warnings. Raises RuleFileError."""
    reader = _Reader(path)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise RuleFileError([_too_large_file(path, size)])
    try:
        document, duplicates = load(text)
    except YamlProblem as error:
        raise RuleFileError([_yaml_problem(path, error)]) from None
    for duplicate in duplicates:
        reader.error("rule-duplicate-key", Location(path, line=duplicate.line, col=duplicate.col),
                     duplicate.message, found=duplicate.found, expected="jeder Schlüssel nur einmal",
                     hint="einen der beiden entfernen")
    if not isinstance(document, LocDict):
        raise RuleFileError([Problem("rule-bad-type", Location(path, line=1, col=1),
                                     "Eine Regeldatei muss eine Zuordnung mit district, valid_from, valid_to, rules sein",
                                     found=type(document).__name__, expected="eine YAML-Zuordnung (Mapping)",
                                     hint="von rules/kreis-wesel.yaml ausgehen")])
    reader.unknown_keys(document, TOP_KEYS, "der Regeldatei")
    district = reader.text(document, "district")
    valid_from = reader.year(document, "valid_from")
    valid_to = reader.year(document, "valid_to")
    if valid_from and valid_to and valid_from > valid_to:
        reader.error("rule-bad-validity", reader.at(document, "valid_to", True), "valid_to liegt vor valid_from",
                     found=f"{valid_from}–{valid_to}", expected="valid_from ≤ valid_to", hint="die Jahre vertauschen")
    hit_policy = document.get("hit_policy", "unique")
    if hit_policy not in HIT_POLICIES:
        reader.error("rule-bad-hit-policy", reader.at(document, "hit_policy", True),
                     f'unbekannte hit_policy "{hit_policy}"{did_you_mean(str(hit_policy), HIT_POLICIES)}',
                     found=str(hit_policy), expected="unique oder priority", hint="unique oder priority verwenden")
    domains: dict[str, tuple] = {}
    raw_domains = document.get("domains") or {}
    if not isinstance(raw_domains, dict):
        reader.error("rule-bad-type", reader.at(document, "domains", True), '"domains" muss Spalten Listen zuordnen',
                     found=repr(raw_domains), expected="{Kategorie: [KIM, Jugendhilfe]}", hint="die Werte aufzählen")
    else:
        for column, values in raw_domains.items():
            if not isinstance(values, list) or not values:
                reader.error("rule-bad-type", reader.at(raw_domains, column, True),
                             f'Wertebereich von "{column}" muss eine nicht leere Liste sein', found=repr(values),
                             expected="[A, B, ...]", hint="jeden zulässigen Wert aufzählen")
                continue
            domains[str(column)] = tuple(Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
                                         for v in values)
    rules: list[Rule] = []
    raw_rules = document.get("rules")
    if raw_rules is None and "levies" in document and "rules" not in document:
        raw_rules = []  # levies with statutory rates only: no cost item to decide, so no rule is needed
    elif not isinstance(raw_rules, list) or not raw_rules:
        reader.error("rule-missing-key", reader.at(document, "rules" if "rules" in document else None),
                     "Die Regeldatei enthält keine Regeln", found=repr(raw_rules), expected="eine Liste unter `rules:`",
                     hint="mindestens eine Regel ergänzen")
    elif len(raw_rules) > MAX_RULES:
        reader.error("rule-too-large", reader.at(document, "rules"),
                     f"Die Regeldatei hat {len(raw_rules)} Regeln; höchstens {MAX_RULES} sind möglich",
                     found=str(len(raw_rules)), expected=f"höchstens {MAX_RULES} Regeln je Datei",
                     hint="gleichartige Regeln über eine Kennzeichen-Spalte der Arbeitsmappe zusammenfassen oder die "
                          "Regeln auf Dateien mit getrennten Gültigkeitsjahren aufteilen")
    else:
        for index, node in enumerate(raw_rules):
            rule = _rule(reader, node, index, reader.at(raw_rules, index))
            if rule is not None:
                rules.append(rule)
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id and rule.id in seen:
            reader.error("rule-duplicate-id", rule.source, f'Regel-id "{rule.id}" wird doppelt verwendet',
                         found=rule.id, expected="eindeutige ids",
                         hint=f"eine umbenennen; die erste steht in Zeile {seen[rule.id].source.line}")
        seen.setdefault(rule.id, rule)
    examples: list[Example] = []
    raw_examples = document.get("examples") or []
    if isinstance(raw_examples, list):
        for index, node in enumerate(raw_examples):
            example = _example(reader, node, reader.at(raw_examples, index))
            if example is not None:
                examples.append(example)
    levies = _levies(reader, document)
    _check_levy_rules(reader, rules, levies, document)
    rate_limits = _rate_limits(reader, document)
    state, state_given = _state(reader, document)
    settings = _notice_settings(reader, document)
    if levies:  # a text for a levy the file does not have would silently not apply (a typo: Jugendamtumlage)
        names = {name.casefold() for levy in levies for name in (levy.id, levy.name)}
        notices = document.get("notices")
        for text in settings.levy_texts:
            if text.levy.casefold() not in names:
                where = reader.at(notices.get("levies"), text.levy) if isinstance(notices, LocDict) and isinstance(
                    notices.get("levies"), LocDict) else reader.at(document)
                reader.warning("rule-notices-unknown-levy", where,
                               f'notices.levies nennt "{text.levy}", aber `levies:` hat keine Umlage dieses Namens'
                               f"{did_you_mean(text.levy, tuple(levy.name for levy in levies))}", found=text.levy,
                               expected=", ".join(levy.name for levy in levies),
                               hint="den Namen oder die id der Umlage aus `levies:` schreiben")
    _state_departures(reader, document, state, valid_from, levies, rate_limits, settings)
    errors = [p for p in reader.problems if p.severity == "error"]
    if not errors:
        _compile(reader, rules)
        errors = [p for p in reader.problems if p.severity == "error"]
    if errors:
        raise RuleFileError(reader.problems)
    description = reader.text(document, "description", required=False).strip()
    return Rulebook(path, sha256, district, valid_from, valid_to, str(hit_policy), tuple(rules), domains,
                    tuple(examples), Location(path, line=1, col=1), description, tuple(levies), rate_limits, state,
                    state_given), [
        p for p in reader.problems if p.severity == "warning"]


def load_rulebook(path: str | Path) -> tuple[Rulebook, list[Problem]]:
    """Read a rule file; returns the rulebook and its warnings. Raises RuleFileError."""
    path = Path(path)
    try:  # a regular file only (a FIFO or /dev/zero is refused before a byte is read), one byte beyond the limit
        with open_regular(path) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise RuleFileError([Problem("rule-file-unreadable", Location(str(path)), "Die Regeldatei lässt sich nicht lesen",
                                     found=error.strerror, expected="eine lesbare YAML-Datei",
                                     hint="den mit --rules angegebenen Pfad prüfen")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise RuleFileError([_too_large_file(str(path), path.stat().st_size if path.is_file() else None)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RuleFileError([Problem("rule-encoding", Location(str(path), line=line), "Die Regeldatei ist nicht UTF-8-kodiert",
                                     found=repr(data[error.start:error.start + 4]), expected="UTF-8-Text",
                                     hint="die Datei als UTF-8 speichern")]) from None
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


# ------------------------------------------------------------------------------- binding to a workbook
#
# A rule names columns as its author spelled them; the workbook names them as the controller did. Binding
# resolves every column a rule names (when, payers, key, extent, domains) to the workbook's header with
# `inputs.normalise_header`, the one definition of "the same column name", and checks, before any decision,
# that every cell a condition compares holds a value of the compared type and every cell of a domain column
# a value of its domain. Engine, explanations and the decision trace then use the workbook's headers.

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


def domain_sources(path: str | Path) -> dict[tuple[str, int], Location]:
    """(column, index) -> file:line:col of each value declared under `domains:` ({} if unreadable)."""
    try:
        document, _ = load(read_regular(path, MAX_FILE_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, YamlProblem):
        return {}
    domains = document.get("domains") if isinstance(document, LocDict) else None
    if not isinstance(domains, LocDict):
        return {}
    return {(str(column), index): Location(str(path), line=values.pos(index)[0], col=values.pos(index)[1])
            for column, values in domains.items() if isinstance(values, LocList) for index in range(len(values))}


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


# ------------------------------------------------------------------------- instalments and notice settings
# The keys `instalments:` and `notices:` only matter to `allocation notices`; `parse_rulebook` checks them too,
# so that `check` and `run` report a bad schedule before any data is read.

KASSENZEICHEN_FIELDS = ("jahr", "ags", "umlage", "nr")
DEFAULT_KASSENZEICHEN = "{jahr}-{ags}-{umlage}"
INSTALMENT_KEYS = ("schedule", "day", "dates", "split")
NOTICE_KEYS = ("issuer", "kassenzeichen", "payment", "change_policy", "levies", "letterhead", "labels")
LETTERHEAD_KEYS = ("authority", "address", "department", "contact", "file_reference", "signatory", "court")
CONTACT_KEYS = ("name", "phone", "email")
SIGNATORY_KEYS = ("name", "title")
COURT_KEYS = ("name", "address")
FILE_REFERENCE_FIELDS = ("jahr", "ags", "umlage")
LEVY_TEXT_KEYS = ("legal_basis", "approval", "reasons", "produkt", "sachkonto")


@dataclass(frozen=True, slots=True)
class LevyNoticeText:
    """Texts for one levy on its notices, keyed in the rule file by the levy's name or id; `produkt` and `sachkonto`
    are its account assignment in the Sollstellung file for the finance system."""

    levy: str
    legal_basis: str = ""
    approval: str = ""
    reasons: str = ""
    produkt: str = ""
    sachkonto: str = ""


@dataclass(frozen=True, slots=True)
class Letterhead:
    """Who sends the notices and how to reach them, who signs, and where to sue (`notices.letterhead`); empty
    texts are not configured (a final notice that would show a placeholder for them is refused)."""

    authority: str = ""
    address: tuple[str, ...] = ()
    department: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    file_reference: str = ""  # pattern: {jahr}, {ags}, {umlage}
    signatory_name: str = ""
    signatory_title: str = ""
    court_name: str = ""
    court_address: str = ""


@dataclass(frozen=True, slots=True)
class NoticeSettings:
    """What `allocation notices` takes from the rule file. `schedule` is None without `instalments:`."""

    schedule: Schedule | None
    kassenzeichen: str = DEFAULT_KASSENZEICHEN
    payment: str = ""
    issuer: str = ""
    change_policy: str = "spread"
    levy_texts: tuple[LevyNoticeText, ...] = ()
    source: Location | None = None
    schedule_basis: str = ""  # the norm of a plan taken from the state's profile (the file has no `instalments:`)
    letterhead: Letterhead = Letterhead()
    labels: tuple[tuple[str, str], ...] = ()  # column -> how a letter names it (`notices.labels`)

    def text_for(self, *names: str) -> LevyNoticeText | None:
        wanted = {name.casefold() for name in names if name}
        return next((text for text in self.levy_texts if text.levy.casefold() in wanted), None)


def _bad_instalments(reader: _Reader, where: Location, message: str, found: object, expected: str, hint: str) -> None:
    reader.error("rule-bad-instalments", where, message, found=repr(found), expected=expected, hint=hint)


def _month_day(reader: _Reader, node: LocList, index: int) -> tuple[int, int] | None:
    import calendar

    value = node[index]
    parts = value.split("-") if isinstance(value, str) else []
    try:
        month, day = (int(part) for part in parts)
        # a real day of a leap year: 02-29 is allowed (28 February in other years), 02-30 is not
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(2024, month)[1]):
            raise ValueError(value)
    except ValueError:
        _bad_instalments(reader, reader.at(node, index), "ein Fälligkeitstag muss Monat-Tag sein", value,
                         'z. B. "02-15" (in Anführungszeichen)', "Monat und Tag zweistellig mit Bindestrich schreiben")
        return None
    return month, day


def _schedule(reader: _Reader, node: object, where: Location) -> Schedule | None:
    if not isinstance(node, LocDict):
        _bad_instalments(reader, where, '"instalments" muss eine Zuordnung sein', node,
                         "{schedule: monthly, day: 15}", "den Zahlungsplan als Zuordnung schreiben")
        return None
    before = len(reader.problems)
    reader.unknown_keys(node, INSTALMENT_KEYS, "instalments")
    kind, split = node.get("schedule"), node.get("split", "equal")
    if kind not in SCHEDULES:
        _bad_instalments(reader, reader.at(node, "schedule", True),
                         f'unbekannter Zahlungsplan{did_you_mean(str(kind), SCHEDULES)}', kind, "monthly oder quarterly",
                         "`schedule: monthly` (mit `day`) oder `schedule: quarterly` (mit `dates`) schreiben")
    if split not in SPLITS:
        _bad_instalments(reader, reader.at(node, "split", True), f'unbekannte Aufteilung{did_you_mean(str(split), SPLITS)}',
                         split, "equal oder saarland", "`split: equal` (gleiche Teile) oder `split: saarland` schreiben")
    schedule = None
    if kind == "monthly":
        day = node.get("day")
        if "dates" in node:
            _bad_instalments(reader, reader.at(node, "dates"), '"dates" gilt nur für schedule: quarterly', "dates",
                             "day", "für monatliche Raten nur `day` angeben")
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            _bad_instalments(reader, reader.at(node, "day", True) if "day" in node else reader.at(node),
                             "ein monatlicher Zahlungsplan braucht einen Tag des Monats", day, "eine ganze Zahl von 1 bis 31",
                             "z. B. `day: 15` (NRW), `day: 20` (Sachsen-Anhalt), `day: 25` (Bayern)")
        else:
            schedule = Schedule.monthly(day, str(split))
    elif kind == "quarterly":
        raw = node.get("dates")
        days = QUARTERLY_DEFAULT
        if "day" in node:
            _bad_instalments(reader, reader.at(node, "day"), '"day" gilt nur für schedule: monthly', "day", "dates",
                             'für vierteljährliche Raten `dates: ["02-15", "05-15", "08-15", "11-15"]` angeben')
        if raw is not None:
            if not isinstance(raw, LocList) or len(raw) != 4:
                _bad_instalments(reader, reader.at(node, "dates", True), "ein vierteljährlicher Plan braucht vier Termine",
                                 raw, '["02-15", "05-15", "08-15", "11-15"]', "genau vier Termine aufzählen")
                raw = LocList()
            parsed = [_month_day(reader, raw, index) for index in range(len(raw))]
            if raw and all(parsed):
                days = tuple(parsed)
                if list(days) != sorted(set(days)):
                    _bad_instalments(reader, reader.at(node, "dates", True),
                                     "die Termine müssen im Jahr aufsteigend und verschieden sein", raw,
                                     "aufsteigende Termine", "die Termine nach Monat ordnen")
        schedule = Schedule.quarterly(days, str(split))
    if schedule is not None and split == "saarland" and 12 % len(schedule.days):
        _bad_instalments(reader, reader.at(node, "split", True), "saarland braucht eine Zahl von Raten, die 12 teilt",
                         split, "monatlich oder vierteljährlich", "den Zahlungsplan prüfen")
    return schedule if len(reader.problems) == before else None


def _kassenzeichen(reader: _Reader, node: LocDict) -> str:
    pattern = reader.text(node, "kassenzeichen", required=False) or DEFAULT_KASSENZEICHEN
    where = reader.at(node, "kassenzeichen", True)
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                  if name is not None]
        # only a zero-padded width (e.g. {nr:02d}): a spec like {ags:>1000000000} would build a huge text
        unknown = [name for name, spec, conversion in fields
                   if name not in KASSENZEICHEN_FIELDS or conversion or not re.fullmatch(r"(0?[1-9]?d?)?", spec or "")]
        if not unknown:
            pattern.format(jahr=2022, ags="05170004", umlage="kreisumlage", nr=1)
    except (ValueError, KeyError, IndexError) as error:
        unknown = [str(error)]
    if unknown:
        reader.error("rule-bad-notices", where, "das Kassenzeichen-Muster enthält einen unbekannten Platzhalter",
                     found=", ".join(unknown), expected="{jahr}, {ags}, {umlage}, {nr} (auch {nr:02d})",
                     hint='z. B. `kassenzeichen: "KU-{jahr}-{ags}-{umlage}"`')
    return pattern


def _levy_texts(reader: _Reader, node: LocDict) -> tuple[LevyNoticeText, ...]:
    raw = node.get("levies")
    if raw is None:
        return ()
    if not isinstance(raw, LocDict):
        reader.error("rule-bad-notices", reader.at(node, "levies", True), '"levies" muss Umlagen Texte zuordnen',
                     found=repr(raw), expected="{Kreisumlage: {legal_basis: ..., approval: ..., reasons: ...}}",
                     hint="je Umlage (Name oder id) die Texte angeben")
        return ()
    texts = []
    for levy, entry in raw.items():
        if not isinstance(entry, LocDict):
            reader.error("rule-bad-notices", reader.at(raw, levy, True), f'die Texte zu "{levy}" müssen eine Zuordnung sein',
                         found=repr(entry), expected="legal_basis, approval, reasons", hint="die Texte einrücken")
            continue
        reader.unknown_keys(entry, LEVY_TEXT_KEYS, f'notices.levies.{levy}')
        texts.append(LevyNoticeText(str(levy), *(reader.text(entry, key, required=False) for key in LEVY_TEXT_KEYS)))
    return tuple(texts)


def _pattern(reader: _Reader, node: LocDict, key: str, fields: tuple[str, ...], example: dict) -> str:
    """A text with {placeholders} from `fields` only (no format spec beyond a zero-padded width)."""
    pattern = reader.text(node, key, required=False)
    try:
        names = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                 if name is not None]
        unknown = [name for name, spec, conversion in names
                   if name not in fields or conversion or not re.fullmatch(r"(0?[1-9]?d?)?", spec or "")]
        if not unknown:
            pattern.format(**example)
    except (ValueError, KeyError, IndexError) as error:
        unknown = [str(error)]
    if unknown:
        reader.error("rule-bad-notices", reader.at(node, key, True), f"das Muster {key} enthält einen unbekannten "
                     "Platzhalter", found=", ".join(unknown), expected=", ".join("{" + f + "}" for f in fields),
                     hint='z. B. `file_reference: "20.1-{jahr}-{ags}"`')
        return ""
    return pattern


def _section(reader: _Reader, node: LocDict, key: str, keys: tuple[str, ...], what: str) -> LocDict:
    value = node.get(key, LocDict())
    if not isinstance(value, LocDict):
        reader.error("rule-bad-notices", reader.at(node, key, True), f'"{key}" muss eine Zuordnung sein',
                     found=repr(value), expected=", ".join(keys), hint=f"die Angaben zu {what} einrücken")
        return LocDict()
    reader.unknown_keys(value, keys, f"notices.letterhead.{key}" if what != "Briefkopf" else "notices.letterhead")
    return value


def _letterhead(reader: _Reader, node: LocDict) -> Letterhead:
    head = _section(reader, node, "letterhead", LETTERHEAD_KEYS, "Briefkopf")
    raw_address = head.get("address")
    if raw_address is None:
        address: tuple[str, ...] = ()
    elif isinstance(raw_address, LocList) and all(isinstance(line, str) for line in raw_address):
        address = tuple(str(line) for line in raw_address)
    elif isinstance(raw_address, str):
        address = tuple(line.strip() for line in raw_address.splitlines() if line.strip())
    else:
        reader.error("rule-bad-notices", reader.at(head, "address", True), '"address" muss Zeilen nennen',
                     found=repr(raw_address), expected='["Reeser Landstraße 31", "46483 Wesel"]',
                     hint="die Anschrift als Liste von Zeilen schreiben")
        address = ()
    contact = _section(reader, head, "contact", CONTACT_KEYS, "der Kontaktperson")
    signatory = _section(reader, head, "signatory", SIGNATORY_KEYS, "der Unterschrift")
    court = _section(reader, head, "court", COURT_KEYS, "dem Verwaltungsgericht")

    def text(node: LocDict, key: str) -> str:  # blank is not given: "   " must not pass for a court
        return " ".join(reader.text(node, key, required=False).split())

    address = tuple(line for line in (" ".join(line.split()) for line in address) if line)
    return Letterhead(
        text(head, "authority"), address, text(head, "department"),
        *(text(contact, key) for key in CONTACT_KEYS),
        _pattern(reader, head, "file_reference", FILE_REFERENCE_FIELDS,
                 {"jahr": 2022, "ags": "05170004", "umlage": "kreisumlage"}),
        *(text(signatory, key) for key in SIGNATORY_KEYS),
        *(text(court, key) for key in COURT_KEYS))


def _labels(reader: _Reader, node: LocDict) -> tuple[tuple[str, str], ...]:
    raw = node.get("labels")
    if raw is None:
        return ()
    if not isinstance(raw, LocDict) or not all(isinstance(v, str) and v.strip() for v in raw.values()):
        reader.error("rule-bad-notices", reader.at(node, "labels", True), '"labels" muss Spalten Texte zuordnen',
                     found=repr(raw), expected='{Schluesselzuweisungen: "Schlüsselzuweisungen"}',
                     hint="je Spalte den Text angeben, mit dem der Bescheid sie nennt")
        return ()
    return tuple((str(column), str(text).strip()) for column, text in raw.items())


def _notice_settings(reader: _Reader, document: LocDict) -> NoticeSettings:
    schedule = _schedule(reader, document["instalments"], reader.at(document, "instalments", True)) \
        if "instalments" in document else None
    basis = ""
    if "instalments" not in document:  # the state's own plan where its law fixes one (a verified fact only)
        state = document.get("state") if document.get("state") in state_law.STATES else state_law.DEFAULT_STATE
        year = document.get("valid_from") if isinstance(document.get("valid_from"), int) else None
        law = state_law.profile(str(state))
        value = law.applied("instalments", year)
        if value is not None:
            schedule, basis = state_law_schedule(value), law.fact("instalments", year).norm
    node = document.get("notices", LocDict())
    if not isinstance(node, LocDict):
        reader.error("rule-bad-notices", reader.at(document, "notices", True), '"notices" muss eine Zuordnung sein',
                     found=repr(node), expected="kassenzeichen, payment, issuer, change_policy, levies",
                     hint="die Bescheid-Einstellungen einrücken")
        node = LocDict()
    reader.unknown_keys(node, NOTICE_KEYS, "notices")
    policy = node.get("change_policy", "spread")
    if policy not in CHANGE_POLICIES:
        reader.error("rule-bad-notices", reader.at(node, "change_policy", True),
                     f"unbekannte change_policy{did_you_mean(str(policy), CHANGE_POLICIES)}", found=repr(policy),
                     expected="spread oder at_once",
                     hint="spread: Differenz auf die offenen Raten verteilen; at_once: mit der nächsten Rate")
    return NoticeSettings(schedule, _kassenzeichen(reader, node), reader.text(node, "payment", required=False),
                          reader.text(node, "issuer", required=False), str(policy), _levy_texts(reader, node),
                          reader.at(document, "instalments") if "instalments" in document else Location(reader.file),
                          basis, _letterhead(reader, node), _labels(reader, node))


def load_notice_settings(path: str | Path) -> NoticeSettings:
    """The `instalments:` and `notices:` keys of a rule file. Raises RuleFileError (all problems located)."""
    try:
        text = read_regular(path, MAX_FILE_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError([Problem("rule-file-unreadable", Location(str(path)), "Die Regeldatei lässt sich nicht lesen",
                                     found=getattr(error, "strerror", None) or str(error),
                                     expected="eine lesbare UTF-8-YAML-Datei von höchstens "
                                              f"{MAX_FILE_BYTES:,} Bytes".replace(",", "."),
                                     hint="den Pfad der Regeldatei prüfen")]) from None
    reader = _Reader(str(path))
    try:
        document, _ = load(text)
    except YamlProblem as error:
        raise RuleFileError([Problem("rule-yaml", Location(str(path), line=error.line, col=error.col),
                                     f"kein gültiges YAML: {error.message}", found=error.found,
                                     expected="eine YAML-Zuordnung (Mapping)", hint="die Regeldatei prüfen")]) from None
    settings = _notice_settings(reader, document if isinstance(document, LocDict) else LocDict())
    if any(p.severity == "error" for p in reader.problems):
        raise RuleFileError(reader.problems)
    return settings
