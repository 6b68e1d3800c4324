"""The output workbook stays the same while its writer is made faster (issue 13, item 4).

`golden/output-identity.json.gz` was produced from the writer BEFORE the performance work (commit recorded in
the file) by `UPDATE_OUTPUT_IDENTITY=1 pytest tests/test_output_identity.py`; it must never be regenerated to
make a change pass. For each run it holds every cell of every sheet (value, type, number format, bold, fill,
wrap, quote prefix), each sheet's column widths, frozen panes, auto-filter, tab colour, print header/footer,
and the chart's XML. Only the Protokoll's values are left out (run time and paths differ between runs), and
its rows added since by a deliberate extension of the format (`ADDED_PROTOKOLL_ROWS`, issue 21: the state
profile and the level that levies; issue 23: the sum payable), which the golden cannot know; the label `Vorläufig (norm)` names the
state's norm since then and is compared as NW's.

Runs: Kreis Wesel (derived levies), Kreis Wesel with the budget statute's rates (statute levies, Umlagen sheet),
Landkreis Altötting, a provisional run of the corpus workbook, and a small synthetic district (weighted
composite keys, per-item keys, host municipalities and double-burden findings).

The golden file was produced by the implementation: it pins change, not correctness. A figure in it is no proof
that the figure is right; those proofs are the hand calculations and Fraction oracles of the other tests (e.g.
test_levies_run.py, test_rates.py, test_prop_end_to_end.py).
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.ops import synth
from allocation.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "output-identity.json.gz"
WESEL = ROOT / "fixtures" / "kreis-wesel-2022"
RUNS = {
    "kreis-wesel": (WESEL / "kreis-wesel-2022.xlsx", ROOT / "rules" / "kreis-wesel.yaml", []),
    "kreis-wesel-hebesaetze": (WESEL / "kreis-wesel-2022-hebesaetze.xlsx", ROOT / "rules" / "kreis-wesel.yaml", []),
    "altoetting": (ROOT / "fixtures" / "landkreis-altoetting-2023" / "landkreis-altoetting-2023.xlsx",
                   ROOT / "rules" / "landkreis-altoetting.yaml", []),
    "provisional": (Path(__file__).parent / "corpus" / "gueltig.xlsx", Path(__file__).parent / "corpus" / "regeln.yaml",
                    ["--provisional"]),
}


def _cell(cell) -> list:
    fill = cell.fill.fgColor.rgb if cell.fill is not None and cell.fill.fill_type else None
    return [cell.value, cell.data_type, cell.number_format, bool(cell.font.b), fill,
            bool(cell.alignment.wrap_text), bool(cell.quotePrefix)]


def _widths(ws) -> list:
    return sorted([d.min, d.max, d.width] for d in ws.column_dimensions.values() if d.customWidth)


ADDED_PROTOKOLL_ROWS = ("Land (Rechtsprofil)", "Umlageverband", "Summe zu zahlen (€)")
PROVISIONAL_LABEL = "Vorläufig (§ 56 Abs. 1 KrO NRW)"


def describe(path: Path) -> dict:
    """Everything a reader of the workbook sees, as plain JSON values."""
    workbook = load_workbook(path)
    sheets = {}
    for ws in workbook.worksheets:
        rows = [[_cell(c) for c in row] for row in ws.iter_rows()]
        if ws.title == "Protokoll":
            rows = [[[PROVISIONAL_LABEL if str(cells[0][0]).startswith("Vorläufig (") else cells[0][0],
                      *cells[0][1:]], *[[None, *c[1:]] for c in cells[1:]]] for cells in rows
                    if cells[0][0] not in ADDED_PROTOKOLL_ROWS]
        sheets[ws.title] = {"rows": rows, "widths": _widths(ws), "freeze": ws.freeze_panes,
                            "filter": ws.auto_filter.ref, "tab": ws.sheet_properties.tabColor.rgb
                            if ws.sheet_properties.tabColor is not None else None,
                            "header": ws.oddHeader.center.text, "footer": ws.oddFooter.center.text}
    with zipfile.ZipFile(path) as archive:
        charts = {name: archive.read(name).decode("utf-8") for name in sorted(archive.namelist())
                  if name.startswith("xl/charts/") or name.startswith("xl/drawings/drawing")}
    return {"sheets": list(workbook.sheetnames), "detail": sheets, "charts": charts}


def _synthetic(folder: Path) -> tuple[Path, Path, list]:
    district = synth.country(scale=0.1, districts=1).districts[0]  # 4 municipalities × 40 items
    path = synth.write_district(district, folder)
    rules = folder / "rules.yaml"
    rules.write_text(synth.RULES_TEMPLATE.format(district=district.name, year=district.year), encoding="utf-8")
    return path, rules, []


def _runs(folder: Path) -> dict:
    return {**RUNS, "synthetic": _synthetic(folder)}


def _write(name: str, run: tuple, folder: Path) -> dict:
    """Run from the rule file's folder with relative paths: `Regeldatei:Zeile` and so its column width do not
    depend on where the checkout or the temporary folder lies."""
    source, rules, options = run
    output = folder / f"{name}.xlsx"
    with contextlib.chdir(rules.parent):
        assert main(["run", os.path.relpath(source), "--rules", rules.name, "-o", str(output), *options]) == 0
    return describe(output)


@pytest.fixture(scope="module")
def expected() -> dict:
    if os.environ.get("UPDATE_OUTPUT_IDENTITY") == "1":
        return {}
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("name", [*RUNS, "synthetic"])
def test_every_cell_format_width_and_the_chart_are_unchanged(name, expected):
    # tuples become lists; the folders in `Regeldatei:Zeile` (the checkout, the temporary folder) become <root>, <tmp>.
    # The Protokoll's `Arbeitsverzeichnis` widens its column, so the run works in a short folder directly in the
    # session's temporary folder, not in pytest's deeper tmp_path whose length varies with the run's number.
    with tempfile.TemporaryDirectory(prefix="oi-") as short:
        folder = Path(short)
        described = json.loads(json.dumps(_write(name, _runs(folder)[name], folder)).replace(str(folder), "<tmp>")
                               .replace(str(ROOT), "<root>"))
    if os.environ.get("UPDATE_OUTPUT_IDENTITY") == "1":
        _store(name, described)
        return
    want = expected["runs"][name]
    assert described["sheets"] == want["sheets"]
    for title in want["sheets"]:
        got, exp = described["detail"][title], want["detail"][title]
        assert len(got["rows"]) == len(exp["rows"]), title
        for number, (row, row_expected) in enumerate(zip(got["rows"], exp["rows"]), start=1):
            assert row == row_expected, f"{title} row {number}"
        assert {k: v for k, v in got.items() if k != "rows"} == {k: v for k, v in exp.items() if k != "rows"}, title
    assert described["charts"] == want["charts"]


def _store(name: str, described: dict) -> None:
    data = {"runs": {}}
    if GOLDEN.exists():
        with gzip.open(GOLDEN, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    data["produced_by_commit"] = commit
    data["runs"][name] = described
    with gzip.open(GOLDEN, "wt", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False)
