"""Rules: items decided per second through engine.match (durable_rules) versus a hand-written first-match
evaluator of the same 20 rules (no caching), 1k / 10k / 100k items, medians of several repeats.

Two data sets: `realistic` (items share their combinations of the rule columns, as in a district's cost
list) and `distinct` (every item has its own amounts: all records differ in the referenced columns).
Run: python benchmarks/bench_rules.py [--repeats 5]

`--rules 1000,10000`: large rule files instead (issue 12). N rules decided for 1,000 items by engine.match
(several durable_rules rulesets) versus the reference evaluator `conditions.evaluate` over the same rules
and items (every rule for every item, as match answers), wall and CPU time, rulesets and peak RSS.
`--limits`: the measured durable_rules limits, each just below and just above, in child processes with a
time-out (a hang shows as "hangs").
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, peak_rss_mb, table  # noqa: E402

from allocation.rulefiles import conditions, engine  # noqa: E402
from allocation.rulefiles.conditions import All, Cmp, Not  # noqa: E402
from allocation.core.problems import Location  # noqa: E402

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


def many_rules(n: int, shape: str) -> dict:
    """`one-column`: rule i is `Kategorie = K<i>`; `three-columns`: `Kategorie = C<i mod 50>, Traeger =
    Kreis, Stellen > i` (50 categories, a threshold each)."""
    if shape == "one-column":
        return {f"r{i}": Cmp("Kategorie", "eq", f"K{i}", HERE) for i in range(n)}
    return {f"r{i}": All((Cmp("Kategorie", "eq", f"C{i % 50}", HERE), Cmp("Traeger", "eq", "Kreis", HERE),
                          Cmp("Stellen", "gt", Decimal(i), HERE)), HERE) for i in range(n)}


def many_items(n_rules: int, shape: str, count: int = 1000, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    prefix = "K" if shape == "one-column" else "C"
    span = n_rules if shape == "one-column" else 50
    return [{"Kategorie": f"{prefix}{rng.randrange(span + 5)}", "Traeger": rng.choice(HOSTS),
             "Stellen": Decimal(rng.randrange(n_rules + 10))} for _ in range(count)]


def cpu_and_wall(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_many_rules(sizes: list[int], repeats: int) -> None:
    rows = []
    for shape in ("one-column", "three-columns"):
        for n in sizes:
            named, records = many_rules(n, shape), many_items(n, shape)
            reference = lambda: [frozenset(k for k, c in named.items() if conditions.evaluate(c, r)) for r in records]
            assert engine.match(named, records) == reference()  # same answers
            ours = sorted(cpu_and_wall(lambda: engine.match(named, records)) for _ in range(repeats))[repeats // 2]
            ref = sorted(cpu_and_wall(reference) for _ in range(max(1, repeats // 2)))[max(1, repeats // 2) // 2]
            groups = len(engine._rulesets({k: {"$ex": {"_row": 1}} for k in named})) if shape == "one-column" else "–"
            rows.append([shape, f"{n:,}", f"{len(records):,}", groups, f"{ours[0]:.2f}", f"{ours[1]:.2f}",
                         f"{ref[0]:.2f}", f"{ref[1]:.2f}", f"{ours[1] / ref[1]:.2f}x", f"{peak_rss_mb():.0f}"])
    table(["rules", "n", "items", "rulesets", "match wall s", "match CPU s", "reference wall s",
           "reference CPU s", "CPU ratio", "peak RSS MB"], rows)


_LIMIT_CHILD = """
import json, sys, durable_rules_engine as d
from durable import engine as durable
kind, n = sys.argv[1], int(sys.argv[2])
if kind == "successors":  # n rules on one attribute: one node with n successors
    rules = {f"r{i}": {"all": [{"m": {"K": f"K{i}"}}]} for i in range(n)}
elif kind == "same-pattern":
    rules = {f"r{i}": {"all": [{"m": {"K": "KIM"}}]} for i in range(n)}
elif kind == "rules":
    rules = {f"r{i}": {"all": [{"m": {"$and": [{"K": f"K{i % 50}"}, {"$gt": {"N": i}}]}}]} for i in range(n)}
elif kind == "and-or-nodes":
    rules = {"r": {"all": [{"m": {"$or": [{"$and": [{"A": i}, {"B": i}]} for i in range(n - 1)]}}]}}
elif kind == "matching-stack":  # n rules that one fact satisfies
    host = durable.Host()
    host.register_rulesets({"x": {f"r{i}": {"all": [{"m": {"$gt": {"N": i}}}], "run": lambda c: None}
                                  for i in range(n)}})
    host.assert_fact("x", {"sid": "1", "N": 10 ** 6})
    sys.exit(0)
d.create_ruleset("x", json.dumps(rules))
"""


def bench_limits(timeout: float = 10) -> None:
    rows = []
    for kind, below, above in (("successors", 512, 513), ("same-pattern", 256, 257), ("rules", 4096, 4097),
                               ("and-or-nodes", 15, 16), ("matching-stack", 64, 65)):
        for n in (below, above):
            try:
                result = subprocess.run([sys.executable, "-c", _LIMIT_CHILD, kind, str(n)], capture_output=True,
                                        text=True, timeout=timeout)
                outcome = "works" if result.returncode == 0 else "error " + result.stderr.strip().rsplit("error code: ", 1)[-1]
            except subprocess.TimeoutExpired:
                outcome = f"hangs (no answer in {timeout:.0f} s)"
            rows.append([kind, f"{n:,}", outcome])
    table(["limit", "n", "durable_rules"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rules", default=None, help="rule counts, e.g. 1000,10000: large rule files instead")
    parser.add_argument("--limits", action="store_true", help="show durable_rules' limits instead")
    args = parser.parse_args()
    if args.limits:
        bench_limits()
        return
    if args.rules:
        bench_many_rules(list(map(int, args.rules.split(","))), args.repeats)
        return
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
