"""File names chosen from names users give us (dropped files, uploads): shortened by bytes, safe to show.

Linux limits a name to NAME_MAX bytes (255 on ext4, xfs, tmpfs), not characters: 80 CJK characters are 240
bytes. A name read from a folder may also hold bytes that are not UTF-8 (Python keeps them as lone surrogates,
`surrogateescape`); such a name can be renamed, but not written into a UTF-8 report or JSON line. This module
owns the three answers: the bytes of a name, a name cut to a byte budget at a character boundary (suffix kept),
and a printable form of any name.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .problems import Location, OutputError, Problem
from .signals import held

__all__ = ["sha256_file", "FileRefused", "file_kind", "open_regular", "read_regular", "current_umask", "fsync_folder", "move_into", "write_atomically", "output_problems", "existing_folder_problems", "folder_output_problems", "what_is_at", "NAME_MAX", "name_bytes",
           "name_max", "fit_name", "cut_bytes", "display_name", "safe_stem"]

NAME_MAX = 255  # bytes; POSIX file systems Linux uses, and the fallback when pathconf cannot tell


class FileRefused(OSError):
    """A path read as a file that is no regular file (a folder, FIFO, socket, device, or a link where links are
    not followed) or is larger than its bound. Raised before a byte is read: nothing blocks on a FIFO and
    nothing reads /dev/zero for ever. An OSError, so a caller that reports unreadable files reports it too;
    `strerror` is the German reason, `found` what lies there."""

    def __init__(self, reason: str, found: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.found = found

    def __str__(self) -> str:
        return f"{self.strerror}: {self.found}"


def file_kind(mode: int) -> str:
    """What an entry is (its mode, as `os.lstat` or `os.fstat` gives it), in German words."""
    kinds = ((stat.S_ISREG, "eine gewöhnliche Datei"), (stat.S_ISDIR, "ein Verzeichnis"),
             (stat.S_ISFIFO, "eine benannte Pipe (FIFO)"), (stat.S_ISSOCK, "ein Socket"), (stat.S_ISCHR, "ein Gerät (zeichenorientiert, z. B. /dev/zero)"),
             (stat.S_ISBLK, "ein Gerät (blockorientiert)"), (stat.S_ISLNK, "eine symbolische Verknüpfung"))
    return next((text for test, text in kinds if test(mode)), "keine gewöhnliche Datei")


def open_regular(path: str | os.PathLike[str], *, follow: bool = True):
    """`path` opened for binary reading if it is a regular file. Opened without waiting (O_NONBLOCK: a FIFO put
    there after any earlier look does not block) and checked on the opened file (fstat), so a swap between a
    check and the open cannot slip through. `follow=False` also refuses a symbolic link (O_NOFOLLOW): for files
    inside folders the product keeps (register, year folder), where a link could lead anywhere."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if not follow and os.path.islink(path):
            raise FileRefused("keine gewöhnliche Datei", f"{path} ist eine symbolische Verknüpfung") from None
        raise error
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused("keine gewöhnliche Datei", f"{path} ist {file_kind(mode)}")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular(path: str | os.PathLike[str], limit: int, *, follow: bool = True) -> bytes:
    """The bytes of the regular file at `path` (see `open_regular`), at most `limit`: a larger file is refused
    (FileRefused) after reading one byte beyond the bound, never read whole."""
    with open_regular(path, follow=follow) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileRefused("die Datei ist zu groß", f"mehr als {limit:,} Bytes".replace(",", "."))
    return data


def sha256_file(path: str | os.PathLike[str], *, follow: bool = True) -> str:
    """The SHA-256 of a regular file (see `open_regular`), read in blocks: an output workbook of a large district
    is tens of MB, which a run would otherwise hold in memory just to hash it."""
    with open_regular(path, follow=follow) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def name_bytes(name: str) -> bytes:
    """The bytes the file system stores for `name` (lone surrogates are the original undecodable bytes)."""
    return os.fsencode(name)


def name_max(folder: str | Path) -> int:
    """The folder's file-name limit in bytes (NAME_MAX if the system cannot tell)."""
    try:
        return min(os.pathconf(folder, "PC_NAME_MAX"), NAME_MAX)
    except (OSError, ValueError):
        return NAME_MAX


def cut_bytes(text: str, budget: int) -> str:
    """`text` cut to at most `budget` bytes, never inside a UTF-8 character (undecodable bytes count one each)."""
    raw = name_bytes(text)
    if len(raw) <= budget:
        return text
    end = max(budget, 0)
    while end > 0 and (raw[end] & 0xC0) == 0x80:  # a continuation byte: step back to the character's start
        end -= 1
    return os.fsdecode(raw[:end])


def fit_name(name: str, budget: int = NAME_MAX) -> str:
    """`name` within `budget` bytes: the stem is shortened, a short suffix such as `.xlsx` is kept."""
    if len(name_bytes(name)) <= budget:
        return name
    stem, suffix = os.path.splitext(name)
    if len(name_bytes(suffix)) > 16:  # not a real extension: cut the whole name
        stem, suffix = name, ""
    return cut_bytes(stem, budget - len(name_bytes(suffix))) + suffix


def display_name(name: str) -> str:
    """A printable, UTF-8-encodable form of a file name; undecodable bytes become U+FFFD."""
    return name_bytes(name).decode("utf-8", errors="replace")


def safe_stem(name: str, budget: int) -> str:
    """A folder/file stem from a user's file name: word characters, `.`, `-` and spaces, at most `budget` bytes."""
    stem = Path(display_name(name).replace("\\", "/")).stem
    stem = re.sub(r"[^\w.\- ]+", "_", stem).strip(" .")
    return cut_bytes(stem, budget).strip(" .") or "eingabe"


# write_atomically's temporary name: "." + name + "." + 8 random characters + ".tmp"; a manifest adds its
# suffix to the workbook's name and gets a temporary name too.
_TEMP_BYTES = 14
_MANIFEST_BYTES = len(".manifest.json")


def output_problems(path: str | os.PathLike[str], what: str) -> list[Problem]:
    """Why `path` cannot take an output, before anything is read: the name is too long for the file system
    (with the temporary and manifest names it needs), a folder or other non-file is there, a part of its folder
    is a file, or the folder is not writable. [] if it can."""
    path = Path(path)

    def problem(message: str, found: str, hint: str) -> Problem:
        return Problem("output-unusable", Location(str(path)), f"{what} lässt sich nicht schreiben: {message}",
                       found=found, expected="ein Dateiname in einem beschreibbaren Ordner", hint=hint)

    folder = path.parent
    try:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        limit = name_max(folder) if folder.is_dir() else NAME_MAX
        if len(name_bytes(path.name)) + _TEMP_BYTES + _MANIFEST_BYTES > limit:
            return [problem("der Dateiname ist zu lang", f"{len(name_bytes(path.name))} Bytes",
                            f"einen Namen von höchstens {limit - _TEMP_BYTES - _MANIFEST_BYTES} Bytes wählen")]
        if path.exists() and not path.is_file():
            kind = "ein Ordner" if path.is_dir() else "keine gewöhnliche Datei"
            return [problem(f"unter diesem Namen liegt {kind}", str(path), "einen Dateinamen angeben, z. B. ergebnis.xlsx")]
    except OSError as error:  # e.g. a folder name too long for the file system
        return [problem(error.strerror or str(error), str(path), "einen kürzeren Pfad wählen")]
    return existing_folder_problems(folder, problem)


def existing_folder_problems(folder: Path, problem) -> list[Problem]:
    """The nearest existing folder of an output must be a folder and writable; `problem(message, found, hint)`
    builds the caller's located problem."""
    if not folder.is_dir():
        return [problem(f"{folder} ist {what_is_at(folder)}, kein Ordner", str(folder),
                        "einen Ordner angeben, der kein Dateiname ist")]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [problem(f"der Ordner {folder} ist schreibgeschützt", str(folder),
                        "einen beschreibbaren Ordner wählen oder die Rechte prüfen")]
    return []


def what_is_at(path: str | os.PathLike[str], error: OSError | None = None) -> str:
    """What is at `path` (without following a link, `file_kind`), or why nothing can be seen there (`error`, the
    caller's failed operation, else the operating system's reason)."""
    try:
        return file_kind(os.lstat(path).st_mode)
    except OSError as own:
        reason = error if error is not None else own
        return reason.strerror or str(reason) or "nicht erreichbar"


def folder_output_problems(directory: Path, what: str) -> list[Problem]:
    """Why `directory` cannot take a command's files (`what`: "Die Bescheide"), a folder there or a new one,
    before anything is read: something else is there (a file, a FIFO, a device, a link to a file or to nothing), a
    part of its path is no folder, or the nearest existing folder is not writable (`output-unusable`). [] if it
    can."""
    def problem(message: str, found: str, hint: str) -> Problem:
        return Problem("output-unusable", Location(str(directory)), f"{what} lassen sich nicht schreiben: {message}",
                       found=found, expected="ein Ordner (vorhanden oder neu) in einem beschreibbaren Ordner", hint=hint)

    try:
        if os.path.lexists(directory) and not directory.is_dir():
            return [problem(f"unter diesem Namen liegt {what_is_at(directory)}, kein Ordner", str(directory),
                            "einen Ordner angeben: einen vorhandenen oder einen neuen Namen")]
        folder = directory
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent
    except OSError as error:  # e.g. a name too long for the file system
        return [problem(error.strerror or str(error), str(directory), "einen kürzeren Pfad wählen")]
    return existing_folder_problems(folder, problem)


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status; else the common 022)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a folder's entries durable (a rename or a new file in it survives a crash)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def move_into(source: str | Path, folder: str | Path) -> Path:
    """Move a finished file into `folder` under its name, replacing a file of that name at once (rename). Where
    the folder lies on another file system (a share mounted there: a rename gives EXDEV), the file is copied to a
    temporary name in the folder, fsynced, renamed into place and the source removed: never half a file."""
    source, target = Path(source), Path(folder) / Path(source).name
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as out, open(source, "rb") as data:
                shutil.copyfileobj(data, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o666 & ~current_umask())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        os.unlink(source)
    return target


_OS_REASONS = {errno.ENOSPC: "der Datenträger ist voll", errno.EDQUOT: "das Speicherkontingent ist erschöpft",
               errno.EROFS: "das Dateisystem ist nur lesbar", errno.EACCES: "keine Schreibrechte",
               errno.EPERM: "keine Schreibrechte"}


def os_reason(error: OSError | None = None, *, code: int | None = None, text: str = "") -> str:
    """Why the operating system refused a write, in German where the cause is common (a full disk is a full
    disk), with the system's own words beside it."""
    code = error.errno if error is not None else code
    text = (error.strerror or str(error)) if error is not None else text
    return f"{_OS_REASONS[code]} ({text})" if code in _OS_REASONS else text


@contextlib.contextmanager
def temporary_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder in `parent` (mode 0700) for work that moves into place when done; removed on leaving if it is
    still there (the work failed or was stopped). Made and removed with Ctrl-C and SIGTERM held (`signals.held`):
    a stop never leaves it made but unknown, or half removed."""
    folder = None
    try:
        with held(signal.SIGINT, signal.SIGTERM):
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        yield folder
    finally:
        if folder is not None:
            with held(signal.SIGINT, signal.SIGTERM):
                shutil.rmtree(folder, ignore_errors=True)


def write_atomically(path: str | Path, save) -> None:
    """Call `save(temp_path)`, fsync, then rename over `path`; the temp file never survives a failure. An
    output location the operating system refuses (read-only file system, disk full) is an OutputError naming it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError([Problem("output-unusable", Location(str(path)), "Die Ausgabe lässt sich nicht schreiben",
                                   found=os_reason(error), expected="ein beschreibbarer Ordner",
                                   hint="einen anderen Ordner wählen oder Rechte und freien Platz prüfen")]) from None
    os.close(handle)
    try:
        save(temp)
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes 0600: an output is as readable as any file the user makes
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
        fsync_folder(path.parent)
    except BaseException as error:
        if os.path.exists(temp):
            os.unlink(temp)
        if isinstance(error, OSError):
            raise OutputError([Problem("output-unusable", Location(str(path)), "Die Ausgabe lässt sich nicht schreiben",
                                       found=os_reason(error), expected="genug Platz und Schreibrechte",
                                       hint="freien Platz und Rechte des Ordners prüfen")]) from None
        raise
