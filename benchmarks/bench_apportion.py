"""Apportionment: money.apportion over n = 10 … 1,000,000 recipients; time / (n log2 n) should not grow.

Run: python benchmarks/bench_apportion.py [--repeats 3] [--max 1000000]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, table  # noqa: E402

from allocation.core.money import apportion  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(11)
    rows, first = [], None
    n = 10
    while n <= args.max:
        keys = {f"{i:08d}": rng.randint(1, 10**9) for i in range(n)}  # levy bases in cents
        total = 123_456_789_01
        seconds = median_seconds(lambda: apportion(total, keys), args.repeats if n < 10**6 else 1)
        per = seconds / (n * math.log2(n)) * 1e9
        first = first or per
        rows.append([f"{n:,}", f"{seconds * 1000:,.1f}", f"{per:,.1f}", f"{per / first:.2f}"])
        n *= 10
    table(["n", "ms (median)", "ns / (n log2 n)", "ratio to n=10"], rows)


if __name__ == "__main__":
    main()
