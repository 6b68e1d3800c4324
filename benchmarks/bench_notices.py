"""Notices: time per notice for a district of 100 municipalities with 3 levies each, beside a bare Typst compile
of a one-page document measured in the same run (issue 22; goal: at most 2x that floor per notice).

- floor: one `typst.Compiler`, built once, compiling a one-page document (a heading, a paragraph and a table of
  twelve rows, the notice's fonts) again and again, each time with another input (as each notice has other data;
  the same input would come back from Typst's memoisation); the time per compile (the compiler's start is not
  counted, as the notices' child builds its compiler once too).
- render: `notices.render` of the 100 notices, the way `allocation notices` renders them (one child process, one
  compiler, PDF/A-2b), per notice; the child's start is included and spread over the notices.
- command: `write_notices` as the command runs it (verify's replay of the run, reading the result, rendering,
  Abschlaege.xlsx/.csv, Sollstellung.csv, moving into place), per notice.
The floor is measured twice: its twelve rows as a Typst table, and as lines of boxes, the way the notices' template
writes its tables since that was found faster; the ratios are against the faster of the two (the stronger baseline).
Wall time and CPU time (this process and its children) are printed.

Run: python benchmarks/bench_notices.py [--repeats 3] [--municipalities 100]
"""
from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402

from openpyxl import Workbook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LEVIES = ("kreisumlage", "jugendamtsumlage", "schulumlage")

RULES = """\
district: Benchkreis
state: NW
valid_from: 2024
valid_to: 2024
levies:
  - {id: kreisumlage, name: Kreisumlage, legal_basis: "§ 56 Abs. 1 KrO NRW", base: {Steuerkraftmesszahl: 100, Schluesselzuweisungen: 100}}
  - {id: jugendamtsumlage, name: Jugendamtsumlage, legal_basis: "§ 56 Abs. 5 KrO NRW", base: {Steuerkraftmesszahl: 100, Schluesselzuweisungen: 100}}
  - {id: schulumlage, name: Schulumlage, legal_basis: "Beispiel", base: {Steuerkraftmesszahl: 100, Schluesselzuweisungen: 100}}
instalments: {schedule: monthly, day: 15}
notices:
  issuer: Der Landrat
  letterhead:
    authority: Benchkreis
    address: ["Kreishaus", "12345 Benchstadt"]
    signatory: {name: "N. N.", title: "Kämmerei"}
    court: {name: "Verwaltungsgericht", address: "Gerichtsstraße 1, 12345 Benchstadt"}
    remedy: klage
"""

FLOOR = """\
#set page(paper: "a4", margin: 25mm)
#set text(lang: "de", font: "Libertinus Serif", size: 10.5pt)
= Umlagebescheid Nr. #sys.inputs.at("n", default: "0")
Hiermit setze ich die folgenden Umlagen fest. Die Umlage ist in Abschlägen monatlich zum 15. zu zahlen.
#table(columns: 3, ..range(12).map(i => ([#(i + 1)], [15.#(i + 1).2024], [1.234,56 €])).flatten())
"""

# the same page with its table as lines of boxes, as the notices' template writes its tables (faster than a Typst
# table): the stronger floor, against which the ratios are taken
FLOOR_LINES = FLOOR.replace(
    "#table(columns: 3, ..range(12).map(i => ([#(i + 1)], [15.#(i + 1).2024], [1.234,56 €])).flatten())",
    "#for i in range(12) { block(spacing: 0pt, width: 100%, inset: (y: 2.5pt), stroke: (bottom: 0.3pt), "
    "{ box(width: 33%)[#(i + 1)]; box(width: 33%)[15.#(i + 1).2024]; box(width: 33%)[1.234,56 €] }) }")
assert FLOOR_LINES != FLOOR


def workbook(path: Path, count: int) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "Parameter"
    for row in (["Parameter", "Wert"], ["Kreis", "Benchkreis"], ["Haushaltsjahr", 2024]):
        sheet.append(row)
    members = book.create_sheet("Gemeinden")
    members.append(["AGS", "Gemeinde", "Steuerkraftmesszahl", "Schluesselzuweisungen"])
    for i in range(count):
        members.append([f"05999{i:03d}", f"Gemeinde {i:03d}", 10_000_000 + 12_345 * i, 1_000_000 + 321 * i])
    rates = book.create_sheet("Umlagesaetze")
    rates.append(["Umlage", "Bestandteil", "Satz"])
    for levy, rate in zip(LEVIES, (35.5, 12.25, 4.75)):
        rates.append([levy, None, rate])
    book.save(path)
    return path


def cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[float, float]:
    wall, used = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - wall, cpu() - used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--municipalities", type=int, default=100)
    args = parser.parse_args()
    import typst

    from allocation.cli import main as cli
    from allocation.ops.notices import build_notices, read_result, render, write_notices
    from allocation.rulefiles.rulebook import load_notice_settings

    scratch = Path(tempfile.mkdtemp(prefix="bench-notices-"))
    try:
        rules = scratch / "benchkreis.yaml"
        rules.write_text(RULES, encoding="utf-8")
        output = scratch / "ergebnis.xlsx"
        assert cli(["run", str(workbook(scratch / "eingabe.xlsx", args.municipalities)), "--rules", str(rules),
                    "-o", str(output)]) == 0
        count = args.municipalities
        notices = build_notices(read_result(output), load_notice_settings(rules), dt.date(2024, 1, 10))
        assert len(notices) == count and all(len(data["levies"]) == 3 for _, data, _ in notices)

        floors = {}
        for name, source in (("table", FLOOR), ("lines", FLOOR_LINES)):
            floor_file = scratch / f"floor-{name}.typ"
            floor_file.write_text(source, encoding="utf-8")
            compiler = typst.Compiler(str(floor_file))
            compiler.compile(format="pdf")  # warm: fonts loaded, as the notices' child has after its first notice
            # each compile has other data (as each notice has): Typst's memoisation cannot hand back the last PDF
            floors[name] = [timed(lambda c=compiler: [c.compile(format="pdf", sys_inputs={"n": str(i)})
                                                      for i in range(count)]) for _ in range(args.repeats)]
        renders, commands = [], []
        for repeat in range(args.repeats):
            folder = scratch / f"render-{repeat}"
            folder.mkdir()
            renders.append(timed(lambda: render(notices, folder)))
            commands.append(timed(lambda: write_notices(output, scratch / f"bescheide-{repeat}",
                                                        notice_date=dt.date(2024, 1, 10))))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def per(values: list[tuple[float, float]]) -> tuple[float, float]:
        return (statistics.median(w for w, _ in values) / count * 1000,
                statistics.median(c for _, c in values) / count * 1000)

    # the ratios are against the faster of the two floors (the stronger baseline)
    floor_wall, floor_cpu = min((per(values) for values in floors.values()), key=lambda pair: pair[1])
    rows = []
    for name, values in (("bare Typst compile, one page, table (floor)", floors["table"]),
                         ("bare Typst compile, one page, lines (floor)", floors["lines"]),
                         ("render (child, PDF/A-2b)", renders),
                         ("allocation notices (verify, render, files)", commands)):
        wall, used = per(values)
        rows.append([name, f"{wall:.1f}", f"{used:.1f}", f"{wall / floor_wall:.2f}x", f"{used / floor_cpu:.2f}x"])
    print(f"{count} notices × 3 levies, median of {args.repeats} repeats, per notice; ratios against the faster "
          "floor:")
    table(["what", "wall ms", "CPU ms", "wall ratio", "CPU ratio (goal ≤ 2x)"], rows)


if __name__ == "__main__":
    main()
