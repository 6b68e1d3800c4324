"""Every control of a run fails when one line of its input is tampered with, and names itself (issue 24).

The allocations are the Kreis Wesel 2022 fixture's: with its statute rates (Kreisumlage 36,20 %,
Jugendamtsumlage 23,65 %), once at Cent and once at Euro rounding, and without rates (the levies derived from
their need). Each test changes one value of a computed allocation and lists, by hand, every control that must
fail and what it finds against what it expects; a control that compared a value with itself would be missing
from the list. Figures (cents):
- Alpen's Umlagegrundlagen 27.154.437 €; × 36,20 % = 9.829.906,194 € → 982.990.619 Cent (Euro: 9.829.906 €);
- KIM-2022: deficit 296.000 € − 220.000 € = 76.000 € = 7.600.000 Cent, the need of the Kreisumlage; Alpen's exact
  share 27.154.437 / 700.000.000 × 7.600.000 = 294.819,6017 Cent, rounded 294.820;
- OEPNV-2022 (direct billing) 3.150.000 €; the five items' deficits 76.000 + 22.260.000 + 3.150.000 + 360.345,67 +
  1.000.000 = 26.846.345,67 €.
"""
from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest

from allocation.calc import levies
from allocation.calc.controls import run_controls
from allocation.cli import main
from allocation.core.model import LevyPart
from allocation.core.problems import InvariantViolation
from allocation.runs.pipeline import compute
from workbooks import ROOT, SMALL_INPUT, SMALL_RULES, WESEL_RATES, WESEL_RULES, modified_copy

WITHOUT_RATES = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
ALPEN, DINSLAKEN = "05170004", "05170008"
STATUTE = "Umlage kreisumlage: Betrag = Grundlage × Satz"


@pytest.fixture(scope="module")
def statute():
    return compute(WESEL_RATES, WESEL_RULES)[0]


@pytest.fixture(scope="module")
def statute_euro(tmp_path_factory):
    source = modified_copy(WESEL_RATES, tmp_path_factory.mktemp("euro") / "euro.xlsx", rounding="Euro")
    return compute(source, WESEL_RULES)[0]


@pytest.fixture(scope="module")
def derived():
    return compute(WITHOUT_RATES, WESEL_RULES)[0]


def failed(allocation) -> dict[str, tuple[int, int]]:
    """Every failed control: its name (with the item or AGS) -> (found, expected)."""
    with pytest.raises(InvariantViolation) as raised:
        run_controls(allocation)
    problems = raised.value.problems
    assert {p.code for p in problems} == {"control-failed"}
    assert {p.location.file for p in problems} == {allocation.book.path}
    return {p.message.removeprefix("Kontrolle fehlgeschlagen: "): (int(p.found), int(p.expected)) for p in problems}


def with_item(allocation, item_id: str, **changes):
    return replace(allocation, items=tuple(replace(item, **changes) if item.item.id == item_id else item
                                           for item in allocation.items))


def with_item_line(allocation, item_id: str, ags: str, **changes):
    item = next(item for item in allocation.items if item.item.id == item_id)
    lines = tuple(replace(line, **changes) if line.ags == ags else line for line in item.lines)
    return with_item(allocation, item_id, lines=lines)


def with_levy(allocation, levy_id: str, **changes):
    return replace(allocation, levies=tuple(replace(levy, **changes) if levy.levy.id == levy_id else levy
                                            for levy in allocation.levies))


def with_levy_line(allocation, levy_id: str, ags: str, **changes):
    levy = next(levy for levy in allocation.levies if levy.levy.id == levy_id)
    lines = tuple(replace(line, **changes) if line.ags == ags else line for line in levy.lines)
    return with_levy(allocation, levy_id, lines=lines)


def levy_line(allocation, levy_id: str, ags: str):
    return next(line for levy in allocation.levies if levy.levy.id == levy_id for line in levy.lines if line.ags == ags)


def control(controls, name: str):
    (found,) = [c for c in controls if f"{c.name} ({c.item_id})" == name or c.name == name]
    return found


# ------------------------------------------------------------------------------------ the statute recompute


def test_the_untampered_runs_pass_every_control(statute, statute_euro, derived):
    assert control(run_controls(statute), f"{STATUTE} ({ALPEN})").expected == 982_990_619
    assert control(run_controls(statute_euro), f"{STATUTE} ({ALPEN})").expected == 982_990_600
    run_controls(derived)


@pytest.mark.parametrize("delta", [1, -1], ids=["one-cent-more", "one-cent-less"])
def test_a_statute_line_one_cent_off_fails_the_recompute(statute, delta):
    tampered = with_levy_line(statute, "kreisumlage", ALPEN, amount=982_990_619 + delta)
    # the revenue and the Uebersicht are built from the same lines: only the recompute sees it
    assert failed(tampered) == {f"{STATUTE} ({ALPEN})": (982_990_619 + delta, 982_990_619)}


@pytest.mark.parametrize("delta", [100, -100], ids=["one-euro-more", "one-euro-less"])
def test_a_statute_line_one_euro_off_fails_the_recompute_at_euro_rounding(statute_euro, delta):
    tampered = with_levy_line(statute_euro, "kreisumlage", ALPEN, amount=982_990_600 + delta)
    assert failed(tampered) == {f"{STATUTE} ({ALPEN})": (982_990_600 + delta, 982_990_600)}


# (components, rates of the levy, Cent amount that passes) — each line's exact amount computed by hand:
# 250 Cent × 36,20 % = 90,5 Cent → half up 91 (a tie);
# 250 Cent weighted 80 % × 36,20 % × extent factor 3/2 = 108,6 Cent → 109;
# a component with a rate of its own (40 %; the other lines' Umlagegrundlagen keep the levy's 36,20 %):
# 250 × 40 % = 100 Cent
BOUNDARY_CASES = [
    ((("Umlagegrundlagen", 250, "100"),), None, {"": "36.2"}, 91),
    ((("Umlagegrundlagen", 250, "80"),), Fraction(3, 2), {"": "36.2"}, 109),
    ((("Schluesselzuweisungen", 250, "100"),), None, {"": "36.2", "Schluesselzuweisungen": "40"}, 100),
]


def _replaced_line(allocation, components, factor, rates):
    rates = {column: Decimal(rate) for column, rate in rates.items()}
    parts = tuple(LevyPart(column, Fraction(value), Decimal(weight), rates.get(column, rates[""]))
                  for column, value, weight in components)
    return with_levy(allocation, "kreisumlage", rates=rates), parts


@pytest.mark.parametrize("components, factor, rates, amount", BOUNDARY_CASES,
                         ids=["tie", "weight-and-extent", "own-rate"])
def test_the_recompute_passes_the_right_rounding_and_fails_one_cent_below(statute, components, factor, rates, amount):
    allocation, parts = _replaced_line(statute, components, factor, rates)
    right = with_levy_line(allocation, "kreisumlage", ALPEN, parts=parts, factor=factor, amount=amount)
    assert control(run_controls(right), f"{STATUTE} ({ALPEN})").actual == amount
    wrong = with_levy_line(allocation, "kreisumlage", ALPEN, parts=parts, factor=factor, amount=amount - 1)
    assert failed(wrong) == {f"{STATUTE} ({ALPEN})": (amount - 1, amount)}


def test_at_euro_rounding_the_recompute_rounds_half_up_to_whole_euros(statute_euro):
    # 250,00 € × 36,20 % = 90,50 € → 91 €
    parts = (LevyPart("Umlagegrundlagen", Fraction(25_000), Decimal(100), Decimal("36.2")),)
    right = with_levy_line(statute_euro, "kreisumlage", ALPEN, parts=parts, amount=9_100)
    assert control(run_controls(right), f"{STATUTE} ({ALPEN})").actual == 9_100
    for wrong in (9_000, 9_050):  # one unit below; the exact cents
        tampered = with_levy_line(statute_euro, "kreisumlage", ALPEN, parts=parts, amount=wrong)
        assert failed(tampered) == {f"{STATUTE} ({ALPEN})": (wrong, 9_100)}


# -------------------------------------------------------------------------------------- needs and sums


def test_a_statute_levys_need_must_be_its_items_deficits(statute):
    tampered = with_levy(statute, "kreisumlage", need=7_600_001)
    assert failed(tampered) == {"Umlage kreisumlage: Bedarf = Summe der zugewiesenen Defizite": (7_600_001, 7_600_000)}


def test_a_derived_levys_need_must_be_its_lines_and_its_items_deficits(derived):
    tampered = with_levy(derived, "kreisumlage", need=7_600_001)
    assert failed(tampered) == {
        "Umlage kreisumlage (abgeleitet): Bedarf = Summe der Zeilen": (7_600_000, 7_600_001),
        "Umlage kreisumlage: Bedarf = Summe der zugewiesenen Defizite": (7_600_001, 7_600_000)}


def test_a_derived_levys_line_one_cent_off_fails_both_derived_controls(derived):
    # Alpen's derived Kreisumlage is its share of KIM-2022: 294.820 Cent
    assert levy_line(derived, "kreisumlage", ALPEN).amount == 294_820
    tampered = with_levy_line(derived, "kreisumlage", ALPEN, amount=294_821)
    assert failed(tampered) == {
        "Umlage kreisumlage (abgeleitet): Bedarf = Summe der Zeilen": (7_600_001, 7_600_000),
        "Umlage kreisumlage (abgeleitet): Summe der Zeilen = Einzelnachweis": (7_600_001, 7_600_000)}


def test_an_item_line_one_cent_off_in_a_derived_run(derived):
    tampered = with_item_line(derived, "KIM-2022", ALPEN, amount=294_821)
    assert failed(tampered) == {
        "Defizit − verteilt = 0 (KIM-2022)": (7_600_001, 7_600_000),
        # 294.821 − 294.819,6017 = 1,398 Cent: more than one unit from the exact share
        "Anteile innerhalb einer Rundungseinheit des exakten Anteils (KIM-2022)": (1, 0),
        "Summe Defizite = Summe Einzelnachweis": (2_684_634_568, 2_684_634_567),
        "Umlage kreisumlage (abgeleitet): Summe der Zeilen = Einzelnachweis": (7_600_000, 7_600_001)}


def test_a_deficit_one_cent_off_fails_the_sums_of_its_route(statute):
    tampered = with_item(statute, "OEPNV-2022", deficit=315_000_001)
    found = failed(tampered)
    assert found.pop("Defizit − verteilt = 0 (OEPNV-2022)") == (315_000_000, 315_000_001)
    assert found.pop("Summe Defizite = Summe Einzelnachweis") == (2_684_634_567, 2_684_634_568)
    # expected one cent more than the Uebersicht and the route's column hold
    overview_found, overview_expected = found.pop(
        "Aufkommen der Umlagen + Defizite der übrigen Wege = Summe Übersicht")
    assert overview_expected - overview_found == 1
    # direct billing: OEPNV 3.150.000 € + SB 360.345,67 €
    assert found.pop("Summe Weg direct_billing") == (351_034_567, 351_034_568)
    assert found == {}


def test_without_levies_the_uebersicht_must_hold_the_deficits(tmp_path):
    allocation = compute(SMALL_INPUT, SMALL_RULES)[0]
    assert not allocation.levies
    item = next(item for item in allocation.items if item.rule.route == "direct_billing")
    line = next(line for line in item.lines if line.amount > 0)
    deficits = sum(i.deficit for i in allocation.items)
    found = failed(with_item_line(allocation, item.item.id, line.ags, amount=line.amount + 1))
    assert found["Summe Defizite = Summe Übersicht"] == (deficits + 1, deficits)
    assert found["Summe Defizite = Summe Einzelnachweis"] == (deficits + 1, deficits)
    assert found[f"Defizit − verteilt = 0 ({item.item.id})"] == (item.deficit + 1, item.deficit)


# ------------------------------------------------------------------------- one rounding unit from the exact share


def _shares_around(allocation, alpen_exact_offset: Fraction):
    """KIM-2022 with one unit moved from Dinslaken to Alpen, and the two lines' exact shares set so that Alpen's
    amount lies one unit minus `alpen_exact_offset` units from its exact share and Dinslaken's half a unit."""
    unit = allocation.book.parameters.unit
    item = next(item for item in allocation.items if item.item.id == "KIM-2022")
    total = item.deficit
    amounts = {line.ags: line.amount for line in item.lines}
    a, b = amounts[ALPEN], amounts[DINSLAKEN]
    tampered = with_item_line(allocation, "KIM-2022", ALPEN, amount=a + unit,
                              share=(a + alpen_exact_offset * unit) / total)
    return with_item_line(tampered, "KIM-2022", DINSLAKEN, amount=b - unit, share=(b - Fraction(unit, 2)) / total)


@pytest.mark.parametrize("allocation_name", ["statute", "statute_euro"])
def test_a_line_exactly_one_unit_from_its_exact_share_fails(request, allocation_name):
    allocation = request.getfixturevalue(allocation_name)
    assert failed(_shares_around(allocation, Fraction(0))) == {
        "Anteile innerhalb einer Rundungseinheit des exakten Anteils (KIM-2022)": (1, 0)}


@pytest.mark.parametrize("allocation_name", ["statute", "statute_euro"])
def test_a_line_just_under_one_unit_from_its_exact_share_passes(request, allocation_name):
    allocation = request.getfixturevalue(allocation_name)
    controls = run_controls(_shares_around(allocation, Fraction(1, 100)))  # 0,99 units off
    assert control(controls, "Anteile innerhalb einer Rundungseinheit des exakten Anteils (KIM-2022)").actual == 0


# ------------------------------------------------------------------------------------------- the run stops


def test_a_failed_control_stops_the_run_with_exit_6_and_no_workbook(tmp_path, monkeypatch, capsys):
    exact_amount = levies.statute_amount

    def one_cent_more(parts, factor, unit):  # a fault in the levy stage: every statute line one cent high
        exact, amount = exact_amount(parts, factor, unit)
        return exact, amount + 1

    monkeypatch.setattr(levies, "statute_amount", one_cent_more)
    output = tmp_path / "ergebnis.xlsx"
    capsys.readouterr()
    assert main(["run", str(WESEL_RATES), "--rules", str(WESEL_RULES), "-o", str(output), "--register",
                 str(tmp_path / "register"), "--json"]) == 6
    found = {p["message"]: (p["found"], p["expected"]) for p in json.loads(capsys.readouterr().out)["problems"]}
    assert found[f"Kontrolle fehlgeschlagen: {STATUTE} ({ALPEN})"] == ("982990620", "982990619")
    # 13 Kreisumlage and 7 Jugendamtsumlage payers, each line one cent high; nothing else reads them wrong
    assert len(found) == 20
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "register") == []
