"""The run manifest and `allocation verify`: an untouched run replays identically; a changed input, a
changed rule file and a hand-edited output cell are each detected. Hashes are recomputed in the test with
hashlib; the total is the hand sum of the fixture's deficits."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation import manifest as manifest_module
from allocation.cli import main
from allocation.pipeline import run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022.xlsx"
RULES = ROOT / "rules" / "kreis-wesel.yaml"

# Hand sum of the fixture's deficits (eligible components − funding):
# KIM 296,000 − 220,000 = 76,000; Jugendamt (no Gemeinkosten) 18,450,000 + 6,120,000 − 2,310,000 = 22,260,000;
# ÖPNV 4,250,000 − 1,100,000 = 3,150,000; Schuldnerberatung 412,345.67 + 38,000 − 90,000 = 360,345.67;
# Musikschule 1,200,000 + 150,000 − 350,000 = 1,000,000. Total 26,846,345.67 €.
TOTAL_CENTS = 2_684_634_567


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """A run in its own folder with relative paths, as a controller would start it."""
    shutil.copy(FIXTURE, tmp_path / "eingabe.xlsx")
    shutil.copy(RULES, tmp_path / "regeln.yaml")
    monkeypatch.chdir(tmp_path)
    run("eingabe.xlsx", "regeln.yaml", "ergebnis/ergebnis.xlsx")
    return tmp_path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_writes_a_manifest_next_to_the_workbook(finished_run):
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    data = json.loads((finished_run / "ergebnis" / "ergebnis.xlsx.manifest.json").read_text(encoding="utf-8"))
    assert data["input"]["sha256"] == sha(finished_run / "eingabe.xlsx")
    assert data["rules"][0]["sha256"] == sha(finished_run / "regeln.yaml")
    assert data["output"]["sha256"] == sha(output)
    assert data["tool"]["durable_rules"] == "2.0.28"
    assert data["parameters"]["year"] == 2022 and data["parameters"]["rounding"] == "Cent"
    assert data["total_cents"] == TOTAL_CENTS
    assert sum(m["total"] for m in data["totals_cents"].values()) == TOTAL_CENTS
    assert len(data["totals_cents"]) == 13
    assert [p.name for p in (finished_run / "ergebnis").iterdir() if p.name.endswith(".tmp")] == []


def test_protokoll_carries_the_manifest_data(finished_run):
    data = json.loads((finished_run / "ergebnis" / "ergebnis.xlsx.manifest.json").read_text(encoding="utf-8"))
    sheet = load_workbook(finished_run / "ergebnis" / "ergebnis.xlsx")["Protokoll"]
    rows = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["SHA-256 Eingabe"] == data["input"]["sha256"]
    assert rows["SHA-256 Regeldatei"] == data["rules"][0]["sha256"]
    assert rows["Regeldatei (Pfad wie angegeben)"] == "regeln.yaml"
    voerde = data["totals_cents"]["05170044"]
    assert rows[f"Summe 05170044 {voerde['name']} (Cent)"] == voerde["total"]
    assert "Laufzeitpunkt (UTC)" in rows  # kept: rows are only added


def test_verify_an_untouched_run_is_identical(finished_run, capsys):
    result = manifest_module.verify(finished_run / "ergebnis" / "ergebnis.xlsx")
    assert result.identical, result.text()
    assert main(["verify", str(finished_run / "ergebnis" / "ergebnis.xlsx.manifest.json")]) == 0
    assert "identisch" in capsys.readouterr().out


def test_verify_detects_a_changed_input(finished_run):
    workbook = load_workbook(finished_run / "eingabe.xlsx")
    items = workbook["Kostenpositionen"]
    assert items["A2"].value == "KIM-2022" and items["G2"].value == 220000  # Förderung of KIM
    items["G2"].value = 219000
    workbook.save(finished_run / "eingabe.xlsx")
    result = manifest_module.verify(finished_run / "ergebnis" / "ergebnis.xlsx")
    assert not result.identical
    assert any("Eingabe" in problem for problem in result.file_problems)
    # 1,000 € less funding: the KIM deficit in Entscheidungen grows from 76,000 to 77,000 €.
    deficit = [d for d in result.differences if d.sheet == "Entscheidungen" and d.cell == "I2"]
    assert len(deficit) == 1 and deficit[0].expected == 77000 and deficit[0].found == 76000


def test_verify_detects_a_changed_rule_file(finished_run, capsys):
    rules = finished_run / "regeln.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + "# nachträglich geändert\n", encoding="utf-8")
    result = manifest_module.verify(finished_run / "ergebnis" / "ergebnis.xlsx")
    assert not result.identical
    assert any("Regeldatei" in problem for problem in result.file_problems)
    assert main(["verify", str(finished_run / "ergebnis" / "ergebnis.xlsx")]) == manifest_module.VERIFY_FAILED


def test_verify_names_a_hand_edited_output_cell(finished_run):
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    workbook = load_workbook(output)
    sheet = workbook["Uebersicht"]
    original = sheet["D2"].value
    sheet["D2"].value = original + 100
    workbook.save(output)
    result = manifest_module.verify(output)
    assert not result.identical
    assert [(d.sheet, d.cell, d.expected, d.found) for d in result.differences] == [
        ("Uebersicht", "D2", original, original + 100)]
    assert "Abweichung Uebersicht!D2" in result.text()


def test_comparison_ignores_only_the_run_time(finished_run, tmp_path):
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    copy = tmp_path / "kopie.xlsx"
    workbook = load_workbook(output)
    sheet = workbook["Protokoll"]
    row = next(r for r in range(1, sheet.max_row + 1) if sheet.cell(r, 1).value == "Laufzeitpunkt (UTC)")
    sheet.cell(row, 2).value = "1999-01-01 00:00:00"
    workbook.save(copy)
    assert manifest_module.compare_workbooks(output, copy) == []
    sheet.cell(row - 1, 2).value = "geändert"
    workbook.save(copy)
    assert [d.cell for d in manifest_module.compare_workbooks(output, copy)] == [f"B{row - 1}"]
