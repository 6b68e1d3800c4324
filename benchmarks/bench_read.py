"""Reading the input workbook: openpyxl (the old path) versus python-calamine (the new path), same cells.

Two levels, each min and median of N runs, CPU (process time) beside wall time, in one process:
- reader only: the old reader (openpyxl read_only twice, values and formulas, every row of the four read
  sheets) versus the new one (one calamine workbook, `to_python` of the same sheets);
- `read_input` end to end: the old module (allocation/workbook/inputs.py and safety.py of commit BASE, taken from git
  into a temporary folder) versus today's, i.e. safety scan + reader + every check, from the same bytes.
Inputs: the Kreis Wesel fixture and one full-size synthetic district (`python -m allocation.ops.synth`, 40
municipalities x 400 items at scale 1.0; `--scale` changes it).
Run: python benchmarks/bench_read.py [--repeats 15] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

from allocation.ops import synth  # noqa: E402
from allocation.workbook.inputs import read_input  # noqa: E402
from allocation.workbook.safety import scan_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
BASE = "4877534"  # the last commit that read with openpyxl
SHEETS = ("Parameter", "Gemeinden", "Kostenpositionen", "Schluessel")


def measure(run: Callable[[], object], repeats: int) -> tuple[float, float, float, float]:
    """(min wall, median wall, min CPU, median CPU) in milliseconds."""
    run()  # warm-up: imports and first-call costs are not what is compared
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return (min(walls) * 1e3, statistics.median(walls) * 1e3, min(cpus) * 1e3, statistics.median(cpus) * 1e3)


def openpyxl_cells(data: bytes) -> int:
    import openpyxl

    values = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    formulas = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    cells = 0
    for workbook in (values, formulas):
        for name in SHEETS:
            if name in workbook.sheetnames:
                cells += sum(len(row) for row in workbook[name].iter_rows(values_only=True))
        workbook.close()
    return cells


def calamine_cells(data: bytes) -> int:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    cells = sum(len(row) for name in SHEETS if name in workbook.sheet_names
                for row in workbook.get_sheet_by_name(name).to_python(skip_empty_area=False))
    workbook.close()
    return cells


def old_reader_module(folder: Path):
    """allocation/workbook/inputs.py and safety.py of BASE as module `old_inputs` (None without git history)."""
    try:
        sources = {name: subprocess.run(["git", "show", f"{BASE}:allocation/{name}.py"], cwd=ROOT, check=True,
                                        capture_output=True, text=True).stdout for name in ("inputs", "safety")}
    except (OSError, subprocess.CalledProcessError):
        return None
    safety = sources["safety"].replace("from .problems", "from allocation.core.problems")
    old = sources["inputs"].replace("from .safety", "from old_safety").replace("from .", "from allocation.")
    (folder / "old_safety.py").write_text(safety, encoding="utf-8")
    (folder / "old_inputs.py").write_text(old, encoding="utf-8")
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("old_inputs", folder / "old_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        inputs_dir, _ = synth.write_country(folder / "land", scale=args.scale, districts=1)
        district = sorted(inputs_dir.glob("*.xlsx"))[0]
        old = old_reader_module(folder)
        rows = []
        for label, path in (("Kreis Wesel fixture", FIXTURE), (f"synthetic district (scale {args.scale})", district)):
            data = path.read_bytes()
            book = read_input(path)
            size = f"{len(book.municipalities)} x {len(book.items)}, {len(data) // 1024} KB"
            pairs = [("reader only", lambda: openpyxl_cells(data), lambda: calamine_cells(data))]
            if old is not None:
                pairs.append(("read_input (scan + reader + checks)", lambda: old.read_input(path),
                              lambda: read_input(path)))
            for level, before, after in pairs:
                b, a = measure(before, args.repeats), measure(after, args.repeats)
                rows.append([label, size, level, f"{b[0]:.1f} / {b[1]:.1f}", f"{b[2]:.1f} / {b[3]:.1f}",
                             f"{a[0]:.1f} / {a[1]:.1f}", f"{a[2]:.1f} / {a[3]:.1f}", f"{b[1] / a[1]:.1f}x",
                             f"{b[3] / a[3]:.1f}x"])
            scan = measure(lambda: scan_bytes(data, path.name), args.repeats)
            rows.append([label, size, "of which: safety scan (new)", "", "", f"{scan[0]:.1f} / {scan[1]:.1f}",
                         f"{scan[2]:.1f} / {scan[3]:.1f}", "", ""])
    print(f"{args.repeats} runs each, milliseconds as min / median; ratio = old median / new median")
    table(["input", "size", "what", "openpyxl wall", "openpyxl CPU", "calamine wall", "calamine CPU",
           "ratio wall", "ratio CPU"], rows)


if __name__ == "__main__":
    main()
