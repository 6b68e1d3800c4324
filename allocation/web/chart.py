"""The Uebersicht of a result as page data: table rows in cents and the geometry of a stacked bar chart.

`summary(allocation)` is what the result page keeps (JSON-safe, amounts as int cents, read from the
allocation, never from floats). `bars(summary)` lays out one horizontal stacked bar per municipality in
whole pixels; the template draws it as inline SVG, so names are escaped by Jinja like everything else.
Pixels are a drawing, not money: the amounts shown stay the cents from the allocation.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.model import LEVY_ROUTES, ROUTE_LABELS, ROUTES, Allocation
from ..core.money import percent_points

__all__ = ["summary", "bars", "Bar", "Segment", "COLOURS"]

COLOURS = {"district_levy": "#2f6db5", "differentiated_levy": "#e08a1e", "direct_billing": "#3a9a5b",
           "host_bears": "#a04a9a"}


def summary(allocation: Allocation) -> dict:
    """The Uebersicht sheet's content: routes used, one row per municipality by AGS, and the totals row."""
    used = [r for r in ROUTES if any(item.rule.route == r for item in allocation.items)] or list(ROUTES[:1])
    labels = {r: ROUTE_LABELS[r] for r in ROUTES}
    if allocation.levies:  # with `levies:` the levy routes carry the levies' names and their amounts (as Uebersicht)
        for route in LEVY_ROUTES:
            names = [levy.levy.name for levy in allocation.levies if levy.levy.route == route]
            if names:
                labels[route] = " + ".join(names)
        used = [r for r in ROUTES if r in used or labels[r] != ROUTE_LABELS[r]]
    pointed = [r for r in ROUTES if r in LEVY_ROUTES] if allocation.levies else list(ROUTES)  # levies only
    totals = allocation.totals()
    rows = []
    for m in sorted(allocation.book.municipalities, key=lambda m: m.ags):
        amounts = {r: totals[m.ags][r] for r in used}
        total = sum(totals[m.ags].values())
        points = percent_points(sum(totals[m.ags][r] for r in pointed), m.base)
        rows.append({"ags": m.ags, "name": m.name, "base": m.base, "routes": amounts, "total": total,
                     "points": None if points is None else str(points)})
    base_total = sum(m.base for m in allocation.book.municipalities)
    grand = sum(row["total"] for row in rows)
    points = percent_points(sum(t[r] for t in totals.values() for r in pointed), base_total)
    return {"routes": used, "labels": {r: labels[r] for r in used}, "rows": rows,
            "sum": {"base": base_total, "routes": {r: sum(row["routes"][r] for row in rows) for r in used},
                    "total": grand, "points": None if points is None else str(points)}}


@dataclass(frozen=True, slots=True)
class Segment:
    route: str
    label: str
    x: int
    width: int
    colour: str
    cents: int


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    y: int
    total: int
    segments: tuple[Segment, ...]
    end: int  # right end of the bar (at least the zero line): where its total is written


def bars(data: dict, width: int = 560, height: int = 22, gap: int = 6) -> tuple[list[Bar], int]:
    """Bars left to right from the zero line; negative amounts stack to its left. Returns (bars, zero x)."""
    lows = [sum(min(0, row["routes"][r]) for r in data["routes"]) for row in data["rows"]]
    highs = [sum(max(0, row["routes"][r]) for r in data["routes"]) for row in data["rows"]]
    span = (max(highs, default=0) - min(lows, default=0)) or 1
    zero = -min(lows, default=0) * width // span
    result = []
    for index, row in enumerate(data["rows"]):
        right, left, segments = zero, zero, []
        for route in data["routes"]:
            cents = row["routes"][route]
            size = abs(cents) * width // span
            if cents > 0:
                segments.append(Segment(route, data["labels"][route], right, size, COLOURS[route], cents))
                right += size
            elif cents < 0:
                left -= size
                segments.append(Segment(route, data["labels"][route], left, size, COLOURS[route], cents))
        result.append(Bar(row["name"], index * (height + gap), row["total"], tuple(segments), right))
    return result, zero
