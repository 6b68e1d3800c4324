"""Rule files (YAML) -> `Rulebook`, with a schema check that names file:line:column for every problem.

The rule file format is a contract with auditors (see README, "Regeldateien"). This module reads a file,
checks its structure and values, and builds frozen `Rule` records that remember their line. Checks that
need the input workbook's columns live in `check_columns`; checks across rules (overlap, shadowing, gaps)
live in `analysis.py`.

Limits (README, "Rule files", Limits): a file of at most MAX_FILE_BYTES, no YAML anchors or aliases and at
most 100 nesting levels (yamlloc.py), conditions within durable_rules' measured limits (`_check_size`).
A file that passes is finally compiled into the same durable_rules rulesets a run uses (`_compile`), so
`check` and `run` never disagree about it.
"""
from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from . import conditions
from .model import COMPONENTS, ROUTES, Example, ExampleSplit, InputBook, KeySpec, Municipality, Rule, Rulebook
from .problems import Location, Problem, RuleFileError, did_you_mean
from .yamlloc import MAX_DEPTH as MAX_YAML_DEPTH
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
MAX_COMPARISONS = 400
MAX_FILE_BYTES = 512 * 1024  # PyYAML reads ~100 kB/s (pure Python, for line:column): ~5 s at the limit
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
    for parameter in ("payers", "key", "extent", "credit_hosts"):
        if parameter in node and route in ROUTES and parameter not in allowed:
            reader.error("rule-bad-parameter", reader.at(node, parameter),
                         f'"{parameter}" gilt nicht für route {route}', found=parameter,
                         expected=", ".join(sorted(allowed)) or "keine Parameter", hint=f"`{parameter}` entfernen")
    payers = None
    if "payers" in node:
        payers = conditions.parse(node["payers"], reader.file, reader.problems, node.vpos("payers"))
        _check_size(reader, payers, node, "payers")
    elif route == "differentiated_levy":
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
    return Rule(rule_id, description, legal_basis, when, route, payers, key, components, extent, priority, index,
                where, credit_hosts=credit_hosts)


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
    from .money import cents_from_decimal

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
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        return value
    reader.error("rule-bad-example", where, "Ein AGS muss aus 8 Ziffern in Anführungszeichen bestehen", found=repr(value),
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


def _too_large_file(path: str, size: int | None) -> Problem:
    """`size` None: not a regular file (a device or pipe), only known to exceed the limit."""
    found = f"{size:,} Bytes" if size is not None else f"mehr als {MAX_FILE_BYTES:,} Bytes"
    return Problem("rule-file-too-large", Location(path), "Die Regeldatei ist zu groß",
                   found=found.replace(",", "."), expected=f"höchstens {MAX_FILE_BYTES:,} Bytes (512 KiB)".replace(",", "."),
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
    if not isinstance(raw_rules, list) or not raw_rules:
        reader.error("rule-missing-key", reader.at(document, "rules" if "rules" in document else None),
                     "Die Regeldatei enthält keine Regeln", found=repr(raw_rules), expected="eine Liste unter `rules:`",
                     hint="mindestens eine Regel ergänzen")
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
    errors = [p for p in reader.problems if p.severity == "error"]
    if not errors:
        _compile(reader, rules)
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
        with path.open("rb") as stream:  # read at most one byte beyond the limit (e.g. /dev/zero)
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


def check_columns(rulebook: Rulebook, book: InputBook) -> list[Problem]:
    """Every column a rule names must exist in the input workbook."""
    problems: list[Problem] = []
    item_columns = set(book.item_columns)
    municipality_columns = set(book.municipality_columns)

    def need(column: str, available: set[str], where: Location, sheet: str, rule: Rule) -> None:
        if column not in available:
            problems.append(Problem(
                "rule-unknown-column", where,
                f'Regel "{rule.id}" nennt Spalte "{column}", die es im Blatt {sheet} nicht gibt'
                f"{did_you_mean(column, available)}", found=column,
                expected=", ".join(sorted(available)),
                hint=f"die Regel korrigieren oder die Spalte im Blatt {sheet} ergänzen"))

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
