"""Regression tests for what the adversarial pass over the one way back in found (one test per finding, each failing
on the code before its fix). Expected codes and exit codes are the handbook's (docs/), written here by hand."""
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
    old = os.umask(0o002)  # a register shared by the group that runs allocation (docs/operations/backups.md, deploy/)
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


def test_a_damaged_register_is_named_as_itself_by_the_year_commands(final_year, tmp_path, isolated_register, capsys):
    """year status reports the register's own located problem (exit 7, like verify) instead of calling the year
    folder changed; year stage and year kreistag stop on it as every writing command does (exit 8)."""
    register_file = isolated_register / "wesel-2022.jsonl"
    with register_file.open("a", encoding="utf-8") as register:
        register.write('{"nachgetragen": true}\n')  # a second line no final run wrote
    capsys.readouterr()
    assert main(["year", "status", str(final_year), "--json"]) == ExitCode.VERIFY
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "changed" and status["findings"] == []
    assert [(p["code"], p["location"]["file"], p["location"]["line"]) for p in status["problems"]] == [
        ("register-corrupt", str(register_file), 2)]
    assert main(["year", "status", str(final_year)]) == ExitCode.VERIFY
    err = capsys.readouterr().err
    assert "nicht gegen das Register geprüft" in err and "Stufen verändert" not in err
    assert main(["year", "stage", str(final_year), "aenderung-1", str(INPUT), "--rules", str(RULES),
                 "--supersede", "Korrektur", "--json"]) == ExitCode.REFUSED
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["register-corrupt"]
    assert main(["year", "kreistag", str(final_year), "-o", str(tmp_path / "k.xlsx"), "--json"]) == ExitCode.REFUSED
    assert [p["code"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["register-corrupt"]
    assert sorted(p.name for p in final_year.iterdir()) == ["01-satzung", "Stellungnahmen.xlsx", "jahr.json",
                                                             "stufen.jsonl"]


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


# ------------------------------------------------------------------------------- the second adversarial pass


def test_a_test_run_excludes_even_the_installations_first_final_run(tmp_path, isolated_register, monkeypatch, capsys):
    # no register folder yet: the test run's lock creates it, so a final run waits (and here gives up: exit 75)
    from allocation.runs import register

    assert not isolated_register.exists()
    monkeypatch.setattr(register, "LOCK_WAIT_SECONDS", 0.3)
    with register.shared_lock(isolated_register):
        assert (isolated_register / ".sperre").exists()
        capsys.readouterr()
        assert _run(tmp_path / "echtlauf.xlsx", "--mode", "final", "--json") == ExitCode.BUSY
        assert _codes(capsys) == ["register-busy"]
    assert not (tmp_path / "echtlauf.xlsx").exists()


def test_an_entry_that_fails_half_way_is_taken_back(tmp_path, isolated_register, monkeypatch, capsys):
    # a full disk under the chain after the district line was appended: the line is truncated away again
    import errno

    from allocation.runs import register

    assert _run(tmp_path / "erster.xlsx", "--mode", "final") == 0
    before = {p.name: p.read_bytes() for p in isolated_register.iterdir()}
    original = register._Appender.write

    def full_at_the_chain(self):
        if self.path.name == "_kette.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self)

    monkeypatch.setattr(register._Appender, "write", full_at_the_chain)
    capsys.readouterr()
    second = tmp_path / "zweiter.xlsx"
    assert _run(second, "--mode", "final", "--supersede", "Korrektur", "--json") == ExitCode.OUTPUT
    assert _codes(capsys) == ["register-unusable"]
    assert {p.name: p.read_bytes() for p in isolated_register.iterdir()} == before
    assert not second.exists() and not Path(f"{second}.manifest.json").exists()
    monkeypatch.undo()
    assert main(["register", "status"]) == 0


def test_a_short_write_is_continued_not_left_half(tmp_path, isolated_register, monkeypatch):
    from allocation.runs import register

    real = os.write
    monkeypatch.setattr(register.os, "write", lambda fd, data: real(fd, bytes(data[:7])))  # 7 bytes at a time
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    monkeypatch.undo()
    assert main(["register", "status"]) == 0


def test_notices_check_their_files_again_where_no_final_run_registers_meanwhile(tmp_path, monkeypatch, capsys):
    pytest.importorskip("typst")
    from allocation.ops import notices

    folder = tmp_path / "bescheide"
    output = tmp_path / "ergebnis.xlsx"
    assert _run(output, source=WESEL, rules=WESEL_RULES) == 0
    original = notices._compile_all

    def meanwhile_a_final_run(*args, **kwargs):
        original(*args, **kwargs)
        folder.mkdir(exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            assert _run(folder / "Abschlaege.xlsx", "--mode", "final", source=WESEL, rules=WESEL_RULES) == 0

    monkeypatch.setattr(notices, "_compile_all", meanwhile_a_final_run)
    capsys.readouterr()
    assert main(["notices", str(output), "-o", str(folder), "--json"]) == ExitCode.REFUSED
    assert "output-is-final-run" in _codes(capsys)
    final = json.loads(Path(f"{folder / 'Abschlaege.xlsx'}.manifest.json").read_text())
    assert hashlib.sha256((folder / "Abschlaege.xlsx").read_bytes()).hexdigest() == final["output"]["sha256"]


def test_a_full_output_disk_is_exit_9_and_leaves_no_workbook_without_its_manifest(tmp_path, monkeypatch, capsys):
    import errno

    import xlsxwriter
    from xlsxwriter.exceptions import FileCreateError

    from allocation.core.problems import OutputError
    from allocation.runs import manifest

    def full(self):
        raise FileCreateError(OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(xlsxwriter.Workbook, "close", full)
    capsys.readouterr()
    assert _run(tmp_path / "a.xlsx", "--json") == ExitCode.OUTPUT
    assert _codes(capsys) == ["output-unusable"]
    monkeypatch.undo()

    def no_room(*args, **kwargs):
        raise OutputError([])

    monkeypatch.setattr(manifest, "write_manifest", no_room)
    assert _run(tmp_path / "b.xlsx") == ExitCode.OUTPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the workbook went with its manifest


def test_a_file_moves_into_a_folder_on_another_file_system(tmp_path, monkeypatch):
    import errno

    from allocation.core import filenames

    source, folder = tmp_path / "a" / "bescheid.pdf", tmp_path / "b"
    source.parent.mkdir()
    folder.mkdir()
    source.write_bytes(b"%PDF-1.7 ...")
    real = os.replace

    def across(src, dst):
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(filenames.os, "replace", across)
    assert filenames.move_into(source, folder) == folder / "bescheid.pdf"
    assert (folder / "bescheid.pdf").read_bytes() == b"%PDF-1.7 ..." and not source.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["bescheid.pdf"]


def test_a_register_reason_too_long_for_the_register_is_refused(tmp_path, capsys):
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    capsys.readouterr()
    assert _run(tmp_path / "b.xlsx", "--mode", "final", "--supersede", "x" * 2001, "--json") == ExitCode.REFUSED
    assert _codes(capsys) == ["register-reason-too-long"]
    assert main(["register", "status"]) == 0
    # exactly 2,000 characters (the documented limit) is accepted
    assert _run(tmp_path / "c.xlsx", "--mode", "final", "--supersede", "x" * 2000) == 0


def test_a_register_file_with_a_second_hard_link_is_never_appended_to(tmp_path, isolated_register, capsys):
    assert _run(tmp_path / "a.xlsx", "--mode", "final") == 0
    backup = tmp_path / "sicherung"
    backup.mkdir()
    os.link(isolated_register / "wesel-2022.jsonl", backup / "wesel-2022.jsonl")  # `cp -al`
    before = (backup / "wesel-2022.jsonl").read_bytes()
    capsys.readouterr()
    assert _run(tmp_path / "b.xlsx", "--mode", "final", "--supersede", "Korrektur", "--json") == ExitCode.OUTPUT
    assert _codes(capsys) == ["register-unusable"]
    assert (backup / "wesel-2022.jsonl").read_bytes() == before


def test_inbox_folders_that_link_into_the_register_are_refused(tmp_path, isolated_register, capsys):
    isolated_register.mkdir(parents=True)
    inbox = tmp_path / "inbox"
    (inbox / "eingang").mkdir(parents=True)
    (inbox / "ergebnis").symlink_to(isolated_register)
    shutil.copy(INPUT, inbox / "eingang" / "a.xlsx")
    capsys.readouterr()
    assert main(["inbox", str(inbox), "--rules-dir", str(CORPUS), "--json"]) == ExitCode.REFUSED
    assert _codes(capsys) == ["output-in-register"]
    assert sorted(p.name for p in isolated_register.iterdir() if not p.name.startswith(".")) == []


def test_an_inbox_whose_eingang_is_the_register_takes_nothing_from_it(tmp_path, isolated_register, capsys):
    """eingang/ may be a link to a folder; a link to the register would let a pass move the register's files into
    archiv/ (its entries gone, a second final run without --supersede). Refused before a file is taken."""
    assert _run(tmp_path / "final.xlsx", "--mode", "final") == 0
    before = {p.name: p.read_bytes() for p in isolated_register.iterdir() if p.is_file()}
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "eingang").symlink_to(isolated_register)
    capsys.readouterr()
    assert main(["inbox", str(inbox), "--rules-dir", str(CORPUS), "--json"]) == ExitCode.REFUSED
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem["code"] == "output-in-register"
    assert problem["found"] == f"{inbox / 'eingang'} (führt zu {isolated_register.resolve()})"
    assert {p.name: p.read_bytes() for p in isolated_register.iterdir() if p.is_file()} == before
    assert not (inbox / "archiv").exists() or list((inbox / "archiv").iterdir()) == []


def test_kreistag_says_so_when_the_year_it_documents_has_changed(final_year, tmp_path, capsys):
    (final_year / "01-satzung" / "gueltig.xlsx").write_bytes(b"anders")
    capsys.readouterr()
    assert main(["year", "kreistag", str(final_year), "-o", str(tmp_path / "kreistag.xlsx"), "--json"]) == \
        ExitCode.VERIFY
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "changed" and [p["code"] for p in answer["problems"]] == ["year-stage-changed"]
    assert (tmp_path / "kreistag.xlsx").exists()  # the pack shows the findings too


def test_a_web_manifest_is_verified_from_its_own_folder_whatever_the_current_one(tmp_path, monkeypatch):
    from allocation.ops.verify import verify
    from allocation.runs.pipeline import run

    job = tmp_path / "job"
    job.mkdir()
    shutil.copy(INPUT, job / "gueltig.xlsx")
    shutil.copy(RULES, job / "regeln.yaml")
    run(job / "gueltig.xlsx", job / "regeln.yaml", job / "ergebnis.xlsx", record_paths="names")
    other = tmp_path / "anderswo"
    other.mkdir()
    (other / "gueltig.xlsx").write_bytes(b"eine andere Datei gleichen Namens")
    monkeypatch.chdir(other)
    assert verify(job / "ergebnis.xlsx").identical


@pytest.mark.parametrize("keywords", [{"mode": "Final"}, {"provisional": "nein"}, {"ignore_validity": 5}])
def test_the_python_api_refuses_values_the_command_line_would(tmp_path, keywords):
    from allocation import run

    with pytest.raises(ValueError):
        run(INPUT, RULES, tmp_path / "a.xlsx", **keywords)
    assert not (tmp_path / "a.xlsx").exists()


@pytest.mark.parametrize("how", ["local-extra", "after-stream"])
def test_verify_reports_bytes_hidden_inside_a_part(test_run, tmp_path, how):
    import struct

    from allocation.ops.verify import verify

    data = bytearray(test_run.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    offset = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[offset + 26:offset + 30])
    start = offset + 30 + name_length + extra_length
    if how == "local-extra":  # 16 bytes of an unknown extra field in the part's local header
        forged = data[:offset + 26] + struct.pack("<HH", name_length, 16) + data[offset + 30:start] + b"\xfe\xca\x0c\x00" + b"x" * 12 + data[start:]
        shift = 16
    else:  # 32 bytes after the end of the part's deflate stream, the sizes grown to hide them
        end = start + info.compress_size
        forged = data[:end] + b"y" * 32 + data[end:]
        struct.pack_into("<I", forged, offset + 18, info.compress_size + 32)
        shift = 32
    # the central directory's offsets and sizes follow the shift (as a careful forger would do)
    eocd = forged.rfind(b"PK\x05\x06")
    directory_offset = struct.unpack("<I", forged[eocd + 16:eocd + 20])[0] + shift
    struct.pack_into("<I", forged, eocd + 16, directory_offset)
    position = directory_offset
    while forged[position:position + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack("<HHH", forged[position + 28:position + 34])
        entry_offset = struct.unpack("<I", forged[position + 42:position + 46])[0]
        if entry_offset > offset:
            struct.pack_into("<I", forged, position + 42, entry_offset + shift)
        elif entry_offset == offset and how == "after-stream":
            struct.pack_into("<I", forged, position + 20, info.compress_size + 32)
        position += 46 + n + e + c
    (tmp_path / "kopie").mkdir()
    target = tmp_path / "kopie" / "ergebnis.xlsx"
    target.write_bytes(bytes(forged))
    manifest = json.loads(Path(f"{test_run}.manifest.json").read_text(encoding="utf-8"))
    manifest["output"]["sha256"] = hashlib.sha256(bytes(forged)).hexdigest()
    Path(f"{target}.manifest.json").write_text(json.dumps(sealed(manifest)), encoding="utf-8")
    result = verify(target)
    assert not result.identical and result.package, result.text()
