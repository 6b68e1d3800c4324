"""Statutory levies: the levy as the budget statute sets it (issue 14).

Every expected figure is computed by hand in a comment or by a `fractions.Fraction` oracle written here,
never by running the code under test.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.calc import levies
from allocation.calc.allocate import allocate, decide
from allocation.core.model import LevyRateEntry
from allocation.core.problems import InputError, Location, RuleFileError
from allocation.rulefiles.rulebook import parse_rulebook
from strategies import make_book, statute_cases

HEAD = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
"""


def rulebook(text: str):
    return parse_rulebook(HEAD + text, "levies.yaml")[0]


def rate(levy: str, value: str, component: str = "", row: int = 2) -> LevyRateEntry:
    return LevyRateEntry(levy, component, Decimal(value), Location("eingabe.xlsx", "Umlagesaetze", row))


def run(rules, book):
    """decide -> allocate -> levy stage -> controls, as the pipeline does after reading."""
    from allocation.calc.controls import run_controls

    problems = levies.check_rates(rules, book.levy_rates)
    assert problems == []
    allocation = levies.assess(allocate(rules, book, decide(rules, book)))
    assert all(control.ok for control in run_controls(allocation))  # raises InvariantViolation on a failure
    return allocation


SCHWERIN_RULES = """\
levies:
  - id: amtsumlage
    name: Amtsumlage
    legal_basis: "§ 146 KV M-V; Haushaltssatzung 2013"
    base: {Steuerkraftmesszahl: 100, Schluesselzuweisungen: 100}
rules:
  - id: verwaltung
    legal_basis: "§ 146 KV M-V"
    when: {Kategorie: Verwaltung}
    route: district_levy
    levy: amtsumlage
"""


def schwerin_book(*rates, unit: int = 1):
    book = make_book([("13076001", 0, {"Steuerkraftmesszahl": Decimal("111203.84"),
                                         "Schluesselzuweisungen": Decimal("107697.05")})],
                     [("V1", {"Kategorie": "Verwaltung"}, 9_000_000, 0)], unit=unit,
                     municipality_columns=("Steuerkraftmesszahl", "Schluesselzuweisungen"))
    from dataclasses import replace

    return replace(book, levy_rates=tuple(rates))


def test_vg_schwerin_published_example_to_the_cent():
    # VG Schwerin (2013): 111.203,84 € + 107.697,05 € = 218.900,89 € × 43,67 % = 95.594,0187 € → 95.594,02 €
    allocation = run(rulebook(SCHWERIN_RULES), schwerin_book(rate("amtsumlage", "43.67")))
    (result,) = allocation.levies
    (line,) = result.lines
    assert result.mode == "statute"
    assert line.base == Fraction(21_890_089)
    assert line.exact == Fraction(21_890_089) * Fraction(4367, 10_000)  # 9.559.401,8663 cents
    assert line.amount == 9_559_402
    assert result.need == 9_000_000 and result.revenue == 9_559_402 and result.difference == 559_402


def test_vg_schwerin_proof_in_words():
    from allocation.workbook.report import levy_proof

    allocation = run(rulebook(SCHWERIN_RULES), schwerin_book(rate("amtsumlage", "43.67")))
    (result,) = allocation.levies
    assert levy_proof(result, result.lines[0], 1) == (
        "111.203,84 € + 107.697,05 € = 218.900,89 € × 43,67 % = 95.594,0187 € → 95.594,02 €")


def test_whole_euro_rounding_rounds_the_line_once_half_up():
    # 218.900,89 € × 43,67 % = 95.594,0187 € → 95.594 € (Rundung Euro); × 50 % = 109.450,445 € → 109.450 €
    allocation = run(rulebook(SCHWERIN_RULES), schwerin_book(rate("amtsumlage", "43.67"), unit=100))
    assert allocation.levies[0].lines[0].amount == 9_559_400
    allocation = run(rulebook(SCHWERIN_RULES), schwerin_book(rate("amtsumlage", "50"), unit=100))
    assert allocation.levies[0].lines[0].amount == 10_945_000
    # 0,5 € exactly rounds up: base 1,00 € × 50 % = 0,50 € → 1 €
    book = make_book([("13076001", 0, {"Steuerkraftmesszahl": Decimal("1.00"), "Schluesselzuweisungen": Decimal(0)})],
                     [("V1", {"Kategorie": "Verwaltung"}, 100, 0)], unit=100,
                     municipality_columns=("Steuerkraftmesszahl", "Schluesselzuweisungen"))
    from dataclasses import replace

    allocation = run(rulebook(SCHWERIN_RULES), replace(book, levy_rates=(rate("amtsumlage", "50"),)))
    assert allocation.levies[0].lines[0].amount == 100


BAVARIA_RULES = """\
rate_limits: bavaria
levies:
  - id: kreisumlage
    name: Kreisumlage
    legal_basis: "Art. 18 BayFAG"
    base: {Steuerkraftzahlen: 100, Schluesselzuweisungen: 80}
rules:
  - id: allgemein
    legal_basis: "Art. 18 Abs. 1 BayFAG"
    when: {Kategorie: Allgemein}
    route: district_levy
    levy: kreisumlage
"""


def bavaria_book(*rates):
    from dataclasses import replace

    book = make_book([("09189111", 0, {"Steuerkraftzahlen": Decimal("1000000.00"),
                                         "Schluesselzuweisungen": Decimal("250000.00")}),
                      ("09189112", 0, {"Steuerkraftzahlen": Decimal("333333.33"),
                                       "Schluesselzuweisungen": Decimal("0")})],
                     [("A1", {"Kategorie": "Allgemein"}, 50_000_000, 0)],
                     municipality_columns=("Steuerkraftzahlen", "Schluesselzuweisungen"))
    return replace(book, levy_rates=tuple(rates))


def test_one_rate_on_steuerkraft_and_80_percent_of_key_allocations():
    # 09189111: 1.000.000 € + 80 % × 250.000 € = 1.200.000 € × 50 % = 600.000,00 €
    # 09189112: 333.333,33 € × 50 % = 166.666,665 € → 166.666,67 € (half up)
    allocation = run(rulebook(BAVARIA_RULES), bavaria_book(rate("kreisumlage", "50")))
    first, second = allocation.levies[0].lines
    assert first.base == 120_000_000 and first.amount == 60_000_000
    assert second.exact == Fraction(16_666_666_5, 10) and second.amount == 16_666_667
    # need 500.000 €, revenue 766.666,67 € -> surplus 266.666,67 €
    assert allocation.levies[0].difference == 26_666_667


def test_per_component_rates():
    # Steuerkraftzahlen 48 %, Schluesselzuweisungen 40 % (≤ 48 %, spread only among tax rates: none)
    # 09189111: 1.000.000 × 48 % + 250.000 × 80 % × 40 % = 480.000 + 80.000 = 560.000,00 €
    # 09189112: 333.333,33 × 48 % = 159.999,9984 € → 160.000,00 €
    allocation = run(rulebook(BAVARIA_RULES), bavaria_book(rate("kreisumlage", "48", "Steuerkraftzahlen"),
                                                          rate("kreisumlage", "40", "Schluesselzuweisungen", 3)))
    first, second = allocation.levies[0].lines
    assert [p.rate for p in first.parts] == [Decimal(48), Decimal(40)]
    assert first.amount == 56_000_000
    assert second.exact == Fraction(1_599_999_984, 100) and second.amount == 16_000_000


def test_component_names_match_like_every_other_column_name():
    # `Bestandteil` is a column name: case, spaces and underscores do not count (normalise_header), so
    # "steuerkraft zahlen" is the base column Steuerkraftzahlen. Same figures as test_per_component_rates:
    # 09189111: 1.000.000 × 48 % + 250.000 × 80 % × 40 % = 560.000,00 €; 09189112: 333.333,33 × 48 % → 160.000,00 €
    allocation = run(rulebook(BAVARIA_RULES), bavaria_book(rate("kreisumlage", "48", "steuerkraft zahlen"),
                                                          rate("kreisumlage", "40", "SCHLUESSEL_ZUWEISUNGEN", 3)))
    first, second = allocation.levies[0].lines
    assert [(p.column, p.rate) for p in first.parts] == [("Steuerkraftzahlen", Decimal(48)),
                                                         ("Schluesselzuweisungen", Decimal(40))]
    assert first.amount == 56_000_000 and second.amount == 16_000_000
    # two spellings of one component are one component given twice
    twice = levies.check_rates(rulebook(BAVARIA_RULES), (rate("kreisumlage", "48", "Steuerkraftzahlen"),
                                                         rate("kreisumlage", "48", "steuerkraftzahlen", 3),
                                                         rate("kreisumlage", "40", "Schluesselzuweisungen", 4)))
    assert codes(twice) == ["input-levy-rate-duplicate"]


PAYERS_RULES = """\
levies:
  - id: kreisumlage
    name: Kreisumlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
  - id: jugendamtsumlage
    name: Jugendamtsumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    payers: {Jugendamt_Kreis: 1}
rules:
  - id: kim
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: KIM}
    route: district_levy
    levy: kreisumlage
  - id: jugend
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: Jugend}
    route: differentiated_levy
    levy: jugendamtsumlage
"""


def payers_book(*rates):
    from dataclasses import replace

    book = make_book([("05170004", 1_000_000_00, {"Jugendamt_Kreis": Decimal(1)}),
                      ("05170024", 5_000_000_00, {"Jugendamt_Kreis": Decimal(0)}),
                      ("05170040", 2_000_000_00, {"Jugendamt_Kreis": Decimal(1)})],
                     [("K1", {"Kategorie": "KIM"}, 7_600_000, 0), ("J1", {"Kategorie": "Jugend"}, 90_000, 0)],
                     municipality_columns=("Jugendamt_Kreis",))
    return replace(book, levy_rates=tuple(rates))


def test_levy_restricted_by_payers_statute_mode():
    # Jugendamtsumlage 23,65 % on Alpen (1.000.000 €) and Sonsbeck (2.000.000 €); Moers has its own Jugendamt
    allocation = run(rulebook(PAYERS_RULES), payers_book(rate("kreisumlage", "36.2"), rate("jugendamtsumlage", "23.65")))
    kreis, jugend = allocation.levies
    assert [line.ags for line in jugend.lines] == ["05170004", "05170040"]
    assert [line.amount for line in jugend.lines] == [23_650_000, 47_300_000]
    assert jugend.need == 90_000 and jugend.difference == 70_950_000 - 90_000
    # Kreisumlage 36,2 % on all three: 362.000 + 1.810.000 + 724.000 €
    assert [line.amount for line in kreis.lines] == [36_200_000, 181_000_000, 72_400_000]
    totals = allocation.totals()
    assert totals["05170024"]["differentiated_levy"] == 0
    assert totals["05170040"] == {"district_levy": 72_400_000, "differentiated_levy": 47_300_000,
                                  "direct_billing": 0, "host_bears": 0}


def test_derived_mode_is_the_exact_split_with_the_rate_that_finances_the_need():
    # no Umlagesaetze: KIM 76.000 € split 1:5:2 -> 9.500 / 47.500 / 19.000 €; rate 76.000 ÷ 8.000.000 = 0,95 %
    # Jugend 900 € over Alpen and Sonsbeck 1:2 -> 300 / 600 €; rate 900 ÷ 3.000.000 = 0,03 %
    allocation = run(rulebook(PAYERS_RULES), payers_book())
    kreis, jugend = allocation.levies
    assert kreis.mode == jugend.mode == "derived"
    assert [line.amount for line in kreis.lines] == [950_000, 4_750_000, 1_900_000]
    assert [line.amount for line in jugend.lines] == [30_000, 60_000]
    assert kreis.rates == {"": Decimal("0.95")} and jugend.rates == {"": Decimal("0.03")}
    assert kreis.difference == jugend.difference == 0
    # the item lines (Einzelnachweis) are the split of each item over its levy's base and payers
    item = next(i for i in allocation.items if i.item.id == "J1")
    assert [(l.ags, l.amount) for l in item.lines] == [("05170004", 30_000), ("05170024", 0), ("05170040", 60_000)]


def test_derived_mode_totals_equal_the_totals_without_levies():
    """A file that gains `levies:` (default base, no rates) pays exactly what it paid before."""
    before = rulebook("rules:\n" + PAYERS_RULES.split("rules:\n", 1)[1].replace("    levy: kreisumlage\n", "")
                      .replace("    levy: jugendamtsumlage\n", "    payers: {Jugendamt_Kreis: 1}\n"))
    assert before.levies == ()
    book = payers_book()
    old = allocate(before, book, decide(before, book))
    new = run(rulebook(PAYERS_RULES), book)
    assert old.totals() == new.totals()


def half_up(exact: Fraction, unit: int) -> int:
    """Oracle: `exact` cents (≥ 0) rounded half up to a multiple of `unit`, written out."""
    units, rest = divmod(exact, unit)
    return (int(units) + (1 if rest * 2 >= unit else 0)) * unit


def test_half_up_oracle_by_hand():
    # 0,5 Cent → 1 Cent, 2,5 Cent → 3 Cent (half-even: 0 and 2); 150 Cent → 2 €, 149,99 Cent → 1 €
    assert [half_up(Fraction(n, 2), 1) for n in (1, 5, 4)] == [1, 3, 2]
    assert half_up(Fraction(150), 100) == 200 and half_up(Fraction(14_999, 100), 100) == 100


STATUTE_CASE_RULES = """\
levies:
  - id: kreisumlage
    name: Kreisumlage
    legal_basis: "Art. 18 BayFAG"
    base: {{Steuerkraftzahlen: {tax}, Schluesselzuweisungen: {key}}}
{extent}rules:
  - id: allgemein
    legal_basis: "Art. 18 Abs. 1 BayFAG"
    when: {{Kategorie: Allgemein}}
    route: {route}
    levy: kreisumlage
"""


@given(statute_cases())
def test_every_statute_line_is_the_rounded_sum_of_component_times_weight_times_rate(case):
    """Both components weighted (not only 100 %), one rate or one per component, with or without an extent factor,
    and (half the lines, `statute_cases`) an exact amount of k + ½ units: each line, the revenue and the difference
    against a Fraction oracle."""
    from dataclasses import replace

    text = STATUTE_CASE_RULES.format(tax=case.tax_weight, key=case.key_weight,
                                     extent="    extent: Faktor\n" if case.factors is not None else "",
                                     # a levy with an extent factor is a differentiated levy (§ 56 Abs. 4 KrO NRW)
                                     route="differentiated_levy" if case.factors is not None else "district_levy")
    rows = []
    for i, (tax, key) in enumerate(case.values):
        attrs = {"Steuerkraftzahlen": Decimal(tax).scaleb(-2), "Schluesselzuweisungen": Decimal(key).scaleb(-2)}
        if case.factors is not None:
            attrs["Faktor"] = case.factors[i]
        rows.append((f"0918{i:04d}", 0, attrs))
    book = make_book(rows, [("A1", {"Kategorie": "Allgemein"}, 100, 0)], unit=case.unit,
                     municipality_columns=("Steuerkraftzahlen", "Schluesselzuweisungen")
                     + (("Faktor",) if case.factors is not None else ()))
    entries = ((rate("kreisumlage", str(case.rates[0]), "Steuerkraftzahlen"),
                rate("kreisumlage", str(case.rates[1]), "Schluesselzuweisungen", 3)) if len(case.rates) == 2
               else (rate("kreisumlage", str(case.rates[0])),))
    allocation = run(rulebook(text), replace(book, levy_rates=entries))
    (levy,) = allocation.levies
    tax_rate, key_rate = Fraction(case.rates[0]) / 100, Fraction(case.rates[-1]) / 100
    tax_weight, key_weight = Fraction(case.tax_weight) / 100, Fraction(case.key_weight) / 100
    expected_amounts = []
    for i, ((tax, key), line) in enumerate(zip(case.values, levy.lines)):
        factor = Fraction(case.factors[i]) if case.factors is not None else Fraction(1)
        base = tax * tax_weight + key * key_weight  # cents, the Bemessungsgrundlage (without the factor)
        exact = (tax * tax_weight * tax_rate + key * key_weight * key_rate) * factor  # cents
        expected_amounts.append(half_up(exact, case.unit))
        assert line.ags == f"0918{i:04d}" and line.base == base and line.exact == exact
        assert line.factor == (factor if case.factors is not None else None)
        assert line.amount == expected_amounts[-1]
    # the need: the one item's deficit, 1,00 € (100 Cent, a whole euro under either unit)
    assert levy.need == 100
    assert levy.revenue == sum(expected_amounts)
    assert levy.difference == sum(expected_amounts) - 100


# --- rate checks -----------------------------------------------------------------------------------------

def codes(problems):
    return sorted(p.code for p in problems)


def test_rates_outside_0_to_100_are_refused_with_their_cell():
    rules = rulebook(PAYERS_RULES)
    problems = levies.check_rates(rules, (rate("kreisumlage", "136.2"), rate("jugendamtsumlage", "-1", row=3)))
    assert codes(problems) == ["input-levy-rate-range", "input-levy-rate-range"]
    assert str(problems[0].location) == "eingabe.xlsx › Umlagesaetze, Zeile 2" and problems[0].found == "136.2 %"


def test_rate_rows_that_do_not_fit_the_levies_are_refused():
    rules = rulebook(BAVARIA_RULES)
    problems = levies.check_rates(rules, (
        rate("kreisumlag", "40"),  # typo
        rate("kreisumlage", "40", "Gewerbesteuer", 3),  # not a component
        rate("kreisumlage", "40", "Steuerkraftzahlen", 4),
        rate("kreisumlage", "40", "Steuerkraftzahlen", 5),  # duplicate
        rate("kreisumlage", "40.12345", "Schluesselzuweisungen", 6),  # five decimals
    ))
    assert codes(problems) == ["input-levy-rate-decimals", "input-levy-rate-duplicate", "input-levy-unknown",
                               "input-levy-unknown-component"]
    assert "kreisumlage" in problems[0].message  # did-you-mean
    incomplete = levies.check_rates(rules, (rate("kreisumlage", "40", "Steuerkraftzahlen"),))
    assert codes(incomplete) == ["input-levy-rate-incomplete"]
    mixed = levies.check_rates(rules, (rate("kreisumlage", "40"), rate("kreisumlage", "40", "Steuerkraftzahlen", 3)))
    assert codes(mixed) == ["input-levy-rate-mixed"]


BAVARIA_TAXES = BAVARIA_RULES.replace("{Steuerkraftzahlen: 100, Schluesselzuweisungen: 80}",
                                      "{Grundsteuer_B: 100, Gewerbesteuer: 100, Schluesselzuweisungen: 80}")


def test_bavarian_rate_relations_art_18_abs_3_bayfag():
    rules = rulebook(BAVARIA_TAXES)
    # 40 × 4/3 = 53,3333 %: 53,33 % is allowed, 53,34 % is not (Satz 3); SZ rate ≤ lowest tax rate (Satz 4)
    ok = (rate("kreisumlage", "40", "Grundsteuer_B"), rate("kreisumlage", "53.33", "Gewerbesteuer", 3),
          rate("kreisumlage", "40", "Schluesselzuweisungen", 4))
    assert levies.check_rates(rules, ok) == []
    spread = (rate("kreisumlage", "40", "Grundsteuer_B"), rate("kreisumlage", "53.34", "Gewerbesteuer", 3),
              rate("kreisumlage", "40", "Schluesselzuweisungen", 4))
    (problem,) = levies.check_rates(rules, spread)
    assert problem.code == "input-levy-rate-limits" and "Satz 3" in problem.message
    assert problem.location.row == 3
    key_too_high = (rate("kreisumlage", "40", "Grundsteuer_B"), rate("kreisumlage", "45", "Gewerbesteuer", 3),
                    rate("kreisumlage", "40.01", "Schluesselzuweisungen", 4))
    (problem,) = levies.check_rates(rules, key_too_high)
    assert "Satz 4" in problem.message and problem.location.row == 4
    # approved by the supervisory authority: the spread passes, Satz 4 still holds
    approved = rulebook(BAVARIA_TAXES.replace("rate_limits: bavaria", "rate_limits: bavaria-approved"))
    assert levies.check_rates(approved, spread) == []
    assert codes(levies.check_rates(approved, key_too_high)) == ["input-levy-rate-limits"]
    # without rate_limits the relations are not checked (other states have no such rule)
    free = rulebook(BAVARIA_TAXES.replace("rate_limits: bavaria\n", ""))
    assert levies.check_rates(free, spread) == [] and levies.check_rates(free, key_too_high) == []


# --- rule file -------------------------------------------------------------------------------------------

def rule_codes(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as error:
        parse_rulebook(HEAD + text, "levies.yaml")
    return sorted(p.code for p in error.value.problems if p.severity == "error")


def test_a_file_with_levies_needs_levy_on_every_levy_rule():
    assert rule_codes(PAYERS_RULES.replace("    levy: kreisumlage\n", "")) == ["rule-levy-missing"]
    assert rule_codes(PAYERS_RULES.replace("levy: kreisumlage", "levy: kreisumlag")) == ["rule-unknown-levy"]


def test_levy_without_levies_is_an_error():
    text = "rules:\n  - {id: a, legal_basis: x, when: {}, route: district_levy, levy: kreisumlage}\n"
    assert rule_codes(text) == ["rule-unknown-levy"]


def test_payers_extent_and_credit_hosts_belong_to_the_levy():
    text = PAYERS_RULES.replace("    levy: jugendamtsumlage\n",
                                "    levy: jugendamtsumlage\n    payers: {Jugendamt_Kreis: 1}\n    credit_hosts: true\n")
    assert rule_codes(text) == ["rule-bad-parameter", "rule-bad-parameter"]


def test_route_and_levy_must_agree():
    text = PAYERS_RULES.replace("levy: kreisumlage", "levy: jugendamtsumlage")
    assert rule_codes(text) == ["rule-levy-mismatch"]
    text = PAYERS_RULES.replace("levy: jugendamtsumlage", "levy: kreisumlage")
    assert rule_codes(text) == ["rule-levy-mismatch"]


def test_levy_structure_errors_are_located():
    text = PAYERS_RULES.replace("    name: Jugendamtsumlage\n", "    name: Kreisumlage\n    bas: x\n")
    with pytest.raises(RuleFileError) as error:
        parse_rulebook(HEAD + text, "levies.yaml")
    found = {(p.code, p.location.line) for p in error.value.problems}
    assert ("rule-duplicate-levy", 8) in found and ("rule-unknown-key", 10) in found
    bad_weight = BAVARIA_RULES.replace("Schluesselzuweisungen: 80", "Schluesselzuweisungen: 120")
    assert rule_codes(bad_weight) == ["rule-bad-weight"]
    assert rule_codes(BAVARIA_RULES.replace("rate_limits: bavaria", "rate_limits: bayern")) == ["rule-bad-rate-limits"]


def test_levy_base_cells_must_be_amounts():
    from dataclasses import replace

    rules = rulebook(BAVARIA_RULES)
    book = bavaria_book(rate("kreisumlage", "50"))
    broken = replace(book.municipalities[1], attrs={**book.municipalities[1].attrs, "Schluesselzuweisungen": "n/a"})
    book = replace(book, municipalities=(book.municipalities[0], broken))
    with pytest.raises(InputError) as error:
        allocate(rules, book, decide(rules, book))
    assert [p.code for p in error.value.problems] == ["input-levy-base"]


EXTENT_RULES = """\
levies:
  - id: oepnv
    name: ÖPNV-Mehrbelastung
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    extent: Faktor
rules:
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: OEPNV}
    route: differentiated_levy
    levy: oepnv
"""


def extent_book(*rates):
    from dataclasses import replace

    book = make_book([("05170004", 1_000_000_00, {"Faktor": Decimal("1.5")}),
                      ("05170008", 2_000_000_00, {"Faktor": Decimal("0.25")}),
                      ("05170012", 3_000_000_00, {"Faktor": Decimal(0)})],
                     [("B1", {"Kategorie": "OEPNV"}, 200_000, 0)], municipality_columns=("Faktor",))
    return replace(book, levy_rates=tuple(rates))


def test_extent_factor_multiplies_the_statute_amount_and_the_split_key():
    from allocation.workbook.report import levy_proof

    # statute 2,5 %: 1.000.000 € × 2,5 % × 1,5 = 37.500 €; 2.000.000 € × 2,5 % × 0,25 = 12.500 €; factor 0 pays 0
    allocation = run(rulebook(EXTENT_RULES), extent_book(rate("oepnv", "2.5")))
    (levy,) = allocation.levies
    assert [(line.ags, line.amount) for line in levy.lines] == [("05170004", 3_750_000), ("05170008", 1_250_000),
                                                               ("05170012", 0)]
    assert levy_proof(levy, levy.lines[0], 1) == "1.000.000,00 € × 2,50 % × Faktor 1,5 = 37.500,0000 € → 37.500,00 €"
    assert levy.levy.route == "differentiated_levy"
    # derived: 2.000 € split by 1.500.000 : 500.000 : 0 -> 1.500 / 500 / 0 €; rate 2.000 ÷ 2.000.000 = 0,10 %
    derived = run(rulebook(EXTENT_RULES), extent_book())
    (levy,) = derived.levies
    assert [line.amount for line in levy.lines] == [150_000, 50_000, 0]
    assert levy.rates == {"": Decimal("0.10")}
    assert derived.items[0].key_label == "Umlagegrundlagen × Faktor"


def test_a_missing_extent_factor_is_located():
    from dataclasses import replace

    rules = rulebook(EXTENT_RULES)
    book = extent_book(rate("oepnv", "2.5"))
    broken = replace(book.municipalities[0], attrs={**book.municipalities[0].attrs, "Faktor": ""})
    book = replace(book, municipalities=(broken, *book.municipalities[1:]))
    with pytest.raises(InputError) as error:
        allocate(rules, book, decide(rules, book))
    assert [(p.code, p.found) for p in error.value.problems] == [("input-bad-key", "leer")]


def test_rates_from_the_previous_year_of_the_same_district_only():
    from dataclasses import replace

    this_year = payers_book()
    previous = replace(payers_book(rate("kreisumlage", "36.4")),
                       parameters=replace(this_year.parameters, year=2021))
    taken = levies.previous_rates(this_year, previous)
    assert taken.levy_rates == previous.levy_rates and taken.municipalities == this_year.municipalities
    other = replace(previous, parameters=replace(previous.parameters, district="Kreis Kleve", year=2022))
    with pytest.raises(InputError) as error:
        levies.previous_rates(this_year, other)
    assert sorted(p.code for p in error.value.problems) == ["input-rates-not-previous", "input-rates-other-district"]
    with pytest.raises(InputError) as error:
        levies.previous_rates(this_year, replace(previous, levy_rates=()))
    assert [p.code for p in error.value.problems] == ["input-rates-missing"]


@st.composite
def levy_inputs(draw):
    count = draw(st.integers(2, 7))
    municipalities = [(f"0517{i:04d}", draw(st.integers(1, 10**12)), {"Jugendamt_Kreis": Decimal(draw(st.sampled_from([0, 1])))})
                      for i in range(count)]
    municipalities[0][2]["Jugendamt_Kreis"] = Decimal(1)  # at least one payer of the Jugendamtsumlage
    items = [(f"I{n}", {"Kategorie": draw(st.sampled_from(["KIM", "Jugend"]))}, draw(st.integers(0, 10**10)),
              draw(st.integers(0, 10**9))) for n in range(draw(st.integers(1, 4)))]
    return municipalities, items, draw(st.sampled_from([1, 100]))


@given(levy_inputs())
def test_levies_without_rates_pay_exactly_what_the_same_rules_without_levies_paid(case):
    municipalities, items, unit = case
    book = make_book(municipalities, items, unit=unit, municipality_columns=("Jugendamt_Kreis",))
    before = rulebook("rules:\n" + PAYERS_RULES.split("rules:\n", 1)[1].replace("    levy: kreisumlage\n", "")
                      .replace("    levy: jugendamtsumlage\n", "    payers: {Jugendamt_Kreis: 1}\n"))
    old = allocate(before, book, decide(before, book))
    new = run(rulebook(PAYERS_RULES), book)
    assert old.totals() == new.totals()
    assert [item.lines for item in old.items] == [item.lines for item in new.items]
    for levy in new.levies:
        assert levy.revenue == levy.need  # derived mode: the split of the need


def test_levy_on_a_route_that_is_no_levy_is_refused():
    text = PAYERS_RULES + """\
  - id: bus
    legal_basis: "§ 56 Abs. 4 KrO NRW"
    when: {Kategorie: OEPNV}
    route: direct_billing
    key: Einwohner
    levy: kreisumlage
"""
    assert rule_codes(text) == ["rule-bad-parameter"]


@given(st.lists(st.integers(0, 100 * 10**4), min_size=2, max_size=4), st.integers(0, 100 * 10**4))
def test_bavarian_check_refuses_exactly_the_rates_art_18_abs_3_forbids(tax_rates, key_rate):
    columns = [f"Steuer_{i}" for i in range(len(tax_rates))]
    text = BAVARIA_RULES.replace("{Steuerkraftzahlen: 100, Schluesselzuweisungen: 80}",
                                 "{" + ", ".join(f"{c}: 100" for c in columns) + ", Schluesselzuweisungen: 80}")
    entries = tuple(rate("kreisumlage", str(Decimal(r).scaleb(-4)), c, row) for row, (c, r)
                    in enumerate(zip(columns, tax_rates), start=2))
    entries += (rate("kreisumlage", str(Decimal(key_rate).scaleb(-4)), "Schluesselzuweisungen", 9),)
    problems = levies.check_rates(rulebook(text), entries)
    # oracle in integers (rates × 10^4): Satz 3 highest ≤ 4/3 × lowest, Satz 4 key rate ≤ lowest tax rate
    spread = 3 * max(tax_rates) > 4 * min(tax_rates)
    key_too_high = key_rate > min(tax_rates)
    assert sorted(p.location.row for p in problems) == sorted([2 + tax_rates.index(max(tax_rates))] * spread
                                                               + [9] * key_too_high)


def _yield_run(need: int, difference: int, payers: int, unit: int):
    """What `levies.yield_warnings` reads of a run: one statutory levy with its need, yield − need and payer lines."""
    from types import SimpleNamespace

    levy = SimpleNamespace(mode="statute", need=need, difference=difference, revenue=need + difference,
                           lines=[object()] * payers, levy=SimpleNamespace(id="kreisumlage"))
    return SimpleNamespace(book=SimpleNamespace(parameters=SimpleNamespace(unit=unit), path="eingabe.xlsx"),
                           levies=[levy])


@pytest.mark.parametrize("need, difference, payers, unit, hint", [
    # need 10.000,00 €: 1 % = 100,00 € (10,000 cents) > 3 payers × 1 cent; exactly at it: no Hinweis
    (1_000_000, 10_000, 3, 1, False), (1_000_000, 10_001, 3, 1, True), (1_000_000, -10_001, 3, 1, True),
    # need 100,00 € at whole euros: 1 % = 1,00 €, but one unit (1 €) per payer allows 3,00 € for 3 payers
    (10_000, 300, 3, 100, False), (10_000, 301, 3, 100, True), (10_000, -300, 3, 100, False),
], ids=["at-1-percent", "beyond-1-percent", "shortfall-beyond", "at-one-unit-per-payer", "beyond-units",
        "shortfall-at-units"])
def test_the_yield_tolerance_and_its_boundary(need, difference, payers, unit, hint):
    from allocation.calc.levies import yield_warnings

    found = yield_warnings(_yield_run(need, difference, payers, unit))
    assert [p.code for p in found] == (["input-levy-yield-differs"] if hint else [])
