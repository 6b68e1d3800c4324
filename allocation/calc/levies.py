"""Statutory levies (Umlagen of the budget statute): their bases, their rates and what each municipality pays.

A rule file with `levies:` names, per levy, who pays it (`payers`), on what base (one Gemeinden column or
columns with percent weights, e.g. Steuerkraftzahlen + 80 % Schluesselzuweisungen) and an optional
Mehr-/Minderbelastung factor (`extent`). Each levy rule names its levy; the levy's need (Umlagebedarf) is the
sum of the deficits routed to it.

Two modes per levy:
- statute mode (the input's `Umlagesaetze` sheet gives the levy a rate, for the whole base or per base
  component): each payer pays Σ component × weight % × component rate % (× factor), rounded once, half up,
  to the rounding unit. The revenue is the sum of these lines; it differs from the need (surplus/shortfall).
- derived mode (no rate): the lines are the exact largest-remainder splits of the levy's items (as before
  levies existed), and the rate that finances the need is shown at the declared decimals.

This module owns the levy base (`levy_bases`, also the key of a levy item's split in `allocate`), the rate
checks (`check_rates`: 0–100 %, at most 4 decimals, complete per component, Art. 18 Abs. 3 BayFAG where the
file declares `rate_limits`), the levy stage (`assess`) and the provisional year's rates (`previous_rates`).
All rounding is `money.round_to_unit` / `money.rate_percent`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Mapping

from ..rulefiles import conditions
from ..rulefiles import engine
from ..core.model import (Allocation, InputBook, Levy, LevyLine, LevyPart, LevyRateEntry, LevyResult, Municipality,
                          Rulebook, normalise_header, previous_year_problems)
from ..core import states
from ..core.money import apportion, cents_to_decimal, format_eur, fraction_to_decimal, rate_percent, round_to_unit
from ..core.problems import InputError, Location, Problem, did_you_mean

__all__ = ["LevyBase", "levy_bases", "item_keys", "check_rates", "statute_rates", "statute_amount", "assess",
           "previous_rates", "is_key_allocation", "MAX_RATE_DECIMALS", "given_needs", "need_problems", "need_entry",
           "yield_warnings", "YIELD_TOLERANCE_PERCENT",
           "computed_bases"]

MAX_RATE_DECIMALS = 4
WHOLE_BASE = ""  # `Bestandteil` empty: the rate applies to every component of the base


@dataclass(frozen=True, slots=True)
class BaseLine:
    """One payer's base of one levy: its components (cents, weight) and its extent factor."""

    ags: str
    parts: tuple[tuple[str, Fraction, Decimal], ...]  # (column, value in cents, weight in percent)
    factor: Fraction | None

    @property
    def base(self) -> Fraction:
        """Bemessungsgrundlage, cents: Σ value × weight ÷ 100 (the factor is not part of it)."""
        return sum((value * Fraction(weight) / 100 for _, value, weight in self.parts), Fraction(0))


@dataclass(frozen=True, slots=True)
class LevyBase:
    levy: Levy
    lines: tuple[BaseLine, ...]  # payers only, in AGS order


def _normalised(text: str) -> str:
    return text.casefold().replace("ü", "ue").replace("_", "").replace(" ", "")


def is_key_allocation(column: str) -> bool:
    """A base component that holds Schlüsselzuweisungen (by its column name), for Art. 18 Abs. 3 Satz 4 BayFAG."""
    return "schluesselzuweisung" in _normalised(column)


def _shown(value: object) -> str:
    """A cell value as a message shows it: a number as written (-5, not Decimal('-5')), text quoted."""
    if value == "" or value is None:
        return "leer"
    return str(value) if isinstance(value, Decimal) else repr(value)


def _payers(levy: Levy, book: InputBook, problems: list[Problem]) -> list[Municipality]:
    if levy.payers is None:
        return list(book.municipalities)
    before = len(problems)
    for column in sorted(conditions.ordered_columns(levy.payers)):
        for m in book.municipalities:
            value = m.attrs.get(column, "")
            if not isinstance(value, Decimal):
                problems.append(Problem(
                    "input-not-a-number", m.cell(column),
                    f'Umlage "{levy.id}" vergleicht {column} der Größe nach, aber diese Zelle enthält keine Zahl',
                    found=_shown(value), expected="eine Zahl",
                    hint=f"in {column} eine Zahl eintragen (0, wenn nichts anfällt)"))
    if len(problems) > before:
        return []
    matches = engine.match({levy.id: levy.payers}, [m.attrs for m in book.municipalities])
    return [m for m, matched in zip(book.municipalities, matches) if levy.id in matched]


def _component(m: Municipality, levy: Levy, column: str, problems: list[Problem]) -> Fraction | None:
    """A base component of a municipality in cents (`Umlagegrundlagen` is already checked cents)."""
    if column == "Umlagegrundlagen":
        return Fraction(m.base)
    value = m.attrs.get(column, "")
    if not isinstance(value, Decimal) or value < 0:
        problems.append(Problem(
            "input-levy-base", m.cell(column),
            f'{column} von {m.name} ist als Bestandteil der Umlage "{levy.id}" kein Betrag',
            found=_shown(value), expected="ein Betrag in Euro ≥ 0",
            hint=f"{column} als Zahl in Euro eintragen (0, wenn nichts anfällt)"))
        return None
    return Fraction(value) * 100


def _factor(m: Municipality, levy: Levy, problems: list[Problem]) -> Fraction | None:
    value = m.attrs.get(levy.extent, "")
    if not isinstance(value, Decimal) or value < 0:
        problems.append(Problem(
            "input-bad-key", m.cell(levy.extent),
            f"{levy.extent} von {m.name} ist kein brauchbarer Faktor der Umlage \"{levy.id}\"",
            found=_shown(value), expected="eine Zahl ≥ 0",
            hint=f"{levy.extent} als Zahl eintragen (1 = volle Belastung)"))
        return None
    return Fraction(value)


def levy_bases(rulebook: Rulebook, book: InputBook) -> dict[str, LevyBase]:
    """Levy id -> its payers' bases. Raises InputError with every unusable cell."""
    problems: list[Problem] = []
    result: dict[str, LevyBase] = {}
    for levy in rulebook.levies:
        lines = []
        for m in sorted(_payers(levy, book, problems), key=lambda m: m.ags):
            parts = tuple((column, _component(m, levy, column, problems), weight) for column, weight in levy.base.items())
            factor = _factor(m, levy, problems) if levy.extent else None
            if all(value is not None for _, value, _ in parts):
                lines.append(BaseLine(m.ags, parts, factor))
        result[levy.id] = LevyBase(levy, tuple(lines))
    if problems:
        raise InputError(problems)
    return result


def item_keys(base: LevyBase) -> tuple[dict[str, Fraction], str]:
    """The key of a levy item's split (AGS -> euros: Bemessungsgrundlage × factor) and its label.

    A levy whose base is the default `Umlagegrundlagen` gives exactly the keys and label of the levy routes
    before levies existed, so files that add `levies:` split their items as before."""
    keys = {line.ags: line.base * (line.factor if line.factor is not None else 1) / 100 for line in base.lines}
    label = base.levy.describe_base()
    return keys, f"{label} × {base.levy.extent}" if base.levy.extent else label


# --- rates -------------------------------------------------------------------------------------------------


def _rate_problem(code: str, entry: LevyRateEntry, message: str, found: str, expected: str, hint: str) -> Problem:
    return Problem(code, entry.source, message, found=found, expected=expected, hint=hint)


def _as_in_base(entry: LevyRateEntry, levies: Mapping[str, Levy]) -> LevyRateEntry:
    """The entry with its `Bestandteil` spelled as the levy's base column, matched like every other column
    name (`normalise_header`: case, spaces, underscores and umlauts do not count); unchanged if none matches."""
    levy = levies.get(entry.levy)
    if levy is None or entry.component == WHOLE_BASE or entry.component in levy.base:
        return entry
    wanted = normalise_header(entry.component)
    column = next((c for c in levy.base if normalise_header(c) == wanted), None)
    return entry if column is None else replace(entry, component=column)


def _entry_problems(entry: LevyRateEntry, levies: Mapping[str, Levy]) -> list[Problem]:
    problems = []
    levy = levies.get(entry.levy)
    if levy is None:
        problems.append(_rate_problem(
            "input-levy-unknown", entry, f'Umlage "{entry.levy}" steht nicht unter `levies:` der Regeldatei'
            f"{did_you_mean(entry.levy, tuple(levies))}", entry.levy, ", ".join(levies) or "keine Umlagen",
            "die id der Umlage aus der Regeldatei eintragen"))
    elif entry.component != WHOLE_BASE and entry.component not in levy.base:
        problems.append(_rate_problem(
            "input-levy-unknown-component", entry,
            f'"{entry.component}" ist kein Bestandteil der Bemessungsgrundlage der Umlage "{levy.id}"', entry.component,
            ", ".join(levy.base), "den Bestandteil korrigieren oder leer lassen (Satz für die ganze Grundlage)"))
    if not Decimal(0) <= entry.rate <= Decimal(100):
        problems.append(_rate_problem(
            "input-levy-rate-range", entry, f'Der Satz der Umlage "{entry.levy}" liegt nicht zwischen 0 und 100 %',
            f"{entry.rate} %", "ein Prozentsatz von 0 bis 100, z. B. 36.2",
            "den Hebesatz der Haushaltssatzung in Prozent eintragen (36,2 % als 36.2, nicht 0.362)"))
    elif (scaled := entry.rate.scaleb(MAX_RATE_DECIMALS)) != scaled.to_integral_value():
        problems.append(_rate_problem(
            "input-levy-rate-decimals", entry, f'Der Satz der Umlage "{entry.levy}" hat mehr als '
            f"{MAX_RATE_DECIMALS} Nachkommastellen", str(entry.rate), f"höchstens {MAX_RATE_DECIMALS} Nachkommastellen",
            "den Satz so eintragen, wie ihn die Haushaltssatzung festsetzt"))
    return problems


def _law(rulebook: Rulebook) -> tuple[states.Profile, bool]:
    """The profile whose rate rules apply, and whether the supervisory authority approved a wider spread.

    `rate_limits: bavaria` / `bavaria-approved` keep their meaning (Art. 18 Abs. 3 BayFAG) in any file; otherwise
    the rule file's state decides, with its verified facts only."""
    if rulebook.rate_limits:
        return states.profile("BY"), rulebook.rate_limits == "bavaria-approved"
    return states.profile(rulebook.state), False


def _law_problems(rulebook: Rulebook, levy: Levy, rates: Mapping[str, Decimal],
                  entries: Mapping[str, LevyRateEntry]) -> list[Problem]:
    """The state's rules for per-component rates of one levy: one uniform rate, the spread between the highest
    and the lowest rate (`rate_spread`), and the cap of the rate on Schlüsselzuweisungen (`key_allocation_cap`)."""
    if WHOLE_BASE in rates:
        return []  # one rate for the whole base: no spread
    law, approved = _law(rulebook)
    year = rulebook.valid_from or None
    problems = []
    first = entries[next(iter(rates))]
    if law.applied("rate_uniform", year) is True:
        fact = law.fact("rate_uniform", year)
        if len(set(rates.values())) > 1:
            problems.append(_rate_problem(
                "input-levy-rate-uniform", first,
                f'Umlage "{levy.id}": das Recht von {law.state} kennt nur einen einheitlichen Umlagesatz ({fact.norm})',
                ", ".join(f"{c} {r} %" for c, r in rates.items()), "ein Satz für die ganze Grundlage",
                "eine Zeile mit leerem Bestandteil und dem Satz der Haushaltssatzung eintragen"))
        return problems
    capped = law.applied("key_allocation_cap", year) is True
    # in the order of the levy's base, so that of equal rates the first component is named
    tax = {column: rates[column] for column in levy.base if column in rates
           and not (capped and is_key_allocation(column))}
    if not tax:
        return problems
    lowest_column = min(tax, key=tax.__getitem__)
    highest_column = max(tax, key=tax.__getitem__)
    lowest, highest = tax[lowest_column], tax[highest_column]
    spread = law.applied("rate_spread", year)
    if spread is not None and not approved:
        fact = law.fact("rate_spread", year)
        ratio = states.spread_ratio(spread)
        if Fraction(highest) > Fraction(lowest) * ratio:
            over = spread["max_over_lowest"]
            problem = _rate_problem(
                "input-levy-rate-limits", entries[highest_column],
                f'Umlage "{levy.id}": der höchste Umlagesatz ({highest_column} {highest} %) übersteigt den niedrigsten '
                f"({lowest_column} {lowest} %) um mehr als {over} ({fact.norm})",
                f"{highest} % > {ratio} × {lowest} %",
                f"höchstens {ratio} × {lowest} % (≈ {fraction_to_decimal(Fraction(lowest) * ratio, 4)} %)",
                "die Sätze angleichen" + ("; mit Genehmigung der Aufsichtsbehörde `rate_limits: bavaria-approved` in "
                                          "die Regeldatei schreiben" if law.state == "BY" else
                                          "; eine Ausnahme in der Haushaltssatzung begründen"))
            if spread["binding"] == "soll":
                problem = replace(problem, severity="warning")
            problems.append(problem)
    if capped:
        fact = law.fact("key_allocation_cap", year)
        for column, rate in rates.items():
            if is_key_allocation(column) and rate > lowest:
                problems.append(_rate_problem(
                    "input-levy-rate-limits", entries[column],
                    f'Umlage "{levy.id}": der Umlagesatz auf {column} ({rate} %) ist höher als der niedrigste Umlagesatz '
                    f"der Steuerkraftzahlen ({lowest_column} {lowest} %) ({fact.norm})",
                    f"{rate} %", f"höchstens {lowest} %", f"den Satz auf {column} auf höchstens {lowest} % festsetzen"))
    return problems


def check_rates(rulebook: Rulebook, entries: tuple[LevyRateEntry, ...]) -> list[Problem]:
    """Every problem of the `Umlagesaetze` rows against the rule file's levies (nothing is lost: all at once)."""
    levies = {levy.id: levy for levy in rulebook.levies}
    problems: list[Problem] = []
    seen: dict[tuple[str, str], LevyRateEntry] = {}
    usable: dict[str, dict[str, LevyRateEntry]] = {}
    broken: set[str] = set()  # levies with a refused row: their completeness follows once that row is fixed
    for entry in (_as_in_base(e, levies) for e in entries):
        own = _entry_problems(entry, levies)
        problems += own
        if own:
            broken.add(entry.levy)
        key = (entry.levy, entry.component)
        if key in seen:
            problems.append(_rate_problem(
                "input-levy-rate-duplicate", entry, f'Satz für "{entry.levy}" / "{entry.component or "ganze Grundlage"}" '
                "doppelt angegeben", f"{entry.levy} / {entry.component}", "eine Zeile je Umlage und Bestandteil",
                f"eine löschen; die erste steht in {seen[key].source}"))
            continue
        seen[key] = entry
        if not own:
            usable.setdefault(entry.levy, {})[entry.component] = entry
    for levy_id, by_component in usable.items():
        if levy_id in broken:
            continue
        levy = levies[levy_id]
        if WHOLE_BASE in by_component and len(by_component) > 1:
            problems.append(_rate_problem(
                "input-levy-rate-mixed", by_component[WHOLE_BASE],
                f'Umlage "{levy_id}" hat einen Satz für die ganze Grundlage und Sätze je Bestandteil',
                ", ".join(c or "(leer)" for c in by_component), "entweder ein Satz (Bestandteil leer) oder einer je Bestandteil",
                "die Zeile mit leerem Bestandteil oder die Zeilen je Bestandteil löschen"))
            continue
        missing = [c for c in levy.base if c not in by_component] if WHOLE_BASE not in by_component else []
        if missing:
            problems.append(_rate_problem(
                "input-levy-rate-incomplete", next(iter(by_component.values())),
                f'Umlage "{levy_id}" hat Sätze je Bestandteil, aber keinen für {", ".join(missing)}',
                ", ".join(by_component), ", ".join(levy.base), f"eine Zeile für {', '.join(missing)} ergänzen"))
            continue
        problems += _law_problems(rulebook, levy, {c: e.rate for c, e in by_component.items()}, by_component)
    return problems


def statute_rates(rulebook: Rulebook, entries: tuple[LevyRateEntry, ...]) -> dict[str, tuple[dict[str, Decimal],
                                                                                               tuple[Location, ...]]]:
    """Levy id -> (component -> rate, sources) for the levies that have a rate (after `check_rates` passed)."""
    levies = {levy.id: levy for levy in rulebook.levies}
    result: dict[str, tuple[dict[str, Decimal], tuple[Location, ...]]] = {}
    for entry in (_as_in_base(e, levies) for e in entries):
        rates, sources = result.get(entry.levy, ({}, ()))
        rates[entry.component] = entry.rate
        result[entry.levy] = (rates, sources + (entry.source,))
    return result


def statute_amount(parts: tuple[LevyPart, ...], factor: Fraction | None, unit: int) -> tuple[Fraction, int]:
    """Σ value × weight % × rate % (× factor) in cents, exact, and rounded once half up to `unit`."""
    exact = sum((part.weighted * Fraction(part.rate) / 100 for part in parts), Fraction(0))
    if factor is not None:
        exact *= factor
    return exact, round_to_unit(exact, unit)


# --- the levy stage ----------------------------------------------------------------------------------------


def _statute(base: LevyBase, rates: Mapping[str, Decimal], unit: int) -> tuple[LevyLine, ...]:
    lines = []
    for line in base.lines:
        parts = tuple(LevyPart(column, value, weight, rates.get(column, rates.get(WHOLE_BASE)))
                      for column, value, weight in line.parts)
        exact, amount = statute_amount(parts, line.factor, unit)
        lines.append(LevyLine(line.ags, parts, line.factor, line.base, exact, amount))
    return tuple(lines)


def _derived(base: LevyBase, allocation: Allocation, given_need: int = 0) -> tuple[LevyLine, ...]:
    """The lines of a levy without a rate: each payer's item shares summed (the exact split, as before levies),
    plus the split of a need given as `Umlagebedarf` (largest remainder over the levy's keys, `money.apportion`)."""
    exact: dict[str, Fraction] = {line.ags: Fraction(0) for line in base.lines}
    amount: dict[str, int] = {line.ags: 0 for line in base.lines}
    if given_need:
        keys, _ = item_keys(base)
        unit = allocation.book.parameters.unit
        for ags, share in apportion(given_need, keys, unit).items():
            exact[ags] += Fraction(given_need) * share.key / sum(keys.values(), Fraction(0))
            amount[ags] += share.amount
    for item in allocation.items:
        if item.rule.levy != base.levy.id:
            continue
        for line in item.lines:
            if line.ags in amount:
                exact[line.ags] += line.exact
                amount[line.ags] += line.amount
    return tuple(LevyLine(line.ags, tuple(LevyPart(c, v, w, None) for c, v, w in line.parts), line.factor, line.base,
                          exact[line.ags], amount[line.ags]) for line in base.lines)


def assess(allocation: Allocation) -> Allocation:
    """The levy stage: one `LevyResult` per levy of the rule file (none without `levies:`)."""
    rulebook, book = allocation.rulebook, allocation.book
    if not rulebook.levies:
        return allocation
    unit, decimals = book.parameters.unit, book.parameters.rate_decimals
    bases = levy_bases(rulebook, book)
    given = statute_rates(rulebook, book.levy_rates)
    results = []
    needs = given_needs(rulebook, book)
    for levy in rulebook.levies:
        items = tuple(item for item in allocation.items if item.rule.levy == levy.id)
        need = sum(item.deficit for item in items) + needs.get(levy.id, 0)
        base = bases[levy.id]
        if levy.id in given:
            rates, sources = given[levy.id]
            results.append(LevyResult(levy, "statute", dict(rates), sources, need,
                                      tuple(item.item.id for item in items), _statute(base, rates, unit)))
            continue
        keys, _ = item_keys(base)
        key_total = sum(keys.values(), Fraction(0)) * 100  # cents
        rates = {WHOLE_BASE: rate_percent(need, key_total, decimals)} if key_total > 0 else {}
        results.append(LevyResult(levy, "derived", rates, (), need, tuple(item.item.id for item in items),
                                  _derived(base, allocation, needs.get(levy.id, 0))))
    return replace(allocation, levies=tuple(results))


# --- what a levy yields against its need ---------------------------------------------------------------------

YIELD_TOLERANCE_PERCENT = 1  # README, "Statutory levies": beyond it, a surplus or shortfall is a Hinweis


def yield_warnings(allocation: Allocation) -> list[Problem]:
    """A statutory levy whose yield (base × rate) differs from its need by more than 1 % of the need, or by more
    than one rounding unit per payer where that is more: a Hinweis `input-levy-yield-differs` (the rates may be
    meant for a larger need than the run's items, or a typing error). A levy without need (0) is not compared."""
    found = []
    unit = allocation.book.parameters.unit
    for levy in allocation.levies:
        if levy.mode != "statute" or levy.need <= 0:
            continue
        tolerance = max(levy.need * YIELD_TOLERANCE_PERCENT // 100, unit * len(levy.lines))
        if abs(levy.difference) > tolerance:
            what = "Überschuss" if levy.difference > 0 else "Fehlbetrag"
            found.append(Problem(
                "input-levy-yield-differs", Location(Path(allocation.book.path).name, "Umlagesaetze"),
                f'Umlage "{levy.levy.id}": das Aufkommen zum Satz weicht um mehr als {YIELD_TOLERANCE_PERCENT} % vom '
                f"Bedarf ab ({what} {format_eur(abs(levy.difference))})",
                found=f"Aufkommen {format_eur(levy.revenue)}, Bedarf {format_eur(levy.need)}",
                expected=f"höchstens {format_eur(tolerance)} Abweichung",
                hint="den Satz und den Bedarf prüfen (Kostenpositionen, Umlagebedarf); ist der Satz für den ganzen "
                     "Haushalt festgesetzt, den Umlagebedarf des Haushalts angeben", severity="warning"))
    return found


# --- needs given without a cost item, and bases computed from components ---------------------------------------


def given_needs(rulebook: Rulebook, book: InputBook) -> dict[str, int]:
    """Levy id -> the `Umlagebedarf` of the Parameter sheet (cents); after `need_problems` passed."""
    if not rulebook.levies:
        return {}
    return {entry.levy or rulebook.levies[0].id: entry.cents for entry in book.parameters.needs}


def need_entry(rulebook: Rulebook, book: InputBook, levy_id: str):
    """The `Umlagebedarf` row of a levy (a `NeedEntry`: its cents and its cell), or None."""
    if not rulebook.levies:
        return None
    return next((entry for entry in book.parameters.needs if (entry.levy or rulebook.levies[0].id) == levy_id), None)


def need_problems(rulebook: Rulebook, book: InputBook) -> list[Problem]:
    """A `Umlagebedarf` must name a levy of the rule file (or stand alone beside exactly one levy), and a levy
    financed by it must be able to finance it: a derived levy splits it in whole rounding units."""
    problems = []
    ids = tuple(levy.id for levy in rulebook.levies)
    for entry in book.parameters.needs:
        if not ids:
            problems.append(Problem(
                "input-need-without-levy", entry.source, "Umlagebedarf ohne Umlage: die Regeldatei hat keine `levies:`",
                found=f"{cents_to_decimal(entry.cents)} €", expected="`levies:` in der Regeldatei",
                hint="die Umlage unter `levies:` anlegen oder den Umlagebedarf als Kostenposition führen"))
        elif entry.levy == "" and len(ids) > 1:
            problems.append(Problem(
                "input-need-levy-unknown", entry.source, "Umlagebedarf nennt keine Umlage, die Regeldatei hat mehrere",
                found="Umlagebedarf", expected=", ".join(f"Umlagebedarf:{i}" for i in ids),
                hint="je Umlage eine Zeile Umlagebedarf:<id der Umlage> anlegen"))
        elif entry.cents % book.parameters.unit:
            problems.append(Problem(
                "input-need-unit", entry.source, "Umlagebedarf ist bei Rundung Euro kein ganzer Euro-Betrag",
                found=f"{cents_to_decimal(entry.cents)} €", expected="ein ganzer Euro-Betrag",
                hint="den Umlagebedarf in ganzen Euro eintragen oder Rundung Cent wählen"))
        elif entry.levy and entry.levy not in ids:
            problems.append(Problem(
                "input-need-levy-unknown", entry.source, f'Umlagebedarf für die unbekannte Umlage "{entry.levy}"'
                f"{did_you_mean(entry.levy, ids)}", found=entry.levy, expected=", ".join(ids),
                hint="die id einer Umlage aus `levies:` der Regeldatei verwenden"))
    return problems


def computed_bases(rulebook: Rulebook, book: InputBook) -> InputBook:
    """A workbook without the `Umlagegrundlagen` column: each member's base is computed from the components of
    the rule file's levy (the first levy all members pay), rounded half up to the cent (shown in Gemeinden and
    Uebersicht; every levy itself is computed from the exact components, `Umlagen` shows the proof). Raises
    InputError where a rule or levy needs the column itself."""
    if "Umlagegrundlagen" in book.municipality_columns:
        return book
    name = Path(book.path).name
    needing = [f'Umlage "{levy.id}"' for levy in rulebook.levies if DEFAULT_BASE in levy.base] + [
        f'Regel "{rule.id}" ({rule.route})' for rule in rulebook.rules
        if rule.route in ("district_levy", "differentiated_levy") and rule.levy is None]
    whole = next((levy for levy in rulebook.levies if levy.payers is None and DEFAULT_BASE not in levy.base), None)
    if needing or whole is None:
        raise InputError([Problem(
            "input-missing-column", Location(name, "Gemeinden", 1), 'Spalte "Umlagegrundlagen" fehlt',
            found="keine Spalte Umlagegrundlagen", expected="Umlagegrundlagen, oder eine Umlage mit `base:` aus Bestandteilen",
            hint=("die Spalte Umlagegrundlagen anlegen; gebraucht von " + ", ".join(needing)) if needing else
            "die Spalte Umlagegrundlagen anlegen oder in der Regeldatei eine Umlage aller Mitglieder mit `base:` aus "
            "Bestandteilen (z. B. Steuerkraftzahlen: 100, Schluesselzuweisungen: 80) angeben")])
    lines = {line.ags: line for line in levy_bases(replace(rulebook, levies=(whole,)), book)[whole.id].lines}
    municipalities = []
    for m in book.municipalities:
        cents = round_to_unit(lines[m.ags].base, 1)
        attrs = dict(m.attrs)
        attrs[DEFAULT_BASE] = cents_to_decimal(cents)
        municipalities.append(replace(m, base=cents, attrs=attrs))
    return replace(book, municipalities=tuple(municipalities))


DEFAULT_BASE = "Umlagegrundlagen"


# --- provisional year --------------------------------------------------------------------------------------


def previous_rates(book: InputBook, previous: InputBook) -> InputBook:
    """The input with the `Umlagesaetze` of the previous year's input workbook (§ 56 Abs. 1 KrO NRW: until the
    year's budget statute is in force, the previous year's rates apply provisionally to the year's own bases).

    The rows keep their place in the previous workbook, so every rate of the run is traceable to its cell."""
    name = Path(previous.path).name
    problems: list[Problem] = previous_year_problems(
        book, previous, "--rates-from", ("input-rates-other-district", "input-rates-not-previous"))
    if not previous.levy_rates:
        problems.append(Problem(
            "input-rates-missing", Location(name, "Umlagesaetze"),
            f"die Vorjahres-Arbeitsmappe {name} enthält keine Umlagesätze", found="kein Blatt Umlagesaetze oder leer",
            expected="das Blatt Umlagesaetze mit den Sätzen der Haushaltssatzung des Vorjahres",
            hint="die Sätze des Vorjahres im Blatt Umlagesaetze der Vorjahres-Arbeitsmappe eintragen"))
    if problems:
        raise InputError(problems)
    return replace(book, levy_rates=previous.levy_rates)
