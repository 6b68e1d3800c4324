"""National batch: `run_batch` over a synthetic country versus a like-for-like I/O floor measured in the same run.

The floor does only the I/O a district run cannot avoid, through the same calls the product makes:
- it reads the same input workbook with python-calamine (the fastest reader), every cell of every sheet;
- it writes the same output cells with the same typed xlsxwriter calls (`write_string`, `write_number`,
  `write_blank`, `write_boolean`, with the same cell formats, `constant_memory`). The calls are recorded
  from one run of the product per district before any timing (xlsxwriter's worksheet methods wrapped), kept
  in a file and loaded by the floor before its clock starts: no rules, no allocation, no read-back.

Two comparisons, both in the same run:
1. CPU per district, in one process (warm: imports done), the product's `batch.run_one` against the floor,
   `time.process_time` and `time.perf_counter` around each (min and median over the districts);
2. the whole batch on `--jobs` workers against the floor on a pool of the same size, both timed from pool
   start to the last result (wall) and by the CPU of their workers (worker start included); and, stricter,
   against the floor's timed work alone spread perfectly over the workers (no pool start, no imbalance).
Peak RSS: the largest process of `allocation batch` run as a command (parent and workers; `os.wait4` of a
small runner). Linearity: D and 2D districts.

Run: python benchmarks/bench_batch.py [--districts 4] [--jobs 2] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import os
import pickle
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_cli_child, table  # noqa: E402

from allocation.ops import synth  # noqa: E402
from allocation.ops.batch import inputs_in, run_batch, run_one  # noqa: E402

_CELL_CALLS = ("write_string", "write_number", "write_blank", "write_boolean")


def record_writes(input_path: Path, rules: Path, target: Path, calls_file: Path) -> int:
    """Run the product once and record every typed cell write (sheet, call, row, col, value, format)."""
    import xlsxwriter.workbook
    import xlsxwriter.worksheet

    sheets: list[tuple[str, list[tuple]]] = []
    formats: dict[int, dict] = {}
    current: dict[int, list[tuple]] = {}
    originals = {name: getattr(xlsxwriter.worksheet.Worksheet, name) for name in _CELL_CALLS}
    add_worksheet = xlsxwriter.workbook.Workbook.add_worksheet
    add_format = xlsxwriter.workbook.Workbook.add_format

    def recording(name):
        original = originals[name]

        def call(self, row, col, *args):
            fmt = args[-1] if args and args[-1] is not None and not isinstance(args[-1], (str, int, float, bool)) \
                else None
            value = args[0] if name != "write_blank" else None
            current[id(self)].append((name, row, col, value, id(fmt) if fmt is not None else None))
            return original(self, row, col, *args)
        return call

    def recording_sheet(self, name=None):
        sheet = add_worksheet(self, name)
        current[id(sheet)] = []
        sheets.append((sheet.name, current[id(sheet)]))
        return sheet

    def recording_format(self, properties=None):
        fmt = add_format(self, properties)
        formats[id(fmt)] = dict(properties or {})
        return fmt

    try:
        for name in _CELL_CALLS:
            setattr(xlsxwriter.worksheet.Worksheet, name, recording(name))
        xlsxwriter.workbook.Workbook.add_worksheet = recording_sheet
        xlsxwriter.workbook.Workbook.add_format = recording_format
        result = run_one(str(input_path), str(rules), rules.is_dir(), str(target))
        assert result.exit_code == 0, result.problems
    finally:
        for name, original in originals.items():
            setattr(xlsxwriter.worksheet.Worksheet, name, original)
        xlsxwriter.workbook.Workbook.add_worksheet = add_worksheet
        xlsxwriter.workbook.Workbook.add_format = add_format
    with open(calls_file, "wb") as handle:
        pickle.dump((sheets, formats), handle, protocol=pickle.HIGHEST_PROTOCOL)
    return sum(len(ops) for _, ops in sheets)


def replay_writes(sheets: list, formats: dict, target: str) -> None:
    """Write the recorded cells to `target` with the same typed xlsxwriter calls and cell formats the product
    used (`constant_memory`, nothing interpreted): the writing half of the floor."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_formulas": False,
                                            "strings_to_numbers": False, "strings_to_urls": False})
    used = {fmt for _, ops in sheets for *_, fmt in ops if fmt is not None}
    made = {key: workbook.add_format(formats[key]) for key in used}  # the product's own cell formats
    for name, ops in sheets:
        sheet = workbook.add_worksheet(name)
        calls = {call: getattr(sheet, call) for call in _CELL_CALLS}
        for call, row, col, value, fmt in ops:
            calls[call](row, col, None if call == "write_blank" else value, made.get(fmt))
    workbook.close()


def floor_one(input_path: str, calls_file: str, target: str) -> tuple[float, float]:
    """(CPU s, wall s) of reading every input cell (calamine) and replaying the recorded typed writes."""
    import xlsxwriter  # noqa: F401 - imported before the clock, like the product's warm process
    from python_calamine import CalamineWorkbook

    with open(calls_file, "rb") as handle:
        sheets, formats = pickle.load(handle)  # before the clock: the floor gets its cells for free
    cpu, wall = time.process_time(), time.perf_counter()
    book = CalamineWorkbook.from_path(input_path)
    for name in book.sheet_names:
        book.get_sheet_by_name(name).to_python()
    replay_writes(sheets, formats, target)
    return time.process_time() - cpu, time.perf_counter() - wall


def product_one(input_path: str, rules: str, target: str) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_one(input_path, rules, Path(rules).is_dir(), target)
    assert result.exit_code == 0, result.problems
    return time.process_time() - cpu, time.perf_counter() - wall


def _timed_floor(args: tuple[str, str, str]) -> tuple[float, float]:
    return floor_one(*args)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--districts", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="size of each district (1.0 = 40 × 400)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cpu_rows, wall_rows = [], []
    rss = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for districts in (args.districts, 2 * args.districts):
            root = Path(folder) / f"d{districts}"
            inputs, rules = synth.write_country(root, scale=args.scale, districts=districts)
            paths = inputs_in(inputs)
            calls = root / "calls"
            calls.mkdir()
            cells = [record_writes(p, rules, root / "recorded", calls / f"{p.stem}.pickle") for p in paths]
            # 1. CPU per district in this process, product and floor alternating (same machine state)
            product_cpu, floor_cpu, product_wall, floor_wall = [], [], [], []
            for p in paths:
                c, w = product_one(str(p), str(rules), str(root / "single"))
                product_cpu.append(c), product_wall.append(w)
                c, w = floor_one(str(p), str(calls / f"{p.stem}.pickle"), str(root / "single-floor.xlsx"))
                floor_cpu.append(c), floor_wall.append(w)
            cpu_rows.append([districts, f"{statistics.mean(cells):,.0f}",
                             f"{min(product_cpu):.2f} / {statistics.median(product_cpu):.2f}",
                             f"{min(floor_cpu):.2f} / {statistics.median(floor_cpu):.2f}",
                             f"{statistics.median(product_cpu) / statistics.median(floor_cpu):.2f}x",
                             f"{min(product_cpu) / min(floor_cpu):.2f}x",
                             f"{statistics.median(product_wall) / statistics.median(floor_wall):.2f}x"])
            # 2. the batch on a pool (wall) against the floor's timed work on a pool of the same size
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            result = run_batch(inputs, root / "out", rules, jobs=args.jobs)
            batch = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # Peak RSS: the command line's batch in a child of a small runner (the workers of the pool above
            # were forked from this process and would count its memory as theirs)
            measured = run_cli_child(["batch", str(inputs), "--rules", str(rules), "-o", str(root / "cli-out"),
                                      "--jobs", str(args.jobs)], 600.0, root)
            assert measured["exit"] == 0, measured
            rss = max(rss, measured["rss"])
            assert result.exit_code == 0, [r.problems for r in result.results if r.exit_code]
            (root / "floor").mkdir()
            # the floor on a pool of the same size, timed the same way: pool start to last result, and the
            # CPU of its workers (getrusage of the children, worker start included, as for the batch)
            floor_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            floor_started = time.perf_counter()
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                floors = list(pool.map(_timed_floor, [(str(p), str(calls / f"{p.stem}.pickle"),
                                                        str(root / "floor" / p.name)) for p in paths]))
            floor_pool_wall = time.perf_counter() - floor_started
            floor_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            floor_pool_cpu = (floor_after.ru_utime + floor_after.ru_stime) - (floor_before.ru_utime
                                                                              + floor_before.ru_stime)
            ideal_wall = sum(w for _, w in floors) / args.jobs  # the floor's timed work only, evenly spread
            batch_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            wall_rows.append([districts, f"{batch:.1f}", f"{batch / districts:.2f}", f"{floor_pool_wall:.1f}",
                              f"{batch / floor_pool_wall:.2f}x", f"{batch_cpu:.1f}", f"{floor_pool_cpu:.1f}",
                              f"{batch_cpu / floor_pool_cpu:.2f}x", f"{ideal_wall:.1f}",
                              f"{batch / ideal_wall:.2f}x"])
    print("CPU per district, one process (min / median s):")
    table(["districts", "cells written", "product CPU s", "floor CPU s", "product / floor CPU (target ≤ 1.3x)",
           "min ÷ min CPU (least disturbed runs)", "product / floor wall"], cpu_rows)
    print(f"\nbatch on {args.jobs} workers:")
    table(["districts", "batch wall s", "s / district", "floor pool wall s", "batch / floor wall",
           "batch CPU s (workers)", "floor CPU s (workers)", "batch / floor CPU (target ≤ 1.3x)",
           "floor timed work / jobs s", "batch / that (no pool start, perfect spread)"], wall_rows)
    first, second = float(wall_rows[0][2]), float(wall_rows[1][2])
    print(f"\nlinearity: s/district at 2D ÷ at D = {second / first:.2f} (1.00 = linear)")
    print(f"peak RSS of the largest process of `allocation batch` (its pool included): {rss:.0f} MB "
          "(target ≤ 150 MB)")


if __name__ == "__main__":
    main()
