"""Narrow exception handlers (issue 24): what a library documents is caught and reported where it belongs; a bug
surfaces as exit 1 with its traceback; a full disk is reported as a full disk.

- reading a workbook: python-calamine's documented errors (CalamineError and its subclasses, ValueError) are the
  input's problem (exit 3); anything else is a bug (exit 1, traceback on stderr);
- notices: a full disk while the template is copied into the work folder is the output's problem (exit 9, "der
  Datenträger ist voll"), not a template that "cannot be compiled"; a bug in the compiling child is exit 1;
- the inbox: a failure report that cannot be written says why in the file's log line (`report_error`), and a
  bug's traceback goes to stderr;
- the engine: only the C core's error 309 (no state to delete) is passed over (tests/test_engine.py).
"""
from __future__ import annotations

import errno
import json
import pathlib
import shutil

import pytest

import python_calamine
from allocation.cli import main
from allocation.core.filenames import os_reason
from allocation.core.problems import ExitCode, OutputError
from allocation.ops import inbox, notices
from workbooks import WESEL_RATES, WESEL_RULES


def _problems(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)["problems"]


def test_os_reason_names_a_full_disk_in_german_beside_the_systems_words():
    # written by hand: the German cause first, the system's words in brackets; an unknown code keeps its words
    assert os_reason(OSError(errno.ENOSPC, "No space left on device")) == \
        "der Datenträger ist voll (No space left on device)"
    assert os_reason(code=errno.EROFS, text="Read-only file system") == \
        "das Dateisystem ist nur lesbar (Read-only file system)"
    assert os_reason(OSError(errno.EIO, "Input/output error")) == "Input/output error"


class _Broken:
    """Stands in for CalamineWorkbook: opening raises what the test gives."""

    error: BaseException

    @classmethod
    def from_filelike(cls, handle):
        raise cls.error


def test_calamines_documented_error_is_the_inputs_problem(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_Broken, "error", python_calamine.ZipError("invalid Zip archive"), raising=False)
    monkeypatch.setattr(python_calamine, "CalamineWorkbook", _Broken)
    code = main(["run", str(WESEL_RATES), "--rules", str(WESEL_RULES), "-o", str(tmp_path / "e.xlsx"), "--json"])
    assert code == ExitCode.INPUT
    problems = _problems(capsys)
    assert [p["code"] for p in problems] == ["input-not-xlsx"]
    assert "invalid Zip archive" in problems[0]["found"]


def test_a_bug_while_reading_is_exit_1_with_its_traceback(tmp_path, monkeypatch, capsys):
    # before: `except Exception` made any failure, a bug included, an "input-not-xlsx" (exit 3)
    monkeypatch.setattr(_Broken, "error", TypeError("a bug in the reader"), raising=False)
    monkeypatch.setattr(python_calamine, "CalamineWorkbook", _Broken)
    code = main(["run", str(WESEL_RATES), "--rules", str(WESEL_RULES), "-o", str(tmp_path / "e.xlsx")])
    err = capsys.readouterr().err
    assert code == ExitCode.INTERNAL
    assert "Traceback (most recent call last)" in err and "TypeError: a bug in the reader" in err
    assert not (tmp_path / "e.xlsx").exists()


@pytest.fixture
def verified_run(tmp_path):
    output = tmp_path / "ergebnis.xlsx"
    assert main(["run", str(WESEL_RATES), "--rules", str(WESEL_RULES), "-o", str(output), "--register",
                 str(tmp_path / "register")]) == 0
    return output


def test_a_full_disk_while_copying_the_template_is_the_outputs_problem(tmp_path, verified_run, monkeypatch, capsys):
    pytest.importorskip("typst")
    real = pathlib.Path.write_bytes

    def full(self, data):
        if ".template" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    target = tmp_path / "bescheide"
    code = main(["notices", str(verified_run), "-o", str(target), "--date", "2022-01-10", "--register",
                 str(tmp_path / "register"), "--json"])
    problems = _problems(capsys)
    assert code == ExitCode.OUTPUT, problems
    assert [p["code"] for p in problems] == ["output-unusable"]
    assert problems[0]["found"].startswith("der Datenträger ist voll")
    assert not target.exists()


def test_a_bug_in_the_compiling_child_is_no_template_problem():
    traceback = 'Traceback (most recent call last):\n  File "typst_child.py"\nKeyError: \'documents\'\n'
    with pytest.raises(RuntimeError, match="(?s)Programmfehler.*KeyError"):
        notices._child_outcome([{"ready": True}], ["a.pdf"], pathlib.Path("vorlage"), 30, 512, False, 1, traceback)
    # the template's own error stays the template's problem
    with pytest.raises(notices.TemplateError) as caught:
        notices._child_outcome([{"ready": True}, {"error": "unknown variable", "document": 0}], ["a.pdf"],
                               pathlib.Path("vorlage"), 30, 512, False, 2, "")
    assert caught.value.problems[0].code == "notices-bad-template"


def test_the_childs_full_disk_is_named_as_such():
    with pytest.raises(OutputError) as caught:
        notices._child_outcome([{"ready": True}, {"write": 0, "reason": "No space left on device",
                                                  "errno": errno.ENOSPC}], ["a.pdf"], pathlib.Path("vorlage"),
                               30, 512, False, 4, "")
    assert caught.value.problems[0].found.startswith("der Datenträger ist voll")
    assert str(caught.value.problems[0].location) == "a.pdf"


def _dropped(tmp_path) -> pathlib.Path:
    root = tmp_path / "postfach"
    (root / "eingang").mkdir(parents=True)
    shutil.copyfile(WESEL_RATES, root / "eingang" / "wesel.xlsx")
    return root


def test_the_inbox_says_why_a_failure_report_was_not_written(tmp_path, monkeypatch, capsys):
    root = _dropped(tmp_path)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in one file's run")

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(inbox, "_process_one", bug)
    monkeypatch.setattr(inbox, "_write", full)
    [outcome] = inbox.process_inbox(root, WESEL_RULES.parent, log=open(tmp_path / "log", "w"))
    assert outcome.exit_code == ExitCode.INTERNAL and outcome.status == "error"
    assert outcome.report_error == "Fehlerbericht nicht geschrieben: der Datenträger ist voll (No space left on device)"
    assert json.loads(outcome.log_line())["report_error"] == outcome.report_error
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: a bug in one file's run" in err
    assert (root / "eingang" / "wesel.xlsx").exists()  # the input is kept


def test_a_bug_while_writing_the_report_is_logged_not_swallowed(tmp_path, monkeypatch, capsys):
    root = _dropped(tmp_path)
    monkeypatch.setattr(inbox, "_process_one", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EACCES, "x")))
    monkeypatch.setattr(inbox, "_write", lambda path, text: (_ for _ in ()).throw(TypeError("report bug")))
    [outcome] = inbox.process_inbox(root, WESEL_RULES.parent, log=open(tmp_path / "log", "w"))
    assert outcome.report_error.startswith("Fehlerbericht nicht geschrieben: Programmfehler TypeError")
    assert "TypeError: report bug" in capsys.readouterr().err
