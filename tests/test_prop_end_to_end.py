"""End-to-end properties: random input workbook -> CLI -> output workbook read back with openpyxl.

Expected values come from the generated inputs, computed here with `fractions.Fraction` (deficit =
eligible components − funding, half-up to the rounding unit; levy shares by the largest-remainder oracle
of test_prop_apportion; a statutory levy's line = weighted base × rate (× extent factor), half-up to the unit),
never from the package's own results. The generators make exact .5 ties of the rounding unit in about half
their deficits and levy lines (tests/strategies.py, `nudge_to_half`).
"""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import tempfile
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import given

from allocation.cli import main
from strategies import (E2E_COMPONENTS, E2E_RULES, InputSpec, StatuteSpec, input_specs, scaled, statute_specs,
                        write_input_workbook)
from test_prop_apportion import largest_remainder_oracle

ROUTE_COLUMNS = {"umlage": "Kreisumlage", "jugendamt": "Differenzierte Umlage", "bus": "Direktabrechnung",
                 "beratung": "Direktabrechnung", "traeger": "Trägerkommune"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def number(value) -> Decimal:
    """A numeric cell as the decimal text the workbook stores (shortest round-trip repr of the double)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def read_sheets(path: Path) -> dict[str, list[tuple]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return {ws.title: [tuple(row) for row in ws.iter_rows(values_only=True)] for ws in workbook.worksheets}
    finally:
        workbook.close()


def as_dicts(rows: list[tuple]) -> list[dict]:
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:]]


def half_up(exact: Fraction, unit: int) -> int:
    """Oracle: `exact` cents rounded to a multiple of `unit`, halves away from zero."""
    sign = -1 if exact < 0 else 1
    return sign * math.floor(abs(exact) / unit + Fraction(1, 2)) * unit


def test_half_up_oracle_by_hand():
    # 12,50 € to whole euros: 13 € (half-even: 12 €); −12,50 € → −13 €; 0,5 Cent → 1 Cent; 12,49 € → 12 €
    assert [half_up(Fraction(c), 100) for c in (1250, -1250, 1249)] == [1300, -1300, 1200]
    assert half_up(Fraction(1, 2), 1) == 1 and half_up(Fraction(5, 2), 1) == 3


def expected_deficit_cents(spec: InputSpec, item) -> int:
    item_id, category, costs, funding, host = item
    components = dict(zip(("Personalkosten", "Sachkosten", "Gemeinkosten"), costs))
    eligible = sum(components[c] for c in E2E_COMPONENTS[spec.rule_of(category, host)])
    unit = 1 if spec.rounding == "Cent" else 100
    return half_up(Fraction((eligible - funding) * 100), unit)


def run_in_process(folder: Path, spec: InputSpec, rules: str = E2E_RULES, name: str = "ergebnis.xlsx",
                   statute: StatuteSpec | None = None):
    source, rule_file, output = folder / "eingabe.xlsx", folder / "regeln.yaml", folder / name
    if not source.exists():
        write_input_workbook(source, spec, statute)
    rule_file.write_text(rules, encoding="utf-8")
    before = sha256(source)
    code = main(["run", str(source), "--rules", str(rule_file), "-o", str(output)])
    assert sha256(source) == before, "the input workbook was modified"
    return code, output


def check_output(spec: InputSpec, sheets: dict[str, list[tuple]]) -> None:
    lines = as_dicts(sheets["Einzelnachweis"])
    decisions = {row["ID"]: row for row in as_dicts(sheets["Entscheidungen"])}
    overview = as_dicts(sheets["Uebersicht"])
    unit = 1 if spec.rounding == "Cent" else 100
    bases = {ags: base for ags, base, *_ in spec.municipalities}

    # per item: the lines add up to the deficit, which is eligible − funding rounded to the unit
    per_item = defaultdict(Decimal)
    for line in lines:
        per_item[line["ID"]] += number(line["Betrag gerundet"])
    assert set(per_item) == {item[0] for item in spec.items}
    for item in spec.items:
        expected = Decimal(expected_deficit_cents(spec, item)) / 100
        assert per_item[item[0]] == expected
        assert number(decisions[item[0]]["Defizit (gerundet)"]) == expected
        assert decisions[item[0]]["Regel"] == spec.rule_of(item[1], item[4])

    # levy items against the oracle; non-payers of the youth office levy pay exactly zero
    by_item = defaultdict(dict)
    for line in lines:
        by_item[line["ID"]][line["AGS"]] = number(line["Betrag gerundet"])
    for item in spec.items:
        rule = spec.rule_of(item[1], item[4])
        if rule in ("umlage", "jugendamt"):
            keys = {ags: Fraction(base) for ags, base, youth, *_ in spec.municipalities
                    if rule == "umlage" or youth == 1}
            oracle = largest_remainder_oracle(expected_deficit_cents(spec, item), keys, unit)
            for ags in bases:
                assert by_item[item[0]][ags] * 100 == oracle.get(ags, 0)
        if rule == "traeger":
            assert all(v == 0 for ags, v in by_item[item[0]].items() if ags != item[4])

    # Uebersicht: each municipality's route columns and total are the sums of its Einzelnachweis lines
    route_sums = defaultdict(Decimal)
    for line in lines:
        route_sums[(line["AGS"], line["Weg"])] += number(line["Betrag gerundet"])
    rows = {row["AGS"]: row for row in overview}
    total_column = "Summe"
    points_column = next(h for h in sheets["Uebersicht"][0] if str(h).startswith("Hebesatz-Punkte"))
    route_columns = [h for h in sheets["Uebersicht"][0] if h in set(ROUTE_COLUMNS.values())]
    assert set(rows) == set(bases) | {"Summe"}
    for ags, base in bases.items():
        row = rows[ags]
        for column in route_columns:
            assert number(row[column]) == route_sums[(ags, column)]
        total = sum((route_sums[(ags, column)] for column in route_columns), Decimal(0))
        assert number(row[total_column]) == total
        assert number(row["Umlagegrundlagen"]) == base
        # Hebesatz points = total ÷ base × 100, shown with 4 decimals (half a unit of the last place)
        if base == 0:
            assert row[points_column] in ("", None)
        else:
            exact = Fraction(total) / Fraction(base) * 100
            assert abs(Fraction(number(row[points_column])) - exact) <= Fraction(1, 20000)
    summe = rows["Summe"]
    for column in route_columns + [total_column]:
        assert number(summe[column]) == sum((number(rows[ags][column]) for ags in bases), Decimal(0))
    assert number(summe[total_column]) == sum(per_item.values(), Decimal(0))


def statute_oracle(statute: StatuteSpec) -> dict[str, dict[str, int]]:
    """Levy id -> AGS -> cents each payer owes by the budget statute, from the generated inputs: Kreisumlage =
    (Steuerkraft × tax weight % + Zuweisungen × grant weight %) × rate %, Jugendamtsumlage = Umlagegrundlagen ×
    rate % × Faktor (payers only), each half up to the rounding unit."""
    spec = statute.inputs
    unit = 1 if spec.rounding == "Cent" else 100
    county, youth = {}, {}
    for index, (ags, base, payer, *_figures) in enumerate(spec.municipalities):
        weighted = (Fraction(statute.tax[index]) * statute.tax_weight
                    + Fraction(statute.grants[index]) * statute.grant_weight)  # euros × 100 = cents
        county[ags] = half_up(weighted * Fraction(statute.county_rate) / 100, unit)
        if payer == 1:
            youth[ags] = half_up(Fraction(base) * 100 * Fraction(statute.youth_rate) / 100
                                 * Fraction(statute.factors[index]), unit)
    return {"kreisumlage": county, "jugendamtsumlage": youth}


def check_statute_output(statute: StatuteSpec, sheets: dict[str, list[tuple]]) -> None:
    """A run with statutory levies: every item's lines (the split of its deficit over the levy's keys: weighted
    components, or Umlagegrundlagen × Faktor for the payers), the Uebersicht (levy columns = what the statute
    charges, the other routes = their lines), and the Umlagen sheet (lines, revenue, need, difference)."""
    spec = statute.inputs
    unit = 1 if spec.rounding == "Cent" else 100
    lines = as_dicts(sheets["Einzelnachweis"])
    decisions = {row["ID"]: row for row in as_dicts(sheets["Entscheidungen"])}
    owed = statute_oracle(statute)
    levy_of = {"umlage": "kreisumlage", "jugendamt": "jugendamtsumlage"}
    keys = {"kreisumlage": {ags: Fraction(statute.tax[i]) * statute.tax_weight / 100
                            + Fraction(statute.grants[i]) * statute.grant_weight / 100
                            for i, (ags, *_rest) in enumerate(spec.municipalities)},
            "jugendamtsumlage": {ags: Fraction(base) * Fraction(statute.factors[i])
                                 for i, (ags, base, payer, *_rest) in enumerate(spec.municipalities) if payer == 1}}
    by_item = defaultdict(dict)
    for line in lines:
        by_item[line["ID"]][line["AGS"]] = number(line["Betrag gerundet"])
    needs = defaultdict(int)
    for item in spec.items:
        deficit = expected_deficit_cents(spec, item)
        rule = spec.rule_of(item[1], item[4])
        assert sum(by_item[item[0]].values()) * 100 == deficit
        assert number(decisions[item[0]]["Defizit (gerundet)"]) * 100 == deficit
        assert decisions[item[0]]["Regel"] == rule
        if rule in levy_of:
            needs[levy_of[rule]] += deficit
            oracle = largest_remainder_oracle(deficit, keys[levy_of[rule]], unit)
            assert {ags: cents * 100 for ags, cents in by_item[item[0]].items()} == \
                {ags: oracle.get(ags, 0) for ags, *_rest in spec.municipalities}

    # Uebersicht: the levies' columns hold what the statute charges; the other routes the sums of their lines
    header = sheets["Uebersicht"][0]
    rows = {row["AGS"]: row for row in as_dicts(sheets["Uebersicht"])}
    assert header[3:5] == ("Kreisumlage", "Jugendamtsumlage")
    others = [h for h in header[5:] if h in ("Direktabrechnung", "Trägerkommune")]
    route_sums = defaultdict(Decimal)
    for line in lines:
        route_sums[(line["AGS"], line["Weg"])] += number(line["Betrag gerundet"])
    points_column = next(h for h in header if str(h).startswith("Hebesatz-Punkte"))
    for ags, base, *_rest in spec.municipalities:
        row = rows[ags]
        county, youth = owed["kreisumlage"][ags], owed["jugendamtsumlage"].get(ags, 0)
        assert number(row["Kreisumlage"]) * 100 == county
        assert number(row["Jugendamtsumlage"]) * 100 == youth
        for column in others:
            assert number(row[column]) == route_sums[(ags, column)]
        assert number(row["Summe"]) * 100 == county + youth + sum(route_sums[(ags, c)] * 100 for c in others)
        if base == 0:
            assert row[points_column] in ("", None)
        else:  # the levies only, ÷ Umlagegrundlagen × 100, shown to 4 decimals
            exact = Fraction(county + youth, 100) / Fraction(base) * 100
            assert abs(Fraction(number(row[points_column])) - exact) <= Fraction(1, 20000)

    # Umlagen: one row per levy and payer, then the revenue at the rate, the need and their difference
    umlagen = as_dicts(sheets["Umlagen"])
    for levy_id, name in (("kreisumlage", "Kreisumlage"), ("jugendamtsumlage", "Jugendamtsumlage")):
        mine = [row for row in umlagen if row["Umlage"] == name]
        payer_rows = {row["AGS"]: number(row["Betrag"]) * 100 for row in mine if row["AGS"] not in ("Summe", None)}
        assert payer_rows == owed[levy_id]
        revenue = sum(owed[levy_id].values())
        summary = {row["Gemeinde"]: number(row["Betrag"]) * 100 for row in mine if row["AGS"] in ("Summe", None)}
        assert summary["Aufkommen zum Satz"] == revenue
        assert summary["Umlagebedarf (Summe der Defizite)"] == needs[levy_id]
        outcome = "Überschuss" if revenue > needs[levy_id] else "Fehlbetrag" if revenue < needs[levy_id] else "ausgeglichen"
        assert summary[f"Aufkommen − Bedarf ({outcome})"] == revenue - needs[levy_id]


def comparable(sheets: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """Every cell, except the Protokoll row with the time of the run."""
    return {name: [row for row in rows if not (name == "Protokoll" and row and row[0] == "Laufzeitpunkt (UTC)")]
            for name, rows in sheets.items()}


@scaled(0.25, 12)
@given(input_specs())
def test_round_trip_totals_deficits_and_hebesatz_points(spec):
    with tempfile.TemporaryDirectory() as folder:
        code, output = run_in_process(Path(folder), spec)
        assert code == 0
        check_output(spec, read_sheets(output))


@scaled(0.25, 12)
@given(statute_specs())
def test_round_trip_statute_levies_with_weights_and_extent_factors(statute):
    """Statute mode: the Kreisumlage on Steuerkraft and Zuweisungen with drawn weights, the Jugendamtsumlage with
    an extent factor, rates from the Umlagesaetze sheet; levy lines and deficits often exact .5 ties."""
    with tempfile.TemporaryDirectory() as folder:
        code, output = run_in_process(Path(folder), statute.inputs, statute.rules(), statute=statute)
        assert code == 0
        check_statute_output(statute, read_sheets(output))


@scaled(0.1, 6)
@given(input_specs(max_municipalities=5, max_items=4))
def test_two_runs_give_identical_workbooks(spec):
    with tempfile.TemporaryDirectory() as folder:
        # the same command twice (same paths: the Protokoll names them)
        first_code, output = run_in_process(Path(folder), spec)
        one = read_sheets(output)
        output.unlink()
        second_code, output = run_in_process(Path(folder), spec)
        two = read_sheets(output)
        assert first_code == second_code == 0
        assert list(one) == list(two)
        assert comparable(one) == comparable(two)
        assert len(comparable(one)["Protokoll"]) == len(one["Protokoll"]) - 1


@scaled(0.1, 6)
@given(input_specs(max_municipalities=5, max_items=4))
def test_failed_run_leaves_input_unchanged_and_writes_nothing(spec):
    """An item of a category no rule covers: exit 5 (decision), input bytes unchanged, no workbook."""
    failing = InputSpec(spec.rounding, spec.decimals, spec.municipalities,
                        spec.items + (("P-X", "Sonstiges", (Decimal(1), Decimal(0), Decimal(0)), Decimal(0), ""),),
                        spec.keys)
    with tempfile.TemporaryDirectory() as folder:
        code, output = run_in_process(Path(folder), failing)
        assert code == 5
        assert not output.exists()
        assert [p.name for p in Path(folder).iterdir()] and not list(Path(folder).glob("*.tmp"))


FIXED = InputSpec(
    "Cent", 2,
    (("05170004", Decimal("1000.00"), 1, 10, 30), ("05170008", Decimal("3000.00"), 0, 20, 10),
     ("05170012", Decimal("0"), 1, 0, 5)),
    (("P-1", "Umlage", (Decimal("100.00"), Decimal(0), Decimal(0)), Decimal(0), ""),
     ("P-2", "Jugend", (Decimal("50.00"), Decimal("10.01"), Decimal("7.00")), Decimal("20.00"), "Kreis"),
     ("P-3", "Bus", (Decimal("0.10"), Decimal(0), Decimal(0)), Decimal(0), ""),
     ("P-4", "Beratung", (Decimal("30.00"), Decimal(0), Decimal(0)), Decimal("40.00"), ""),
     ("P-5", "Umlage", (Decimal(0), Decimal(0), Decimal(0)), Decimal(0), "05170012")),
    (("P-4", "05170004", 3), ("P-4", "05170012", 1)),
)


def test_subprocess_run_and_failed_subprocess_run(tmp_path):
    """`python -m allocation run` as a controller runs it: exit 0 and a consistent workbook; then the same
    input with a text amount: exit 3 (input), no workbook, input bytes unchanged."""
    source, rules, output = tmp_path / "eingabe.xlsx", tmp_path / "regeln.yaml", tmp_path / "ergebnis.xlsx"
    write_input_workbook(source, FIXED)
    rules.write_text(E2E_RULES, encoding="utf-8")
    before = sha256(source)
    command = [sys.executable, "-m", "allocation", "run", str(source), "--rules", str(rules), "-o", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sha256(source) == before
    check_output(FIXED, read_sheets(output))

    from openpyxl import load_workbook

    broken = tmp_path / "kaputt.xlsx"
    workbook = load_workbook(source)
    workbook["Kostenpositionen"]["D2"] = "12.000,5O"
    workbook.save(broken)
    before = sha256(broken)
    target = tmp_path / "nie.xlsx"
    command[4] = str(broken)
    command[-1] = str(target)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "Kostenpositionen!D2" in done.stderr
    assert sha256(broken) == before
    assert not target.exists()
