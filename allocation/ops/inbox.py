"""The inbox: controllers drop workbooks into `DIR/eingang/`, every file is processed exactly once.

Folders below DIR: `eingang/` (drop here), `ergebnis/<name>/` (result workbook, the run manifest written by
`pipeline.run`, `status.json`),
`fehler/<name>/` (`fehlerbericht.txt`, `<name>-markiert.xlsx`, `problems.json`, `status.json`), `archiv/`
(every input, renamed `<UTC time>_<sha256>_<name>`, never modified or deleted), `.tmp/` (work in progress,
private) and `.lock`. Final runs go into the installation's register (which an installation may keep in
`DIR/register/`, as the shipped units do); the inbox itself makes no register folder.

Files whose names start with `.` or `~$` or end with `.tmp`/`.part` are still being written and are ignored
until they are renamed. Entries that are no regular file (links, folders, FIFOs) stay untouched and are logged
(`inbox-skipped`). Every pass looks twice: a file whose size or modification time changes while it is
read waits for the next pass (status `writing`); `--watch` also waits until a file's size and modification
time are unchanged between two scans. Files are taken oldest first (modification time, then name), so of two
files with the same bytes the older one is processed and the other is reported as its duplicate.

Names: result and report folders use the input's name cut to `STEM_BYTES` bytes, the archive name
`<UTC time>_<sha256>_<name>` is cut to the file system's limit (`filenames.fit_name`), and names with bytes
that are not UTF-8 are shown with U+FFFD in reports and log lines. Whatever still goes wrong with one file is
reported in `fehler/` under a shortened name and never stops the files after it.

Crash safety (kill -9 at any point): a result is assembled in `.tmp/`, every file fsynced, then the
folder is renamed into `ergebnis/` or `fehler/` in one step; only then is the input renamed into `archiv/`.
So an input is either still in `eingang/` or archived with a complete result. If the process dies between
the two renames, the next run finds the complete result by the input's hash (`status.json`) and only
archives the input. Left-over folders in `.tmp/` are incomplete by construction and are removed.
An input whose hash is already in `archiv/` is a re-drop: it is archived again and not processed, unless
`force`. The test-only environment variable `ALLOCATION_TEST_KILL_AT=<step>` makes the process SIGKILL
itself at a named step (see `STEPS`); it exists only so the tests can prove the above.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from ..core.filenames import (display_name, fit_name, fsync_folder, name_bytes, name_max, os_reason, safe_stem,
                              what_is_at)
from ..core.problems import ExitCode, Location, Problem, ProblemsError
from ..runs.readback import read_json_object
from ..runs.register import guard_folder
from .locking import FolderUnusable, unusable

__all__ = ["process_inbox", "watch_inbox", "Outcome", "is_ignored", "STEPS", "FOLDERS"]

FOLDERS = ("eingang", "ergebnis", "fehler", "archiv", ".tmp")  # no register/: one register per installation
# what a pass writes into or takes files from (eingang/: its files are moved to archiv/); DIR/register/ may be the
# register itself
WRITTEN = ("eingang", "ergebnis", "fehler", "archiv", ".tmp")
STEPS = ("after-read", "mid-result", "before-result-rename", "after-result-rename", "after-archive")
KILL_ENV = "ALLOCATION_TEST_KILL_AT"
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv", ".ods")
STEM_BYTES = 120  # result/report folder and file stems: room for `-ergebnis.xlsx.manifest.json` and `-N`
ARCHIVE_RESERVE = 8  # bytes kept free in an archive name for `_free_name`'s `-N`


def _kill_point(step: str) -> None:
    """Test-only: die like kill -9 at the named step."""
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def is_ignored(name: str) -> bool:
    """Temp-name convention: files still being written are not picked up."""
    lower = name.lower()
    return name.startswith((".", "~$")) or lower.endswith((".tmp", ".part"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one dropped file; also its structured log line."""

    file: str
    sha256: str
    status: str            # ok | error | duplicate | recovered | changed | writing | gone
    exit_code: int
    result: str | None
    archive: str | None
    district: str | None = None
    year: int | None = None
    rules: str | None = None
    mode: str = "test"
    problems: int = 0
    seconds: float = 0.0
    chain_head: str | None = None  # a final run: the register's chain head after it (for the minutes)
    report_error: str | None = None  # a failure report that could not be written: why (a full disk, a bug)

    def log_line(self) -> str:
        record = {"time": _now_iso(), "event": "inbox-file", **{k: getattr(self, k) for k in self.__slots__}}
        return json.dumps(record, ensure_ascii=False, sort_keys=True)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _now_iso() -> str:
    return _now().strftime("%Y-%m-%dT%H:%M:%SZ")


def _fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")):
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_folder(path)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _safe_stem(name: str) -> str:
    return safe_stem(name, STEM_BYTES)


def _archived_hashes(archive: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in sorted(archive.iterdir()):
        match = re.match(r"^\d{8}T\d{6}Z_([0-9a-f]{64})_", item.name)
        if match:
            found.setdefault(match.group(1), item.name)
    return found


def _completed_results(root: Path) -> dict[str, Path]:
    """Hash -> complete result folder (in ergebnis/ or fehler/), read from each folder's status.json."""
    found: dict[str, Path] = {}
    for kind in ("ergebnis", "fehler"):
        for folder in sorted((root / kind).iterdir()):
            status = read_json_object(folder / "status.json")  # our own record, read back within bounds
            if status is not None and isinstance(status.get("sha256"), str):
                found.setdefault(status["sha256"], folder)
    return found


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    number = 2
    while target.exists():
        target = folder / f"{name}-{number}"
        number += 1
    return target


def _archive(source: Path, root: Path, sha256: str) -> Path:
    prefix = f"{_now().strftime('%Y%m%dT%H%M%SZ')}_{sha256}_"
    budget = name_max(root / "archiv") - len(prefix) - ARCHIVE_RESERVE
    target = _free_name(root / "archiv", prefix + fit_name(source.name, budget))  # original bytes where they fit
    os.rename(source, target)  # same file system: atomic, the bytes are never rewritten
    fsync_folder(target.parent)
    fsync_folder(source.parent)
    return target


def _failure(work: Path, stem: str, input_copy: Path, error: ProblemsError | None, problems: list[Problem]) -> None:
    from ..workbook.error_report import render_text, write_marked_copy

    title = error.title if error is not None else "Die Datei konnte nicht verarbeitet werden"
    text = render_text(problems, title=f"Fehlerbericht: {title}")
    marked = write_marked_copy(input_copy, problems, work / f"{stem}-markiert.xlsx")
    if not marked:
        text += ("\nEine markierte Kopie der Eingabe konnte nicht erstellt werden, weil die Datei nicht sicher "
                 "geöffnet werden kann (siehe oben).\n")
    _write(work / "fehlerbericht.txt", text)
    _write(work / "problems.json", json.dumps([p.as_dict() for p in problems], ensure_ascii=False, indent=2))


def _process_one(path: Path, root: Path, rules_dir: Path, mode: str, force: bool,
                 archived: dict[str, str], completed: dict[str, Path], register: Path | None = None) -> Outcome:
    started = time.monotonic()
    name = display_name(path.name)  # for reports and log lines: always encodable
    try:
        data = _read_settled(path)
    except FileNotFoundError:  # taken back (deleted or moved away) after it was listed: nothing to do
        return Outcome(name, "", "gone", ExitCode.OK, None, None, mode=mode,
                       seconds=round(time.monotonic() - started, 3))
    if data is None:  # still being written: leave it for the next pass
        return Outcome(name, "", "writing", ExitCode.OK, None, None, mode=mode,
                       seconds=round(time.monotonic() - started, 3))
    sha256 = hashlib.sha256(data).hexdigest()
    _kill_point("after-read")
    if not force and sha256 in archived:
        target = _archive(path, root, sha256)
        archived[sha256] = target.name
        previous = completed.get(sha256)
        return Outcome(name, sha256, "duplicate", ExitCode.OK, _shown(previous) if previous else None,
                       _shown(target), mode=mode, seconds=round(time.monotonic() - started, 3))
    if not force and sha256 in completed:  # the result was complete when an earlier run died: just archive
        target = _archive(path, root, sha256)
        archived[sha256] = target.name
        return Outcome(name, sha256, "recovered", ExitCode.OK, _shown(completed[sha256]), _shown(target), mode=mode,
                       seconds=round(time.monotonic() - started, 3))

    stem = _safe_stem(path.name)
    work = root / ".tmp" / f"{sha256[:16]}-{os.getpid()}"
    work.mkdir(parents=True)
    # exactly the bytes hashed above, under an encodable name that fits; removed before publishing
    input_copy = work / ".eingabe" / fit_name(name, name_max(root / ".tmp"))
    input_copy.parent.mkdir()
    input_copy.write_bytes(data)
    district = year = rules = head = None
    status, exit_code, problems = "ok", ExitCode.OK, []
    from ..runs.pipeline import run
    from ..runs.readback import read_register
    from ..runs.register import installation_register

    register = installation_register(register)
    seen: dict = {}

    def accept(book) -> None:  # Kreis and Haushaltsjahr for status.json, also when the run fails later
        seen.update(district=book.parameters.district, year=book.parameters.year)

    def same_bytes_again(book) -> str | None:  # a run that died after registering, or --force: say so
        entries = read_register(register).entries(book.parameters.district, book.parameters.year)
        if entries and entries[-1].get("input_sha256") == sha256:
            return "erneuter Lauf derselben Eingabe (gleiche SHA-256)"
        return None

    try:
        _kill_point("mid-result")
        published = _free_name(root / "ergebnis", stem) / f"{stem}-ergebnis.xlsx"
        result = run(input_copy, rules_dir, work / published.name, mode=mode, register_dir=register,
                     supersede=same_bytes_again if mode == "final" else None, accept=accept,
                     register_extra={"input": name, "output": str(published), "via": "inbox"})
        rules = Path(result.allocation.rulebook.path)
        problems = list(result.warnings)
        head = result.registered["head"] if result.registered else None
    except ProblemsError as error:
        status, exit_code, problems = "error", error.exit_code, list(error.problems)
        for leftover in work.glob("*.xlsx"):
            leftover.unlink()
        _failure(work, stem, input_copy, error, problems)
    except Exception as error:  # noqa: BLE001 - a bug must not stop the inbox; report it and keep the input
        status, exit_code = "error", ExitCode.INTERNAL
        problems = [Problem("internal-error", Location(name), "interner Fehler bei der Verarbeitung der Datei",
                            found=repr(error)[:300], expected="kein interner Fehler",
                            hint="bitte diese Datei dem Betrieb (IT) melden")]
        for leftover in work.glob("*.xlsx"):
            leftover.unlink()
        _failure(work, stem, input_copy, None, problems)
    district, year = seen.get("district"), seen.get("year")
    shutil.rmtree(input_copy.parent)
    _write(work / "status.json", json.dumps({
        "sha256": sha256, "input": name, "status": status, "exit_code": exit_code, "mode": mode,
        "district": district, "year": year, "rules": str(rules) if rules else None, "finished_utc": _now_iso(),
    } | ({"chain_head": head} if head else {}), ensure_ascii=False, indent=2))
    _fsync_tree(work)
    _kill_point("before-result-rename")
    # The input may have been replaced while we worked: then drop this result and try again next time.
    if _regular_sha256(path) != sha256:  # also: no regular file any more (a link's target is never read)
        shutil.rmtree(work)
        return Outcome(name, sha256, "changed", ExitCode.OK, None, None, mode=mode,
                       seconds=round(time.monotonic() - started, 3))
    target = _free_name(root / ("ergebnis" if status == "ok" else "fehler"), stem)
    os.rename(work, target)
    fsync_folder(target.parent)
    completed[sha256] = target
    _kill_point("after-result-rename")
    archive = _archive(path, root, sha256)
    archived[sha256] = archive.name
    _kill_point("after-archive")
    return Outcome(name, sha256, status, exit_code, _shown(target), _shown(archive), district, year,
                   str(rules) if rules else None, mode, sum(1 for p in problems if p.severity != "warning"),
                   round(time.monotonic() - started, 3), head)


def _shown(path: Path) -> str:
    return display_name(str(path))


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _open_regular(path: Path):
    """`path` opened for reading if it is a regular file now, else None. The entry may have been replaced since
    it was listed: it is opened without following a link and without waiting for a FIFO's writer, and the opened
    file itself is checked, so a link's target is never read and a FIFO never blocks the pass."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:  # became a link after lstat
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _read_settled(path: Path) -> bytes | None:
    """The file's bytes, or None if size or modification time changed while it was read (still being written)
    or it is no regular file any more (the next pass reports it as `inbox-skipped`)."""
    before = _signature(path)
    handle = _open_regular(path)
    if handle is None:
        return None
    with handle:
        data = handle.read()
        after = os.fstat(handle.fileno())
    return data if before == (after.st_size, after.st_mtime_ns) and len(data) == after.st_size else None


def _regular_sha256(path: Path) -> str | None:
    """The SHA-256 of `path` if it is a regular file now (see `_open_regular`), else None."""
    try:
        handle = _open_regular(path)
    except FileNotFoundError:
        return None
    if handle is None:
        return None
    with handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _give_up(path: Path, root: Path, mode: str, error: BaseException, started: float) -> Outcome:
    """A failure outside the normal error path (a disk, a name, a bug): report it in fehler/, keep going."""
    name = display_name(path.name)
    problem = Problem("inbox-file-failed", Location(name), "Die Datei konnte im Eingangsordner nicht bearbeitet werden",
                      found=display_name(repr(error))[:300], expected="eine verarbeitbare, archivierbare Datei",
                      hint="die Datei liegt weiter in eingang/ (oder in archiv/); bitte dem Betrieb (IT) melden")
    sha256, result, archive, report_error = "", None, None, None
    try:
        found = _regular_sha256(path)
    except OSError as unreadable:
        found, report_error = None, f"Eingabe nicht lesbar: {os_reason(unreadable)}"
    if found is not None:  # else gone, unreadable, or no regular file any more: nothing to report or archive
        sha256 = found
        try:
            result = _failure_report(path, root, mode, problem, sha256)
            archive = _shown(_archive(path, root, sha256))
        except OSError as failure:  # a full disk, a permission: the log line says so; the next file still runs
            report_error = f"Fehlerbericht nicht geschrieben: {os_reason(failure)}"
        except Exception as bug:  # noqa: BLE001 - a bug while reporting: its traceback to stderr, the next file runs
            traceback.print_exception(bug, file=sys.stderr)
            report_error = f"Fehlerbericht nicht geschrieben: Programmfehler {display_name(repr(bug))[:200]}"
    return Outcome(name, sha256, "error", ExitCode.INTERNAL, result, archive, mode=mode, problems=1,
                   seconds=round(time.monotonic() - started, 3), report_error=report_error)


def _failure_report(path: Path, root: Path, mode: str, problem: Problem, sha256: str) -> str:
    """fehler/<name>/ with the report, the problem and the status, written whole; its shown path."""
    from ..workbook.error_report import render_text

    work = root / ".tmp" / f"failed-{os.getpid()}-{time.monotonic_ns()}"
    work.mkdir(parents=True)
    _write(work / "fehlerbericht.txt", render_text([problem], title="Fehlerbericht: Die Datei konnte nicht "
                                                                   "bearbeitet werden"))
    _write(work / "problems.json", json.dumps([problem.as_dict()], ensure_ascii=False, indent=2))
    _write(work / "status.json", json.dumps({
        "sha256": sha256, "input": display_name(path.name), "status": "error", "exit_code": int(ExitCode.INTERNAL),
        "mode": mode, "finished_utc": _now_iso()}, ensure_ascii=False, indent=2))
    _fsync_tree(work)
    target = _free_name(root / "fehler", _safe_stem(path.name))
    os.rename(work, target)
    fsync_folder(target.parent)
    return _shown(target)


def _prepare(root: Path, register: str | Path | None) -> None:
    """Create the subfolders; each must be a folder (`eingang/` … may be a link to one, `.tmp/` must be the inbox's
    own, since what is in it is deleted). Anything else is `inbox-unusable` (exit 9), before any file is taken.
    Neither the inbox nor a folder a pass writes or takes files from (where one is a link) is in the register
    (`guard_folder`); a damaged register stops the pass before a file is taken."""
    guard_folder(root, register)
    problems = []
    for name in FOLDERS:
        folder = root / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            own = name != ".tmp" or stat.S_ISDIR(os.lstat(folder).st_mode)
        except OSError as error:  # a file (or a dangling link) under the folder's name, or no permission
            problems += unusable(folder, f"{folder.name}/ der Inbox ist kein Ordner oder lässt sich nicht anlegen",
                                 what_is_at(folder, error), "ein Ordner (fehlt er, wird er angelegt)",
                                 f"die Datei {folder} umbenennen oder verschieben; die Inbox legt den Ordner dann "
                                 "selbst an").problems
            continue
        if not own:
            problems += unusable(folder, "Der Arbeitsordner .tmp/ der Inbox ist eine Verknüpfung; sein Inhalt würde "
                                 "gelöscht", what_is_at(folder), "ein eigener Ordner .tmp",
                                 f"die Verknüpfung {folder} entfernen; die Inbox legt den Ordner selbst an").problems
    if not problems:  # results are renamed from .tmp/ into ergebnis/ and fehler/: on one file system only
        work = os.stat(root / ".tmp").st_dev
        for name in ("ergebnis", "fehler"):
            if os.stat(root / name).st_dev != work:
                problems += unusable(root / name, f"{name}/ liegt auf einem anderen Dateisystem als der Arbeitsordner "
                                     ".tmp/: ein fertiges Ergebnis ließe sich nicht in einem Schritt hineinlegen",
                                     f"{name}/ auf Gerät {os.stat(root / name).st_dev}, .tmp/ auf {work}",
                                     "alle Ordner der Inbox auf einem Dateisystem",
                                     f"{name}/ nicht als Verknüpfung auf ein anderes Laufwerk anlegen").problems
    if problems:
        raise FolderUnusable(problems)
    for name in WRITTEN:
        guard_folder(root / name, register)
    for leftover in (root / ".tmp").iterdir():  # incomplete by construction (complete ones were renamed)
        if stat.S_ISDIR(os.lstat(leftover).st_mode):
            shutil.rmtree(leftover, ignore_errors=True)
        else:  # a file or a link: the link itself goes, never what it points to
            leftover.unlink()


def _not_a_file(mode: int) -> str | None:
    """Why an entry of `eingang/` (its `os.lstat` mode) is no workbook the inbox takes (a symbolic link, a
    folder, a FIFO, a device, a socket), or None for a regular file. Such entries stay where they are:
    following a link could read or archive a file outside the inbox, and a FIFO would block the pass."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symbolische Verknüpfung"
    return "Ordner" if stat.S_ISDIR(mode) else "keine reguläre Datei (z. B. FIFO, Gerät, Socket)"


def _entries(root: Path) -> list[tuple[Path, os.stat_result]]:
    """The entries of `eingang/` whose names are not ignored, each with its `os.lstat` (links not followed)."""
    found = []
    for path in (root / "eingang").iterdir():
        if is_ignored(path.name):
            continue
        try:
            found.append((path, os.lstat(path)))
        except OSError:  # removed meanwhile
            continue
    return found


def skipped_entries(root: str | Path) -> list[tuple[Path, str]]:
    """Entries of `eingang/` the inbox does not take although their names are not ignored, with the reason."""
    found = []
    for path, status in sorted(_entries(Path(root)), key=lambda entry: entry[0]):
        reason = _not_a_file(status.st_mode)
        if reason is not None:
            found.append((path, reason))
    return found


def _skipped_line(path: Path, reason: str) -> str:
    """The log line of an entry left in `eingang/`: no silent skip, and what to do."""
    return json.dumps({"time": _now_iso(), "event": "inbox-skipped", "file": display_name(path.name), "reason": reason,
                       "hint": "nur Arbeitsmappen (.xlsx) als gewöhnliche Datei ablegen; den Eintrag aus eingang/ "
                               "entfernen oder durch eine Kopie der Datei ersetzen"},
                      ensure_ascii=False, sort_keys=True)


def _candidates(root: Path) -> list[Path]:
    """Files to take, oldest first (modification time, then name): of two equal files the older one counts.
    Links, folders and FIFOs are left out (reported by `skipped_entries`)."""
    found = [(status.st_mtime_ns, name_bytes(path.name), path) for path, status in _entries(root)
             if _not_a_file(status.st_mode) is None]
    return [path for _mtime, _name, path in sorted(found)]


def process_inbox(root: str | Path, rules_dir: str | Path, mode: str = "test", force: bool = False,
                  log: TextIO | None = None, only: Callable[[Path], bool] | None = None,
                  register: str | Path | None = None) -> list[Outcome]:
    """Process every file now in `root/eingang/` once; the caller holds the lock. Logs one JSON line per file.
    Final runs use the installation's register (`register.installation_register(register)`)."""
    root, log = Path(root), log or sys.stdout
    _prepare(root, register)
    if only is None:  # a pass over the whole folder says what it leaves (`--watch` says it once per entry)
        for path, reason in skipped_entries(root):
            print(_skipped_line(path, reason), file=log, flush=True)
    archived = _archived_hashes(root / "archiv")
    completed = _completed_results(root)
    outcomes = []
    for path in _candidates(root):
        if only is not None and not only(path):
            continue
        started = time.monotonic()
        try:
            outcome = _process_one(path, root, Path(rules_dir), mode, force, archived, completed, register)
        except Exception as error:  # noqa: BLE001 - one file must never stop the inbox; a bug's traceback is logged
            if not isinstance(error, OSError):
                traceback.print_exception(error, file=sys.stderr)
            outcome = _give_up(path, root, mode, error, started)
            completed.update({outcome.sha256: Path(outcome.result)} if outcome.result else {})
        print(outcome.log_line(), file=log, flush=True)
        outcomes.append(outcome)
    return outcomes


def exit_code(outcomes: list[Outcome]) -> int:
    """0 if every file was processed without error, else the highest exit code of a failed file."""
    return max((o.exit_code for o in outcomes), default=ExitCode.OK)


def watch_inbox(root: str | Path, rules_dir: str | Path, mode: str = "test", force: bool = False,
                interval: float = 5.0, log: TextIO | None = None, register: str | Path | None = None) -> int:
    """Keep processing new files until SIGTERM/SIGINT; a file is taken once it is unchanged for one interval."""
    root = Path(root)
    stop = {"now": False}

    def _stop(signum, frame) -> None:  # finish the current file, then leave
        stop["now"] = True

    previous_handlers = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    seen: dict[str, tuple[int, int]] = {}
    reported: set[str] = set()  # entries left in eingang/ whose skip was logged (once while they stay)
    worst = ExitCode.OK
    try:
        _prepare(root, register)
        while not stop["now"]:
            skipped = skipped_entries(root)
            for path, reason in skipped:
                if path.name not in reported:
                    print(_skipped_line(path, reason), file=log or sys.stdout, flush=True)
            reported = {path.name for path, _reason in skipped}
            current = {}
            for path in _candidates(root):
                try:
                    current[path.name] = _signature(path)
                except OSError:  # removed between listing and looking
                    continue
            stable = {name for name, sig in current.items() if seen.get(name) == sig}
            if stable:
                outcomes = process_inbox(root, rules_dir, mode, force, log, only=lambda p: p.name in stable,
                                         register=register)
                worst = max(worst, exit_code(outcomes))
            seen = {name: sig for name, sig in current.items() if name not in stable}
            deadline = time.monotonic() + interval
            while not stop["now"] and time.monotonic() < deadline:
                time.sleep(min(0.1, interval))
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return worst
