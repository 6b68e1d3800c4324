"""The append-only register of final runs (Echtläufe): one JSON-lines file per district and budget year, and the
installation's chain `_kette.jsonl` over all of them. Reading and checking it is `readback.read_register`'s; this
module decides whether a final run may be registered and writes its entry.

A final run holds the register's lock (`final_lock`: an exclusive `flock` on `.sperre` in the folder) from the
check "is a final run registered already?" until its entry is written, and writes its workbook and manifest
inside the lock: of several final runs started at once exactly one is registered, and the others write nothing.
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
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..core.filenames import current_umask, file_kind, fsync_folder
from ..core.model import normalise_district
from ..core.problems import Location, Problem
from ..workbook.guard import FinalOutput, refuse_overwrite
from .manifest import MANIFEST_SUFFIX, sealed
from .readback import (GENESIS, INDEX_FILE, LOCK_FILE, REGISTER_FORMAT, RegisterCorrupt, RegisterError, RegisterUnusable, RegisterView,
                       final_manifest_beside, line_hash, normalised_slug_name, read_register)

__all__ = ["RegisterError", "RegisterCorrupt", "RegisterUnusable", "register_path", "read_entries", "check_final",
           "append_final", "current_final", "installation_register", "final_outputs", "REGISTER_ENV", "Pending",
           "final_lock", "shared_lock", "prepare", "commit", "guard_outputs", "guard_folder", "summary", "head_position"]

REGISTER_ENV = "ALLOCATION_REGISTER"


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


def current_final(entries: list[dict]) -> dict | None:
    """The final run in force: the last entry (each later one supersedes the one before)."""
    return entries[-1] if entries else None


def check_final(register: str | Path | RegisterView, district: str, year: int, supersede: str | None) -> list[Problem]:
    """Why a final run for district/year must not go ahead now; [] if it may."""
    view = register if isinstance(register, RegisterView) else read_register(register)
    where = Location(str(view.folder / _file_name(view, district, year)))
    if supersede is not None and not supersede.strip():
        return [Problem("register-empty-reason", where, "--supersede braucht eine Begründung", found='""',
                        expected='eine Begründung, z. B. --supersede "Haushaltssatzung geändert, Beschluss vom 12.05."',
                        hint="angeben, warum der frühere Echtlauf ersetzt wird")]
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


@contextlib.contextmanager
def final_lock(register_dir: str | Path) -> Iterator[RegisterView]:
    """Hold the register's lock and yield the register as read and checked under it. The folder is created if
    needed; a place that cannot hold it is RegisterUnusable (exit 9), a damaged register RegisterCorrupt."""
    folder = Path(register_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_NONBLOCK", 0), 0o666)  # after the umask, as any new file
    except OSError as error:
        read_register(folder)  # a file where the folder should be: say so precisely
        raise RegisterUnusable([Problem("register-unusable", Location(str(folder)), "Das Register der Echtläufe lässt "
                                        "sich dort nicht führen", found=error.strerror or str(error),
                                        expected="ein beschreibbarer Ordner",
                                        hint="ALLOCATION_REGISTER oder --register auf einen beschreibbaren Ordner "
                                             "setzen")]) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise RegisterCorrupt([Problem("register-corrupt", Location(str(folder / LOCK_FILE)), "Die Sperrdatei des "
                                           "Registers ist keine gewöhnliche Datei", found=file_kind(mode),
                                           expected="eine gewöhnliche Datei", hint="die Datei prüfen und entfernen")])
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RegisterUnusable([Problem("register-unusable", Location(str(folder)), "Das Register der Echtläufe "
                                            "ist schreibgeschützt", found=str(folder), expected="ein beschreibbarer Ordner",
                                            hint="die Rechte des Ordners prüfen")])
        yield read_register(folder)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def shared_lock(register_dir: str | Path) -> Iterator[None]:
    """A shared lock on the register's `.sperre` while a test run checks its output again and writes it: a final
    run (which holds the lock exclusively from its check to its entry) cannot register a workbook of the same name
    in between, and test runs do not wait for each other. A test run never creates the register folder; where there
    is none yet, there is no lock to take (and no final run that could be overwritten)."""
    folder = Path(register_dir)
    flags = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | flags, 0o666) if folder.is_dir() else None
    except PermissionError:  # an account that may only read the register: a lock it can read is enough
        try:
            descriptor = os.open(folder / LOCK_FILE, os.O_RDONLY | flags)
        except OSError:
            descriptor = None
    except OSError:
        descriptor = None
    if descriptor is None:
        yield
        return
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


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
    existing regular file (no link) opened to append, or a new file prepared beside it, to be linked into place
    with its lines (so the register never holds an empty or half-created file of ours). New files get the
    permissions of any new file (after the umask): a register shared by a group (umask 002) stays writable for it."""

    def __init__(self, path: Path, lines: Iterable[str]) -> None:
        self.path, self.temp = path, None
        self.data = "".join(line + "\n" for line in lines).encode("utf-8")
        try:
            self.descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                                      | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".neu", dir=path.parent)
            os.chmod(temp, 0o666 & ~current_umask())
            self.descriptor, self.temp = handle, Path(temp)
            return
        if not stat.S_ISREG(os.fstat(self.descriptor).st_mode):
            os.close(self.descriptor)
            raise IsADirectoryError(f"{path} ist {file_kind(os.stat(path).st_mode)}")

    def write(self) -> None:
        try:
            os.write(self.descriptor, self.data)
            os.fsync(self.descriptor)
        finally:
            os.close(self.descriptor)
            self.descriptor = None
        if self.temp is not None:
            try:
                os.link(self.temp, self.path)
            finally:
                os.unlink(self.temp)

    def abandon(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
        if self.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)


def commit(view: RegisterView, pending: Pending) -> None:
    """Write the prepared entry in two phases. First both files (the district's and the chain) are opened or
    prepared: a file that cannot be written (permissions, a folder in its place) stops here, with nothing written
    (RegisterUnusable, exit 9). Then the district line and the chain's lines are written and fsynced, and the folder.
    Only a failure between these two writes (a full disk) can leave the register damaged; it says so."""
    def unusable(error: OSError, written: bool) -> RegisterUnusable:
        return RegisterUnusable([Problem("register-unusable", Location(str(view.folder)), "Das Register der Echtläufe "
                                         "lässt sich nicht schreiben" + (": der Eintrag ist nur zum Teil geschrieben, "
                                         "das Register ist jetzt beschädigt" if written else ""),
                                         found=f"{getattr(error, 'filename', None) or ''} "
                                               f"{error.strerror or error}".strip(),
                                         expected="Schreibrechte für alle, die Echtläufe rechnen, und freier Platz",
                                         hint="die Rechte und den Platz prüfen" + (" und das Register aus der "
                                              "Sicherung wiederherstellen" if written else ""))])

    appenders: list[_Appender] = []
    try:
        for path, lines in ((view.folder / pending.file, [pending.line]),
                            (view.folder / INDEX_FILE, [*pending.adopted, pending.chain_line])):
            appenders.append(_Appender(path, lines))
    except OSError as error:
        for appender in appenders:
            appender.abandon()
        raise unusable(error, False) from None
    written = False
    try:
        for appender in appenders:
            appender.write()
            written = True
        fsync_folder(view.folder)
    except OSError as error:
        for appender in appenders:
            appender.abandon()
        raise unusable(error, written) from None


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
    if Path(folder).resolve().is_relative_to(register.resolve()):
        raise RefusedError([Problem("output-in-register", Location(str(folder)), "Der Ausgabe-Ordner läge im Register "
                                    "der Echtläufe", found=str(folder), expected=f"ein Ort außerhalb von {register}",
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
    that point was rewritten."""
    return next((link.number for link in view.chain if link.sha256 == head.strip().lower()), None)
