"""Server-side log-in sessions: a random id in the signed cookie, the session itself in `work_dir/sessions/`.

A signed cookie alone cannot be revoked: a copy saved before log-out would work until it expires. Here the
cookie only carries a random id; the server keeps one small file per session, named by the SHA-256 of the id
(a directory listing reveals no usable id), holding the user and the expiry time. Log-out deletes the file, so
the id is worthless at once; an expired file is deleted when it is next looked at or swept. Files live on disk
so that every worker thread (and a restart with the same secret key) sees the same sessions.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

from ..runs.readback import read_json_object

__all__ = ["SessionStore"]

def _now() -> float:  # one clock for the store (tests move it)
    return time.time()


_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


class SessionStore:
    """`create(user)` -> id, `user(id)` -> name or None, `revoke(id)`, `sweep()`; ids live `lifetime` seconds."""

    def __init__(self, folder: Path, lifetime: int) -> None:
        self.folder = Path(folder)
        self.lifetime = lifetime
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, sid: str) -> Path:
        return self.folder / (hashlib.sha256(sid.encode("ascii")).hexdigest() + ".json")

    def create(self, user: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = _now()
        path = self._path(sid)
        spare = path.with_suffix(".tmp")
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"user": user, "created": now, "expires": now + self.lifetime}, handle, ensure_ascii=False)
        os.replace(spare, path)
        return sid

    def user(self, sid: object) -> str | None:
        """The session's user, or None for an unknown, revoked or expired id."""
        if not isinstance(sid, str) or not _ID.match(sid):
            return None
        path = self._path(sid)
        record = read_json_object(path)  # our own file, read back within bounds (runs.readback)
        if record is None or not isinstance(record.get("expires"), (int, float)) or isinstance(record["expires"], bool):
            return None
        if _now() >= record["expires"]:
            path.unlink(missing_ok=True)
            return None
        user = record.get("user")
        return user if isinstance(user, str) else None

    def revoke(self, sid: object) -> None:
        if isinstance(sid, str) and _ID.match(sid):
            self._path(sid).unlink(missing_ok=True)

    def sweep(self, now: float | None = None) -> int:
        """Delete expired sessions; returns how many went."""
        now = _now() if now is None else now
        removed = 0
        for path in self.folder.glob("*.json"):
            record = read_json_object(path)
            expires = record.get("expires", 0) if record is not None else 0
            if not isinstance(expires, (int, float)) or now >= expires:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
