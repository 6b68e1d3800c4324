"""The append-only register of final runs (Echtläufe): one JSON-lines file per district and budget year, and the
installation's chain `_kette.jsonl` over all of them. Reading and checking it is `readback.read_register`'s; this
module decides whether a final run may be registered and writes its entry.

A final run holds the register's lock (`final_lock`: an exclusive `flock` on `.sperre` in the folder) from the
check "is a final run registered already?" until its entry is written, and writes its workbook and manifest
inside the lock: of several final runs started at once exactly one is registered, and the others write nothing.
Every other command writes its outputs under the shared lock (`protected`), checked once more there.
A second final run for the same district and year is refused unless it names a reason to supersede the previous
one (`--supersede "Grund"`); both entries stay. Each line carries the SHA-256 of the line before it in its file
(`prev_sha256`); each line's hash is also appended to the chain, whose last line's hash is the **chain head**
that every final run prints, so that it can be written into the minutes. The manifest of a final run carries
its entry (file, seq, hashes, chain position and head), so `verify` finds a final run whose entry was removed.
Lines are only ever appended and fsynced; a file is created with its first line at once (linked into place),
so an empty file is never ours.

One register per installation (`installation_register`): `--register DIR`, else the environment variable
`ALLOCATION_REGISTER`, else `register/` in the per-user data folder (platformdirs). A register written before the
chain existed is read as it is; the first final run afterwards starts the chain with every existing line
(`adopted`).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..core.filenames import current_umask, file_kind, fsync_folder
from ..core.model import normalise_district
from ..core.problems import Location, Problem
from ..workbook.guard import FinalOutput, refuse_overwrite
from .manifest import MANIFEST_SUFFIX, sealed
from .readback import (GENESIS, INDEX_FILE, LOCK_FILE, REGISTER_FORMAT, RegisterBusy, RegisterCorrupt, RegisterError,
                       Earlier, RegisterUnusable, RegisterView,
                       final_manifest_beside, line_hash, normalised_slug_name, read_register)

__all__ = ["RegisterError", "RegisterCorrupt", "RegisterUnusable", "register_path", "read_entries", "check_final",
           "append_final", "installation_register", "final_outputs", "REGISTER_ENV", "Pending",
           "final_lock", "shared_lock", "protected", "prepare", "commit", "RegisterBusy", "LOCK_WAIT_SECONDS", "guard_outputs", "guard_folder", "summary", "head_position"]

REGISTER_ENV = "ALLOCATION_REGISTER"
MAX_REASON = 2_000  # characters of a --supersede reason: a line stays far below readback.MAX_LINE_BYTES


def installation_register(explicit: str | Path | None = None) -> Path:
    """The installation's register folder: `explicit`, else $ALLOCATION_REGISTER, else the user data folder."""
    if explicit is not None and str(explicit).strip():
        return Path(explicit)
    configured = os.environ.get(REGISTER_ENV, "").strip()
    if configured:
        if not Path(configured).is_absolute():  # else every working directory would have a register of its own
            raise RegisterUnusable([Problem("register-unusable", Location(REGISTER_ENV), "ALLOCATION_REGISTER nennt "
                                            "einen relativen Pfad: jeder Arbeitsordner hätte sein eigenes Register",
                                            found=configured, expected="ein absoluter Pfad, z. B. /srv/umlage/register",
                                            hint="ALLOCATION_REGISTER auf den absoluten Pfad des Registers setzen")])
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_data_dir("allocation", appauthor=False)) / "register"


def _file_name(view: RegisterView, district: str, year: int) -> str:
    """The district's file for the year: the existing one, else `<slug>-<year>.jsonl` (with a short hash of the
    name where another district has that slug: "Köln" and "Koln")."""
    existing = view.file_for(district, year)
    if existing is not None:
        return existing
    name = normalised_slug_name(district, year)
    if name in view.files:
        digest = hashlib.sha256(normalise_district(district).encode()).hexdigest()[:8]
        name = f"{name[: -len(f'-{year}.jsonl')]}-{digest}-{year}.jsonl"
    return name


def register_path(register_dir: str | Path, district: str, year: int) -> Path:
    """The district's register file for the year (an existing file, else the name a new one gets)."""
    return Path(register_dir) / _file_name(read_register(register_dir), district, year)


def read_entries(path: str | Path) -> list[dict]:
    """The entries of one register file, oldest first, after the whole register passed its checks
    (RegisterCorrupt otherwise)."""
    path = Path(path)
    view = read_register(path.parent)
    return [line.entry for line in view.files.get(path.name, ())]


def final_outputs(register_dir: str | Path | None) -> list[FinalOutput]:
    """The output of every final run in the register (all districts and years, superseded ones too), for the
    overwrite guard. A damaged register stops this check too (RegisterCorrupt): which files it protects cannot
    be known from it."""
    return read_register(register_dir).finals() if register_dir is not None else []


def check_final(register: str | Path | RegisterView, district: str, year: int, supersede: str | None) -> list[Problem]:
    """Why a final run for district/year must not go ahead now; [] if it may."""
    view = register if isinstance(register, RegisterView) else read_register(register)
    where = Location(str(view.folder / _file_name(view, district, year)))
    if supersede is not None and not supersede.strip():
        return [Problem("register-empty-reason", where, "--supersede braucht eine Begründung", found='""',
                        expected='eine Begründung, z. B. --supersede "Haushaltssatzung geändert, Beschluss vom 12.05."',
                        hint="angeben, warum der frühere Echtlauf ersetzt wird")]
    if supersede is not None and len(supersede) > MAX_REASON:
        return [Problem("register-reason-too-long", where, "Die Begründung ist zu lang für das Register",
                        found=f"{len(supersede):,} Zeichen".replace(",", "."),
                        expected=f"höchstens {MAX_REASON:,} Zeichen".replace(",", "."),
                        hint="kurz begründen und auf den Beschluss verweisen (Datum, Drucksache)")]
    last = view.current(district, year)
    if last is not None and supersede is None:
        return [Problem("register-final-exists", where,
                        f"für {district}, Haushaltsjahr {year} ist bereits ein Echtlauf registriert",
                        found=f"Echtlauf Nr. {last['seq']} vom {last['recorded_utc']} ({last.get('output', '')})",
                        expected="höchstens ein Echtlauf je Kreis und Jahr",
                        hint='als Probelauf (--mode test) rechnen oder den Echtlauf mit --supersede "Grund" ersetzen '
                             "(beide bleiben im Register)")]
    if last is None and supersede is not None:
        return [Problem("register-nothing-to-supersede", where,
                        f"für {district}, Haushaltsjahr {year} gibt es keinen Echtlauf, der ersetzt werden könnte",
                        found="kein Echtlauf registriert", expected="ein früherer Echtlauf",
                        hint="beim ersten Echtlauf --supersede weglassen")]
    return []


# ------------------------------------------------------------------------------------------------- writing


LOCK_WAIT_SECONDS = 120  # how long a run waits for the register's lock before it says so (exit 75)


def _lock(descriptor: int, kind: int, folder: Path) -> None:
    """flock, waiting at most LOCK_WAIT_SECONDS: the lock needs only read access, so an account (or a hung
    process) could hold it for ever; then the run says so instead of waiting in silence (`register-busy`)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RegisterBusy([Problem("register-busy", Location(str(folder / LOCK_FILE)), "Das Register der "
                                            f"Echtläufe ist seit {LOCK_WAIT_SECONDS} s gesperrt: ein anderer Lauf "
                                            "schreibt, oder ein Prozess hält die Sperre fest",
                                            found=f"{folder / LOCK_FILE} gesperrt",
                                            expected=f"die Sperre binnen {LOCK_WAIT_SECONDS} s frei",
                                            hint="später erneut versuchen; hält ein Prozess die Sperre fest (z. B. "
                                                 "`fuser` auf die Datei), ihn beenden")]) from None
            time.sleep(0.05)


def _lock_file(folder: Path, create_folder: bool) -> int | None:
    """The register's `.sperre` opened (and created, with the folder where `create_folder`), never following a
    link and never blocking; None where a run may not create it (a test run's account without write access to a
    register that holds no lock file yet: then no final run has registered there)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    if create_folder:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(folder / LOCK_FILE, flags, 0o666)  # after the umask, as any new file
    except PermissionError:
        try:
            return os.open(folder / LOCK_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None


def _regular_lock(descriptor: int, folder: Path) -> None:
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise RegisterCorrupt([Problem("register-corrupt", Location(str(folder / LOCK_FILE)), "Die Sperrdatei des "
                                       "Registers ist keine gewöhnliche Datei", found=file_kind(mode),
                                       expected="eine gewöhnliche Datei", hint="die Datei prüfen und entfernen")])


@contextlib.contextmanager
def final_lock(register_dir: str | Path) -> Iterator[RegisterView]:
    """Hold the register's lock exclusively and yield the register as read and checked under it. The folder is
    created if needed; a place that cannot hold it is RegisterUnusable (exit 9), a damaged register RegisterCorrupt,
    a lock held longer than LOCK_WAIT_SECONDS RegisterBusy (exit 75)."""
    folder = Path(register_dir)
    try:
        descriptor = _lock_file(folder, create_folder=True)
        if descriptor is None or not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "keine Schreibrechte", str(folder))
    except OSError as error:
        read_register(folder)  # a file where the folder should be: say so precisely
        raise RegisterUnusable([Problem("register-unusable", Location(str(folder)), "Das Register der Echtläufe lässt "
                                        "sich dort nicht führen", found=error.strerror or str(error),
                                        expected="ein beschreibbarer Ordner",
                                        hint="ALLOCATION_REGISTER oder --register auf einen beschreibbaren Ordner "
                                             "setzen")]) from None
    _regular_lock(descriptor, folder)
    try:
        _lock(descriptor, fcntl.LOCK_EX, folder)
        yield read_register(folder)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def shared_lock(register_dir: str | Path) -> Iterator[None]:
    """A shared lock on the register's `.sperre` while a test run (or any command) checks its outputs again and
    writes them: a final run (which holds the lock exclusively from its check to its entry) cannot register a
    workbook of the same name in between, and such runs do not wait for each other. The register folder and its
    lock file are created where the account may (so even the installation's first final run is excluded); where it
    may not, no final run can have registered there yet, and there is no lock to take."""
    folder = Path(register_dir)
    try:
        descriptor = _lock_file(folder, create_folder=not folder.exists())
    except OSError:
        descriptor = None
    if descriptor is None:
        yield
        return
    _regular_lock(descriptor, folder)
    try:
        _lock(descriptor, fcntl.LOCK_SH, folder)
        yield
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def protected(outputs: list[tuple[str, str | os.PathLike[str]]], register_dir: str | Path | None) -> Iterator[None]:
    """Write `outputs` under the register's shared lock, after checking them once more there (`guard_outputs`
    without the location checks the command made before it read anything): no final run registers one of these
    names between a command's first check and its write."""
    if register_dir is None:
        yield
        return
    with shared_lock(register_dir):
        guard_outputs(outputs, [], register_dir, locations=False)
        yield


@dataclass(frozen=True, slots=True)
class Pending:
    """A final run's entry, prepared under the lock and written by `commit`: the district file's line and the
    chain's line (after the lines a legacy register's chain adopts first)."""

    file: str
    entry: dict
    line: str
    adopted: tuple[str, ...]  # chain lines for a register written before the chain existed
    chain_line: str
    chain_number: int

    @property
    def reference(self) -> dict:
        """The manifest's record of the entry (`register`): file, seq, its hash and the one before, its place in
        the chain and the chain head after it."""
        return {"file": self.file, "seq": self.entry["seq"], "sha256": line_hash(self.line),
                "prev_sha256": self.entry["prev_sha256"], "chain": self.chain_number, "head": line_hash(self.chain_line)}


def _chain_line(number: int, file: str, entry: dict, sha256: str, previous: str, adopted: bool = False) -> str:
    record = {"n": number, "file": file, "seq": entry.get("seq"), "sha256": sha256,
              "district": entry.get("district"), "year": entry.get("year"), "recorded_utc": entry.get("recorded_utc"),
              "prev_sha256": previous}
    if adopted:
        record["adopted"] = True
    return json.dumps(sealed(record), ensure_ascii=False, sort_keys=True)


def prepare(view: RegisterView, record: dict, supersede: str | None) -> Pending:
    """The entry of a final run for the register `view` (read under the lock)."""
    name = _file_name(view, record["district"], record["year"])
    lines = view.files.get(name, ())
    entry = {
        "seq": len(lines) + 1,
        "recorded_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **record,
        "format": REGISTER_FORMAT,
        "supersedes": lines[-1].entry["seq"] if lines else None,
        "reason": supersede,
        "prev_sha256": lines[-1].sha256 if lines else GENESIS,
    }
    line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
    adopted: list[str] = []
    previous, number = view.head, len(view.chain)
    if view.legacy:  # the chain starts with every line written before it
        for file in sorted(view.files):
            for old in view.files[file]:
                number += 1
                adopted.append(_chain_line(number, file, old.entry, old.sha256, previous, adopted=True))
                previous = line_hash(adopted[-1])
    chain_line = _chain_line(number + 1, name, entry, line_hash(line), previous)
    return Pending(name, entry, line, tuple(adopted), chain_line, number + 1)


class _Appender:
    """One file of the register opened for appending before anything is written (`commit`'s first phase): an
    existing regular file (no link, no second hard link: a backup made with `cp -al` would change with it) opened
    to append, or a new file prepared beside it, to be linked into place with its lines (so the register never
    holds an empty or half-created file of ours). New files get the permissions of any new file (after the umask):
    a register shared by a group (umask 002) stays writable for it. `undo` takes a written append back."""

    def __init__(self, path: Path, lines: Iterable[str]) -> None:
        self.path, self.temp, self.linked = path, None, False
        self.data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            self.descriptor = os.open(path, os.O_RDWR | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                                      | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".neu", dir=path.parent)
            os.chmod(temp, 0o666 & ~current_umask())
            self.descriptor, self.temp, self.size = handle, Path(temp), 0
            return
        status = os.fstat(self.descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            os.close(self.descriptor)
            raise OSError(errno.EMLINK, f"keine gewöhnliche Datei mit genau einem Namen "
                          f"({file_kind(status.st_mode)}, {status.st_nlink} Namen)", str(path))
        self.size = status.st_size

    def write(self) -> None:
        """Append every byte (a short write on a full disk is continued, and fails there with ENOSPC), fsync, and
        link a new file into place."""
        view = memoryview(self.data)
        while view:
            view = view[os.write(self.descriptor, view):]
        os.fsync(self.descriptor)
        if self.temp is not None:
            os.link(self.temp, self.path)
            self.linked = True

    def undo(self) -> None:
        """Take the append back (truncate to the size before; a new file is removed): a failed entry leaves the
        register as it was."""
        with contextlib.suppress(OSError):
            if self.temp is None:
                os.ftruncate(self.descriptor, self.size)
                os.fsync(self.descriptor)
            elif self.linked:
                os.unlink(self.path)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.descriptor)
        if self.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)


def commit(view: RegisterView, pending: Pending) -> None:
    """Write the prepared entry in two phases. First both files (the district's and the chain) are opened or
    prepared: a file that cannot be written (permissions, a folder in its place, a second hard link) stops here,
    with nothing written (RegisterUnusable, exit 9). Then the district line and the chain's lines are written and
    fsynced, and the folder; if a write fails (a full disk), what was appended is taken back, so the register stays
    as it was. Only a crash between the two appends can leave it damaged (README, "Security and limits")."""
    def unusable(error: OSError) -> RegisterUnusable:
        return RegisterUnusable([Problem("register-unusable", Location(str(view.folder)), "Das Register der Echtläufe "
                                         "lässt sich nicht schreiben; es bleibt, wie es war",
                                         found=f"{getattr(error, 'filename', None) or ''} "
                                               f"{error.strerror or error}".strip(),
                                         expected="Schreibrechte für alle, die Echtläufe rechnen, freier Platz und "
                                                  "Dateien mit genau einem Namen",
                                         hint="Rechte, freien Platz und Sicherungen mit harten Verknüpfungen "
                                              "(cp -al) prüfen")])

    appenders: list[_Appender] = []
    try:
        for path, lines in ((view.folder / pending.file, [pending.line]),
                            (view.folder / INDEX_FILE, [*pending.adopted, pending.chain_line])):
            appenders.append(_Appender(path, lines))
        try:
            for appender in appenders:
                appender.write()
            fsync_folder(view.folder)
        except BaseException:  # a full disk, or Ctrl-C (KeyboardInterrupt) between the appends: taken back too
            for appender in appenders:
                appender.undo()
            raise
    except OSError as error:
        raise unusable(error) from None
    finally:
        for appender in appenders:
            appender.close()


def append_final(register_dir: str | Path, record: dict, supersede: str | None) -> dict:
    """Register one final run (checked again under the lock); returns the entry as written."""
    with final_lock(register_dir) as view:
        problems = check_final(view, record["district"], record["year"], supersede)
        if problems:
            raise RegisterError(problems)
        pending = prepare(view, record, supersede)
        commit(view, pending)
        return pending.entry


# ------------------------------------------------------------------------------------------ protecting files


def guard_outputs(outputs: list[tuple[str, str | os.PathLike[str]]], protected, register_dir: str | Path | None, *,
                  never_replace: bool = False, locations: bool = True) -> None:
    """The check every writing command makes before it reads anything (`guard.refuse_overwrite`), with what only
    the register and the manifests know: no output is a registered final run's workbook or manifest (the
    register read and checked whole: a damaged one stops the command with `register-corrupt`), and none is a
    workbook whose manifest says it is a final run's, whatever the register says (`output-is-final-run`), or
    whose manifest cannot be read (`output-manifest-unreadable`)."""
    from ..workbook.guard import RefusedError

    finals = final_outputs(register_dir)
    refuse_overwrite(outputs, protected, register_dir, finals=finals, never_replace=never_replace, locations=locations)
    problems = [found for _, output in outputs if not str(output).endswith(MANIFEST_SUFFIX)
                for found in [final_manifest_beside(output)] if found is not None]
    if problems:
        raise RefusedError(problems)


def guard_folder(folder: str | Path, register_dir: str | Path | None = None) -> None:
    """The check a command that writes a folder of files (notices, Benehmen letters) makes before it reads
    anything: the folder does not lie in the register (`output-in-register`), and the register is intact
    (`register-corrupt`: what it protects cannot be known from a damaged one)."""
    from ..core.problems import Location
    from ..workbook.guard import RefusedError

    register = installation_register(register_dir)
    read_register(register)
    resolved = Path(folder).resolve()
    if resolved.is_relative_to(register.resolve()):
        shown = str(folder) if resolved == Path(os.path.abspath(folder)) else f"{folder} (führt zu {resolved})"
        raise RefusedError([Problem("output-in-register", Location(str(folder)), "Der Ausgabe-Ordner läge im Register "
                                    "der Echtläufe", found=shown, expected=f"ein Ort außerhalb von {register}",
                                    hint="einen anderen Ordner bei -o wählen; in das Register schreibt nur allocation "
                                         "selbst")])


# ----------------------------------------------------------------------------------------------- the anchor


def summary(view: RegisterView) -> list[dict]:
    """Per district file: district, year, number of final runs and the run in force (for `register status`)."""
    found = []
    for name in sorted(view.files):
        lines = view.files[name]
        last = lines[-1].entry
        found.append({"file": name, "district": last.get("district"), "year": last.get("year"), "runs": len(lines),
                      "in_force": {"seq": last.get("seq"), "recorded_utc": last.get("recorded_utc"),
                                   "output": last.get("output"), "output_sha256": last.get("output_sha256"),
                                   "reason": last.get("reason")}})
    return found


def head_position(view: RegisterView, head: str) -> int | None:
    """The chain link whose hash is `head` (a chain head noted in the minutes), or None: then the chain up to
    that point was rewritten. The head of an empty chain (GENESIS, printed before any final run) is position 0:
    every chain starts there, so it anchors nothing and is never a sign of a rewrite."""
    head = head.strip().lower()
    if head == GENESIS:
        return 0
    return next((link.number for link in view.chain if link.sha256 == head), None)


def in_force(earlier: Earlier, register_dir: str | Path | None = None) -> tuple[dict | None, bool]:
    """The final run in force for an earlier output's district and year in the register (`register_dir`, default
    the installation's), and whether it is this output (by its SHA-256). The one answer `notices`, `trueup` and
    `run --upward` give before they act on a final run."""
    current = read_register(installation_register(register_dir)).current(earlier.district, earlier.year)
    return current, current is not None and current.get("output_sha256") == earlier.sha256
