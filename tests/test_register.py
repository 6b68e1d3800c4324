"""Final runs: the register refuses a second final run without --supersede, keeps both with one, detects edits;
provisional runs are marked on every sheet."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.core.problems import ExitCode
from allocation.cli import main
from allocation.runs.register import RegisterError, append_final, check_final, read_entries, register_path

CORPUS = Path(__file__).resolve().parent / "corpus"


def _record(**kw):
    return {"district": "Kreis Wesel", "year": 2022, "input_sha256": "a" * 64, "output": "x.xlsx"} | kw


def test_second_final_run_needs_a_reason_and_both_are_kept(tmp_path):
    append_final(tmp_path, _record(), None)
    assert [p.code for p in check_final(tmp_path, "Kreis Wesel", 2022, None)] == ["register-final-exists"]
    with pytest.raises(RegisterError) as refused:
        append_final(tmp_path, _record(), None)
    assert refused.value.problems[0].code == "register-final-exists"
    assert [p.code for p in check_final(tmp_path, "Kreis Wesel", 2022, "  ")] == ["register-empty-reason"]
    append_final(tmp_path, _record(output="y.xlsx"), "Hebesatz nach Genehmigung geändert")
    entries = read_entries(register_path(tmp_path, "Kreis Wesel", 2022))
    assert [(e["seq"], e["output"], e["supersedes"], e["reason"]) for e in entries] == [
        (1, "x.xlsx", None, None), (2, "y.xlsx", 1, "Hebesatz nach Genehmigung geändert")]
    assert check_final(tmp_path, "Kreis Wesel", 2023, None) == []  # other year: own register


def test_supersede_without_an_earlier_final_run_is_refused(tmp_path):
    assert [p.code for p in check_final(tmp_path, "Kreis Wesel", 2022, "Grund")] == ["register-nothing-to-supersede"]


def test_an_edited_register_is_detected(tmp_path):
    append_final(tmp_path, _record(), None)
    append_final(tmp_path, _record(output="y.xlsx"), "Grund")
    path = register_path(tmp_path, "Kreis Wesel", 2022)
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["output"] = "manipuliert.xlsx"
    path.write_text("\n".join([json.dumps(first, ensure_ascii=False, sort_keys=True), lines[1]]) + "\n",
                    encoding="utf-8")
    with pytest.raises(RegisterError) as corrupt:
        read_entries(path)
    assert corrupt.value.problems[0].code == "register-corrupt" and corrupt.value.problems[0].location.line == 2


def test_cli_final_run_registers_refuses_repeat_and_never_overwrites(tmp_path, capsys):
    args = ["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "--mode", "final",
            "--register", str(tmp_path / "reg")]
    assert main(args + ["-o", str(tmp_path / "a.xlsx")]) == 0
    assert main(args + ["-o", str(tmp_path / "b.xlsx")]) == ExitCode.REFUSED
    assert not (tmp_path / "b.xlsx").exists()
    first = (tmp_path / "a.xlsx").read_bytes()
    assert main(args + ["-o", str(tmp_path / "a.xlsx"), "--supersede", "Korrektur"]) == ExitCode.REFUSED  # would overwrite
    assert (tmp_path / "a.xlsx").read_bytes() == first
    assert main(args + ["-o", str(tmp_path / "b.xlsx"), "--supersede", "Korrektur"]) == 0
    entries = read_entries(register_path(tmp_path / "reg", "Kreis Wesel", 2022))
    assert [e["reason"] for e in entries] == [None, "Korrektur"]
    protocol = dict(load_workbook(tmp_path / "b.xlsx")["Protokoll"].iter_rows(min_row=2, max_col=2, values_only=True))
    assert protocol["Laufart"] == "Echtlauf"


def test_provisional_run_marks_every_sheet(tmp_path):
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o",
                 str(tmp_path / "v.xlsx"), "--provisional"]) == 0
    workbook = load_workbook(tmp_path / "v.xlsx")
    for ws in workbook.worksheets:
        row1 = [c.value for c in ws[1] if isinstance(c.value, str)]
        assert any(v.startswith("VORLÄUFIG (§ 56 Abs. 1 KrO NRW)") for v in row1), ws.title
        assert "VORLÄUFIG" in ws.oddHeader.center.text
    protocol = dict(r[:2] for r in workbook["Protokoll"].iter_rows(min_row=2, values_only=True))
    assert protocol["Vorläufig (§ 56 Abs. 1 KrO NRW)"] == "ja" and protocol["Laufart"] == "Probelauf"


def test_a_normal_run_is_not_marked_provisional(tmp_path):
    assert main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(CORPUS / "regeln.yaml"), "-o",
                 str(tmp_path / "n.xlsx")]) == 0
    for ws in load_workbook(tmp_path / "n.xlsx").worksheets:
        assert not any(isinstance(c.value, str) and "VORLÄUFIG" in c.value for c in ws[1])


@pytest.mark.parametrize(("seq", "shown"), [(None, "seq: null"), ("drop", "kein seq"), (7, "seq: 7")])
def test_a_line_with_a_wrong_number_shows_its_json_never_none(tmp_path, seq, shown):
    append_final(tmp_path, _record(), None)
    path = register_path(tmp_path, "Kreis Wesel", 2022)
    entry = json.loads(path.read_text(encoding="utf-8"))
    if seq == "drop":
        del entry["seq"]
    else:
        entry["seq"] = seq
    path.write_text(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    with pytest.raises(RegisterError) as corrupt:
        read_entries(path)
    problem = corrupt.value.problems[0]
    assert (problem.code, problem.location.line, problem.found) == ("register-corrupt", 1, shown)
    assert "None" not in str(problem)


def test_a_register_lock_file_that_is_no_regular_file_is_refused_before_locking(tmp_path):
    """`.sperre` as a FIFO (a race: it appeared after the register was read): the lock refuses it itself, naming
    the lock file, before it would flock a pipe."""
    import os

    from allocation.runs.readback import LOCK_FILE, RegisterCorrupt
    from allocation.runs.register import final_lock, shared_lock

    folder = tmp_path / "register"
    folder.mkdir()
    os.mkfifo(folder / LOCK_FILE)
    for lock in (final_lock, shared_lock):
        with pytest.raises(RegisterCorrupt) as caught:
            with lock(folder):
                pytest.fail("locked a FIFO")
        (problem,) = caught.value.problems
        assert problem.message == "Die Sperrdatei des Registers ist keine gewöhnliche Datei"
        assert problem.location.file == str(folder / LOCK_FILE) and problem.found == "eine benannte Pipe (FIFO)"
