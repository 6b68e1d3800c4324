"""The register's two refusals no test triggered before (issue 24): `register-output-exists` and
`register-corrupt` for a line that is not a JSON object (README: exit 8, naming the file and line).

A line that cannot be read must stop every command that relies on the register, never be skipped: skipped, the
file's remaining lines still match the chain, and the damage would pass unseen. The year folder's chain is read
the same way (`year-chain-broken`, exit 7).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.problems import ExitCode
from allocation.ops.verify import verify
from allocation.runs.manifest import sealed
from workbooks import SMALL_INPUT, SMALL_RULES, modified_copy, run_cli, year_with_stage


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


# ------------------------------------------------------------------ verify: the manifest's reference into the register


@pytest.fixture
def two_final_runs(tmp_path) -> tuple[Path, Path, Path]:
    """Run A (register line 1, chain link 1) and B, which supersedes it with Euro rounding (line 2, link 2; another
    workbook: the same input would give the same bytes), in one register."""
    register = tmp_path / "register"
    first, second = tmp_path / "a" / "ergebnis.xlsx", tmp_path / "b" / "ergebnis.xlsx"
    assert run_cli(first, "--register", str(register), "--mode", "final") == 0
    corrected = modified_copy(SMALL_INPUT, tmp_path / "korrigiert.xlsx", rounding="Euro")
    assert run_cli(second, "--register", str(register), "--mode", "final", "--supersede", "Korrektur",
                   source=corrected) == 0
    assert _manifest(first)["output"]["sha256"] != _manifest(second)["output"]["sha256"]
    return first, second, register


def _manifest(output: Path) -> dict:
    return json.loads(Path(f"{output}.manifest.json").read_text(encoding="utf-8"))


def _reseal(output: Path, manifest: dict) -> None:
    Path(f"{output}.manifest.json").write_text(json.dumps(sealed(manifest), ensure_ascii=False), encoding="utf-8")


def test_a_chain_head_the_register_does_not_hold_at_that_link_is_a_finding(two_final_runs):
    first, second, register = two_final_runs
    manifest = _manifest(second)
    assert manifest["register"]["chain"] == 2
    manifest["register"]["head"] = _manifest(first)["register"]["head"]  # link 1's head, named for link 2
    _reseal(second, manifest)
    result = verify(second, register)
    assert not result.identical
    assert any("Kettenglied Nr. 2" in finding and "neu geschrieben" in finding for finding in result.register), \
        result.register


def test_a_reference_to_another_runs_register_line_is_a_finding(two_final_runs):
    first, second, register = two_final_runs
    manifest = _manifest(second)
    manifest["register"].update({key: _manifest(first)["register"][key] for key in ("file", "seq", "sha256")})
    _reseal(second, manifest)  # B's manifest now points at line 1, which registers A's workbook
    result = verify(second, register)
    assert any("Eintrag Nr. 1" in finding and "andere Arbeitsmappe" in finding for finding in result.register), \
        result.register


def test_an_older_manifest_needs_an_entry_with_its_own_workbook(two_final_runs, tmp_path):
    """A final manifest from before the register reference (no `register` key) passes only if a line of its
    district and year registers this very workbook, not any line of them."""
    *_first_two, register = two_final_runs
    other = tmp_path / "c" / "ergebnis.xlsx"  # a final run of the same district and year, in another register
    source = modified_copy(SMALL_INPUT, tmp_path / "anders.xlsx", bases={"05170004": 27154438})
    assert run_cli(other, "--register", str(tmp_path / "anderes-register"), "--mode", "final", source=source) == 0
    assert _manifest(other)["output"]["sha256"] not in {_manifest(run)["output"]["sha256"] for run in _first_two}
    manifest = _manifest(other)
    del manifest["register"]
    _reseal(other, manifest)
    result = verify(other, register)
    assert any("kein Eintrag für diese Arbeitsmappe" in finding for finding in result.register), result.register


# ------------------------------------------------------------------------ a final run that fails on the way


def _register_bytes(register: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(register.iterdir()) if path.is_file()}


def test_a_final_run_refuses_a_dangling_link_at_its_output(tmp_path, capsys):
    """The output name is a symbolic link to nothing: it exists as a name, so a final run refuses it
    (`register-output-exists`) and writes nothing through it."""
    output = tmp_path / "ergebnis.xlsx"
    output.symlink_to(tmp_path / "nirgends.xlsx")
    capsys.readouterr()
    assert run_cli(output, "--register", str(tmp_path / "register"), "--mode", "final", "--json") == ExitCode.REFUSED
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["register-output-exists"]
    assert output.is_symlink() and not (tmp_path / "nirgends.xlsx").exists()
    assert not Path(f"{output}.manifest.json").exists()


def test_a_final_run_whose_entry_cannot_be_written_leaves_nothing(tmp_path, capsys, monkeypatch):
    """The register refuses the entry (a full disk): the workbook and the manifest that carries the entry are both
    removed again, and the register is as it was."""
    from allocation.runs import register as register_module

    register = tmp_path / "register"
    assert run_cli(tmp_path / "a.xlsx", "--register", str(register), "--mode", "final") == 0
    before = _register_bytes(register)

    def full(view, pending):
        raise register_module.RegisterUnusable([])

    monkeypatch.setattr(register_module, "commit", full)
    output = tmp_path / "b.xlsx"
    source = modified_copy(SMALL_INPUT, tmp_path / "b-eingabe.xlsx", rounding="Euro")
    assert run_cli(output, "--register", str(register), "--mode", "final", "--supersede", "Korrektur",
                   source=source) == 9
    assert not output.exists() and not Path(f"{output}.manifest.json").exists()
    assert _register_bytes(register) == before


def test_a_failure_after_both_appends_takes_both_back(tmp_path, capsys, monkeypatch):
    """Both register files were appended to, then the folder's fsync fails (ENOSPC): the district file and the
    chain are both truncated back, so the register is byte for byte as before and still checks out."""
    import errno

    from allocation.runs import register as register_module

    register = tmp_path / "register"
    assert run_cli(tmp_path / "a.xlsx", "--register", str(register), "--mode", "final") == 0
    before = _register_bytes(register)
    assert {"wesel-2022.jsonl", "_kette.jsonl"} <= set(before)

    def full(folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(register_module, "fsync_folder", full)
    source = modified_copy(SMALL_INPUT, tmp_path / "b-eingabe.xlsx", rounding="Euro")
    assert run_cli(tmp_path / "b.xlsx", "--register", str(register), "--mode", "final", "--supersede", "Korrektur",
                   source=source) == 9
    assert _register_bytes(register) == before
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["register", "status", "--register", str(register)]) == 0


def test_two_districts_with_one_slug_get_a_register_file_each(tmp_path):
    """"Kreis Wesél" is not Kreis Wesel (another name), but both slugs are `wesel-2022`: the second district gets
    its own file (the slug and a short hash), so neither district's lines land in the other's file."""
    register = tmp_path / "register"
    assert run_cli(tmp_path / "a.xlsx", "--register", str(register), "--mode", "final") == 0
    other_rules = tmp_path / "wesel-akzent.yaml"
    other_rules.write_text(SMALL_RULES.read_text(encoding="utf-8").replace("district: Kreis Wesel",
                                                                            "district: Kreis Wesél"), encoding="utf-8")
    source = modified_copy(SMALL_INPUT, tmp_path / "akzent.xlsx", district="Kreis Wesél")
    assert run_cli(tmp_path / "b.xlsx", "--register", str(register), "--mode", "final", source=source,
                   rules=other_rules) == 0
    files = sorted(path.name for path in register.glob("*.jsonl") if path.name != "_kette.jsonl")
    assert len(files) == 2 and "wesel-2022.jsonl" in files
    lines = [json.loads(line) for line in (register / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["district"] for line in lines] == ["Kreis Wesel"]


def test_a_test_run_whose_manifest_cannot_be_written_takes_its_workbook_away(tmp_path, monkeypatch):
    """The disk fills between the workbook and its manifest: never a workbook without its manifest (exit 9)."""
    import errno

    from allocation.core.problems import Location, OutputError, Problem
    from allocation.runs import manifest

    def full(output, manifest):
        raise OutputError([Problem("output-unusable", Location(f"{output}.manifest.json"), "voll",
                                   found=str(OSError(errno.ENOSPC, "No space left on device")))])

    monkeypatch.setattr(manifest, "write_manifest", full)  # the run imports it when it writes
    output = tmp_path / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(tmp_path / "register")) == ExitCode.OUTPUT
    assert not output.exists() and not Path(f"{output}.manifest.json").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".ergebnis")] == []


def test_a_register_line_is_found_by_its_number_and_its_hash(tmp_path):
    """The manifest names line 1 of the district file with another SHA-256: the line at that number is not the
    one the run registered, so verify reports the entry as missing or changed."""
    register = tmp_path / "register"
    output = tmp_path / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(register), "--mode", "final") == 0
    manifest = _manifest(output)
    manifest["register"]["sha256"] = "0" * 64
    _reseal(output, manifest)
    result = verify(output, register)
    assert any("Eintrag Nr. 1" in finding and "fehlt im Register oder wurde verändert" in finding
               for finding in result.register), result.register


def test_ignore_validity_is_refused_with_a_rules_folder(tmp_path, capsys):
    """--ignore-validity overrides one named rule file's validity, never a folder's choice (exit 8)."""
    capsys.readouterr()
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(SMALL_INPUT), "--rules", str(SMALL_RULES.parent), "-o", str(output), "--ignore-validity",
                 "Modellrechnung", "--json"]) == ExitCode.REFUSED
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "rules-validity-override-refused" and problem["found"] == "ein Regelordner"
    assert not output.exists()


def test_a_run_of_exactly_the_line_limit_is_not_refused():
    """MAX_LINES (250.000) lines in the Einzelnachweis are allowed, one more is `input-too-large`."""
    from types import SimpleNamespace

    from allocation.core.problems import InputError
    from allocation.runs.pipeline import MAX_LINES, _refuse_too_many_lines

    assert MAX_LINES == 250_000
    _refuse_too_many_lines(SimpleNamespace(path="e.xlsx", municipalities=[None] * 500, items=[None] * 500))
    with pytest.raises(InputError) as caught:
        _refuse_too_many_lines(SimpleNamespace(path="e.xlsx", municipalities=[None] * 250_001, items=[None]))
    assert caught.value.problems[0].code == "input-too-large"


# ---------------------------------------------------------------------------- what comes back, read strictly


def test_an_emptied_register_file_is_named_as_emptied(final_run, capsys):
    """A register file emptied (0 bytes) is `register-corrupt` saying so, not as a line that is no JSON."""
    _output, register = final_run
    (register / "wesel-2022.jsonl").write_bytes(b"")
    capsys.readouterr()
    assert main(["register", "status", "--register", str(register), "--json"]) == ExitCode.REFUSED
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["code"] for p in problems] == ["register-corrupt"]
    assert "Die Datei ist leer" in problems[0]["message"] and problems[0]["found"] == "0 Bytes"


def test_a_manifest_text_with_a_nul_character_is_refused(tmp_path):
    """A NUL in a manifest text (here the Python version, a field verify only notes) is `manifest-bad-value`,
    even sealed again: no text the product wrote holds one."""
    output = tmp_path / "ergebnis.xlsx"
    assert run_cli(output) == 0
    manifest = _manifest(output)
    manifest["tool"]["python"] += "\x00"
    _reseal(output, manifest)
    result = verify(output)
    assert not result.identical
    assert any("tool.python" in problem for problem in map(str, result.problems)), result.problems


def test_a_change_notice_is_never_against_the_same_workbook(tmp_path, capsys):
    """`--previous` must be an earlier run: a copy of the very workbook (same SHA-256) is refused."""
    pytest.importorskip("typst")
    import shutil

    from workbooks import WESEL_RATES, WESEL_RULES

    output = tmp_path / "ergebnis.xlsx"
    assert run_cli(output, "--register", str(tmp_path / "register"), source=WESEL_RATES, rules=WESEL_RULES) == 0
    copy = tmp_path / "kopie" / "ergebnis.xlsx"
    copy.parent.mkdir()
    shutil.copyfile(output, copy)
    shutil.copyfile(f"{output}.manifest.json", f"{copy}.manifest.json")
    capsys.readouterr()
    assert main(["notices", str(output), "-o", str(tmp_path / "bescheide"), "--date", "2022-06-20", "--previous",
                 str(copy), "--register", str(tmp_path / "register"), "--json"]) == 3
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["notices-previous-mismatch"]
    assert not (tmp_path / "bescheide").exists()


def test_a_previous_final_run_with_the_same_line_number_elsewhere_is_not_earlier(tmp_path, capsys):
    """Two final runs of Kreis Wesel 2022, each line 1 of `wesel-2022.jsonl` in its own register: the earlier one
    is not "registered before" the later (line 1 is not before line 1), so a change notice refuses it."""
    pytest.importorskip("typst")
    from workbooks import WESEL_RATES, WESEL_RULES

    earlier = tmp_path / "a" / "ergebnis.xlsx"
    assert run_cli(earlier, "--register", str(tmp_path / "register-a"), "--mode", "final", source=WESEL_RATES,
                   rules=WESEL_RULES) == 0
    raised = modified_copy(WESEL_RATES, tmp_path / "hoeher.xlsx", rates={"kreisumlage": 36.7})
    later = tmp_path / "b" / "ergebnis.xlsx"
    assert run_cli(later, "--register", str(tmp_path / "register-b"), "--mode", "final", source=raised,
                   rules=WESEL_RULES) == 0
    assert _manifest(earlier)["register"]["seq"] == _manifest(later)["register"]["seq"] == 1
    capsys.readouterr()
    assert main(["notices", str(later), "-o", str(tmp_path / "bescheide"), "--date", "2022-06-20", "--previous",
                 str(earlier), "--register", str(tmp_path / "register-b"), "--json"]) == 3
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["notices-previous-mismatch"]


def test_a_register_file_cut_short_is_named_as_cut(final_run, capsys):
    """The district file's last line end cut away (a crash mid-write): `register-corrupt` at that line, saying the
    line is cut short, not that it is no JSON."""
    _output, register = final_run
    path = register / "wesel-2022.jsonl"
    path.write_bytes(path.read_bytes()[:-1])
    capsys.readouterr()
    assert main(["register", "status", "--register", str(register), "--json"]) == ExitCode.REFUSED
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "register-corrupt" and problem["location"]["line"] == 1
    assert "Die letzte Zeile ist abgeschnitten" in problem["message"]


def test_ctrl_c_between_the_register_appends_takes_both_back_and_the_outputs(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt while the entry is being written (here: at the folder's fsync, after both appends) is
    taken back like a full disk: the register byte for byte as before, no workbook, no manifest; exit 130."""
    from allocation.runs import register as register_module

    register = tmp_path / "register"
    assert run_cli(tmp_path / "a.xlsx", "--register", str(register), "--mode", "final") == 0
    before = _register_bytes(register)

    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(register_module, "fsync_folder", interrupted)
    output = tmp_path / "b.xlsx"
    source = modified_copy(SMALL_INPUT, tmp_path / "b-eingabe.xlsx", rounding="Euro")
    assert run_cli(output, "--register", str(register), "--mode", "final", "--supersede", "Korrektur",
                   source=source) == 130
    assert _register_bytes(register) == before
    assert not output.exists() and not Path(f"{output}.manifest.json").exists()


def test_ctrl_c_during_the_commit_comes_after_it_and_keeps_the_registered_outputs(tmp_path, capsys, monkeypatch):
    """A real SIGINT (Ctrl-C) that arrives while the entry is committed is held back until the commit is done: the
    run is registered and its workbook and manifest stay (they are in force); exit 130; the register checks out."""
    import os
    import signal

    from allocation.runs import register as register_module

    register = tmp_path / "register"
    commit = register_module.commit

    def interrupted_meanwhile(view, pending):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C now, before the entry is written
        commit(view, pending)

    monkeypatch.setattr(register_module, "commit", interrupted_meanwhile)
    output = tmp_path / "a.xlsx"
    assert run_cli(output, "--register", str(register), "--mode", "final") == 130
    monkeypatch.undo()
    assert output.exists() and Path(f"{output}.manifest.json").exists()
    lines = (register / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["output_sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["register", "status", "--register", str(register)]) == 0
