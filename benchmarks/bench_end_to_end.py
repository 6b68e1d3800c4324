"""End to end, one district: `allocation run` on the Kreis Wesel fixture including interpreter start, wall and
CPU time (user + system of the child, `resource.getrusage(RUSAGE_CHILDREN)`), min / median / max over
`--repeats` runs (goal: CPU ≤ 0.35 s), against `python -c pass` measured in the same run; plus the import
time of the CLI's start path (`python -X importtime -c "import allocation.cli"`), largest modules first.

Run: python benchmarks/bench_end_to_end.py [--repeats 10]
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import time
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def measured(command: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """(wall s, CPU s) of each of `repeats` runs of `command` as a child process."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return walls, cpus


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "ergebnis.xlsx")
        run = [python, "-m", "allocation", "run", str(FIXTURE), "--rules", str(RULES), "-o", out]
        subprocess.run(run, check=True, capture_output=True)  # warm the file cache
        rows = []
        results = {}
        for label, command in (("python -c pass", [python, "-c", "pass"]),
                               ("allocation --help", [python, "-m", "allocation", "--help"]),
                               ("allocation run (Kreis Wesel)", run)):
            results[label] = measured(command, args.repeats)
        bare = statistics.median(results["python -c pass"][0])
        for label, (walls, cpus) in results.items():
            rows.append([label, spread(walls), spread(cpus), f"{statistics.median(walls) / bare:.2f}"])
    table(["command", "wall s (min / median / max)", "CPU s (min / median / max)", "median wall ÷ bare python"],
          rows)
    cpu = statistics.median(results["allocation run (Kreis Wesel)"][1])
    print(f"\ngoal: run ≤ 0.35 s CPU (median) -> {'met' if cpu <= 0.35 else 'NOT met'} ({cpu:.3f} s)\n")
    for module in ("allocation.cli", "allocation.runs.pipeline"):
        trace = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                               text=True).stderr
        rows = []
        for line in trace.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match:
                rows.append((int(match.group(2)), len(match.group(3)), match.group(4)))
        top = [r for r in rows if r[1] == 1]  # top-level imports, cumulative
        total = sum(r[0] for r in top)
        heavy = {name for _, _, name in rows} & {"pandas", "openpyxl", "durable", "numpy", "yaml"}
        print(f"import {module}: {total / 1000:.1f} ms cumulative; heavy modules loaded: "
              f"{', '.join(sorted(heavy)) or 'none'}")
        for cumulative, _, name in sorted(top, reverse=True)[:6]:
            print(f"    {cumulative / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
