"""Rules: items decided per second through engine.match (durable_rules) versus a hand-written first-match
evaluator of the same 20 rules (no caching), 1k / 10k / 100k items, medians of several repeats.

Two data sets: `realistic` (items share their combinations of the rule columns, as in a district's cost
list) and `distinct` (every item has its own amounts: all records differ in the referenced columns).
Run: python benchmarks/bench_rules.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import random
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, table  # noqa: E402

from allocation import engine  # noqa: E402
from allocation.conditions import All, Cmp, Not  # noqa: E402
from allocation.problems import Location  # noqa: E402

HERE = Location("bench")
CATEGORIES = ("KIM", "Jugendhilfe", "OEPNV", "Beratung", "Kultur")
HOSTS = ("Kreis", "05170024", "05170048")
REGIONS = ("Nord", "Sued", "West", "Ost")


def rules() -> list[tuple[str, object, object]]:
    """(name, condition for the engine, hand-written predicate) × 20, in priority order."""
    result = []
    for i, category in enumerate(CATEGORIES):
        limit = Decimal(10 * (i + 1))
        result.append((f"{category}-kreis-gross",
                       All((Cmp("Kategorie", "eq", category, HERE), Cmp("Traeger", "eq", "Kreis", HERE),
                            Cmp("Stellen", "gt", limit, HERE)), HERE),
                       lambda r, c=category, l=limit: r["Kategorie"] == c and r["Traeger"] == "Kreis" and r["Stellen"] > l))
        result.append((f"{category}-kreis-region",
                       All((Cmp("Kategorie", "eq", category, HERE), Cmp("Traeger", "eq", "Kreis", HERE),
                            Cmp("Region", "in", REGIONS[: 1 + i % 3], HERE)), HERE),
                       lambda r, c=category, rs=REGIONS[: 1 + i % 3]: r["Kategorie"] == c and r["Traeger"] == "Kreis"
                       and r["Region"] in rs))
        result.append((f"{category}-teuer",
                       All((Cmp("Kategorie", "eq", category, HERE), Cmp("Betrag", "ge", Decimal(500_000), HERE)), HERE),
                       lambda r, c=category: r["Kategorie"] == c and r["Betrag"] >= 500_000))
    for i, category in enumerate(CATEGORIES[:4]):
        result.append((f"{category}-rest", Cmp("Kategorie", "eq", category, HERE),
                       lambda r, c=category: r["Kategorie"] == c))
    result.append(("traeger", Not(Cmp("Traeger", "eq", "Kreis", HERE), HERE), lambda r: r["Traeger"] != "Kreis"))
    assert len(result) == 20
    return result


def items(n: int, distinct: bool, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if distinct:
            stellen, betrag = Decimal(i % 97) + Decimal(i) / 10**7, Decimal(i * 7 + 1) / 100
        else:
            stellen, betrag = Decimal(rng.choice((0, 2, 4, 12, 25, 60))), Decimal(rng.choice((1000, 250000, 800000)))
        out.append({"Kategorie": rng.choice(CATEGORIES), "Traeger": rng.choice(HOSTS), "Region": rng.choice(REGIONS),
                    "Stellen": stellen, "Betrag": betrag, "ID": f"P{i}"})
    return out


def engine_decide(named: dict, order: list[str], records: list[dict]) -> list[str | None]:
    matched = engine.match(named, records)
    rank = {name: i for i, name in enumerate(order)}
    return [min(m, key=rank.__getitem__) if m else None for m in matched]


def hand_decide(predicates: list[tuple[str, object]], records: list[dict]) -> list[str | None]:
    out = []
    for record in records:
        for name, predicate in predicates:
            if predicate(record):
                out.append(name)
                break
        else:
            out.append(None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    spec = rules()
    named = {name: condition for name, condition, _ in spec}
    order = [name for name, _, _ in spec]
    predicates = [(name, predicate) for name, _, predicate in spec]
    rows = []
    for kind in ("realistic", "distinct"):
        for n in map(int, args.sizes.split(",")):
            records = items(n, kind == "distinct")
            assert engine_decide(named, order, records) == hand_decide(predicates, records)  # same decisions
            ours = median_seconds(lambda: engine_decide(named, order, records), args.repeats)
            hand = median_seconds(lambda: hand_decide(predicates, records), args.repeats)
            plain = (median_seconds(lambda: engine._match(named, records, reduce_values=False), 1)
                     if n <= 10000 or kind == "realistic" else float("nan"))
            rows.append([kind, f"{n:,}", f"{n / ours:,.0f}", f"{n / hand:,.0f}", f"{ours / hand:.2f}x",
                         f"{n / plain:,.0f}" if plain == plain else "–"])
    table(["data", "items", "engine.match items/s", "hand-written items/s", "ratio (target ≤ 3x)",
           "without value cases items/s"], rows)


if __name__ == "__main__":
    main()
