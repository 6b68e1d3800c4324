"""Findings: notices about an allocation that are not errors. Today: the double burden of host municipalities.

A municipality that bears a service itself (an item routed `host_bears` with its AGS as `Traeger`) and at
the same time pays, through a levy (`district_levy` / `differentiated_levy`), its share of an item of the
same service that someone else provides (usually the Kreis, for the other municipalities), carries that
service twice: a double burden (the seed case, Stadt Voerde 2022). "Same service" is `model.service_of`:
the item's `Leistung` cell, else its rule's `service:`, else its `Kategorie` (so a town's Musikschule and
the Kreisarchiv, both "Kultur", are different services once either names its service). Each such
municipality and service gives one `double-burden` finding with its own cost, its levy share and the
total. Where the levy rule says `credit_hosts: true`, `allocate` has already taken the hosts out of that
item's payers; the credit they received is reported as a `host-credited` finding instead.

Pure: reads the allocation's lines, computes nothing that money.py should round.
"""
from __future__ import annotations

from ..core.model import LEVY_ROUTES, ROUTE_LABELS, Allocation, Finding, service_of
from ..core.money import format_eur

__all__ = ["LEVY_ROUTES", "DOUBLE_BURDEN", "HOST_CREDITED", "double_burdens", "finding_total"]

DOUBLE_BURDEN = "double-burden"
HOST_CREDITED = "host-credited"


def finding_total(finding: Finding) -> int:
    """What the municipality carries for this Kategorie: own cost plus levy share, in cents."""
    return finding.own_cost + finding.levy_share


LISTED = 10  # items a finding's message names; the Einzelnachweis lists every line


def _bounded(names: list[str]) -> str:
    """At most LISTED names, then how many more: a district-wide levy can have hundreds of items, and a
    message naming them all is unreadable in the terminal and in the Hinweise column."""
    if len(names) <= LISTED:
        return ", ".join(names)
    return f"{', '.join(names[:LISTED])} und {len(names) - LISTED} weitere Kostenpositionen"


def double_burdens(allocation: Allocation) -> tuple[Finding, ...]:
    """Every (municipality, service) with a double burden or a host credit, ordered by AGS then service.
    A finding's `category` is the service (the Kategorie unless a `Leistung` cell or `service:` names one)."""
    names = {m.ags: m.name for m in allocation.book.municipalities}
    own: dict[tuple[str, str], int] = {}
    own_items: dict[tuple[str, str], list[str]] = {}
    for item in allocation.items:
        if item.rule.route == "host_bears":
            key = (item.item.host, service_of(item.item, item.rule))
            own[key] = own.get(key, 0) + sum(line.amount for line in item.lines if line.ags == item.item.host)
            own_items.setdefault(key, []).append(item.item.id)
    findings: list[Finding] = []
    for (ags, category), own_cost in sorted(own.items()):
        levy_items = [item for item in allocation.items
                      if item.rule.route in LEVY_ROUTES and service_of(item.item, item.rule) == category
                      and item.item.host != ags]
        share = sum(line.amount for item in levy_items for line in item.lines if line.ags == ags)
        credit = sum(item.credits.get(ags, 0) for item in levy_items)
        paying = [item for item in levy_items if any(line.ags == ags and line.amount for line in item.lines)]
        credited = [item for item in levy_items if item.credits.get(ags)]
        name = names.get(ags, ags)
        if share > 0:
            routes = _bounded([f"{ROUTE_LABELS[i.rule.route]} ({i.item.id})" for i in paying])
            findings.append(Finding(
                DOUBLE_BURDEN, ags, name, category,
                f"Doppelbelastung: {name} trägt {category} selbst ({', '.join(own_items[(ags, category)])}: "
                f"{format_eur(own_cost)}) und zahlt über {routes} {format_eur(share)} für die Leistung an andere "
                f"Gemeinden; zusammen {format_eur(own_cost + share)}",
                own_cost, share))
        if credit:
            routes = _bounded([f"{ROUTE_LABELS[i.rule.route]} ({i.item.id}, Regel {i.rule.id})" for i in credited])
            findings.append(Finding(
                HOST_CREDITED, ags, name, category,
                f"Anrechnung: {name} trägt {category} selbst ({format_eur(own_cost)}) und ist nach credit_hosts "
                f"von {routes} freigestellt; angerechnet {format_eur(credit)}",
                own_cost, share, credit))
    return tuple(findings)
