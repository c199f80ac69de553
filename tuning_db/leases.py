"""Leases: one process at a time measures a (device, signature), the others wait.

A lease is a lock that the operating system or the server drops when its holder dies, so a
crashed holder never blocks anyone for long:

* SQLite: a POSIX byte-range lock (``fcntl.lockf``) on one byte, chosen by the hash of the
  key, of a lock file beside the database (``NAME.leases``). The kernel releases it when the
  process exits, however it exits. Locks are per process: threads of one process share them
  (the selector already serialises its own threads per signature).
* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection held for the
  lease; the server releases it when the connection ends.
* Other backends: no coordination (every lease is granted).

Leases are never waited on here: :meth:`Leases.hold` answers at once whether it was granted,
and the caller decides how to wait (see ``autoconv.tuning.selector``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

try:
    import fcntl
except ImportError:  # Windows: no POSIX locks, no coordination
    fcntl = None  # type: ignore[assignment]

#: Byte offsets of SQLite lease locks range over this many positions (collisions only make
#: two signatures wait for each other).
_SLOTS = 2**40


def key_hash(device_id: str, sig_key: str) -> int:
    """A signed 64-bit number for a (device, signature): the lock's identity."""
    digest = hashlib.sha256(f"autoconv-lease|{device_id}|{sig_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leases:
    """The leases of one database (``engine``; ``sqlite_path`` for an SQLite file)."""

    def __init__(self, engine: Engine, sqlite_path: Path | None) -> None:
        self._engine = engine
        self._lock_path = None if sqlite_path is None else Path(f"{sqlite_path}.leases")
        self._fd: int | None = None
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def _file(self) -> int | None:
        """The lock file, opened once per process (closing any descriptor of it would drop
        every POSIX lock the process holds on it)."""
        if self._lock_path is None or fcntl is None:
            return None
        with self._guard:
            if self._fd is None or self._pid != os.getpid():
                try:
                    self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError:
                    return None  # a read-only folder: no coordination
                self._pid = os.getpid()
            return self._fd

    @contextmanager
    def hold(self, device_id: str, sig_key: str) -> Iterator[bool]:
        """Try to take the lease of (device, signature); yields whether it was granted, and
        releases it on exit."""
        key = key_hash(device_id, sig_key)
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            with self._engine.connect() as connection:
                granted = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                                  {"k": key}).scalar())
                connection.commit()
                try:
                    yield granted
                finally:
                    if granted:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        connection.commit()
            return
        fd = self._file() if dialect == "sqlite" else None
        if fd is None:
            yield True
            return
        offset = key % _SLOTS
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    def close(self) -> None:
        with self._guard:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None
