"""One process per inbox: an exclusive, non-blocking `fcntl.flock` on `DIR/.lock`.

The lock belongs to the open file description, so the kernel releases it when the process ends in any way,
including kill -9; a stale lock file therefore never blocks anybody. The file holds the holder's pid for
people looking at it, nothing reads it back. A second process gets `Busy` at once (exit code 75, EX_TEMPFAIL:
cron and systemd simply try again at the next start).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..core.problems import ExitCode

__all__ = ["Busy", "DirectoryLock"]


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
