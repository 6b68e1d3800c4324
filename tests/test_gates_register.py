"""The register's two refusals no test triggered before (issue 24): `register-output-exists` and
`register-corrupt` for a line that is not a JSON object (README: exit 8, naming the file and line).

A line that cannot be read must stop every command that relies on the register, never be skipped: skipped, the
file's remaining lines still match the chain, and the damage would pass unseen. The year folder's chain is read
the same way (`year-chain-broken`, exit 7).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.problems import ExitCode
from allocation.ops.verify import verify
from workbooks import SMALL_INPUT, SMALL_RULES, run_cli, year_with_stage


def codes_and_places(capsys) -> list[tuple[str, str, int | None]]:
    problems = json.loads(capsys.readouterr().out)["problems"]
    return [(p["code"], p["location"]["file"], p["location"].get("line")) for p in problems]


def test_a_final_run_never_writes_over_a_test_runs_workbook(tmp_path, capsys):
    register = tmp_path / "register"
    output = tmp_path / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(register)) == 0  # a Probelauf: its manifest says so
    workbook, manifest = output.read_bytes(), Path(f"{output}.manifest.json").read_bytes()
    capsys.readouterr()
    assert run_cli(output, "--register", str(register), "--mode", "final", "--json") == ExitCode.REFUSED == 8
    assert codes_and_places(capsys) == [("register-output-exists", str(output), None)]
    assert output.read_bytes() == workbook and Path(f"{output}.manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in register.iterdir() if not p.name.startswith(".")) == []  # nothing registered


@pytest.fixture
def final_run(tmp_path) -> tuple[Path, Path]:
    register = tmp_path / "register"
    output = tmp_path / "final" / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(register), "--mode", "final") == 0
    return output, register


# what a damaged line may hold: text, nothing, a JSON object cut short, JSON that is no object
DAMAGE = ["kein JSON", "", '{"seq": 2, "district": "Kreis Wesel"', "[2, 2022]"]


@pytest.mark.parametrize("line", DAMAGE, ids=["text", "empty", "cut-object", "array"])
@pytest.mark.parametrize("file", ["wesel-2022.jsonl", "_kette.jsonl"], ids=["district-file", "chain"])
def test_a_line_that_is_no_json_object_is_register_corrupt(final_run, tmp_path, capsys, file, line):
    output, register = final_run
    damaged = register / file
    assert len(damaged.read_text(encoding="utf-8").splitlines()) == 1  # the one final run
    with damaged.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    expected = [("register-corrupt", str(damaged), 2)]
    capsys.readouterr()
    # the register's own status, and a Probelauf (every command that writes stops on a damaged register)
    assert main(["register", "status", "--register", str(register), "--json"]) == 8
    assert codes_and_places(capsys) == expected
    assert run_cli(tmp_path / "probe.xlsx", "--register", str(register), "--json") == 8
    assert codes_and_places(capsys) == expected
    assert not (tmp_path / "probe.xlsx").exists()
    # verify of the final run says the register cannot confirm it
    result = verify(output, register)
    assert not result.identical
    assert [finding.split("]")[0] for finding in result.register] == ["Fehler [register-corrupt"]
    assert f"{damaged}:2" in result.register[0]


@pytest.mark.parametrize("line", DAMAGE, ids=["text", "empty", "cut-object", "array"])
def test_a_line_of_the_year_chain_that_is_no_json_object_is_year_chain_broken(tmp_path, capsys, line):
    folder = year_with_stage(tmp_path / "jahr", "modell")
    with (folder / "stufen.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    capsys.readouterr()
    assert main(["year", "status", str(folder), "--json"]) == 7
    assert codes_and_places(capsys) == [("year-chain-broken", str(folder / "stufen.jsonl"), 2)]
    assert main(["year", "stage", str(folder), "entwurf", str(SMALL_INPUT), "--rules", str(SMALL_RULES),
                 "--json"]) == 7
    assert codes_and_places(capsys) == [("year-chain-broken", str(folder / "stufen.jsonl"), 2)]
    assert not (folder / "02-entwurf").exists()
