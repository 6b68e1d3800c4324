"""The inbox: results and failures land in the right folders, inputs are archived unchanged, re-drops are
recognised, temp names are ignored, a lock keeps a second process out, every file gets one JSON log line."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from allocation.ops.inbox import is_ignored, process_inbox
from allocation.ops.locking import Busy, DirectoryLock
from allocation.core.problems import ExitCode

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
    assert not (root / "register").exists()  # no stray register folder beside the inbox (issue 23)
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


def _watch_one_drop(root: Path, rules: Path, interval: str, linger: float = 0.0) -> tuple[int, str]:
    """`inbox --watch` while gut.xlsx is dropped (copied under .part, then renamed); waits until its result
    exists and `linger` seconds more, then SIGTERM. Returns the exit code and the log lines."""
    process = subprocess.Popen([sys.executable, "-m", "allocation", "inbox", str(root), "--rules-dir", str(rules),
                                "--watch", "--interval", interval], stdout=subprocess.PIPE, text=True)
    try:
        shutil.copy(CORPUS / "gueltig.xlsx", root / "eingang" / "gut.xlsx.part")
        (root / "eingang" / "gut.xlsx.part").rename(root / "eingang" / "gut.xlsx")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (root / "ergebnis" / "gut").exists():
            time.sleep(0.1)
        time.sleep(linger)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    return process.returncode, out


def test_watch_picks_up_a_file_once_complete_and_stops_on_sigterm(inbox):
    root, rules = inbox
    returncode, out = _watch_one_drop(root, rules, "0.2")
    assert (root / "ergebnis" / "gut" / "gut-ergebnis.xlsx").exists()
    assert returncode == 0
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["ok"]


def test_an_inbox_result_can_be_verified_from_its_archived_input(inbox, capsys):
    from allocation.cli import main
    from allocation.ops.verify import VERIFY_FAILED

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


# ------------------------------------------------------------------ issue 11/12: names, writers, order


def _age(path: Path, seconds_ago: int) -> None:
    stamp = time.time() - seconds_ago
    import os

    os.utime(path, (stamp, stamp))


def test_an_over_long_multibyte_name_is_shortened_by_bytes_and_later_files_still_run(inbox):
    root, rules = inbox
    long_name = "ü" * 120 + ".xlsx"  # 245 bytes: fits in eingang/, but not behind the archive's 82-byte prefix
    assert len(long_name.encode()) == 245
    good = _drop(root, "gueltig.xlsx", long_name)
    _drop(root, "ags-doppelt.xlsx", "spaeter.xlsx")
    _age(root / "eingang" / long_name, 60)  # taken first
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status) for o in outcomes] == [(long_name, "ok"), ("spaeter.xlsx", "error")]
    assert [entry["file"] for entry in log] == [long_name, "spaeter.xlsx"]
    assert list((root / "eingang").iterdir()) == []
    (result,) = (root / "ergebnis").iterdir()
    assert result.name == "ü" * 60  # STEM_BYTES = 120 bytes = 60 two-byte characters, none cut in half
    assert (result / ("ü" * 60 + "-ergebnis.xlsx")).is_file()
    archived = [p for p in (root / "archiv").iterdir() if f"_{good}_" in p.name]
    assert len(archived) == 1 and len(archived[0].name.encode()) <= 255 and archived[0].name.endswith("ü.xlsx")
    assert hashlib.sha256(archived[0].read_bytes()).hexdigest() == good
    assert _run(root, rules) == ([], [])  # nothing left over that blocks a later run


def test_a_name_with_bytes_that_are_not_utf8_is_reported_readably(inbox):
    import os

    root, rules = inbox
    raw = os.path.join(os.fsencode(root / "eingang"), b"Kreis-\xff\xfe-2022.xlsx")
    with open(raw, "wb") as handle:
        handle.write((CORPUS / "ags-doppelt.xlsx").read_bytes())
    _age(Path(os.fsdecode(raw)), 60)
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    outcomes, log = _run(root, rules)
    assert [(o.status, o.exit_code) for o in outcomes] == [("error", ExitCode.INPUT), ("ok", ExitCode.OK)]
    assert log[0]["file"] == "Kreis-\ufffd\ufffd-2022.xlsx"
    outcomes[0].log_line().encode("utf-8")  # printable on a UTF-8 stdout (a lone surrogate would raise)
    report = (root / "fehler" / "Kreis-_-2022" / "fehlerbericht.txt").read_text(encoding="utf-8")
    assert "input-duplicate-ags" in report
    archived = [name for name in os.listdir(os.fsencode(root / "archiv")) if b"\xff\xfe" in name]
    assert len(archived) == 1 and archived[0].endswith(b"_Kreis-\xff\xfe-2022.xlsx")  # the original bytes


def test_an_unexpected_failure_with_one_file_is_reported_in_fehler_and_the_next_file_runs(inbox, monkeypatch):
    root, rules = inbox

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("allocation.workbook.error_report.write_marked_copy", disk_full)
    bad = _drop(root, "ags-doppelt.xlsx", "schlecht.xlsx")
    _age(root / "eingang" / "schlecht.xlsx", 60)
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status, o.exit_code) for o in outcomes] == [("schlecht.xlsx", "error", ExitCode.INTERNAL),
                                                                   ("gut.xlsx", "ok", ExitCode.OK)]
    problems = json.loads((root / "fehler" / "schlecht" / "problems.json").read_text(encoding="utf-8"))
    assert problems[0]["code"] == "inbox-file-failed" and "No space left" in problems[0]["found"]
    assert any(f"_{bad}_schlecht.xlsx" in p.name for p in (root / "archiv").iterdir())
    assert list((root / "eingang").iterdir()) == []


def test_a_file_that_changes_while_it_is_read_waits_for_the_next_pass(inbox, monkeypatch):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "wachsend.xlsx")
    import allocation.ops.inbox as inbox_module

    original = inbox_module._open_regular

    def open_while_a_writer_appends(path):
        handle = original(path)
        if path.name == "wachsend.xlsx":
            with open(path, "ab") as writer:
                writer.write(b"noch mehr Bytes")
        return handle

    monkeypatch.setattr(inbox_module, "_open_regular", open_while_a_writer_appends)
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status) for o in outcomes] == [("wachsend.xlsx", "writing")]
    assert log[0]["status"] == "writing"
    assert (root / "eingang" / "wachsend.xlsx").exists()
    for folder in ("archiv", "ergebnis", "fehler", ".tmp"):
        assert list((root / folder).iterdir()) == [], folder
    monkeypatch.undo()  # the writer has finished: the next pass takes it
    outcomes, _ = _run(root, rules)
    assert len(outcomes) == 1 and outcomes[0].status in ("ok", "error") and outcomes[0].archive


def test_of_two_files_with_the_same_bytes_the_older_is_processed_and_the_other_is_its_duplicate(inbox):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "a-kopie.xlsx")
    _drop(root, "gueltig.xlsx", "b-original.xlsx")
    _age(root / "eingang" / "a-kopie.xlsx", 60)
    _age(root / "eingang" / "b-original.xlsx", 120)  # older, though alphabetically later
    outcomes, _ = _run(root, rules)
    assert [(o.file, o.status) for o in outcomes] == [("b-original.xlsx", "ok"), ("a-kopie.xlsx", "duplicate")]
    assert outcomes[1].result == outcomes[0].result and outcomes[0].result.endswith("ergebnis/b-original")


def test_of_two_equal_files_of_the_same_age_the_alphabetically_first_is_processed(inbox):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "z.xlsx")
    _drop(root, "gueltig.xlsx", "m.xlsx")
    for name in ("z.xlsx", "m.xlsx"):
        _age(root / "eingang" / name, 60)
    import os

    stamp = (root / "eingang" / "z.xlsx").stat().st_mtime_ns
    os.utime(root / "eingang" / "m.xlsx", ns=(stamp, stamp))
    outcomes, _ = _run(root, rules)
    assert [(o.file, o.status) for o in outcomes] == [("m.xlsx", "ok"), ("z.xlsx", "duplicate")]


def test_names_are_cut_by_bytes_at_character_boundaries():
    from allocation.core.filenames import cut_bytes, display_name, fit_name, safe_stem

    assert cut_bytes("aüb", 2) == "a"  # ü is 2 bytes: never half of it
    assert cut_bytes("aüb", 3) == "aü"
    assert cut_bytes("€€", 5) == "€"  # 3-byte characters
    assert fit_name("ü" * 200 + ".xlsx", 100) == "ü" * 47 + ".xlsx"  # 94 + 5 bytes
    assert fit_name("kurz.xlsx", 100) == "kurz.xlsx"
    odd = "a\udcff\udcfe.xlsx"  # the bytes a, 0xff, 0xfe as Python reads them from a folder
    assert fit_name(odd, 7).encode("utf-8", "surrogateescape") == b"a\xff.xlsx"
    assert display_name(odd) == "a\ufffd\ufffd.xlsx"
    assert safe_stem("../../etc/passwd.xlsx", 50) == "passwd" and safe_stem("...", 50) == "eingabe"


def test_links_folders_and_fifos_in_eingang_are_left_alone_and_logged(inbox, tmp_path):
    """Nothing is skipped silently: a symbolic link (it could point outside the inbox), a folder and a FIFO
    (reading it would block) stay where they are, each gets an `inbox-skipped` log line with the reason, and
    the workbook beside them is processed as usual."""
    import os

    root, rules = inbox
    outside = tmp_path / "draussen.xlsx"
    shutil.copy(CORPUS / "gueltig.xlsx", outside)
    (root / "eingang" / "verknuepft.xlsx").symlink_to(outside)
    (root / "eingang" / "ordner.xlsx").mkdir()
    os.mkfifo(root / "eingang" / "rohr.xlsx")
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status) for o in outcomes] == [("gut.xlsx", "ok")]
    skipped = {entry["file"]: entry["reason"] for entry in log if entry["event"] == "inbox-skipped"}
    assert skipped == {"verknuepft.xlsx": "symbolische Verknüpfung", "ordner.xlsx": "Ordner",
                       "rohr.xlsx": "keine reguläre Datei (z. B. FIFO, Gerät, Socket)"}
    assert all("eingang/" in entry["hint"] for entry in log if entry["event"] == "inbox-skipped")
    assert sorted(p.name for p in (root / "eingang").iterdir()) == ["ordner.xlsx", "rohr.xlsx", "verknuepft.xlsx"]
    assert outside.exists() and len(list((root / "archiv").iterdir())) == 1  # only gut.xlsx archived
    # names the inbox ignores on purpose (still being written) are not reported as skipped
    (root / "eingang" / "~$offen.xlsx").mkdir()
    _outcomes, log = _run(root, rules)
    assert sorted(e["file"] for e in log if e["event"] == "inbox-skipped") == \
        ["ordner.xlsx", "rohr.xlsx", "verknuepft.xlsx"]


def test_watch_reports_a_skipped_entry_once_while_it_stays(inbox):
    root, rules = inbox
    (root / "eingang" / "ordner.xlsx").mkdir()
    _returncode, out = _watch_one_drop(root, rules, "0.1", linger=0.5)  # several passes with the folder there
    events = [(json.loads(line)["event"], json.loads(line)["file"]) for line in out.splitlines()]
    assert events.count(("inbox-skipped", "ordner.xlsx")) == 1, events
    assert ("inbox-file", "gut.xlsx") in events


def _swap_after_listing(monkeypatch, root: Path, name: str, replace) -> None:
    """The entry `name` is replaced (by `replace(path)`) after the pass has listed it as a regular file."""
    import allocation.ops.inbox as inbox_module

    listed = inbox_module._candidates

    def list_then_swap(folder):
        found = listed(folder)
        target = root / "eingang" / name
        target.unlink()
        replace(target)
        return found

    monkeypatch.setattr(inbox_module, "_candidates", list_then_swap)


def _release_readers_until(done, fifo: Path, released: list) -> None:
    """Without the checks the pass would block on the FIFO: every 2 s a writer opens and closes it (the reader
    gets end of file) and notes that a reader was waiting, so that such a test fails instead of hanging."""
    import os

    while not done.wait(2):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only while a reader has it open
            released.append(fifo.name)
        except OSError:  # no reader waiting, or no FIFO there
            pass


def test_a_file_replaced_by_a_fifo_after_listing_neither_blocks_nor_is_archived(inbox, monkeypatch):
    """Reading a FIFO waits for a writer: the pass must not open it as the workbook it listed. (Without the
    check, `_release_readers_until` keeps the test from hanging.)"""
    import os
    import threading

    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    fifo = root / "eingang" / "gut.xlsx"
    _swap_after_listing(monkeypatch, root, "gut.xlsx", os.mkfifo)
    done, released = threading.Event(), []

    def release_a_blocked_reader():
        _release_readers_until(done, fifo, released)

    guard = threading.Thread(target=release_a_blocked_reader, daemon=True)
    guard.start()
    try:
        outcomes, _log = _run(root, rules)
    finally:
        done.set()
    assert released == []  # the pass never waited on the FIFO
    assert [(o.file, o.status, o.exit_code) for o in outcomes] == [("gut.xlsx", "writing", 0)]
    assert fifo.is_fifo()
    for folder in ("archiv", "ergebnis", "fehler"):
        assert list((root / folder).iterdir()) == [], folder
    monkeypatch.undo()  # the next pass reports it as left alone
    outcomes, log = _run(root, rules)
    assert outcomes == [] and [(e["event"], e["file"]) for e in log] == [("inbox-skipped", "gut.xlsx")]


def test_a_file_replaced_by_a_link_after_listing_is_not_followed_read_or_archived(inbox, monkeypatch, tmp_path):
    """A link swapped in after listing would let the inbox read (and report on) a workbook outside eingang/ and
    archive the link as if it were the input."""
    root, rules = inbox
    outside = tmp_path / "fremd.xlsx"
    shutil.copy(CORPUS / "gueltig.xlsx", outside)
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    _swap_after_listing(monkeypatch, root, "gut.xlsx", lambda path: path.symlink_to(outside))
    outcomes, _log = _run(root, rules)
    assert [(o.file, o.status, o.sha256, o.exit_code) for o in outcomes] == [("gut.xlsx", "writing", "", 0)]
    assert (root / "eingang" / "gut.xlsx").is_symlink() and outside.is_file()
    for folder in ("archiv", "ergebnis", "fehler"):
        assert list((root / folder).iterdir()) == [], folder


def test_an_input_replaced_by_a_fifo_while_it_runs_drops_the_result_without_blocking(inbox, monkeypatch):
    """After the run the input is hashed again (was it replaced?): a FIFO there must not block that check."""
    import os
    import threading

    import allocation.ops.inbox as inbox_module

    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    entry = root / "eingang" / "gut.xlsx"
    synced = inbox_module._fsync_tree

    def sync_then_swap(path):  # runs just before the re-check of the input
        if not entry.is_fifo():
            entry.unlink()
            os.mkfifo(entry)
        synced(path)

    monkeypatch.setattr(inbox_module, "_fsync_tree", sync_then_swap)
    done, released = threading.Event(), []

    def release_a_blocked_reader():
        _release_readers_until(done, entry, released)

    threading.Thread(target=release_a_blocked_reader, daemon=True).start()
    try:
        outcomes, _log = _run(root, rules)
    finally:
        done.set()
    assert released == []  # the re-check never waited on the FIFO
    assert [(o.file, o.status, o.exit_code) for o in outcomes] == [("gut.xlsx", "changed", 0)]
    assert entry.is_fifo()
    for folder in ("archiv", "ergebnis", "fehler"):
        assert list((root / folder).iterdir()) == [], folder


def test_a_file_taken_back_after_listing_is_gone_not_an_error(inbox, monkeypatch):
    """A controller deletes a dropped file after the pass listed it: status `gone`, exit 0, nothing archived,
    nothing in fehler/ (it used to be `inbox-file-failed`, exit 1)."""
    from allocation.ops import inbox as module

    root, rules = inbox
    _drop(root, "gueltig.xlsx", "zurueck.xlsx")
    listed = module._candidates

    def listed_then_taken_back(folder):
        paths = listed(folder)
        for path in paths:
            path.unlink()
        return paths

    monkeypatch.setattr(module, "_candidates", listed_then_taken_back)
    outcomes, log = _run(root, rules)
    assert [(o.file, o.status, o.exit_code) for o in outcomes] == [("zurueck.xlsx", "gone", 0)]
    assert list((root / "archiv").iterdir()) == [] and list((root / "fehler").iterdir()) == []


# ------------------------------------------------------------------ an inbox folder that is not what it must be

def _inbox_cli(root: Path, rules: Path) -> subprocess.CompletedProcess:
    """`allocation inbox ROOT --json` in its own process: a lock that blocked would hit the timeout."""
    return subprocess.run([sys.executable, "-m", "allocation", "inbox", str(root), "--rules-dir", str(rules), "--json"],
                          capture_output=True, text=True, timeout=60)


def _unusable(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == ExitCode.OUTPUT == 9, done.stderr
    assert "Traceback" not in done.stderr
    answer = json.loads(done.stdout)
    assert answer["exit_code"] == 9 and {p["code"] for p in answer["problems"]} == {"inbox-unusable"}
    return answer["problems"]


@pytest.mark.parametrize("kind, found", [("folder", "ein Verzeichnis"), ("fifo", "eine benannte Pipe (FIFO)"),
                                         ("dangling link", "eine symbolische Verknüpfung"),
                                         ("link to a file", "eine symbolische Verknüpfung"),
                                         ("hard link", "Datei mit 2 Namen")])
def test_a_lock_that_is_no_plain_file_of_its_own_is_a_located_error_not_a_hang(inbox, tmp_path, kind, found):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    lock, elsewhere = root / ".lock", tmp_path / "fremde-datei.txt"
    if kind == "folder":
        lock.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dangling link":
        lock.symlink_to(elsewhere)
    else:
        elsewhere.write_text("nicht leeren\n", encoding="utf-8")
        lock.symlink_to(elsewhere) if kind == "link to a file" else os.link(elsewhere, lock)
    [problem] = _unusable(_inbox_cli(root, rules))
    assert problem["location"]["file"] == str(lock) and problem["found"] == found
    assert ".lock entfernen" in problem["hint"]
    assert (root / "eingang" / "gut.xlsx").exists() and not (root / "ergebnis").exists()
    if kind == "dangling link":
        assert not elsewhere.exists()  # the link's target was not created
    elif kind != "folder" and kind != "fifo":
        assert elsewhere.read_text(encoding="utf-8") == "nicht leeren\n"  # nor emptied


def test_subfolders_that_are_files_are_each_a_located_error(inbox):
    root, rules = inbox
    _drop(root, "gueltig.xlsx", "gut.xlsx")
    for name in ("ergebnis", "fehler", "archiv"):
        (root / name).write_text("eine Datei statt eines Ordners\n", encoding="utf-8")
    problems = _unusable(_inbox_cli(root, rules))
    assert [(p["location"]["file"], p["found"]) for p in problems] == [
        (str(root / "ergebnis"), "eine gewöhnliche Datei"), (str(root / "fehler"), "eine gewöhnliche Datei"),
        (str(root / "archiv"), "eine gewöhnliche Datei")]
    assert all("kein Ordner" in p["message"] for p in problems)
    assert (root / "eingang" / "gut.xlsx").exists()  # nothing taken


def test_an_eingang_file_and_an_inbox_that_is_a_file_are_located_errors(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    root = tmp_path / "inbox"
    root.mkdir()
    (root / "eingang").write_bytes(b"")
    [problem] = _unusable(_inbox_cli(root, rules))
    assert problem["location"]["file"] == str(root / "eingang") and problem["found"] == "eine gewöhnliche Datei"
    plain = tmp_path / "eine-datei"
    plain.write_text("x", encoding="utf-8")
    [problem] = _unusable(_inbox_cli(plain, rules))
    assert problem["location"]["file"] == str(plain) and problem["found"] == "eine gewöhnliche Datei"
    assert plain.read_text(encoding="utf-8") == "x"


def test_a_tmp_folder_that_is_a_link_is_refused_and_its_target_kept(inbox, tmp_path):
    root, rules = inbox
    victim = tmp_path / "fremder-ordner"
    victim.mkdir()
    (victim / "wichtig.txt").write_text("bleibt\n", encoding="utf-8")
    root.mkdir(exist_ok=True)
    (root / ".tmp").symlink_to(victim)
    [problem] = _unusable(_inbox_cli(root, rules))
    assert problem["location"]["file"] == str(root / ".tmp")
    assert (victim / "wichtig.txt").read_text(encoding="utf-8") == "bleibt\n"
