"""The hostile and broken input corpus (tests/corpus, index in its README.md): every case fails cleanly.

Expected codes, locations and exit codes were written by hand in build_corpus.py from the defect each file
carries. Each case must: exit with that code, report that code at that location, write no output
workbook, and leave the input byte-for-byte unchanged (SHA-256 recorded when the corpus was built).
"""
from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.problems import column_letter

CORPUS = Path(__file__).resolve().parent / "corpus"
INDEX = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
CASES = INDEX["cases"]


def _run(input_file: Path, rules: Path, output: Path) -> tuple[int, dict]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["run", str(input_file), "--rules", str(rules), "-o", str(output), "--json"])
    return code, json.loads(buffer.getvalue())


def test_corpus_has_at_least_40_distinct_cases():
    assert len(CASES) >= 40
    assert len({c["file"] for c in CASES}) == len(CASES)
    assert len({(c["code"], c["what"]) for c in CASES}) == len(CASES)


def test_readme_indexes_every_case():
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for case in CASES:
        assert f"`{case['file']}`" in readme and f"`{case['code']}`" in readme


def test_the_valid_base_runs(tmp_path):
    code, result = _run(CORPUS / "gueltig.xlsx", CORPUS / "regeln.yaml", tmp_path / "out.xlsx")
    assert code == 0, result
    assert (tmp_path / "out.xlsx").exists()


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_broken_input_is_refused_with_a_located_message(case, tmp_path):
    source = CORPUS / case["file"]
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    assert before == case["sha256"], "corpus file changed since it was built; run build_corpus.py"
    output = tmp_path / "out.xlsx"
    code, result = _run(source, CORPUS / case["rules"], output)
    assert code == case["exit_code"], result
    assert result["status"] == "error"
    matching = [p for p in result["problems"] if p["code"] == case["code"]]
    assert matching, [p["code"] for p in result["problems"]]
    location = matching[0]["location"]
    expected_file = case["rules"] if case["line"] is not None else case["file"]
    assert Path(location["file"]).name == expected_file
    if case["sheet"] is not None:
        assert location["sheet"] == case["sheet"]
    if case["cell"] is not None:
        assert f"{column_letter(location['column'])}{location['row']}" == case["cell"]
    if case["row"] is not None:
        assert location["row"] == case["row"]
    if case["line"] is not None:
        assert location["line"] == case["line"]
    assert matching[0]["message"] and matching[0]["hint"]
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary or partial workbook either
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_formula_with_cached_value_uses_the_cached_value(tmp_path):
    """D2 holds =200000+96000 with Excel's cached 296000; KIM deficit = 296000 − 220000 = 76000.00 €."""
    from allocation.workbook.inputs import read_input

    book = read_input(CORPUS / "ok-formel-mit-wert.xlsx")
    kim = next(i for i in book.items if i.id == "KIM-2022")
    assert kim.components["Personalkosten"] == 296000_00
    assert kim.components["Personalkosten"] - kim.funding == 76000_00


def test_trailing_whitespace_is_stripped_and_accepted():
    from allocation.workbook.inputs import read_input

    book = read_input(CORPUS / "ok-leerzeichen-am-ende.xlsx")
    assert "05170004" in {m.ags for m in book.municipalities}
    assert next(i for i in book.items if i.id == "KIM-2022").category == "KIM"


def test_output_text_starting_with_formula_characters_is_stored_as_text(tmp_path):
    """Excel executes a cell only if it is stored as a formula (<f>); ours must be plain strings."""
    import zipfile

    from allocation.workbook.report import Sheet, write_book

    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0"]

    def build(book) -> None:
        sheet = Sheet(book, "Probe", ["Text"], [None])
        for text in hostile:
            sheet.append([text])
        sheet.finish()

    write_book(tmp_path / "p.xlsx", build)
    xml = zipfile.ZipFile(tmp_path / "p.xlsx").read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in xml and "<f " not in xml
    from openpyxl import load_workbook

    back = load_workbook(tmp_path / "p.xlsx")["Probe"]
    for row, text in enumerate(hostile, start=2):
        cell = back.cell(row=row, column=1)
        assert cell.value == text and cell.data_type == "s" and cell.quotePrefix
