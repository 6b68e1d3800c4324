"""Notices: time per notice for a district of 100 municipalities with 3 levies each, beside a bare Typst compile
of a one-page document measured in the same run (issue 22; goal: at most 2x that floor per notice).

- floor: one `typst.Compiler`, built once, compiling a one-page document (a heading, a paragraph and twelve rows of
  three columns, the notice's font) again and again, each time with other data, as each notice has other data (the
  same data would come back from Typst's memoisation): its number and its twelve amounts. The data reach it the
  way they reach the notices' template, as a JSON file written before each compile (the write is counted); the
  compiler's start is not counted, as the notices' child builds its compiler once too.
- render: `notices.render` of the 100 notices, the way `allocation notices` renders them (one child process, one
  compiler, PDF/A-2b), per notice; the child's start is included and spread over the notices.
- command: `write_notices` as the command runs it (verify's replay of the run, reading the result, rendering,
  Abschlaege.xlsx/.csv, Sollstellung.csv, moving into place), per notice.
- render per page: the render's time over the pages of the PDFs written (for a notice of more than one page).
- the same data every time, for the floor (lines) and for the render (the first notice `count` times): Typst
  lays nothing out again, so what is left is the cost of a compile that is not layout (evaluation, the memo
  checks, the PDF's export, the child's writes): the part of the goal's budget a notice spends before it lays
  out anything that differs (the floor's "same" row is not a floor; the ratios stay against the fastest floor).
The floor is measured three ways: its rows as a Typst table, as lines of boxes (the way the notices' template writes
its tables), and as lines with its number in `sys.inputs` (the way the notices got their data before); the ratios
are against the fastest of them (the strongest baseline). Wall time and CPU time (this process and its children)
are printed.

Run: python benchmarks/bench_notices.py [--repeats 3] [--municipalities 100]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
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
from pypdf import PdfReader  # noqa: E402

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
#let d = json("/.brief-daten.json")
= Umlagebescheid Nr. #d.n
Hiermit setze ich die folgenden Umlagen fest. Die Umlage ist in Abschlägen monatlich zum 15. zu zahlen.
#table(columns: 3, ..d.rows.enumerate().map(((i, a)) => ([#(i + 1)], [15.#(i + 1).2024], [#a])).flatten())
"""

# the same page with its rows as lines of boxes, as the notices' template writes its tables (faster than a table)
FLOOR_LINES = FLOOR.replace(
    "#table(columns: 3, ..d.rows.enumerate().map(((i, a)) => ([#(i + 1)], [15.#(i + 1).2024], [#a])).flatten())",
    "#for (i, a) in d.rows.enumerate() { block(spacing: 0pt, width: 100%, inset: (y: 2.5pt), stroke: (bottom: 0.3pt), "
    "{ box(width: 33%)[#(i + 1)]; box(width: 33%)[15.#(i + 1).2024]; box(width: 33%)[#a] }) }")
assert FLOOR_LINES != FLOOR

# the lines page with its number in sys.inputs and fixed amounts, as the floor was measured before the notices
# read their data from a file
FLOOR_INPUTS = (FLOOR_LINES.replace('#let d = json("/.brief-daten.json")\n', "")
                .replace("#d.n", '#sys.inputs.at("n", default: "0")')
                .replace("#for (i, a) in d.rows.enumerate()", '#for (i, a) in (("1.234,56 €",) * 12).enumerate()'))
assert "sys.inputs" in FLOOR_INPUTS and "json(" not in FLOOR_INPUTS


def floor_data(number: int) -> str:
    """The floor's data for its `number`th compile: twelve amounts of its own, formatted as the notices' are."""
    amounts = [f"{1_234_567 + 1_733 * number + 31 * month:,}".replace(",", ".")
               + f",{(number + month) % 100:02d}\u00a0€" for month in range(12)]
    return json.dumps({"n": str(number), "rows": amounts}, ensure_ascii=False)


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
        for name, source in (("table", FLOOR), ("lines", FLOOR_LINES), ("inputs", FLOOR_INPUTS)):
            folder = scratch / f"floor-{name}"
            folder.mkdir()
            (folder / "floor.typ").write_text(source, encoding="utf-8")
            data_file = folder / ".brief-daten.json"
            compiler = typst.Compiler(str(folder / "floor.typ"), root=str(folder))

            def floor(c=compiler, data_file=data_file, inputs=name == "inputs") -> None:
                for i in range(count):  # each compile has other data, as each notice has
                    if inputs:
                        c.compile(format="pdf", sys_inputs={"n": str(i)})
                    else:
                        data_file.write_text(floor_data(i), encoding="utf-8")
                        c.compile(format="pdf")

            data_file.write_text(floor_data(count), encoding="utf-8")
            compiler.compile(format="pdf")  # warm: fonts loaded, as the notices' child has after its first notice
            floors[name] = [timed(floor) for _ in range(args.repeats)]
            if name == "lines":  # the same data every time: Typst lays nothing out again (export and checks only)
                data_file.write_text(floor_data(0), encoding="utf-8")
                floors["same"] = [timed(lambda c=compiler: [c.compile(format="pdf") for _ in range(count)])
                                  for _ in range(args.repeats)]
        renders, commands, same = [], [], []
        first = notices[0]  # the same notice `count` times: what a notice costs with nothing laid out again
        copies = [(f"{i:03d}_{first[0]}", first[1], first[2]) for i in range(count)]
        for repeat in range(args.repeats):
            folder = scratch / f"render-{repeat}"
            folder.mkdir()
            renders.append(timed(lambda: render(notices, folder)))
            (scratch / f"same-{repeat}").mkdir()
            same.append(timed(lambda: render(copies, scratch / f"same-{repeat}")))
            pages = sum(len(PdfReader(pdf).pages) for pdf in folder.glob("*.pdf"))
            commands.append(timed(lambda: write_notices(output, scratch / f"bescheide-{repeat}",
                                                        notice_date=dt.date(2024, 1, 10))))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def per(values: list[tuple[float, float]]) -> tuple[float, float]:
        return (statistics.median(w for w, _ in values) / count * 1000,
                statistics.median(c for _, c in values) / count * 1000)

    # the ratios are against the faster of the two floors (the stronger baseline)
    floor_wall, floor_cpu = min((per(values) for name, values in floors.items() if name != "same"),
                                key=lambda pair: pair[1])
    rows = []
    for name, values in (("bare Typst compile, one page, table (floor)", floors["table"]),
                         ("bare Typst compile, one page, lines (floor)", floors["lines"]),
                         ("bare Typst compile, one page, sys.inputs (floor)", floors["inputs"]),
                         ("render (child, PDF/A-2b)", renders),
                         ("floor, the same data every time (nothing laid out again)", floors["same"]),
                         ("render, the same notice every time (nothing laid out again)", same),
                         ("allocation notices (verify, render, files)", commands)):
        wall, used = per(values)
        rows.append([name, f"{wall:.1f}", f"{used:.1f}", f"{wall / floor_wall:.2f}x", f"{used / floor_cpu:.2f}x"])
    wall, used = per(renders)
    rows.append([f"render per page ({pages / count:.1f} pages per notice; the floor has 1)",
                 f"{wall * count / pages:.1f}", f"{used * count / pages:.1f}",
                 f"{wall * count / pages / floor_wall:.2f}x", f"{used * count / pages / floor_cpu:.2f}x"])
    print(f"{count} notices × 3 levies, median of {args.repeats} repeats, per notice; ratios against the faster "
          "floor:")
    table(["what", "wall ms", "CPU ms", "wall ratio", "CPU ratio (goal ≤ 2x)"], rows)


if __name__ == "__main__":
    main()
