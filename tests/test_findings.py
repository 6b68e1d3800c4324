"""Double burden (issue 5): Voerde hosts a KIM post itself and still pays the Kreis' posts through the levy.

Expected figures are computed here by hand with Fractions: the seed's deficits (19,000 € per post = 74,000 €
employer cost − 55,000 € state funding) and a largest-remainder oracle over the fixture's levy bases.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.runs.pipeline import compute
from allocation.core.problems import RuleFileError
from allocation.rulefiles.rulebook import parse_rulebook

ROOT = Path(__file__).resolve().parent.parent
BASE_INPUT = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
SCENARIOS = ROOT / "fixtures" / "kreis-wesel-2022" / "scenarios"
FOUR_POSTS = SCENARIOS / "kreis-wesel-2022-voerde-traeger-kreis-4-stellen.xlsx"
THREE_POSTS = SCENARIOS / "kreis-wesel-2022-voerde-traeger-kreis-3-stellen.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"
CREDIT_RULES = SCENARIOS / "kim-kreisumlage-anrechnung.yaml"
VOERDE = "05170044"

# Umlagegrundlagen (whole euros) of the fixture's Gemeinden sheet (ILLUSTRATIVE, see build_fixture.py).
BASES = {
    "05170004": 27154437, "05170008": 86873093, "05170012": 50884619, "05170016": 30153089,
    "05170020": 50291923, "05170024": 142030604, "05170028": 58692354, "05170032": 35869436,
    "05170036": 28845050, "05170040": 16853755, "05170044": 42982635, "05170048": 88446677,
    "05170052": 40922328,
}

POST_DEFICIT = (74_000 - 55_000) * 100  # cents: the seed's 19,000 € per full-time post


def largest_remainder(total_cents: int, keys: dict[str, int]) -> dict[str, int]:
    """Oracle: floor of the exact quotas, then one cent each by largest remainder, ties by AGS."""
    key_sum = sum(keys.values())
    exact = {ags: Fraction(total_cents * key, key_sum) for ags, key in keys.items()}
    floors = {ags: value.numerator // value.denominator for ags, value in exact.items()}
    left = total_cents - sum(floors.values())
    for ags in sorted(exact, key=lambda a: (-(exact[a] - floors[a]), a))[:left]:
        floors[ags] += 1
    return floors


def test_seed_deficits_by_hand():
    assert POST_DEFICIT == 1_900_000
    assert 4 * POST_DEFICIT == 7_600_000  # 76,000 €, the Kreis' first 4 posts
    assert 3 * POST_DEFICIT == 5_700_000  # 57,000 €, one post fewer
    # Voerde's exact quota of 76,000 €: 7,600,000 × 42,982,635 / 700,000,000 = 466,668.6086 cents
    assert sum(BASES.values()) == 700_000_000
    exact = Fraction(7_600_000 * BASES[VOERDE], 700_000_000)
    assert Fraction(4666686085, 10000) < exact < Fraction(4666686086, 10000)


def test_voerde_hosting_a_post_while_the_kreis_keeps_four_is_a_double_burden():
    allocation, _controls, _warnings = compute(FOUR_POSTS, RULES)
    share = largest_remainder(4 * POST_DEFICIT, BASES)[VOERDE]
    assert share == 466_669  # 4,666.69 €: floor 466,668 plus one remainder cent
    findings = [f for f in allocation.findings if f.code == "double-burden"]
    assert [(f.ags, f.category) for f in findings] == [(VOERDE, "KIM")]
    finding = findings[0]
    assert finding.own_cost == POST_DEFICIT
    assert finding.levy_share == share
    assert finding.credit == 0
    assert finding.own_cost + finding.levy_share == 1_900_000 + 466_669
    assert "Voerde" in finding.message and "23.666,69 €" in finding.message


def test_double_burden_when_the_kreis_needs_one_post_fewer():
    allocation, _controls, _warnings = compute(THREE_POSTS, RULES)
    share = largest_remainder(3 * POST_DEFICIT, BASES)[VOERDE]
    (finding,) = allocation.findings
    assert (finding.code, finding.ags, finding.own_cost, finding.levy_share) == (
        "double-burden", VOERDE, POST_DEFICIT, share)


def test_no_finding_without_a_hosting_municipality_of_the_same_category():
    # The base fixture: Moers hosts the Musikschule (Kultur), but no levy finances Kultur.
    allocation, _controls, _warnings = compute(BASE_INPUT, RULES)
    assert allocation.findings == ()


def test_credit_hosts_removes_the_double_burden_and_shows_the_credit():
    allocation, _controls, _warnings = compute(FOUR_POSTS, CREDIT_RULES)
    assert not [f for f in allocation.findings if f.code == "double-burden"]
    (credit,) = allocation.findings
    assert (credit.code, credit.ags, credit.category) == ("host-credited", VOERDE, "KIM")
    # The credit is what Voerde would have paid as one of 13 payers.
    assert credit.credit == largest_remainder(4 * POST_DEFICIT, BASES)[VOERDE] == 466_669
    assert credit.levy_share == 0
    assert credit.own_cost == POST_DEFICIT
    # Hosts leave the payers: the other 12 carry the 76,000 € exactly, by their bases.
    kim = next(item for item in allocation.items if item.item.id == "KIM-2022")
    amounts = {line.ags: line.amount for line in kim.lines}
    others = {ags: base for ags, base in BASES.items() if ags != VOERDE}
    assert amounts[VOERDE] == 0
    assert {ags: amounts[ags] for ags in others} == largest_remainder(4 * POST_DEFICIT, others)
    assert sum(amounts.values()) == 7_600_000


def test_findings_in_console_and_hinweise_sheet(tmp_path, capsys):
    from openpyxl import load_workbook

    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(FOUR_POSTS), "--rules", str(RULES), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "Hinweis [double-burden] Doppelbelastung: Voerde (Niederrhein)" in printed
    workbook = load_workbook(output, read_only=True)
    rows = list(workbook["Hinweise"].iter_rows(values_only=True))
    workbook.close()
    header, (row,) = rows[0], rows[1:]
    record = dict(zip(header, row))
    assert record["AGS"] == VOERDE and record["Kategorie"] == "KIM" and record["Art"] == "Doppelbelastung"
    assert str(record["Eigene Kosten (Trägerkommune)"]) == "19000"
    assert str(record["Umlageanteil für die Leistung an andere"]) == "4666.69"
    assert str(record["Gesamt"]) == "23666.69"


LEVY_RULE = """\
district: Testkreis
valid_from: 2022
valid_to: 2022
rules:
  - id: kim
    legal_basis: "§ 56 KrO NRW"
    when: {{}}
    route: {route}
{extra}state: NW
"""


def test_credit_hosts_only_on_levy_routes():
    with pytest.raises(RuleFileError) as error:
        parse_rulebook(LEVY_RULE.format(route="direct_billing", extra="    key: Einwohner\n    credit_hosts: true\n"),
                       "t.yaml")
    assert [p.code for p in error.value.problems] == ["rule-bad-parameter"]
    assert error.value.problems[0].location.line == 10


def test_credit_hosts_must_be_true_or_false():
    with pytest.raises(RuleFileError) as error:
        parse_rulebook(LEVY_RULE.format(route="district_levy", extra='    credit_hosts: "ja"\n'), "t.yaml")
    (problem,) = error.value.problems
    assert (problem.code, problem.location.line, problem.found) == ("rule-bad-type", 9, "'ja'")


def test_credit_hosts_is_read():
    rulebook, _ = parse_rulebook(LEVY_RULE.format(route="differentiated_levy",
                                                  extra="    payers: {}\n    credit_hosts: true\n"), "t.yaml")
    assert rulebook.rules[0].credit_hosts is True
    rulebook, _ = parse_rulebook(LEVY_RULE.format(route="district_levy", extra=""), "t.yaml")
    assert rulebook.rules[0].credit_hosts is False


# ------------------------------------------------------------------ "same service", not just same Kategorie
# Three municipalities with bases 100,000 / 200,000 / 300,000 € (600,000 € in all). A-Stadt runs its own
# Musikschule (Kultur, deficit 10,000 €, host_bears); the Kreis runs an item of Kategorie Kultur with a
# deficit of 60,000 € through the Kreisumlage, of which A-Stadt pays 60,000 × 100,000 ÷ 600,000 = 10,000 €.
SERVICE_TOWNS = [["05999001", "A-Stadt", 100_000], ["05999002", "B-Dorf", 200_000], ["05999003", "C-Hausen", 300_000]]


def _service_case(tmp_path, kreis_rule_extra: str = "", leistung: tuple[str, str] | None = None):
    from workbooks import write_input, write_rules

    items = [["MS-A", "Musikschule A-Stadt", "Kultur", 0, 10_000, 0, 0, "05999001"],
             ["K-KULTUR", "Kultur des Kreises", "Kultur", 0, 60_000, 0, 0, "Kreis"]]
    extra: tuple[str, ...] = ()
    if leistung is not None:
        items = [row + [value] for row, value in zip(items, leistung)]
        extra = ("Leistung",)
    source = write_input(tmp_path / "eingabe.xlsx", SERVICE_TOWNS, items, item_extra=extra)
    rules = write_rules(tmp_path / "regeln.yaml",
                        "  - id: kultur-kreis\n    legal_basis: x\n    when: {Kategorie: Kultur, Traeger: Kreis}\n"
                        f"    route: district_levy\n{kreis_rule_extra}"
                        "  - id: traeger\n    legal_basis: y\n    when: {Traeger: {ne: Kreis}}\n    route: host_bears\n")
    allocation, _controls, _warnings = compute(source, rules)
    return allocation


def _burdens(allocation) -> list[tuple]:
    return [(f.code, f.ags, f.category, f.own_cost, f.levy_share) for f in allocation.findings]


def test_same_kategorie_without_named_services_is_still_a_double_burden(tmp_path):
    assert _burdens(_service_case(tmp_path)) == [("double-burden", "05999001", "Kultur", 10_000_00, 10_000_00)]


def test_a_musikschule_is_not_flagged_against_the_kreisarchiv_named_by_the_rule(tmp_path):
    """The trial's false finding: both items are Kultur, but the Kreis item is the Kreisarchiv (`service:`)."""
    allocation = _service_case(tmp_path, "    service: Kreisarchiv\n")
    assert allocation.rulebook.rule("kultur-kreis").service == "Kreisarchiv"
    assert _burdens(allocation) == []


def test_a_musikschule_is_not_flagged_against_the_kreisarchiv_named_by_the_leistung_column(tmp_path):
    assert _burdens(_service_case(tmp_path, leistung=("Musikschule", "Kreisarchiv"))) == []


def test_the_same_named_service_is_a_double_burden(tmp_path):
    """A Kreismusikschule next to A-Stadt's own: own 10,000 € plus levy share 10,000 €."""
    allocation = _service_case(tmp_path, leistung=("Musikschule", "Musikschule"))
    assert _burdens(allocation) == [("double-burden", "05999001", "Musikschule", 10_000_00, 10_000_00)]
    assert "trägt Musikschule selbst" in allocation.findings[0].message
    # the Leistung cell is more specific than a rule's service: the rule's Kreisarchiv is overridden
    allocation = _service_case(tmp_path, "    service: Kreisarchiv\n", leistung=("Musikschule", "Musikschule"))
    assert [f.category for f in allocation.findings] == ["Musikschule"]


def test_service_must_be_text_in_the_rule_file():
    text = ("district: X\nvalid_from: 2022\nvalid_to: 2022\nrules:\n  - id: a\n    legal_basis: x\n    when: {}\n"
            "    route: district_levy\n    service: [Musikschule]\nstate: NW\n")
    with pytest.raises(RuleFileError) as refused:
        parse_rulebook(text, "regeln.yaml")
    assert [p.code for p in refused.value.problems] == ["rule-bad-type"]
    assert refused.value.problems[0].location.line == 9


def test_credit_hosts_credits_only_hosts_of_the_same_service(tmp_path):
    """credit_hosts on the Kreisarchiv rule must not exempt A-Stadt, whose Musikschule is another service:
    A-Stadt keeps paying 10,000 €, B-Dorf 20,000 €, C-Hausen 30,000 € (60,000 € by bases 1 : 2 : 3)."""
    allocation = _service_case(tmp_path, "    service: Kreisarchiv\n    credit_hosts: true\n")
    archive = next(item for item in allocation.items if item.item.id == "K-KULTUR")
    assert {line.ags: line.amount for line in archive.lines} == {
        "05999001": 10_000_00, "05999002": 20_000_00, "05999003": 30_000_00}
    assert dict(archive.credits) == {}


def test_a_finding_names_at_most_ten_items_and_counts_the_rest():
    from allocation.calc.findings import _bounded

    names = [f"Kreisumlage (P{i:03d})" for i in range(1, 84)]
    # hand-written: the first ten, then 83 - 10 = 73 more
    assert _bounded(names) == ", ".join(f"Kreisumlage (P{i:03d})" for i in range(1, 11)) + \
        " und 73 weitere Kostenpositionen"
    assert _bounded(names[:10]) == ", ".join(names[:10])  # ten or fewer: all of them, as before
