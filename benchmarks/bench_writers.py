"""Other xlsx writers against xlsxwriter (issue 13: "measure alternatives, keep the fastest that preserves every
cell, format, width and the chart"): pyexcelerate and rustpy-xlsxwriter, on the cells of one full-size district.

The cells are those the product writes: one run of the product is recorded (`bench_batch.record_writes`: every
typed xlsxwriter call with its value and format) and every writer gets the same values, sheet by sheet, before
its clock starts. Each writer is given only what it can do cheaply: values plus one number format per column
(the most common one in that column) and a bold header; no bold totals rows, no quote prefix for text that
starts like a formula, no per-column widths and no chart. So its time is a lower bound of what it would take to
write our workbook; xlsxwriter replays the product's exact calls (per-cell formats included), which is the
floor of `bench_batch.py`. CPU (process time) beside wall time, median of `--repeats`, same process.

The alternatives are optional: `pip install pyexcelerate rustpy-xlsxwriter` (a writer that is missing is
skipped, saying so).

Run: python benchmarks/bench_writers.py [--repeats 5] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import collections
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

import bench_batch  # noqa: E402
from allocation.ops import synth  # noqa: E402


def _sheets(calls_file: Path) -> tuple[list[tuple[str, list[str], list[list[object]], list[str | None]]], dict]:
    """Per sheet: name, header, data rows (values as written), the most common number format of each column."""
    with open(calls_file, "rb") as handle:
        recorded, formats = pickle.load(handle)
    sheets = []
    for name, ops in recorded:
        cells: dict[int, dict[int, object]] = collections.defaultdict(dict)
        column_formats: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        for call, row, col, value, fmt in ops:
            cells[row][col] = "" if call == "write_blank" else value
            if fmt is not None and "num_format" in formats[fmt]:
                column_formats[col][formats[fmt]["num_format"]] += 1
        width = 1 + max(col for row in cells.values() for col in row)
        header = [str(cells[0].get(c, f"Spalte {c + 1}")) for c in range(width)]
        rows = [[cells[r].get(c, "") for c in range(width)] for r in sorted(cells) if r > 0]
        number = [column_formats[c].most_common(1)[0][0] if column_formats[c] else None for c in range(width)]
        sheets.append((name, header, rows, number))
    return sheets, formats


def _pyexcelerate(sheets: list, target: str) -> None:
    from pyexcelerate import Font, Format, Style, Workbook

    workbook = Workbook()
    for name, header, rows, number in sheets:
        data = [header] + [[float(v) if type(v).__name__ == "Decimal" else v for v in row] for row in rows]
        sheet = workbook.new_sheet(name, data=data)
        sheet.set_row_style(1, Style(font=Font(bold=True)))
        for c, fmt in enumerate(number, start=1):
            if fmt:
                sheet.set_col_style(c, Style(format=Format(fmt)))
    workbook.save(target)


def _rustpy(sheets: list, target: str) -> None:
    from rustpy_xlsxwriter import Format, write_worksheets

    entries, column_formats = [], {}
    for name, header, rows, number in sheets:
        keys = [f"{c:03d} {h}"[:200] for c, h in enumerate(header)]  # unique keys, header order kept
        records = [{k: (float(v) if type(v).__name__ == "Decimal" else v) for k, v in zip(keys, row)} for row in rows]
        entries.append((name, records))
        column_formats[name] = {k: Format().set_num_format(f) for k, f in zip(keys, number) if f}
    write_worksheets(entries, target, bold_headers=True, column_formats=column_formats,
                     freeze_panes={"general": {"row": 1, "col": 0}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="size of the district (1.0 = 40 × 400)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        inputs, rules = synth.write_country(root, scale=args.scale, districts=1)
        (path,) = sorted(inputs.glob("*.xlsx"))
        calls_file = root / "calls.pickle"
        cells = bench_batch.record_writes(path, rules, root / "recorded", calls_file)
        sheets, _formats = _sheets(calls_file)
        with open(calls_file, "rb") as handle:
            calls = pickle.load(handle)
        writers = {"xlsxwriter (the product's calls, per-cell formats)":
                   lambda t: bench_batch.replay_writes(*calls, t)}
        for label, module, function in (("pyexcelerate (values + column formats)", "pyexcelerate", _pyexcelerate),
                                        ("rustpy-xlsxwriter (values + column formats)", "rustpy_xlsxwriter", _rustpy)):
            try:
                __import__(module)
            except ImportError:
                print(f"{label}: not installed, skipped (pip install {module.replace('_', '-')})")
                continue
            writers[label] = lambda t, f=function: f(sheets, t)
        results = {}
        for label, write in writers.items():
            cpu, wall = [], []
            for repeat in range(args.repeats):
                target = str(root / f"out-{len(results)}-{repeat}.xlsx")
                c, w = time.process_time(), time.perf_counter()
                write(target)
                cpu.append(time.process_time() - c)
                wall.append(time.perf_counter() - w)
            results[label] = (statistics.median(cpu), statistics.median(wall), Path(target).stat().st_size)
    base_cpu, base_wall, _size = next(iter(results.values()))
    table(["writer", "CPU s (median)", "wall s (median)", "CPU ÷ xlsxwriter", "wall ÷ xlsxwriter", "file KB"],
          [[label, f"{c:.2f}", f"{w:.2f}", f"{c / base_cpu:.2f}x", f"{w / base_wall:.2f}x", f"{size // 1024:,}"]
           for label, (c, w, size) in results.items()])
    print(f"\n{cells:,} cells, {len(sheets)} sheets")


if __name__ == "__main__":
    main()
