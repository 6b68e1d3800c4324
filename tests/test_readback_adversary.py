"""Regression tests for what the adversarial pass over the one way back in found (one test per finding, each failing
on the code before its fix). Expected codes and exit codes are the README's, written here by hand."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from allocation.cli import main
from allocation.core.problems import ExitCode
from allocation.runs.manifest import sealed
from workbooks import ROOT, SMALL_INPUT as INPUT, SMALL_RULES as RULES, WESEL_RATES as WESEL, WESEL_RULES
from workbooks import problem_codes as _codes, run_cli as _run, year_with_stage

CORPUS = ROOT / "tests" / "corpus"


def _reseal(manifest_file: Path, change) -> None:
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    change(manifest)
    manifest_file.write_text(json.dumps(sealed(manifest)), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ the register


def test_register_files_follow_the_umask_so_a_group_can_share_them(tmp_path, isolated_register):
    old = os.umask(0o002)  # a register shared by the group that runs allocation (README, deploy/)
    try:
        assert _run(tmp_path / "echtlauf.xlsx", "--mode", "final") == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in isolated_register.iterdir()}
    assert modes == {".sperre": 0o664, "_kette.jsonl": 0o664, "wesel-2022.jsonl": 0o664}


def test_a_chain_that_cannot_be_written_stops_before_the_district_line_is(tmp_path, isolated_register, monkeypatch,
                                                                           capsys):
    from allocation.runs import register

    assert _run(tmp_path / "erster.xlsx", "--mode", "final") == 0
    district = isolated_register / "wesel-2022.jsonl"
    before = district.read_bytes()
    original = register._Appender.__init__

    def refuse_chain(self, path, lines):
        if path.name == "_kette.jsonl":
            raise PermissionError(13, "Keine Berechtigung", str(path))
        original(self, path, lines)

    monkeypatch.setattr(register._Appender, "__init__", refuse_chain)
    capsys.readouterr()
    second = tmp_path / "zweiter.xlsx"
    assert _run(second, "--mode", "final", "--supersede", "Korrektur", "--json") == ExitCode.OUTPUT
    assert _codes(capsys) == ["register-unusable"]
    assert district.read_bytes() == before  # nothing half-written: the register is as it was
    assert not second.exists() and not Path(f"{second}.manifest.json").exists()
    monkeypatch.undo()
    assert main(["register", "status"]) == 0


@pytest.mark.parametrize("name", ["_kette.jsonl", "wesel-2023.jsonl", ".sperre"])
def test_a_folder_where_the_register_keeps_a_file_is_register_corrupt(tmp_path, isolated_register, capsys, name):
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    target = isolated_register / name
    if target.exists():
        target.unlink()
    target.mkdir()
    capsys.readouterr()
    assert main(["register", "status", "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["register-corrupt"]


def test_a_leftover_half_created_file_of_the_register_is_ignored(tmp_path, isolated_register):
    isolated_register.mkdir(parents=True)
    (isolated_register / ".wesel-2022.jsonl.4242.neu").write_text("halb", encoding="utf-8")
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    assert main(["register", "status"]) == 0


def test_a_relative_allocation_register_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALLOCATION_REGISTER", "register")
    monkeypatch.chdir(tmp_path)
    assert _run(tmp_path / "a.xlsx", "--json") == ExitCode.OUTPUT
    assert _codes(capsys) == ["register-unusable"]
    assert not (tmp_path / "register").exists() and not (tmp_path / "a.xlsx").exists()


def test_a_test_run_checks_again_under_the_lock_before_it_writes(tmp_path, isolated_register, monkeypatch, capsys):
    # the race: a final run registers the same name while the test run computes; the test run must not replace it
    from allocation.runs import pipeline

    output = tmp_path / "x.xlsx"
    original = pipeline.compute

    def meanwhile_a_final_run(*args, **kwargs):
        result = original(*args, **kwargs)
        monkeypatch.setattr(pipeline, "compute", original)  # the final run computes as usual
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["run", str(INPUT), "--rules", str(RULES), "-o", str(output), "--mode", "final"]) == 0
        return result

    monkeypatch.setattr(pipeline, "compute", meanwhile_a_final_run)
    capsys.readouterr()
    code = _run(output, "--json")
    assert code == ExitCode.REFUSED and "output-is-final-run" in _codes(capsys)
    registered = [json.loads(x) for x in (isolated_register / "wesel-2022.jsonl").read_text().splitlines()]
    assert registered[-1]["output_sha256"] == hashlib.sha256(output.read_bytes()).hexdigest()  # the final one stayed


def test_notices_never_replace_a_final_workbook_in_their_folder(tmp_path, capsys):
    pytest.importorskip("typst")
    folder = tmp_path / "bescheide"
    folder.mkdir()
    final = folder / "Abschlaege.xlsx"  # a final run whose workbook happens to carry a name notices write
    assert _run(final, "--mode", "final", source=WESEL, rules=WESEL_RULES) == 0
    before = hashlib.sha256(final.read_bytes()).hexdigest()
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output, source=WESEL, rules=WESEL_RULES) == 0
    capsys.readouterr()
    assert main(["notices", str(output), "-o", str(folder), "--json"]) == ExitCode.REFUSED
    assert set(_codes(capsys)) == {"output-is-final-run"}
    assert hashlib.sha256(final.read_bytes()).hexdigest() == before


def test_notices_of_a_superseded_final_run_are_refused(tmp_path, capsys):
    pytest.importorskip("typst")
    first, second = tmp_path / "erster.xlsx", tmp_path / "zweiter.xlsx"
    assert _run(first, "--mode", "final", source=WESEL, rules=WESEL_RULES) == 0
    assert _run(second, "--mode", "final", "--supersede", "Korrektur", source=WESEL, rules=WESEL_RULES) == 0
    capsys.readouterr()
    assert main(["notices", str(first), "-o", str(tmp_path / "bescheide"), "--json"]) == ExitCode.INPUT
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "notices-superseded" and str(second) in problem["message"]
    assert not (tmp_path / "bescheide").exists()


@pytest.mark.parametrize("command", ["year-init", "inbox"])
def test_a_damaged_register_stops_year_init_and_the_inbox_before_anything_is_taken(tmp_path, isolated_register,
                                                                                   capsys, command):
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    (isolated_register / "wesel-2022.jsonl").write_bytes(b"")
    capsys.readouterr()
    if command == "year-init":
        assert main(["year", "init", str(tmp_path / "jahr"), "--district", "Kreis Wesel", "--year", "2022",
                     "--json"]) == ExitCode.REFUSED
        assert not (tmp_path / "jahr").exists()
    else:
        (tmp_path / "inbox" / "eingang").mkdir(parents=True)
        shutil.copy(INPUT, tmp_path / "inbox" / "eingang" / "b.xlsx")
        assert main(["inbox", str(tmp_path / "inbox"), "--rules-dir", str(CORPUS), "--json"]) == ExitCode.REFUSED
        assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["eingang"]  # no lock, nothing taken
        assert (tmp_path / "inbox" / "eingang" / "b.xlsx").exists()
    assert _codes(capsys) == ["register-corrupt"]


def test_year_init_and_inbox_never_write_into_the_register(tmp_path, isolated_register, capsys):
    isolated_register.mkdir(parents=True)
    capsys.readouterr()
    assert main(["year", "init", str(isolated_register / "jahr"), "--district", "Kreis Wesel", "--year", "2022",
                 "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["output-in-register"]
    assert main(["inbox", str(isolated_register / "inbox"), "--rules-dir", str(CORPUS), "--json"]) == ExitCode.REFUSED
    assert list(isolated_register.iterdir()) == []


# ----------------------------------------------------------------------------------------------- year folders


@pytest.fixture
def final_year(tmp_path) -> Path:
    return year_with_stage(tmp_path / "jahr", "satzung")


def _rewrite_line(folder: Path, change) -> None:
    chain = folder / "stufen.jsonl"
    entry = json.loads(chain.read_text(encoding="utf-8"))
    change(entry)
    chain.write_text(json.dumps(entry, sort_keys=True) + "\n", encoding="utf-8")


def test_a_final_stage_relabelled_as_a_test_run_is_found(final_year, capsys):
    _rewrite_line(final_year, lambda entry: entry.update(sealed({**entry, "mode": "test"})))  # sealed again
    capsys.readouterr()
    assert main(["year", "status", str(final_year), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-chain-broken" and "Laufart 'test' passt nicht zur Stufe satzung" in problem["message"]


def test_a_stage_line_stripped_of_its_seal_is_found_in_a_sealed_year_folder(final_year, capsys):
    def strip(entry: dict) -> None:
        for key in ("seal", "year_sha256", "district", "year"):
            entry.pop(key)
        entry["reason"] = "nachträglich eingetragen"

    _rewrite_line(final_year, strip)
    capsys.readouterr()
    assert main(["year", "status", str(final_year), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "year-chain-broken" and "Siegel der Zeile fehlt" in problem["message"]


def test_a_file_left_in_a_stage_folder_is_reported(final_year, capsys):
    (final_year / "01-satzung" / "notiz.txt").write_text("?", encoding="utf-8")
    capsys.readouterr()
    assert main(["year", "status", str(final_year)]) == ExitCode.VERIFY
    assert "notiz.txt" in capsys.readouterr().out


def test_a_stage_whose_input_and_rule_file_share_a_name_is_a_located_refusal(tmp_path, capsys):
    folder = tmp_path / "jahr"
    assert main(["year", "init", str(folder), "--district", "Kreis Wesel", "--year", "2022"]) == 0
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(INPUT, tmp_path / "a" / "stufe")
    shutil.copy(RULES, tmp_path / "b" / "stufe")
    capsys.readouterr()
    assert main(["year", "stage", str(folder), "modell", str(tmp_path / "a" / "stufe"), "--rules",
                 str(tmp_path / "b" / "stufe"), "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["year-bad-parameter"]
    assert sorted(p.name for p in folder.iterdir()) == ["Stellungnahmen.xlsx", "jahr.json", "stufen.jsonl"]


# ----------------------------------------------------------------------------------------- verify and manifests


@pytest.fixture
def test_run(tmp_path) -> Path:
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output) == 0
    return output


@pytest.mark.parametrize("change, key", [
    (lambda m: m["parameters"].update(freigabe="geprüft von der Rechnungsprüfung"), "parameters.freigabe"),
    (lambda m: m.update(anhang={}), "anhang"),
    (lambda m: m.update(anlagen=[]), "anlagen"),
])
def test_verify_reports_fields_a_run_never_writes(test_run, change, key):
    from allocation.ops.verify import verify

    _reseal(Path(f"{test_run}.manifest.json"), change)
    result = verify(test_run)
    assert not result.identical
    assert [d.key for d in result.field_differences] == [key]


@pytest.mark.parametrize("key, value", [("ignore_validity", 5), ("ignore_validity", ["x"]), ("provisional", 0)])
def test_a_mistyped_recorded_parameter_is_a_located_problem_not_a_traceback(test_run, capsys, key, value):
    _reseal(Path(f"{test_run}.manifest.json"), lambda m: m["parameters"].update({key: value}))
    capsys.readouterr()
    assert main(["verify", str(test_run), "--json"]) == ExitCode.VERIFY
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "manifest-bad-value" and f"parameters.{key}" in problem["message"]


def test_a_register_entry_on_a_test_run_manifest_is_refused(test_run, capsys):
    entry = {"file": "wesel-2022.jsonl", "seq": 1, "sha256": "a" * 64, "prev_sha256": "0" * 64, "chain": 1,
             "head": "b" * 64}
    _reseal(Path(f"{test_run}.manifest.json"), lambda m: m.update(register=entry))
    capsys.readouterr()
    assert main(["verify", str(test_run), "--json"]) == ExitCode.VERIFY
    assert _codes(capsys) == ["manifest-bad-value"]


def _repacked(source: Path, target: Path, extra: list[tuple[str, bytes]] = (), comment: bytes = b"",
              prefix: bytes = b"") -> Path:
    """A copy of an output workbook written again part by part, plus `extra` entries, with its manifest re-signed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        for name, data in extra:
            with pytest.warns(UserWarning):  # zipfile warns of a duplicate name
                zout.writestr(name, data)
        zout.comment = comment
    target.write_bytes(prefix + buffer.getvalue())
    manifest = json.loads(Path(f"{source}.manifest.json").read_text(encoding="utf-8"))
    manifest["output"]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    Path(f"{target}.manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")
    return target


def test_verify_and_readers_refuse_a_part_stored_twice(test_run, tmp_path, capsys):
    from allocation.ops.verify import verify

    (tmp_path / "kopie").mkdir()
    forged = _repacked(test_run, tmp_path / "kopie" / "ergebnis.xlsx", extra=[("xl/worksheets/sheet1.xml", b"<worksheet/>")])
    result = verify(forged)
    assert not result.identical and any("zweimal" in p for p in result.file_problems)
    capsys.readouterr()
    assert main(["explain", str(forged), "--item", "KIM-2022"]) == ExitCode.INPUT
    assert "[explain-unreadable]" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["comment", "prefix"])
def test_verify_reports_bytes_outside_the_parts(test_run, tmp_path, how):
    from allocation.ops.verify import verify

    (tmp_path / "kopie").mkdir()
    forged = _repacked(test_run, tmp_path / "kopie" / "ergebnis.xlsx",
                       **({"comment": b"geprueft"} if how == "comment" else {"prefix": b"\0" * 64}))
    result = verify(forged)
    assert not result.identical
    if how == "comment":  # a zip the readers open, but not as the writer left it
        assert [d.found for d in result.package if d.cell == "(Zip-Archiv)"] == ["ein Kommentar im Archiv (8 Bytes)"]
    else:  # bytes in front: no workbook as written (an xlsx begins with its first part)
        assert any("kein Zip-Archiv" in p for p in result.file_problems)


def test_verify_under_another_python_release_is_identical_with_a_note(tmp_path, monkeypatch):
    import platform

    from allocation.ops.verify import verify

    output = tmp_path / "ergebnis.xlsx"
    monkeypatch.setattr(platform, "python_version", lambda: "3.11.0")  # the run made under another release
    assert _run(output) == 0
    monkeypatch.undo()
    assert json.loads(Path(f"{output}.manifest.json").read_text())["tool"]["python"] == "3.11.0"
    result = verify(output)
    assert result.identical, result.text()
    assert any("3.11.0" in note for note in result.notes)


def test_a_manifest_resealed_with_another_year_does_not_pass_for_the_previous_year(tmp_path, capsys):
    pytest.importorskip("typst")
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output, source=WESEL, rules=WESEL_RULES) == 0  # 2022
    _reseal(Path(f"{output}.manifest.json"), lambda m: m["parameters"].update(year=2021))
    capsys.readouterr()
    assert main(["benehmen", str(WESEL), "--rules", str(WESEL_RULES), "--previous", str(output), "-o",
                 str(tmp_path / "benehmen"), "--json"]) == ExitCode.VERIFY
    assert _codes(capsys) == ["output-changed"]


def test_an_unusable_expected_head_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["register", "status", "--expect-head", "xyz", "--json"])
    assert stop.value.code == 2
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["usage-bad-value"]
