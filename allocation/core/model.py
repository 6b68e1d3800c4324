"""Records that flow through the pipeline: frozen, slotted, and each remembers where it came from.

Amounts are int cents. Attribute values that rules may test are `str` or `Decimal` (never float); an
empty cell is the empty string. Input records carry their workbook `Location`; rules carry their rule
file `Location`; decisions and allocation lines carry both through the item and the rule.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Mapping, Union

from .problems import Location, Problem

__all__ = [
    "normalise_header",
    "Value",
    "DISTRICT_HOST",
    "ROUTES",
    "ROUTE_LABELS",
    "LEVY_ROUTES",
    "COMPONENTS",
    "Parameters",
    "Municipality",
    "CostItem",
    "KeyEntry",
    "LevyRateEntry",
    "Levy",
    "LevyPart",
    "LevyLine",
    "LevyResult",
    "InputBook",
    "KeySpec",
    "Rule",
    "Example",
    "ExampleSplit",
    "Rulebook",
    "Decision",
    "AllocationLine",
    "ItemAllocation",
    "Finding",
    "Allocation",
    "normalise_district",
    "previous_year_problems",
    "same_district",
    "SERVICE_COLUMN",
    "service_of",
]

Value = Union[str, Decimal]

DISTRICT_HOST = "Kreis"

# Route identifiers (rule file contract) and their German labels (workbook contract).
ROUTES = ("district_levy", "differentiated_levy", "direct_billing", "host_bears")
ROUTE_LABELS = {
    "district_levy": "Kreisumlage",
    "differentiated_levy": "Differenzierte Umlage",
    "direct_billing": "Direktabrechnung",
    "host_bears": "Trägerkommune",
}

# Routes financed through a levy on the municipalities' bases (findings and levy rates look at these).
LEVY_ROUTES = ("district_levy", "differentiated_levy")

# Prefixes that name the kind of district, not the district: "Kreis Wesel" is "Wesel" (README, "Kreis").
DISTRICT_PREFIXES = ("landkreis", "kreis", "lkr.")


def normalise_header(text: str) -> str:
    """The one definition of "the same column or sheet name": lower-case, umlauts spelled out, no spaces or underscores: `Förderung ` -> `foerderung`."""
    text = unicodedata.normalize("NFC", text).strip().lower()
    for umlaut, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, spelled)
    return re.sub(r"[\s_\-]+", "", text)


def normalise_district(name: str) -> str:
    """The one comparison form of a district name (README, "Which names are the same district").

    NFC, casefold, every run of white space one blank, no blank at either end, then one leading
    "Kreis", "Landkreis" or "Lkr." (any case, followed by white space; "Lkr." also directly) removed.
    A name that is only the prefix keeps it. Hyphens and other letters are kept: "Rhein-Kreis Neuss" and
    "StädteRegion Aachen" are compared as written.
    """
    import unicodedata

    text = " ".join(unicodedata.normalize("NFC", unicodedata.normalize("NFC", str(name)).casefold()).split())
    for prefix in DISTRICT_PREFIXES:
        rest = text[len(prefix):]
        if text.startswith(prefix) and (rest.startswith(" ") or (prefix.endswith(".") and rest)):
            return rest.strip() or text
    return text


def same_district(a: str | None, b: str | None) -> bool:
    """Whether two district names name the same district (`normalise_district`); None is no district."""
    return a is not None and b is not None and normalise_district(a) == normalise_district(b)


# Cost components of a cost item, in workbook order. Funding is subtracted from their eligible sum.
COMPONENTS = ("Personalkosten", "Sachkosten", "Gemeinkosten")


@dataclass(frozen=True, slots=True)
class Parameters:
    district: str
    year: int
    rounding: str  # "Cent" | "Euro"
    rate_decimals: int
    source: Location
    level: str = "Kreis"  # `Umlageverband` (core/states.LEVELS)
    needs: tuple["NeedEntry", ...] = ()  # `Umlagebedarf` rows: a levy's need given without a cost item
    own_key: str = ""  # `Gebietsschluessel`: the body's own key (its row in the level above's levy)

    @property
    def unit(self) -> int:
        from .money import ROUNDING_UNITS

        return ROUNDING_UNITS[self.rounding]


@dataclass(frozen=True, slots=True)
class NeedEntry:
    """A `Umlagebedarf` row of the Parameter sheet: the uncovered need of a levy (its id; "" = the only levy)."""

    levy: str
    cents: int
    source: Location


@dataclass(frozen=True, slots=True)
class Municipality:
    ags: str
    name: str
    base: int  # Umlagegrundlagen, cents
    attrs: Mapping[str, Value]
    source: Location  # the row; column None
    columns: Mapping[str, int] = field(default_factory=dict)  # header -> 1-based column index

    def cell(self, column: str) -> Location:
        return Location(self.source.file, self.source.sheet, self.source.row, self.columns.get(column))


@dataclass(frozen=True, slots=True)
class CostItem:
    id: str
    label: str
    category: str
    components: Mapping[str, int]  # cents per cost component
    funding: int  # cents
    host: str  # DISTRICT_HOST or an AGS
    attrs: Mapping[str, Value]  # every column as rules see it (Traeger normalised)
    source: Location
    columns: Mapping[str, int] = field(default_factory=dict)  # header -> 1-based column index

    def cell(self, column: str) -> Location:
        """The location of this item's cell in `column`."""
        return Location(self.source.file, self.source.sheet, self.source.row, self.columns.get(column))


@dataclass(frozen=True, slots=True)
class KeyEntry:
    item_id: str
    ags: str
    value: Decimal
    source: Location


@dataclass(frozen=True, slots=True)
class LevyRateEntry:
    """One row of the optional `Umlagesaetze` sheet: the statutory rate (percent) of a levy, for its whole base
    (`component` empty) or for one base component."""

    levy: str  # levy id, as in the rule file's `levies:`
    component: str  # a Gemeinden column of the levy's base, or "" for the whole base
    rate: Decimal  # percent, at most 4 decimals
    source: Location


@dataclass(frozen=True, slots=True)
class InputBook:
    path: str
    sha256: str
    parameters: Parameters
    municipalities: tuple[Municipality, ...]
    items: tuple[CostItem, ...]
    keys: tuple[KeyEntry, ...]
    municipality_columns: tuple[str, ...]
    item_columns: tuple[str, ...]
    levy_rates: tuple[LevyRateEntry, ...] = ()  # the optional `Umlagesaetze` sheet

    def key_values(self, item_id: str) -> dict[str, Decimal]:
        return {entry.ags: entry.value for entry in self.keys if entry.item_id == item_id}


@dataclass(frozen=True, slots=True)
class KeySpec:
    """How `direct_billing` shares: one column, the item's `Schluessel` rows, or weighted columns."""

    weights: Mapping[str, Decimal]  # column -> weight in percent; {"Schluessel": 100} for item keys
    source: Location

    @property
    def is_item_key(self) -> bool:
        return tuple(self.weights) == ("Schluessel",)

    def describe(self) -> str:
        if len(self.weights) == 1:
            return next(iter(self.weights))
        return " + ".join(f"{weight} % {column}" for column, weight in self.weights.items())


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    legal_basis: str
    when: "object"  # conditions.Condition
    route: str
    payers: "object | None"  # conditions.Condition over Gemeinden columns
    key: KeySpec | None
    components: tuple[str, ...]  # eligible cost components
    extent: str | None  # Gemeinden column with a Mehr-/Minderbelastung factor
    priority: int
    index: int  # position in the file, 0-based
    source: Location
    credit_hosts: bool = False  # levy routes: municipalities hosting this service themselves do not pay
    service: str | None = None  # the service the rule's items provide (`service:`), for "same service"
    levy: str | None = None  # levy routes in a file with `levies:`: the id of the levy that finances the rule


@dataclass(frozen=True, slots=True)
class Levy:
    """One levy of the rule file's `levies:` (Kreisumlage, Jugendamtsumlage, ...): who pays it and on what base."""

    id: str
    name: str  # the Uebersicht column header
    legal_basis: str
    payers: "object | None"  # conditions.Condition over Gemeinden columns; None = every municipality
    extent: str | None  # Gemeinden column with a Mehr-/Minderbelastung factor
    base: Mapping[str, Decimal]  # Gemeinden column -> weight in percent, in file order
    source: Location

    @property
    def route(self) -> str:
        """The route whose rules finance through this levy (enforced by the rule file check)."""
        return "district_levy" if self.payers is None and not self.extent else "differentiated_levy"

    def describe_base(self) -> str:
        """`Umlagegrundlagen` or `Steuerkraftzahlen + 80 % Schluesselzuweisungen`."""
        return " + ".join(column if weight == 100 else f"{weight} % {column}" for column, weight in self.base.items())


@dataclass(frozen=True, slots=True)
class ExampleSplit:
    """The optional expected split of a rule file example over a small set of municipalities."""

    municipalities: tuple["Municipality", ...]  # built from the example's `municipalities:` list
    components: Mapping[str, int]  # cents per cost component (`costs:`); empty when `deficit:` is given
    funding: int  # cents
    deficit: int | None  # cents, when the example states the deficit directly
    rounding: str  # "Cent" | "Euro"
    keys: Mapping[str, Decimal]  # AGS -> item key value (`Schluessel:` in a municipality entry)
    expected: Mapping[str, int]  # AGS -> expected cents
    source: Location


@dataclass(frozen=True, slots=True)
class Example:
    item: Mapping[str, Value]
    rule: str | None
    route: str | None
    source: Location
    description: str = ""
    split: ExampleSplit | None = None


@dataclass(frozen=True, slots=True)
class Rulebook:
    path: str
    sha256: str
    district: str
    valid_from: int
    valid_to: int
    hit_policy: str  # "unique" | "priority"
    rules: tuple[Rule, ...]
    domains: Mapping[str, tuple[Value, ...]]
    examples: tuple[Example, ...]
    source: Location
    description: str = ""  # the file's `description:`
    levies: tuple[Levy, ...] = ()  # the optional `levies:`; empty = rules behave as before levies existed
    rate_limits: str = ""  # "bavaria": Art. 18 Abs. 3 BayFAG rate relations are checked; "" = none
    state: str = "NW"  # `state:` (core/states.py); a file without it is read as NW (README, migration note)
    state_given: bool = False  # whether the file names its state

    def levy(self, levy_id: str) -> Levy:
        return next(levy for levy in self.levies if levy.id == levy_id)

    def rule(self, rule_id: str) -> Rule:
        return next(rule for rule in self.rules if rule.id == rule_id)


@dataclass(frozen=True, slots=True)
class Decision:
    item_id: str
    rule_id: str
    matched: tuple[str, ...]  # every rule whose condition held (durable_rules facts fire all)


# Optional Kostenpositionen column naming an item's service (e.g. Musikschule, Kreisarchiv).
SERVICE_COLUMN = "Leistung"


def service_of(item: CostItem, rule: Rule) -> str:
    """The service an item provides, for "hosts the same service it pays for": the item's `Leistung` cell
    if it has one, else its rule's `service:`, else its `Kategorie`. Double-burden findings and
    `credit_hosts` both compare this."""
    for column, value in item.attrs.items():
        if column.strip().casefold() == SERVICE_COLUMN.casefold() and str(value).strip():
            return str(value).strip()
    return rule.service or item.category


@dataclass(frozen=True, slots=True)
class AllocationLine:
    item_id: str
    ags: str
    key: Fraction  # key value of this municipality (0 for non-payers)
    share: Fraction  # key ÷ key total
    total: int  # the split total, cents: the item's rounded deficit (0 on a non-payer's line)
    amount: int  # rounded amount, cents
    extra_units: int
    rank: int | None

    @property
    def exact(self) -> Fraction:
        """The exact amount, cents: total × share. Built when asked (a line keeps the item's total and its
        share, both shared with other lines, instead of a Fraction of its own: a district of 250,000 lines
        held 28 MB of them)."""
        return self.share * self.total

    @property
    def exact_ratio(self) -> tuple[int, int]:
        """`exact` as (numerator, denominator > 0), not in lowest terms, without building a Fraction."""
        return self.share.numerator * self.total, self.share.denominator


@dataclass(frozen=True, slots=True)
class ItemAllocation:
    item: CostItem
    rule: Rule
    decision: Decision
    eligible: int  # eligible costs, cents
    deficit_exact: int  # eligible − funding, cents
    deficit: int  # rounded to the unit, cents
    key_label: str
    key_total: Fraction
    lines: tuple[AllocationLine, ...]
    credits: Mapping[str, int] = field(default_factory=dict)  # AGS -> cents a credited host would have paid


@dataclass(frozen=True, slots=True)
class Finding:
    """A notice that is not an error (e.g. a double burden)."""

    code: str
    ags: str
    name: str
    category: str
    message: str
    own_cost: int
    levy_share: int
    credit: int = 0


@dataclass(frozen=True, slots=True)
class LevyPart:
    """One base component of one municipality's levy line."""

    column: str  # Gemeinden column
    value: Fraction  # cents, as in the workbook
    weight: Decimal  # percent
    rate: Decimal | None  # percent (statute mode); None in derived mode

    @property
    def weighted(self) -> Fraction:
        """value × weight, cents."""
        return self.value * Fraction(self.weight) / 100


@dataclass(frozen=True, slots=True)
class LevyLine:
    """What one municipality pays on one levy, with everything needed to recompute it."""

    ags: str
    parts: tuple[LevyPart, ...]
    factor: Fraction | None  # the `extent` factor, if the levy has one
    base: Fraction  # Bemessungsgrundlage, cents: Σ value × weight (without the extent factor)
    exact: Fraction  # cents before rounding (statute: Σ weighted × rate × factor; derived: Σ exact item shares)
    amount: int  # cents


@dataclass(frozen=True, slots=True)
class LevyResult:
    """A levy of the year: its need, its rate and its lines (payers only, in AGS order).

    `mode` is "statute" (rates from the `Umlagesaetze` sheet: each line is base × rate, rounded once) or
    "derived" (no rate: the lines are the exact largest-remainder split of the need, `rates` holds the rate
    that finances the need at the declared decimals, for display)."""

    levy: Levy
    mode: str  # "statute" | "derived"
    rates: Mapping[str, Decimal]  # base component ("" = whole base) -> percent
    rate_sources: tuple[Location, ...]
    need: int  # cents, the sum of the rounded deficits routed to the levy
    items: tuple[str, ...]  # ids of the cost items routed to the levy
    lines: tuple[LevyLine, ...]

    @property
    def revenue(self) -> int:
        """cents the lines raise (statute: the revenue at the rate; derived: the need)."""
        return sum(line.amount for line in self.lines)

    @property
    def difference(self) -> int:
        """revenue − need, cents: > 0 surplus, < 0 shortfall."""
        return self.revenue - self.need

    @property
    def base_total(self) -> Fraction:
        return sum((line.base for line in self.lines), Fraction(0))


@dataclass(frozen=True, slots=True)
class Allocation:
    book: InputBook
    rulebook: Rulebook
    items: tuple[ItemAllocation, ...]
    findings: tuple[Finding, ...] = ()
    levies: tuple[LevyResult, ...] = ()  # one per levy of the rule file (empty without `levies:`)

    @property
    def deficits(self) -> int:
        """cents: the deficits the run allocated (every item's rounded deficit); was `total_cents`' meaning."""
        return sum(item.deficit for item in self.items)

    @property
    def payable(self) -> int:
        """cents: what the members pay together (the `Uebersicht` Summe): with statutory levies, base × rate."""
        return sum(sum(routes.values()) for routes in self.totals().values())

    def totals(self) -> dict[str, dict[str, int]]:
        """AGS -> route -> cents. With levies, the levy routes hold what the levies' lines charge (in statute
        mode base × rate, which differs from the split of the need); without, every route sums its item lines."""
        result = {m.ags: {route: 0 for route in ROUTES} for m in self.book.municipalities}
        for levy in self.levies:
            for levy_line in levy.lines:
                result[levy_line.ags][levy.levy.route] += levy_line.amount
        for item in self.items:
            if self.levies and item.rule.route in LEVY_ROUTES:
                continue
            for line in item.lines:
                result[line.ags][item.rule.route] += line.amount
        return result

    def levy_totals(self) -> dict[str, dict[str, int]]:
        """AGS -> levy id -> cents (empty inner mappings without levies)."""
        result = {m.ags: {levy.levy.id: 0 for levy in self.levies} for m in self.book.municipalities}
        for levy in self.levies:
            for levy_line in levy.lines:
                result[levy_line.ags][levy.levy.id] += levy_line.amount
        return result


def previous_year_problems(book: InputBook, previous: InputBook, option: str,
                           codes: tuple[str, str]) -> list[Problem]:
    """Why `previous` is not the previous year's input workbook of `book`'s district, for `--bases-from` or
    `--rates-from` (`option`); `codes`: the problem codes for another district and for a year not earlier. One
    check, so that both options accept the same district names (`same_district`) and refuse the same years."""
    problems = []
    if not same_district(previous.parameters.district, book.parameters.district):
        problems.append(Problem(
            codes[0], previous.parameters.source,
            f"die Vorjahres-Arbeitsmappe für {option} gehört zu einem anderen Kreis",
            found=previous.parameters.district, expected=book.parameters.district,
            hint="die Eingabe-Arbeitsmappe des Vorjahres desselben Kreises angeben"))
    if previous.parameters.year >= book.parameters.year:
        problems.append(Problem(
            codes[1], previous.parameters.source,
            f"die Arbeitsmappe für {option} ist nicht aus einem früheren Haushaltsjahr",
            found=str(previous.parameters.year), expected=f"ein Jahr vor {book.parameters.year}",
            hint="die Eingabe-Arbeitsmappe des Vorjahres angeben"))
    return problems
