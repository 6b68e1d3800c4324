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

from allocation.ops import verify as manifest_module
from allocation.cli import main
from allocation.runs.pipeline import run

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


def test_comparison_ignores_nothing_not_even_the_run_time(finished_run, tmp_path):
    # the replay is made at the recorded time, so the run time in the Protokoll is compared like every cell (it
    # used to be left out; a forged time now shows)
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    copy = tmp_path / "kopie.xlsx"
    workbook = load_workbook(output)
    sheet = workbook["Protokoll"]
    row = next(r for r in range(1, sheet.max_row + 1) if sheet.cell(r, 1).value == "Laufzeitpunkt (UTC)")
    recorded = sheet.cell(row, 2).value
    sheet.cell(row, 2).value = "1999-01-01 00:00:00"
    workbook.save(copy)
    assert [(d.cell, d.expected, d.found) for d in manifest_module.compare_workbooks(output, copy)] == [
        (f"B{row}", recorded, "1999-01-01 00:00:00")]
    result = manifest_module.verify(output)
    assert result.identical, result.text()  # the run itself replays to every byte


# ------------------------------------------------------------------ every manifest field is recomputed


def _manifest_file(run_folder: Path) -> Path:
    return run_folder / "ergebnis" / "ergebnis.xlsx.manifest.json"


def _edit_manifest(run_folder: Path, change) -> dict:
    """Apply `change` to the recorded manifest and seal it again, as a deliberate forger would (an edit left
    unsealed is `manifest-changed`, test_an_edited_manifest_breaks_its_seal); returns the manifest as it was."""
    from allocation.runs.manifest import sealed

    path = _manifest_file(run_folder)
    original = json.loads(path.read_text(encoding="utf-8"))
    edited = json.loads(path.read_text(encoding="utf-8"))
    change(edited)
    path.write_text(json.dumps(sealed(edited), ensure_ascii=False, indent=2), encoding="utf-8")
    return original


def test_an_edited_manifest_breaks_its_seal(finished_run, capsys):
    path = _manifest_file(finished_run)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["format"] == "allocation-manifest/2" and len(manifest["seal"]) == 64
    manifest["totals_cents"]["05170044"]["total"] += 100  # the raised total, the seal left as it was
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    _assert_malformed(finished_run, capsys, "manifest-changed", "Siegel")


def _set(path: str, value):
    def change(manifest: dict) -> None:
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return change


@pytest.mark.parametrize("key, value", [
    ("totals_cents.05170044.total", "raised"),  # the case: a raised total still said "identisch"
    ("totals_cents.05170044.district_levy", "raised"),
    ("total_cents", "raised"),
    ("parameters.district", "Kreis Kleve"),
    ("parameters.year", 2023),
    ("parameters.rounding", "Euro"),
    ("parameters.rate_decimals", 4),
    ("parameters.hit_policy", "priority"),
    ("rules.0.valid_to", 2030),
    ("rules.0.district", "Kreis Kleve"),
    ("tool.allocation", "0.0.9"),
    ("tool.durable_rules", "2.0.27"),
])
def test_verify_recomputes_every_manifest_field(finished_run, capsys, key, value):
    flat_key = key.replace(".0.", "[0].")
    recorded = json.loads(_manifest_file(finished_run).read_text(encoding="utf-8"))
    node = recorded
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    original_value = node
    new_value = original_value + 100 if value == "raised" else value
    _edit_manifest(finished_run, _set(key, new_value))
    result = manifest_module.verify(finished_run / "ergebnis" / "ergebnis.xlsx")
    assert not result.identical
    assert [(d.key, d.recorded, d.recomputed) for d in result.field_differences] == [
        (flat_key, new_value, original_value)]
    assert result.differences == () and result.file_problems == ()
    assert main(["verify", str(finished_run / "ergebnis" / "ergebnis.xlsx")]) == manifest_module.VERIFY_FAILED
    assert f"Abweichung Manifest {flat_key}" in capsys.readouterr().err


def test_a_python_version_that_disagrees_with_the_protokoll_is_a_difference(finished_run):
    # the replay shows the recorded Python version (a run under another release verifies identical with a note:
    # test_readback_adversary.py); a manifest whose version its own Protokoll does not show was edited
    import platform

    _edit_manifest(finished_run, _set("tool.python", "3.11.0"))
    result = manifest_module.verify(finished_run / "ergebnis" / "ergebnis.xlsx")
    assert [(d.sheet, d.expected, d.found) for d in result.differences] == [
        ("Protokoll", "3.11.0", platform.python_version())]
    assert any("tool.python" in note and "3.11.0" in note for note in result.notes)


def test_time_places_output_hash_and_register_entry_are_the_only_uncompared_fields():
    # rates_from (--rates-from, statutory levies) records a previous year's workbook like bases_from does; a final
    # run's register entry is checked against the register instead (test_register_readback.py); upward (--upward,
    # the level above's output) likewise: its absolute path is where it lay, its SHA-256 is compared
    assert set(manifest_module.UNCOMPARED_FIELDS) == {
        "started_utc", "working_directory", "input.absolute", "rules[].absolute", "bases_from.absolute",
        "rates_from.absolute", "upward.absolute", "output.path", "output.sha256", "tool.python", "format", "seal", "register.file",
        "register.seq",
        "register.sha256", "register.prev_sha256", "register.chain", "register.head"}


# ------------------------------------------------------------------ number formats and layout


def test_verify_names_a_changed_number_format(finished_run):
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    workbook = load_workbook(output)
    cell = workbook["Uebersicht"]["C2"]
    assert cell.number_format == '#,##0.00 "€"'
    value = cell.value
    cell.number_format = "0.00"  # same value, shown without thousands separator and currency
    workbook.save(output)
    result = manifest_module.verify(output)
    assert not result.identical
    assert [(d.sheet, d.cell, d.aspect, d.expected, d.found) for d in result.differences] == [
        ("Uebersicht", "C2", "Zahlenformat", '#,##0.00 "€"', "0.00")]
    assert workbook["Uebersicht"]["C2"].value == value


def test_compare_names_sheet_order_column_width_frozen_pane_and_filter(finished_run, tmp_path):
    output = finished_run / "ergebnis" / "ergebnis.xlsx"
    workbook = load_workbook(output)
    sheet = workbook["Kontrollen"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    width = sheet.column_dimensions["A"].width
    sheet.column_dimensions["A"].width = width + 10
    sheet.freeze_panes = None
    sheet.auto_filter.ref = None
    workbook.move_sheet("Hebesaetze", offset=-6)  # last sheet to the front
    workbook.save(tmp_path / "umgebaut.xlsx")
    found = {(d.sheet, d.cell, d.aspect) for d in manifest_module.compare_workbooks(output, tmp_path / "umgebaut.xlsx")}
    assert found == {("(Arbeitsmappe)", "(Blattreihenfolge)", "Layout"),
                     ("Kontrollen", "(Spaltenbreite A)", "Layout"),
                     ("Kontrollen", "(Fixierung)", "Layout"),
                     ("Kontrollen", "(Autofilter)", "Layout")}


# ------------------------------------------------------------------ malformed manifests


def _delete(path: str):
    def change(manifest: dict) -> None:
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        del node[last]
    return change


MALFORMED_TEXT = [
    ("{ kaputt", "manifest-not-json", "1"),
    ("", "manifest-not-json", "1"),
    ("[]", "manifest-bad-type", "oberste Ebene"),
]
MALFORMED_EDITS = [
    (_delete("output.sha256"), "manifest-missing-key", '"output.sha256"'),
    (_delete("parameters"), "manifest-missing-key", '"parameters"'),
    (_set("parameters.year", "2022"), "manifest-bad-type", '"parameters.year"'),
    (_set("parameters.year", True), "manifest-bad-type", '"parameters.year"'),
    (_set("rules", []), "manifest-bad-type", '"rules"'),
    (_set("rules.0.sha256", "xyz"), "manifest-bad-type", '"rules[0].sha256"'),
    (_set("totals_cents.05170044.total", 1.5), "manifest-bad-type", '"totals_cents.05170044.total"'),
    (_set("input", None), "manifest-bad-type", '"input"'),
    (_set("format", "allocation-manifest/9"), "manifest-bad-value", '"format"'),
]


@pytest.mark.parametrize("text, code, where", MALFORMED_TEXT)
def test_a_manifest_that_is_not_json_is_a_located_problem(finished_run, capsys, text, code, where):
    _manifest_file(finished_run).write_text(text, encoding="utf-8")
    _assert_malformed(finished_run, capsys, code, where)


@pytest.mark.parametrize("change, code, where", MALFORMED_EDITS)
def test_a_manifest_with_a_missing_or_mistyped_key_names_the_key(finished_run, capsys, change, code, where):
    _edit_manifest(finished_run, change)
    _assert_malformed(finished_run, capsys, code, where)


def test_a_manifest_that_is_not_utf8_is_a_located_problem(finished_run, capsys):
    _manifest_file(finished_run).write_bytes(b"\xff\xfe\x00{")
    _assert_malformed(finished_run, capsys, "manifest-unreadable", "")


def _assert_malformed(run_folder: Path, capsys, code: str, where: str) -> None:
    capsys.readouterr()
    result = manifest_module.verify(run_folder / "ergebnis" / "ergebnis.xlsx")
    assert not result.identical
    assert [p.code for p in result.problems] == [code]
    problem = result.problems[0]
    assert problem.location.file == str(_manifest_file(run_folder))
    assert where in (str(problem.location) + problem.message)
    assert main(["verify", str(run_folder / "ergebnis" / "ergebnis.xlsx")]) == manifest_module.VERIFY_FAILED
    err = capsys.readouterr().err
    assert f"[{code}]" in err and "Traceback" not in err and "Interner Fehler" not in err
    assert main(["verify", str(run_folder / "ergebnis" / "ergebnis.xlsx"), "--json"]) == manifest_module.VERIFY_FAILED
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "malformed" and report["problems"][0]["code"] == code


def test_a_manifest_cut_anywhere_is_a_located_problem(finished_run):
    """Fuzz: the manifest truncated at many places (a copy interrupted by a full disk)."""
    path = _manifest_file(finished_run)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    for cut in sorted({0, 1, 2, len(text) // 3, len(text) // 2, len(text) - 3, len(text) - 2, *range(7, len(text), 97)}):
        path.write_text(text[:cut], encoding="utf-8")
        result = manifest_module.verify(path)
        assert [p.code for p in result.problems] == ["manifest-not-json"], cut
        assert result.problems[0].location.line is not None


# ------------------------------------------------------------------ end to end, as an auditor runs it


def test_verify_on_the_fixture_end_to_end_as_a_command(tmp_path):
    import subprocess
    import sys

    shutil.copy(FIXTURE, tmp_path / "eingabe.xlsx")
    shutil.copy(RULES, tmp_path / "regeln.yaml")
    command = [sys.executable, "-m", "allocation"]
    ran = subprocess.run([*command, "run", "eingabe.xlsx", "--rules", "regeln.yaml", "-o", "ergebnis.xlsx"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    checked = subprocess.run([*command, "verify", "ergebnis.xlsx"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "identisch" in checked.stdout
    from allocation.runs.manifest import sealed

    manifest = json.loads((tmp_path / "ergebnis.xlsx.manifest.json").read_text(encoding="utf-8"))
    manifest["total_cents"] += 1
    (tmp_path / "ergebnis.xlsx.manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    checked = subprocess.run([*command, "verify", "ergebnis.xlsx"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 7 and "[manifest-changed]" in checked.stderr  # the seal no longer fits
    (tmp_path / "ergebnis.xlsx.manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")
    checked = subprocess.run([*command, "verify", "ergebnis.xlsx"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 7  # sealed again, as a forger would: the replay finds the total
    assert f"Abweichung Manifest total_cents: nachgerechnet {TOTAL_CENTS}, im Manifest {TOTAL_CENTS + 1}" in checked.stderr


def test_file_hash_is_read_in_blocks_and_matches_the_whole_file(tmp_path):
    """sha256_file reads a file in blocks (a large output workbook is not held in memory to be hashed); the
    digest is the one of the whole content, here a known vector and 3 MB of varied bytes."""
    import hashlib

    from allocation.core.filenames import sha256_file

    small = tmp_path / "abc"
    small.write_bytes(b"abc")  # FIPS 180-2 test vector
    assert sha256_file(small) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = bytes(range(256)) * (3 * 4096)
    large = tmp_path / "large.bin"
    large.write_bytes(data)
    assert sha256_file(large) == hashlib.sha256(data).hexdigest()
