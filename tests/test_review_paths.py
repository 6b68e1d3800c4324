"""Follow-ups of the adversarial review (findings 4 and 5, tests/test_adversary_findings.py): every kind of
file that is no output workbook gives `explain` a located problem, output locations that are files give
`notices` and `run` a located refusal, and `verify` sees hidden rows and columns.

Expected exit codes and problem codes are the handbook's (exit 3 `explain-unreadable`, exit 9 `output-unusable`,
exit 7 for a verify difference).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.ops.verify import verify
from workbooks import resigned_copy

ROOT = Path(__file__).resolve().parent.parent
WITH_RATES = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"


def _problems(capsys) -> list[dict]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return json.loads(captured.out)["problems"]


def _not_a_workbook(tmp_path: Path, kind: str) -> Path:
    if kind == "rule file":
        return RULES
    if kind == "dev-null":
        return Path(os.devnull)
    if kind == "folder":
        return tmp_path
    if kind == "fifo":
        path = tmp_path / "ergebnis.xlsx"
        os.mkfifo(path)
        return path
    path = tmp_path / ("notiz.txt" if kind == "text" else "ergebnis.xlsx")
    if kind == "zip without workbook":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hallo.txt", "kein Arbeitsblatt")
    else:
        path.write_text("AGS;Gemeinde\n05170004;Alpen\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["rule file", "dev-null", "folder", "fifo", "text", "text named .xlsx",
                                  "zip without workbook"])
def test_explain_of_anything_but_a_workbook_is_explain_unreadable(tmp_path, capsys, kind):
    path = _not_a_workbook(tmp_path, kind)
    assert main(["explain", str(path), "--item", "KIM-2022"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Interner Fehler" not in err
    assert f"[explain-unreadable] {path}:" in err


def test_notices_into_an_existing_file_is_output_unusable_and_the_file_stays(tmp_path, capsys):
    pytest.importorskip("typst")
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(output)]) == 0
    capsys.readouterr()
    existing = tmp_path / "bescheide"
    existing.write_text("eine Datei, kein Ordner", encoding="utf-8")
    assert main(["notices", str(output), "-o", str(existing), "--json"]) == 9
    assert [(p["code"], p["location"]["file"]) for p in _problems(capsys)] == [("output-unusable", str(existing))]
    assert main(["notices", str(output), "-o", str(existing / "2022"), "--json"]) == 9
    assert [(p["code"], p["found"]) for p in _problems(capsys)] == [("output-unusable", str(existing))]
    assert existing.read_text(encoding="utf-8") == "eine Datei, kein Ordner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bescheide", "ergebnis.xlsx", "ergebnis.xlsx.manifest.json"]


def test_run_into_a_path_below_the_input_file_is_output_unusable(tmp_path, capsys):
    source = tmp_path / "in.xlsx"
    source.write_bytes(WITH_RATES.read_bytes())
    target = source / "x.xlsx"
    assert main(["run", str(source), "--rules", str(RULES), "-o", str(target), "--json"]) == 9
    assert [(p["code"], p["found"]) for p in _problems(capsys)] == [("output-unusable", str(source))]
    assert source.read_bytes() == WITH_RATES.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.xlsx"]


@pytest.fixture
def run_output(tmp_path) -> Path:
    (tmp_path / "lauf").mkdir()
    (tmp_path / "bearbeitet").mkdir()
    output = tmp_path / "lauf" / "ergebnis.xlsx"
    assert main(["run", str(WITH_RATES), "--rules", str(RULES), "-o", str(output)]) == 0
    return output


def _layout_differences(path: Path) -> list[tuple[str, str, object, object]]:
    result = verify(path)
    return [(d.sheet, d.cell, d.expected, d.found) for d in result.differences if d.aspect == "Layout"]


def test_verify_of_an_unchanged_copy_finds_no_layout_difference(run_output):
    # the control for the tests below: the same bytes under the same name elsewhere are identical
    copy = resigned_copy(run_output, run_output.parent.parent / "bearbeitet" / "ergebnis.xlsx",
                        "xl/workbook.xml", "<sheets>", "<sheets>")
    assert verify(copy).identical


def test_verify_reports_a_hidden_sheet_with_its_name(run_output):
    edited = resigned_copy(run_output, run_output.parent.parent / "bearbeitet" / "ergebnis.xlsx", "xl/workbook.xml",
                          '<sheet name="Kontrollen" sheetId="4"', '<sheet name="Kontrollen" state="veryHidden" sheetId="4"')
    assert _layout_differences(edited) == [("Kontrollen", "(Sichtbarkeit)", "visible", "veryHidden")]


def test_verify_reports_a_hidden_row_of_the_uebersicht(run_output, capsys):
    # Uebersicht is the first sheet (sheet1.xml); row 3 is the second municipality
    edited = resigned_copy(run_output, run_output.parent.parent / "bearbeitet" / "ergebnis.xlsx",
                          "xl/worksheets/sheet1.xml", '<row r="3"', '<row r="3" hidden="1"')
    assert _layout_differences(edited) == [("Uebersicht", "(Zeile 3 ausgeblendet)", None, True)]
    capsys.readouterr()
    assert main(["verify", str(edited)]) == 7
    assert "Uebersicht!(Zeile 3 ausgeblendet) (Layout): erwartet leer, gefunden WAHR" in capsys.readouterr().err


def test_verify_reports_a_hidden_column_of_the_uebersicht(run_output):
    # columns C..F share one <col> element: hiding it hides four columns
    edited = resigned_copy(run_output, run_output.parent.parent / "bearbeitet" / "ergebnis.xlsx",
                          "xl/worksheets/sheet1.xml", '<col min="3" max="6" width="18"',
                          '<col min="3" max="6" hidden="1" width="18"')
    assert _layout_differences(edited) == [("Uebersicht", f"(Spalte {c} ausgeblendet)", None, True) for c in "CDEF"]
