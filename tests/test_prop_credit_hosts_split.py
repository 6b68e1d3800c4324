"""`credit_hosts` under the per-run key memo of `allocate`: items of ONE rule whose payer sets differ (each
item's service has other hosts) must each be split over their own payers, against a Fraction oracle.

allocate builds a key that depends only on the rule and its payers once per run and shares it between items
(memo keyed by the rule and the payers' AGS); this pins that items of one rule with different payers never
share a split, and that items with the same payers get the same exact shares.
"""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.calc.allocate import allocate, decide
from allocation.core.model import DISTRICT_HOST
from allocation.core.problems import DecisionError
from allocation.rulefiles.rulebook import parse_rulebook
from strategies import ags_codes, cost_and_funding, make_book
from test_prop_apportion import _expected_deficit, largest_remainder_oracle

RULES = """\
district: Testkreis
valid_from: 2000
valid_to: 2100
hit_policy: unique
rules:
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Kategorie: U, Traeger: Kreis}
    route: district_levy
    credit_hosts: true
  - id: teilumlage
    legal_basis: "§ 56 Abs. 5 KrO NRW"
    when: {Kategorie: J, Traeger: Kreis}
    route: differentiated_levy
    payers: {Zahlt: 1}
    extent: Faktor
    credit_hosts: true
  - id: traeger
    legal_basis: "§ 2 GO NRW"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
"""

SERVICES = ("S1", "S2", "S3")


@st.composite
def districts(draw):
    codes = draw(st.lists(ags_codes, min_size=3, max_size=8, unique=True))
    rows = [(code, draw(st.integers(1, 10**11)),
             {"Zahlt": Decimal(draw(st.sampled_from([0, 1, 1]))),
              "Faktor": draw(st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("1.333333"), Decimal(2)]))})
            for code in codes]
    levy_items = [(f"L{n}", draw(st.sampled_from("UJ")), draw(st.sampled_from(SERVICES)), *draw(cost_and_funding()))
                  for n in range(draw(st.integers(2, 6)))]
    hosted = [(f"H{n}", draw(st.sampled_from(SERVICES)), draw(st.sampled_from(codes)))
              for n in range(draw(st.integers(1, 4)))]
    return rows, levy_items, hosted, draw(st.sampled_from([1, 100]))


def _book(rows, levy_items, hosted, unit):
    items = [(item_id, {"Kategorie": category, "Leistung": service, "Traeger": DISTRICT_HOST}, cost, funding)
             for item_id, category, service, cost, funding in levy_items]
    items += [(item_id, {"Kategorie": "U", "Leistung": service, "Traeger": host}, 100, 0)
              for item_id, service, host in hosted]
    book = make_book(rows, items, unit, ("Zahlt", "Faktor"), ("Leistung",))
    return replace(book, items=tuple(replace(item, host=item.attrs["Traeger"]) for item in book.items))


@settings(max_examples=60, deadline=None)
@given(districts())
def test_items_of_one_rule_split_over_their_own_payers(district):
    rows, levy_items, hosted, unit = district
    rulebook, _ = parse_rulebook(RULES, "credit.yaml")
    book = _book(rows, levy_items, hosted, unit)
    hosts = {service: {host for _, s, host in hosted if s == service} for service in SERVICES}
    expected = {}
    for item_id, category, service, cost, funding in levy_items:
        # the oracle: the rule's payers and keys (Umlagegrundlagen in euros, × Faktor on the Teilumlage)
        everyone = {ags: Fraction(base, 100) * (1 if category == "U" else Fraction(attrs["Faktor"]))
                    for ags, base, attrs in rows if category == "U" or attrs["Zahlt"] == 1}
        payers = {ags: key for ags, key in everyone.items() if ags not in hosts[service]}
        expected[item_id] = everyone, payers, service, cost, funding
    if any(not payers for _, payers, *_ in expected.values()):  # every payer hosts the service
        with pytest.raises(DecisionError) as raised:
            allocate(rulebook, book, decide(rulebook, book))
        assert {p.code for p in raised.value.problems} == {"decision-no-payers"}
        return
    result = {item.item.id: item for item in allocate(rulebook, book, decide(rulebook, book)).items}
    for item_id, (everyone, payers, service, cost, funding) in expected.items():
        item = result[item_id]
        deficit = _expected_deficit(cost, funding, unit)
        lines = {line.ags: line for line in item.lines}
        assert {ags: line.amount for ags, line in lines.items() if ags in payers} == \
            largest_remainder_oracle(deficit, payers, unit)
        assert all(line.amount == 0 and line.key == 0 for ags, line in lines.items() if ags not in payers)
        total = sum(payers.values(), Fraction(0))
        assert item.key_total == total
        for ags, key in payers.items():
            assert lines[ags].share == key / total
            assert lines[ags].exact == deficit * key / total
        full = largest_remainder_oracle(deficit, everyone, unit)
        assert dict(item.credits) == {ags: full[ags] for ags in everyone if ags in hosts[service]}
