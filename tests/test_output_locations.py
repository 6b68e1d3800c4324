"""Issue 12: an output location that cannot take a file is a located refusal with exit 9 before anything is
read, never a traceback, and the input stays as it was."""
from __future__ import annotations

import errno
import json
import os

import pytest

from allocation.cli import main
from allocation.core.problems import ExitCode
from conftest import FIXTURE, RULES


def _run(output, capsys) -> tuple[int, list[dict]]:
    before = FIXTURE.read_bytes()
    code = main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(output), "--json"])
    assert FIXTURE.read_bytes() == before
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)["problems"] if captured.out.strip() else []


def test_an_output_that_is_a_folder_is_refused(tmp_path, capsys):
    code, problems = _run(tmp_path, capsys)  # old code: IsADirectoryError, exit 1
    assert code == ExitCode.OUTPUT == 9
    assert [(p["code"], p["location"]["file"]) for p in problems] == [("output-unusable", str(tmp_path))]


def test_an_output_whose_folder_is_a_file_is_refused(tmp_path, capsys):
    a_file = tmp_path / "eine-datei"
    a_file.write_text("x", encoding="utf-8")
    code, problems = _run(a_file / "ergebnis.xlsx", capsys)
    assert code == 9
    assert [p["code"] for p in problems] == ["output-unusable"]  # one problem, not one for the manifest too
    assert str(a_file) in problems[0]["message"]


def test_an_output_name_too_long_for_the_file_system_is_refused(tmp_path, capsys):
    # 240 bytes fit a file name (255), but not with the temporary name and the manifest suffix (+28 bytes)
    code, problems = _run(tmp_path / ("x" * 235 + ".xlsx"), capsys)  # old code: OSError ENAMETOOLONG, exit 1
    assert code == 9 and [p["code"] for p in problems] == ["output-unusable"]
    assert problems[0]["found"] == "240 Bytes"
    assert not list(tmp_path.iterdir())


def test_a_read_only_folder_is_refused_before_anything_is_read(tmp_path, capsys, monkeypatch):
    # root may write anywhere, so the test stands in for the kernel's answer for this one folder
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    code, problems = _run(tmp_path / "ergebnis.xlsx", capsys)
    assert code == 9 and "schreibgeschützt" in problems[0]["message"]


def test_a_full_disk_while_writing_is_a_located_problem_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    code, problems = _run(tmp_path / "ergebnis.xlsx", capsys)
    assert code == 9 and problems[0]["code"] == "output-unusable"
    assert problems[0]["found"] == "der Datenträger ist voll (No space left on device)"  # a full disk named so
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["template"], ["rulebook", str(RULES), "-o"]])
def test_other_writing_commands_refuse_a_folder_as_output(tmp_path, capsys, command):
    assert main([*command, str(tmp_path)]) == 9
    assert "output-unusable" in capsys.readouterr().err


def test_outputs_are_as_readable_as_any_file_the_user_makes(tmp_path, capsys):
    """The adversarial review: outputs were created with mode 0600 (mkstemp), unreadable for colleagues on a
    shared server. With umask 022 a new file is 0644."""
    import stat

    old = os.umask(0o022)
    try:
        code = main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(tmp_path / "ergebnis.xlsx")])
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "ergebnis.xlsx").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "ergebnis.xlsx.manifest.json").stat().st_mode) == 0o644


def test_a_statute_run_prints_each_levy_revenue_beside_its_need(capsys, tmp_path):
    """27,154,437 € × 36.20 % is Alpen's share; the console names each levy's revenue and need."""
    from conftest import ROOT

    with_rates = ROOT / "fixtures" / "kreis-wesel-2022" / "kreis-wesel-2022-hebesaetze.xlsx"
    assert main(["run", str(with_rates), "--rules", str(RULES), "-o", str(tmp_path / "e.xlsx")]) == 0
    out = capsys.readouterr().out
    assert "Kreisumlage: Aufkommen " in out and "Jugendamtsumlage: Aufkommen " in out


def test_a_run_of_more_lines_than_the_limit_is_refused_before_deciding(tmp_path, capsys, monkeypatch):
    """The adversarial review: 60,000 municipalities × 40 items passed every read limit and ran for minutes at
    1.4 GB. Municipalities × items is bounded (runs.pipeline.MAX_LINES); here the limit is lowered below the
    fixture's 13 × 5 = 65 lines."""
    from allocation.runs import pipeline

    monkeypatch.setattr(pipeline, "MAX_LINES", 64)
    decided = []
    monkeypatch.setattr(pipeline, "decide", lambda *args: decided.append(args))
    assert main(["run", str(FIXTURE), "--rules", str(RULES), "-o", str(tmp_path / "e.xlsx"), "--json"]) == 3
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["code"], p["found"]) for p in problems] == [("input-too-large", "65 Zeilen")]
    assert decided == [] and not (tmp_path / "e.xlsx").exists()
