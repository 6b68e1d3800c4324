"""Memory of one district as it grows, up to the largest run allowed (`pipeline.MAX_LINES` Einzelnachweis lines).

Each district is a synthetic one (`allocation.ops.synth`, 400 cost items, more municipalities each step) run
with the real command line (`allocation run`) in a child of a small runner process, which reports the child's
peak RSS, CPU and wall time (`os.wait4`). Baselines in the same run: the Kreis Wesel fixture (the smallest
real run) and the full-size national-batch district (40 × 400 = 16,000 lines). Memory is bounded when it grows
with the lines by a small, steady amount and the largest allowed run stays within the budget (150 MB).

Run: python benchmarks/bench_memory.py [--municipalities 40,160,360,625] [--items 400]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_cli_child, table  # noqa: E402

from allocation.ops import synth  # noqa: E402
from allocation.runs.pipeline import MAX_LINES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _district(folder: Path, municipalities: int, items: int) -> tuple[Path, Path]:
    district = synth._district(1, municipalities, items, 2022, 2022)
    folder.mkdir(parents=True)
    workbook = synth.write_district(district, folder)
    rules = folder / "regeln.yaml"
    rules.write_text(synth.RULES_TEMPLATE.format(district=district.name, year=2022), encoding="utf-8")
    return workbook, rules


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--municipalities", default="40,160,360,625",
                        help="municipalities per district, one run each (625 × 400 = the line limit)")
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--kill-after", type=float, default=300.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.municipalities.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        wesel = run_cli_child(["run", str(ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"),
                               "--rules", str(ROOT / "rules" / "kreis-wesel.yaml"), "-o", str(tmp / "wesel.xlsx")],
                              args.kill_after, tmp)
        rows.append(["Kreis Wesel fixture", 13 * 5, wesel["exit"], f"{wesel['cpu']:.2f}", f"{wesel['wall']:.2f}",
                     f"{wesel['rss']:.0f}", "", ""])
        first = None
        for count in counts:
            workbook, rules = _district(tmp / f"d{count}", count, args.items)
            lines = count * args.items
            if lines > MAX_LINES:
                print(f"{count} × {args.items} = {lines:,} lines: above the limit of {MAX_LINES:,}, skipped")
                continue
            result = run_cli_child(["run", str(workbook), "--rules", str(rules), "-o", str(tmp / f"o{count}.xlsx")],
                                   args.kill_after, tmp)
            if first is None:
                first = (lines, result["rss"])
            slope = "" if lines == first[0] else f"{(result['rss'] - first[1]) / (lines - first[0]) * 10_000:.1f}"
            rows.append([f"synthetic {count} × {args.items}", f"{lines:,}", result["exit"], f"{result['cpu']:.2f}",
                         f"{result['wall']:.2f}", f"{result['rss']:.0f}", f"{result['rss'] / first[1]:.2f}x", slope])
    table(["district", "Einzelnachweis lines", "exit", "CPU s", "wall s", "peak RSS MB",
           "RSS ÷ first synthetic", "MB per 10,000 lines above the first"], rows)
    print(f"\nbudget: the largest allowed run ({MAX_LINES:,} lines) within 150 MB")


if __name__ == "__main__":
    main()
