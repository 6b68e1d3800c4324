"""The schema of a rule file: every section of its located YAML document read into frozen records that remember
their line, every problem collected with file:line:column (`_Reader`): rules and their keys, embedded examples
with their expected split, levies, rate limits, the state and the departures from its law.

Conditions stay within durable_rules' measured limits (`_check_size`), and a file that passes is compiled into the
same durable_rules rulesets a run uses (`_compile`), so `check` and `run` never disagree about it. Checks across
rules (overlap, shadowing, gaps) live in `calc/analysis.py`; the whole file is read in `loading.py`.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping

from ..core import states as state_law
from ..core.instalments import Schedule
from ..core.model import (COMPONENTS, LEVY_ROUTES, ROUTES, Example, ExampleSplit, KeySpec, Levy, Municipality, Rule,
                          normalise_header)
from ..core.problems import Location, Problem, did_you_mean
from ..rulefiles import conditions
from .yamlloc import LocDict, LocList

__all__ = ["TOP_KEYS", "RULE_KEYS", "LEVY_KEYS", "EXAMPLE_KEYS", "RATE_LIMITS", "HIT_POLICIES",
           "state_law_schedule"]

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
                      rate_limits: str, schedule: Schedule | None) -> None:
    """Every departure of the rule file from its state's profile, with the norm it departs from (a warning:
    `check` reports it, the Kreis decides; only verified facts count, `Profile.applied`). `schedule`: the file's
    instalment plan as `notice_settings.py` read it."""
    law = state_law.profile(state)
    name = f"{state} ({law.name})"
    if rate_limits and state != "BY":
        reader.warning("rule-state-departure", reader.at(document, "rate_limits", True),
                       f"rate_limits: {rate_limits} prüft Art. 18 Abs. 3 BayFAG, die Regeldatei gilt aber für {name}",
                       found=f"rate_limits: {rate_limits}", expected=f"die Satzregeln von {state} (aus dem Profil)",
                       hint="rate_limits entfernen: die Satzregeln des Landes gelten aus seinem Profil")
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
