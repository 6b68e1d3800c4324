"""National batch: `run_batch` over a synthetic country versus the I/O floor measured in the same run.

The floor reads the same input cells with the fastest reader (python-calamine) and writes the same output
cells (every sheet of every district's result workbook) with the fastest writer (xlsxwriter,
constant_memory), on the same process pool: no rules, no allocation. Linearity: the batch at D and 2D
districts of full-size districts (40 municipalities × 400 items). Peak RSS: the largest worker.
Run: python benchmarks/bench_batch.py [--districts 4] [--jobs 2] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

from allocation import synth  # noqa: E402
from allocation.batch import inputs_in, run_batch  # noqa: E402


def _floor_one(input_path: str, result_path: str, target: str) -> int:
    """Read every input cell (calamine), write every cell of the result workbook's sheets (xlsxwriter)."""
    import xlsxwriter
    from python_calamine import CalamineWorkbook

    cells = 0
    book = CalamineWorkbook.from_path(input_path)
    for name in book.sheet_names:
        for row in book.get_sheet_by_name(name).to_python():
            cells += len(row)
    result = CalamineWorkbook.from_path(result_path)  # the cells to write (this small read is counted too)
    sheets = {name: result.get_sheet_by_name(name).to_python() for name in result.sheet_names}
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.write(r, c, value)
                cells += 1
    workbook.close()
    return cells


def floor(inputs: list[Path], results: Path, target: Path, jobs: int) -> float:
    target.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_floor_one, str(p), str(results / f"{p.stem}-ergebnis.xlsx"), str(target / p.name))
                   for p in inputs]
        for future in futures:
            future.result()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="size of each district (1.0 = 40 × 400)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for districts in (args.districts, 2 * args.districts):
            root = Path(folder) / f"d{districts}"
            inputs, rules = synth.write_country(root, scale=args.scale, districts=districts)
            started = time.perf_counter()
            result = run_batch(inputs, root / "out", rules, jobs=args.jobs)
            batch = time.perf_counter() - started
            assert result.exit_code == 0, [r.problems for r in result.results if r.exit_code]
            low = floor(inputs_in(inputs), root / "out", root / "floor", args.jobs)
            rows.append([districts, f"{batch:.1f}", f"{batch / districts:.2f}", f"{low:.1f}", f"{batch / low:.2f}x"])
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    table(["districts", "batch s", "s / district", "I/O floor s", "batch / floor (target ≤ 1.5x)"], rows)
    first, second = float(rows[0][2]), float(rows[1][2])
    print(f"\nlinearity: s/district at 2D ÷ at D = {second / first:.2f} (1.00 = linear)")
    print(f"peak RSS of the largest worker: {rss:.0f} MB (target ≤ 400 MB); jobs = {args.jobs}")
    print(f"extrapolated full country (400 districts): {400 * second / 60:.1f} min")


if __name__ == "__main__":
    main()
