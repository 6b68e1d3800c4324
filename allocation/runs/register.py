"""The append-only register of final runs (Echtläufe), one JSON-lines file per district and budget year.

A final run is recorded after its workbook is safely on disk. A second final run for the same district and
year is refused unless it names a reason to supersede the previous one (`--supersede "Grund"`); both entries
stay in the file. Each line carries the SHA-256 of the line before it (`prev_sha256`), so an edited or
deleted line is detected when the register is read (`register-corrupt`). Writes hold an exclusive
`flock` on the register file and are fsynced; lines are only ever appended.

One register per installation (`installation_register`): `--register DIR`, else the environment variable
`ALLOCATION_REGISTER`, else `register/` in the per-user data folder (platformdirs), so a second final run
is refused wherever its output goes. A district's file is found by its recorded district name compared
with `model.same_district` (a file written under another spelling or an older slug is still found).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path

from ..core.model import normalise_district, same_district
from ..core.problems import ExitCode, Location, Problem, ProblemsError
from ..workbook.guard import FinalOutput

__all__ = ["RegisterError", "register_path", "read_entries", "check_final", "append_final", "current_final",
           "installation_register", "final_outputs", "REGISTER_ENV"]

REGISTER_ENV = "ALLOCATION_REGISTER"

GENESIS = "0" * 64


class RegisterError(ProblemsError):
    exit_code = ExitCode.REFUSED
    title = "Register der Echtläufe"


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "kreis"


def installation_register(explicit: str | Path | None = None) -> Path:
    """The installation's register folder: `explicit`, else $ALLOCATION_REGISTER, else the user data folder."""
    if explicit is not None and str(explicit).strip():
        return Path(explicit)
    configured = os.environ.get(REGISTER_ENV, "").strip()
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_data_dir("allocation", appauthor=False)) / "register"


def _recorded_district(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.readline()).get("district")
    except (OSError, ValueError, AttributeError):
        return None


def register_path(register_dir: str | Path, district: str, year: int) -> Path:
    """The district's register file for the year: an existing file whose first entry names the same district
    (`model.same_district`), else `<slug>-<year>.jsonl` of the normalised name."""
    folder = Path(register_dir)
    normal = normalise_district(district)
    canonical = folder / f"{_slug(normal)}-{year}.jsonl"
    if not folder.is_dir():
        return canonical
    for candidate in [canonical] + sorted(folder.glob(f"*-{year}.jsonl")):
        if candidate.exists() and same_district(_recorded_district(candidate), district):
            return candidate
    if canonical.exists():  # two names with one slug ("Köln" and "Koln"): keep them apart
        return folder / f"{_slug(normal)}-{hashlib.sha256(normal.encode()).hexdigest()[:8]}-{year}.jsonl"
    return canonical


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def read_entries(path: str | Path) -> list[dict]:
    """All entries, oldest first; raises RegisterError if a line is not JSON or the hash chain is broken."""
    path = Path(path)
    if not path.exists():
        return []
    entries: list[dict] = []
    previous = GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = Location(str(path), line=number)
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise RegisterError([Problem("register-corrupt", where, "Die Registerzeile ist kein gültiges JSON",
                                         found=line[:80], expected="ein JSON-Objekt je Zeile",
                                         hint="das Register aus der Sicherung wiederherstellen; es darf nie von Hand "
                                              "bearbeitet werden")]) from None
        if entry.get("prev_sha256") != previous:
            raise RegisterError([Problem("register-corrupt", where, "Das Register wurde nach dem Schreiben verändert",
                                         found=str(entry.get("prev_sha256")), expected=previous,
                                         hint="das Register aus der Sicherung wiederherstellen; es darf nie von Hand "
                                              "bearbeitet werden")])
        previous = _line_hash(line)
        entries.append(entry)
    return entries


def final_outputs(register_dir: str | Path | None) -> list[FinalOutput]:
    """The output of every final run in the register folder (all districts and years, superseded ones too), for
    the overwrite guard. Read leniently: a line that is not JSON is skipped here (the district's next final run
    reports `register-corrupt`); a test run must not depend on another district's register being intact."""
    if register_dir is None or not Path(register_dir).is_dir():
        return []
    found: list[FinalOutput] = []
    for path in sorted(Path(register_dir).glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("output"):
                found.append(FinalOutput(str(entry["output"]), str(entry.get("output_sha256", "")),
                                         f"{entry.get('district', '')} {entry.get('year', '')}, Echtlauf Nr. "
                                         f"{entry.get('seq', '?')} vom {entry.get('recorded_utc', '?')}"))
    return found


def current_final(entries: list[dict]) -> dict | None:
    """The final run in force: the last entry (each later one supersedes the one before)."""
    return entries[-1] if entries else None


def check_final(register_dir: str | Path, district: str, year: int, supersede: str | None) -> list[Problem]:
    """Why a final run for district/year must not go ahead now; [] if it may."""
    path = register_path(register_dir, district, year)
    entries = read_entries(path)
    where = Location(str(path))
    if supersede is not None and not supersede.strip():
        return [Problem("register-empty-reason", where, "--supersede braucht eine Begründung", found='""',
                        expected='eine Begründung, z. B. --supersede "Haushaltssatzung geändert, Beschluss vom 12.05."',
                        hint="angeben, warum der frühere Echtlauf ersetzt wird")]
    last = current_final(entries)
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


def append_final(register_dir: str | Path, record: dict, supersede: str | None) -> dict:
    """Append one final run (checked again under the lock); returns the entry as written."""
    path = register_path(register_dir, record["district"], record["year"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        problems = check_final(register_dir, record["district"], record["year"], supersede)
        if problems:
            raise RegisterError(problems)
        entries = read_entries(path)
        previous = GENESIS
        if entries:
            lines = path.read_text(encoding="utf-8").splitlines()
            previous = _line_hash(lines[-1])
        entry = {
            "seq": len(entries) + 1,
            "recorded_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **record,
            "supersedes": entries[-1]["seq"] if entries else None,
            "reason": supersede,
            "prev_sha256": previous,
        }
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
        return entry
    finally:
        os.close(fd)
