"""The Python API (issue 13.3): `allocation.compute` / `allocation.run` and their pandas frames.

The frames are compared with the cells of the written workbook, read back independently with openpyxl; the
grand total is the hand calculation of the Kreis Wesel fixture (tests/test_web.py: 26,846,345.67 €).
"""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

import allocation
from allocation.cli import main
from allocation.core.problems import ExitCode, ProblemsError, RuleFileError
from conftest import FIXTURE, RULES, ROOT

GRAND_CENTS = 2_684_634_567  # KIM 76,000 + JA 22,260,000 + ÖPNV 3,150,000 + SB 360,345.67 + MS 1,000,000 (€)


def _sheet(path: Path, name: str) -> tuple[tuple, list[tuple]]:
    workbook = load_workbook(path, read_only=True, data_only=True)
    rows = list(workbook[name].iter_rows(values_only=True))
    workbook.close()
    return rows[0], rows[1:]


def _same_cell(frame_value: object, cell: object) -> bool:
    """A frame value against the workbook cell: Decimals were written as doubles, empty cells are None."""
    if isinstance(frame_value, Decimal):
        return isinstance(cell, (int, float)) and float(frame_value) == float(cell)
    if frame_value is None:
        return cell in (None, "")
    return frame_value == cell


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output = tmp_path_factory.mktemp("api") / "ergebnis.xlsx"
    return allocation.run(FIXTURE, RULES, output), output


@pytest.mark.parametrize(("attribute", "sheet", "skip_last"), [
    ("summary", "Uebersicht", True),  # the sheet's last row is the totals row
    ("lines", "Einzelnachweis", False),
    ("decisions", "Entscheidungen", False),
    ("controls_frame", "Kontrollen", False),
])
def test_frames_have_the_sheets_columns_and_cells(written, attribute, sheet, skip_last):
    result, output = written
    frame = getattr(result, attribute)
    header, rows = _sheet(output, sheet)
    rows = rows[:-1] if skip_last else rows
    assert list(frame.columns[:len(header)]) == list(header)
    assert all(column.endswith("_cents") for column in frame.columns[len(header):])
    assert len(frame) == len(rows)
    for (_, record), row in zip(frame.iterrows(), rows):
        for column, cell in zip(header, row):
            assert _same_cell(record[column], cell), (sheet, column, record[column], cell)


def test_amounts_are_exact_decimals_with_integer_cents_beside_them(written):
    result, _ = written
    for frame in (result.summary, result.lines, result.decisions):
        cents_columns = [c for c in frame.columns if c.endswith("_cents")]
        assert cents_columns
        for column in cents_columns:
            euros = column.removesuffix("_cents")
            for euro, cents in zip(frame[euros], frame[column]):
                assert type(euro) is Decimal and type(cents) is int
                assert euro == Decimal(cents) / 100
    assert sum(result.summary["Summe_cents"]) == GRAND_CENTS
    assert sum(result.decisions["Defizit (gerundet)_cents"]) == GRAND_CENTS
    assert sum(result.lines["Betrag gerundet_cents"]) == GRAND_CENTS
    assert result.total_cents == GRAND_CENTS and result.district == "Kreis Wesel" and result.year == 2022


def test_compute_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = allocation.compute(FIXTURE, RULES)
    assert result.output is None and list(tmp_path.iterdir()) == []
    assert sum(result.summary["Summe_cents"]) == GRAND_CENTS


def test_warnings_frame_lists_each_problem_with_its_place(tmp_path):
    rules = tmp_path / "kleve.yaml"
    rules.write_text(RULES.read_text(encoding="utf-8").replace("district: Kreis Wesel", "district: Kreis Kleve", 1),
                     encoding="utf-8")
    result = allocation.compute(FIXTURE, rules, ignore_validity="Modellrechnung")
    frame = result.problems
    assert list(frame["code"]) == ["rules-validity-ignored"]
    assert frame["severity"][0] == "warning" and frame["file"][0] == str(rules)


def test_errors_carry_the_same_located_problems_as_the_cli(tmp_path, capsys):
    rules = tmp_path / "kleve.yaml"
    rules.write_text(RULES.read_text(encoding="utf-8").replace("district: Kreis Wesel", "district: Kreis Kleve", 1),
                     encoding="utf-8")
    with pytest.raises(RuleFileError) as raised:
        allocation.compute(FIXTURE, rules)
    assert isinstance(raised.value, allocation.ProblemsError) and raised.value.exit_code == ExitCode.RULES
    assert main(["run", str(FIXTURE), "--rules", str(rules), "-o", str(tmp_path / "x.xlsx"), "--json"]) == 4
    assert [p.as_dict() for p in raised.value.problems] == json.loads(capsys.readouterr().out)["problems"]
    assert issubclass(RuleFileError, ProblemsError)


def _fresh_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_pandas_is_imported_only_when_a_frame_is_built():
    out = _fresh_python(
        "import sys, allocation\n"
        f"r = allocation.compute({str(FIXTURE)!r}, {str(RULES)!r})\n"
        "print('pandas' in sys.modules)\n"
        "r.summary\n"
        "print('pandas' in sys.modules)\n")
    assert out.split() == ["False", "True"]


def _imported_by_cli_run(tmp_path: Path) -> set[str]:
    completed = subprocess.run([sys.executable, "-X", "importtime", "-m", "allocation", "run", str(FIXTURE),
                                "--rules", str(RULES), "-o", str(tmp_path / "out.xlsx")],
                               cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return {line.split("|")[-1].strip().split(".")[0] for line in completed.stderr.splitlines() if "|" in line}


def test_cli_run_does_not_import_pandas(tmp_path):
    assert "pandas" not in _imported_by_cli_run(tmp_path)


def test_cli_run_does_not_import_numpy(tmp_path):
    assert "numpy" not in _imported_by_cli_run(tmp_path)


def test_controls_frame_gives_cents_for_money_controls_only(written):
    result, _ = written
    frame = result.controls_frame
    assert len(frame) == len(result.controls)
    kim = frame[(frame["ID"] == "KIM-2022") & (frame["Kontrolle"] == "Defizit − verteilt = 0")]
    assert list(kim["Soll_cents"]) == [7_600_000]  # KIM: 76,000 € for four posts (the triggering case)
    shares = frame[frame["Kontrolle"].str.startswith("Anteile")]
    assert len(shares) and shares["Soll_cents"].isna().all()  # counts of shares, no euros
    per_item = frame[frame["Kontrolle"] == "Defizit − verteilt = 0"]
    assert sum(per_item["Soll_cents"]) == GRAND_CENTS  # one such control per deficit (hand sum above)
    assert list(result.warnings_frame.columns) == list(result.problems.columns)


def test_levies_frame_is_the_umlagen_sheet_without_its_totals(written):
    result, output = written
    header, rows = _sheet(output, "Umlagen")
    payer_rows = [row for row in rows if row[1] not in (None, "", "Summe")]  # AGS column; totals have none
    frame = result.levies
    assert list(frame.columns[:len(header)]) == list(header)
    assert len(frame) == len(payer_rows)
    for (_, record), row in zip(frame.iterrows(), payer_rows):
        for column, cell in zip(header, row):
            assert _same_cell(record[column], cell), (column, record[column], cell)


def test_levies_frame_of_a_published_case():
    # Landkreis Esslingen 2012 at 39.1 %: the published amounts (tests/test_state_fixtures.py, PUBLISHED)
    result = allocation.compute(ROOT / "fixtures" / "bw-esslingen-2012" / "bw-esslingen-2012.xlsx",
                                ROOT / "rules" / "bw-esslingen-2012.yaml")
    amounts = dict(zip(result.levies["Gemeinde"], result.levies["Betrag_cents"]))
    assert amounts == {"Holzmaden": 66_461_000, "Ohmden": 58_379_400, "Neidlingen": 57_211_500}


@pytest.mark.parametrize("options, word", [({"mode": "Final"}, "mode"), ({"mode": "echt"}, "mode"),
                                            ({"provisional": "ja"}, "provisional"),
                                            ({"ignore_validity": 5}, "ignore_validity")],
                         ids=["Final", "echt", "provisional-text", "reason-not-text"])
def test_run_refuses_what_the_command_line_would_not_accept(tmp_path, options, word):
    """A script's `mode="Final"` must not quietly run a Probelauf: the API takes exactly the command line's
    choices (`test`/`final`, True/False, a reason as text) and writes nothing otherwise."""
    output = tmp_path / "ergebnis.xlsx"
    with pytest.raises(ValueError, match=word):
        allocation.run(FIXTURE, RULES, output, **options)
    assert not output.exists()
