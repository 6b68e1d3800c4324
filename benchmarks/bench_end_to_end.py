"""End to end, one district: `allocation run` on the Kreis Wesel fixture, wall time including interpreter
start (target < 1.5 s), against `python -c pass` measured in the same run; plus the import time of the
CLI's start path (`python -X importtime -c "import allocation.cli"`), largest modules first.

Run: python benchmarks/bench_end_to_end.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_seconds, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "ergebnis.xlsx")
        run = [python, "-m", "allocation", "run", str(FIXTURE), "--rules", str(RULES), "-o", out]
        subprocess.run(run, check=True, capture_output=True)
        bare = median_seconds(lambda: subprocess.run([python, "-c", "pass"], check=True), args.repeats)
        help_ = median_seconds(lambda: subprocess.run([python, "-m", "allocation", "--help"], check=True,
                                                      capture_output=True), args.repeats)
        full = median_seconds(lambda: subprocess.run(run, check=True, capture_output=True), args.repeats)
    table(["command", "wall s (median)", "ratio to bare python"],
          [["python -c pass", f"{bare:.3f}", "1.00"], ["allocation --help", f"{help_:.3f}", f"{help_ / bare:.2f}"],
           ["allocation run (Kreis Wesel)", f"{full:.3f}", f"{full / bare:.2f}"]])
    print(f"\ntarget: run < 1.5 s -> {'met' if full < 1.5 else 'NOT met'}\n")
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
