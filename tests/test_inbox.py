"""The inbox: results and failures land in the right folders, inputs are archived unchanged, re-drops are
recognised, temp names are ignored, a lock keeps a second process out, every file gets one JSON log line."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.inbox import is_ignored, process_inbox
from allocation.locking import Busy, DirectoryLock
from allocation.problems import ExitCode

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture
def inbox(tmp_path):
    root, rules = tmp_path / "inbox", tmp_path / "rules"
    (root / "eingang").mkdir(parents=True)
    rules.mkdir()
    shutil.copy(CORPUS / "regeln.yaml", rules / "kreis-wesel.yaml")
    return root, rules


def _drop(root: Path, source: str, name: str) -> str:
    target = root / "eingang" / name
    shutil.copy(CORPUS / source, target)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def _run(root, rules, **kw):
    log = io.StringIO()
    outcomes = process_inbox(root, rules, log=log, **kw)
    return outcomes, [json.loads(line) for line in log.getvalue().splitlines()]


def test_good_and_bad_files_go_to_ergebnis_and_fehler_and_are_archived_unchanged(inbox):
    root, rules = inbox
    good, bad = _drop(root, "gueltig.xlsx", "gut.xlsx"), _drop(root, "ags-doppelt.xlsx", "schlecht.xlsx")
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status, o.exit_code) for o in outcomes] == [("gut.xlsx", "ok", 0),
                                                                   ("schlecht.xlsx", "error", ExitCode.INPUT)]
    assert [entry["file"] for entry in log] == ["gut.xlsx", "schlecht.xlsx"]
    assert log[0]["district"] == "Kreis Wesel" and log[0]["year"] == 2022 and log[0]["mode"] == "test"
    assert list((root / "eingang").iterdir()) == []
    assert (root / "ergebnis" / "gut" / "gut-ergebnis.xlsx").exists()
    failure = root / "fehler" / "schlecht"
    text = (failure / "fehlerbericht.txt").read_text(encoding="utf-8")
    assert "input-duplicate-ags" in text and "Blatt Gemeinden, Zelle A4" in text
    problems = json.loads((failure / "problems.json").read_text(encoding="utf-8"))
    assert problems[0]["code"] == "input-duplicate-ags" and problems[0]["location"]["cell"] == "Gemeinden!A4"
    marked = load_workbook(failure / "schlecht-markiert.xlsx")
    assert "input-duplicate-ags" in marked["Gemeinden"]["A4"].comment.text
    assert marked["Gemeinden"]["A4"].fill.fgColor.rgb.endswith("FFC7CE")
    assert marked["Gemeinden"]["A3"].comment is None
    archived = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "archiv").iterdir()}
    assert sorted(archived.values()) == sorted([good, bad])
    for name, sha in archived.items():
        assert f"_{sha}_" in name


def test_same_hash_redrop_is_not_processed_again_unless_forced(inbox):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    _run(root, rules)
    _drop(root, "gueltig.xlsx", "nochmal.xlsx")
    outcomes, _ = _run(root, rules)
    assert [o.status for o in outcomes] == ["duplicate"]
    assert outcomes[0].result.endswith("ergebnis/gut")
    assert sorted(p.name for p in (root / "ergebnis").iterdir()) == ["gut"]
    assert len(list((root / "archiv").iterdir())) == 2  # never deleted, even a duplicate
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    outcomes, _ = _run(root, rules, force=True)
    assert [o.status for o in outcomes] == ["ok"]
    assert sorted(p.name for p in (root / "ergebnis").iterdir()) == ["gut", "gut-2"]


@pytest.mark.parametrize("name", [".gut.xlsx", "~$gut.xlsx", "gut.xlsx.tmp", "gut.xlsx.part", "gut.PART"])
def test_files_still_being_written_are_ignored(inbox, name):
    root, rules = inbox
    assert is_ignored(name)
    _drop(root, "gueltig.xlsx", name)
    outcomes, log = _run(root, rules)
    assert outcomes == [] and log == []
    assert (root / "eingang" / name).exists()


def test_no_rule_file_for_the_year_is_a_clear_failure(inbox):
    root, rules = inbox
    from openpyxl import load_workbook as load

    wb = load(CORPUS / "gueltig.xlsx")
    wb["Parameter"]["B3"] = 2030
    wb.save(root / "eingang" / "jahr2030.xlsx")
    outcomes, _ = _run(root, rules)
    assert outcomes[0].status == "error" and outcomes[0].exit_code == ExitCode.RULES
    problems = json.loads((root / "fehler" / "jahr2030" / "problems.json").read_text(encoding="utf-8"))
    assert problems[0]["code"] == "rules-no-match"


def test_final_mode_registers_the_run_and_refuses_a_second_one(inbox, isolated_register):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    outcomes, _ = _run(root, rules, mode="final")
    assert outcomes[0].status == "ok"
    register = isolated_register / "wesel-2022.jsonl"  # the installation's register, not DIR/register
    lines = register.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["input"] == "gut.xlsx"
    assert list((root / "register").glob("*.jsonl")) == []
    # a different file for the same district and year: refused, reported in fehler/
    from openpyxl import load_workbook as load

    wb = load(CORPUS / "gueltig.xlsx")
    wb["Kostenpositionen"]["E5"] = 95000
    wb.save(root / "eingang" / "korrektur.xlsx")
    outcomes, _ = _run(root, rules, mode="final")
    assert outcomes[0].status == "error"
    problems = json.loads((root / "fehler" / "korrektur" / "problems.json").read_text(encoding="utf-8"))
    assert problems[0]["code"] == "register-final-exists"
    assert len(register.read_text(encoding="utf-8").splitlines()) == 1


def test_inbox_final_uses_the_installation_register_across_inboxes_and_run(tmp_path, isolated_register):
    """Regression: each inbox kept its own DIR/register, so a second inbox (or `run --mode final`) accepted a
    second Echtlauf Nr. 1 for the same district and year."""
    from allocation.cli import main

    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(CORPUS / "regeln.yaml", rules / "kreis-wesel.yaml")
    first, second = tmp_path / "inbox-a", tmp_path / "inbox-b"
    for root in (first, second):
        (root / "eingang").mkdir(parents=True)
    _drop(first, "gueltig.xlsx", "gut.xlsx")
    assert _run(first, rules, mode="final")[0][0].status == "ok"
    wb = load_workbook(CORPUS / "gueltig.xlsx")
    wb["Kostenpositionen"]["E5"] = 95000  # other figures, same Kreis and Haushaltsjahr
    wb.save(second / "eingang" / "gut.xlsx")
    outcomes, _ = _run(second, rules, mode="final")
    assert (outcomes[0].status, outcomes[0].exit_code) == ("error", ExitCode.REFUSED)
    problems = json.loads((second / "fehler" / "gut" / "problems.json").read_text(encoding="utf-8"))
    assert [p["code"] for p in problems] == ["register-final-exists"]
    code = main(["run", str(CORPUS / "gueltig.xlsx"), "--rules", str(rules / "kreis-wesel.yaml"), "-o",
                 str(tmp_path / "elsewhere" / "out.xlsx"), "--mode", "final"])
    assert code == ExitCode.REFUSED and not (tmp_path / "elsewhere" / "out.xlsx").exists()
    # an explicit --register is another installation's register
    other = tmp_path / "other-register"
    wb.save(second / "eingang" / "nochmal.xlsx")
    outcomes, _ = _run(second, rules, mode="final", force=True, register=other)
    assert outcomes[0].status == "ok"
    assert len((other / "wesel-2022.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_a_second_process_is_kept_out_by_the_lock(inbox):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    with DirectoryLock(root):
        with pytest.raises(Busy):
            DirectoryLock(root).acquire()
        busy = subprocess.run([sys.executable, "-m", "allocation", "inbox", str(root), "--rules-dir", str(rules)],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == ExitCode.BUSY == 75
        assert (root / "eingang" / "gut.xlsx").exists()
    with DirectoryLock(root):  # released: can be taken again
        pass


def test_watch_picks_up_a_file_once_complete_and_stops_on_sigterm(inbox):
    root, rules = inbox
    process = subprocess.Popen([sys.executable, "-m", "allocation", "inbox", str(root), "--rules-dir", str(rules),
                                "--watch", "--interval", "0.2"], stdout=subprocess.PIPE, text=True)
    try:
        shutil.copy(CORPUS / "gueltig.xlsx", root / "eingang" / "gut.xlsx.part")
        (root / "eingang" / "gut.xlsx.part").rename(root / "eingang" / "gut.xlsx")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (root / "ergebnis" / "gut").exists():
            time.sleep(0.1)
        assert (root / "ergebnis" / "gut" / "gut-ergebnis.xlsx").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["ok"]


def test_an_inbox_result_can_be_verified_from_its_archived_input(inbox, capsys):
    from allocation.cli import main
    from allocation.manifest import VERIFY_FAILED

    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    _run(root, rules)
    output = root / "ergebnis" / "gut" / "gut-ergebnis.xlsx"
    assert not (root / ".tmp").exists() or not any((root / ".tmp").iterdir())  # the private copy is gone
    assert main(["verify", str(output)]) == ExitCode.OK
    # the archived input is the one checked: change it and verify fails
    archived = next((root / "archiv").iterdir())
    archived.write_bytes(archived.read_bytes() + b"\0")
    assert main(["verify", str(output)]) == VERIFY_FAILED
