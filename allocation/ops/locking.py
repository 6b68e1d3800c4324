"""One process per inbox: an exclusive, non-blocking `fcntl.flock` on `DIR/.lock`.

The lock belongs to the open file description, so the kernel releases it when the process ends in any way,
including kill -9; a stale lock file therefore never blocks anybody. The file holds the holder's pid for
people looking at it, nothing reads it back. A second process gets `Busy` at once (exit code 75, EX_TEMPFAIL:
cron and systemd simply try again at the next start).

`DIR/.lock` must be an ordinary file of its own: it is opened without following a symbolic link (whose target
would be created or emptied), without waiting (a FIFO never blocks) and refused unless it is a regular file with
one name (a hard link would empty another file). A lock that cannot be a lock (a folder, a link, a FIFO, no
permission) or a DIR that is a file is `FolderUnusable` (`inbox-unusable`, exit 9): waiting would not help.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from ..core.filenames import file_kind, what_is_at
from ..core.problems import ExitCode, Location, Problem, ProblemsError

__all__ = ["Busy", "DirectoryLock", "FolderUnusable", "unusable"]


class FolderUnusable(ProblemsError):
    """The inbox folder, its lock or one of its subfolders is not what it must be; waiting does not help."""

    exit_code = ExitCode.OUTPUT
    title = "Der Eingangsordner lässt sich so nicht verwenden"


def unusable(path: Path, message: str, found: str, expected: str, hint: str) -> FolderUnusable:
    return FolderUnusable([Problem("inbox-unusable", Location(str(path)), message, found=found, expected=expected,
                                   hint=hint)])


class Busy(Exception):
    """Another process holds the lock."""

    exit_code = ExitCode.BUSY

    def __init__(self, path: Path) -> None:
        self.path = path
        holder = ""
        try:
            holder = path.read_text(encoding="ascii").strip()
        except OSError:
            pass
        super().__init__(f"{path} ist gesperrt: ein anderer Lauf bearbeitet diesen Ordner"
                         + (f" (Prozess {holder})" if holder else "") + "; später erneut versuchen")


class DirectoryLock:
    """`with DirectoryLock(folder):` holds `folder/.lock` exclusively or raises `Busy`."""

    def __init__(self, folder: str | Path, name: str = ".lock") -> None:
        self.path = Path(folder) / name
        self._fd: int | None = None

    def acquire(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # DIR (or a folder above it) is a file, or no permission
            raise unusable(folder, "Der Inbox-Ordner lässt sich nicht anlegen oder ist kein Ordner",
                           what_is_at(folder, error), "ein Ordner (fehlt er, wird er angelegt)",
                           "einen Ordner angeben; eine Datei unter diesem Namen umbenennen") from None
        lock_hint = (f"{self.path} entfernen, wenn gerade kein Lauf diese Inbox bearbeitet; die Inbox legt die "
                     "Sperrdatei selbst neu an")
        try:  # no link followed, no wait for a FIFO's writer
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as error:
            if error.errno in (errno.EISDIR, errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
                raise unusable(self.path, "Die Sperrdatei der Inbox ist keine gewöhnliche Datei",
                               what_is_at(self.path, error), "eine gewöhnliche Datei .lock", lock_hint) from None
            raise unusable(self.path, "Die Sperrdatei der Inbox lässt sich nicht öffnen",
                           error.strerror or str(error), "eine les- und schreibbare Datei .lock",
                           "die Rechte des Ordners und der Datei prüfen (das Konto des Inbox-Laufs muss schreiben "
                           "dürfen)") from None
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            os.close(fd)
            if stat.S_ISREG(status.st_mode):  # a hard link: writing the pid would change the other name's file
                raise unusable(self.path, "Die Sperrdatei der Inbox hat einen zweiten Namen (harter Link)",
                               f"Datei mit {status.st_nlink} Namen", "eine gewöhnliche Datei .lock, die nur hier "
                               "steht", lock_hint)
            raise unusable(self.path, "Die Sperrdatei der Inbox ist keine gewöhnliche Datei", file_kind(status.st_mode),
                           "eine gewöhnliche Datei .lock", lock_hint)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(self.path) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
