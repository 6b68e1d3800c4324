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
import shutil
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


def measured(command: list[str], repeats: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """(wall s, CPU s) of each of `repeats` runs of `command` as a child process."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
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
        # Two ways Python starts: with the package's compiled modules cached (as after `pip install`, or any
        # second start where __pycache__ may be written; kept in a folder of this run, not in the source
        # tree), and compiling the package on every start (an editable install with
        # PYTHONDONTWRITEBYTECODE=1, as on some containers and CI machines: a copy of the package without
        # __pycache__ first on the path; the standard library and site-packages keep their compiled files).
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = os.path.join(folder, "pycache")
        source = Path(folder) / "source"
        shutil.copytree(ROOT / "allocation", source / "allocation", ignore=shutil.ignore_patterns("__pycache__"))
        uncached = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        uncached.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(source))
        rows = []
        results = {}
        for mode, env in (("bytecode cached", cached), ("package compiled at every start", uncached)):
            subprocess.run(run, check=True, capture_output=True, env=env)  # warm the file and bytecode caches
            for label, command in (("python -c pass", [python, "-c", "pass"]),
                                   ("allocation --help", [python, "-m", "allocation", "--help"]),
                                   ("allocation run (Kreis Wesel)", run)):
                results[mode, label] = measured(command, args.repeats, env)
            bare = statistics.median(results[mode, "python -c pass"][0])
            for label in ("python -c pass", "allocation --help", "allocation run (Kreis Wesel)"):
                walls, cpus = results[mode, label]
                rows.append([mode, label, spread(walls), spread(cpus), f"{statistics.median(walls) / bare:.2f}"])
    table(["Python start", "command", "wall s (min / median / max)", "CPU s (min / median / max)",
           "median wall ÷ bare python"], rows)
    for mode in ("bytecode cached", "package compiled at every start"):
        cpu = statistics.median(results[mode, "allocation run (Kreis Wesel)"][1])
        print(f"\ngoal: run ≤ 0.35 s CPU (median), {mode} -> {'met' if cpu <= 0.35 else 'NOT met'} ({cpu:.3f} s)")
    print()
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
