"""The overwrite guard beyond the adversary's reproductions (findings 1, 9, 11 in test_adversary_findings.py):
which problem code each refusal carries, a final run found by its SHA-256 when the register's path was relative
to another working directory, a deleted final workbook's name, another command's output, outputs named like a
manifest, and a batch refused before any district is computed.

Each test builds its files in tmp_path; `isolated_register` (conftest.py) gives it its own register.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from allocation.cli import main
from allocation.core.problems import ExitCode
from conftest import FIXTURE, RULES

WITH_RATES = FIXTURE.parent / "kreis-wesel-2022-hebesaetze.xlsx"


def _run(input_path: Path, output: Path | str, *extra: str) -> int:
    return main(["run", str(input_path), "--rules", str(RULES), "-o", str(output), *extra])


def _codes(capsys) -> list[str]:
    return [problem["code"] for problem in json.loads(capsys.readouterr().out)["problems"]]


def _final(tmp_path: Path, capsys) -> Path:
    final = tmp_path / "echtlauf.xlsx"
    assert _run(WITH_RATES, final, "--mode", "final") == ExitCode.OK
    capsys.readouterr()
    return final


def test_a_test_run_onto_a_final_run_is_output_is_final_run_for_workbook_and_manifest(tmp_path, capsys):
    final = _final(tmp_path, capsys)
    before = final.read_bytes(), Path(f"{final}.manifest.json").read_bytes()

    assert _run(WITH_RATES, final, "--json") == ExitCode.REFUSED

    assert _codes(capsys) == ["output-is-final-run", "output-is-final-run"]  # the workbook, then its manifest
    assert (final.read_bytes(), Path(f"{final}.manifest.json").read_bytes()) == before


def test_a_final_run_recorded_with_a_relative_path_is_found_by_its_sha256(tmp_path, capsys, monkeypatch):
    # The final run is started in one folder with a relative -o; the register keeps "echtlauf.xlsx" as given.
    first, second = tmp_path / "amt", tmp_path / "woanders"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    assert _run(WITH_RATES, "echtlauf.xlsx", "--mode", "final") == ExitCode.OK
    capsys.readouterr()
    before = (first / "echtlauf.xlsx").read_bytes()
    # From another working directory "echtlauf.xlsx" resolves elsewhere; the file is the same by content.
    monkeypatch.chdir(second)

    assert _run(WITH_RATES, first / "echtlauf.xlsx", "--json") == ExitCode.REFUSED

    assert "output-is-final-run" in _codes(capsys)
    assert (first / "echtlauf.xlsx").read_bytes() == before


def test_the_name_of_a_deleted_final_workbook_stays_reserved(tmp_path, capsys):
    final = _final(tmp_path, capsys)
    final.unlink()  # the register still names this file with its SHA-256

    assert _run(WITH_RATES, final, "--json") == ExitCode.REFUSED

    assert "output-is-final-run" in _codes(capsys)
    assert not final.exists()


def test_another_command_does_not_write_over_a_final_run(tmp_path, capsys):
    final = _final(tmp_path, capsys)
    before = final.read_bytes()

    code = main(["compare", str(WITH_RATES), "--rules", str(RULES), "--rules", str(RULES), "-o", str(final),
                 "--json"])

    assert code == ExitCode.REFUSED and _codes(capsys) == ["output-is-final-run"]
    assert final.read_bytes() == before


def test_a_test_run_elsewhere_still_runs_after_a_final_run(tmp_path, capsys):
    _final(tmp_path, capsys)
    assert _run(WITH_RATES, tmp_path / "probelauf.xlsx") == ExitCode.OK
    assert (tmp_path / "probelauf.xlsx").exists()


def test_an_output_named_like_a_manifest_is_refused(tmp_path, capsys):
    output = tmp_path / "ergebnis.xlsx"
    assert _run(WITH_RATES, output) == ExitCode.OK
    manifest = Path(f"{output}.manifest.json")
    before = manifest.read_bytes()
    capsys.readouterr()

    assert _run(WITH_RATES, manifest, "--json") == ExitCode.REFUSED

    # Only the first output is named like a manifest; the manifest beside it (….manifest.json.manifest.json)
    # is that output's own and is not refused for its name.
    assert _codes(capsys) == ["output-is-manifest"]
    assert manifest.read_bytes() == before
    assert not Path(f"{manifest}.manifest.json").exists()


def test_template_refuses_an_existing_file_and_writes_a_new_one(tmp_path, capsys):
    rules = tmp_path / "regeln.yaml"
    shutil.copyfile(RULES, rules)
    before = rules.read_bytes()

    assert main(["template", str(rules), "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["output-exists"]
    assert rules.read_bytes() == before

    fresh = tmp_path / "vorlage.xlsx"
    assert main(["template", str(fresh)]) == ExitCode.OK
    assert fresh.stat().st_size > 0


def test_batch_into_its_input_folder_is_refused_before_any_district_is_computed(tmp_path, capsys):
    folder = tmp_path / "mappen"
    folder.mkdir()
    shutil.copyfile(WITH_RATES, folder / "a.xlsx")
    shutil.copyfile(WITH_RATES, folder / "a-ergebnis.xlsx")
    shutil.copyfile(WITH_RATES, folder / "b.xlsx")

    code = main(["batch", str(folder), "--rules", str(RULES), "-o", str(folder), "--jobs", "1", "--json"])

    assert code == ExitCode.REFUSED and _codes(capsys) == ["output-is-input"]
    # nothing computed: no result of b.xlsx or of a-ergebnis.xlsx, no summary
    assert sorted(p.name for p in folder.iterdir()) == ["a-ergebnis.xlsx", "a.xlsx", "b.xlsx"]
