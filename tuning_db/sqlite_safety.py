"""SQLite under concurrent writers: WAL, ``BEGIN IMMEDIATE``, bounded retry, damage checks.

Many processes (a training job's workers, several benchmark runs) may write to the same SQLite
file at once. Three measures keep "database is locked" from reaching the caller:

* **WAL journal**: readers never block the writer and the writer never blocks readers.
* **BEGIN IMMEDIATE** for write transactions: the write lock is taken when the transaction
  starts, so two writers never both read and then deadlock upgrading to a write lock (the
  failure that SQLite reports at once, bypassing the busy timeout). Read transactions use a
  plain deferred ``BEGIN``.
* **busy timeout plus retry**: SQLite waits up to :data:`BUSY_TIMEOUT_S` for the lock, and a
  write that still finds the database busy is retried with jittered exponential backoff up to
  :data:`RETRY_DEADLINE_S` in total, after which :class:`DatabaseBusyError` says so.
"""

from __future__ import annotations

import random
import shlex
import sqlite3
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from tuning_db.errors import DatabaseBusyError, DatabaseCorruptError

#: How long SQLite itself waits for a lock before reporting the database busy.
BUSY_TIMEOUT_S = 5.0
#: Total time a write keeps retrying a busy database before giving up.
RETRY_DEADLINE_S = 60.0
#: Execution option that makes a connection's next transaction ``BEGIN IMMEDIATE``.
IMMEDIATE = "tuning_db_immediate"

_HEADER = b"SQLite format 3\x00"
_T = TypeVar("_T")


def install(engine: Engine) -> None:
    """Set up every connection of an SQLite ``engine`` for concurrent use (see module doc)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event, not the sqlite3 module, decide how to BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def enable_wal(engine: Engine) -> None:
    """Switch the database file to the WAL journal (a persistent property of the file)."""
    connection = engine.raw_connection()  # outside any transaction, as SQLite requires
    try:
        connection.cursor().execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def is_busy(error: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database is busy" errors."""
    if isinstance(error, DBAPIError):
        error = error.orig
    elif not isinstance(error, sqlite3.DatabaseError):
        return False
    text = str(error).lower()
    return any(phrase in text for phrase in ("database is locked", "database is busy",
                                             "table is locked"))


def retry_busy(operation: Callable[[], _T], what: str, deadline_s: float | None = None) -> _T:
    """Run ``operation``, retrying it while SQLite reports the database busy.

    ``operation`` must be a whole transaction (it is re-run from the start). Backoff starts at
    5 ms, doubles up to 0.5 s, and is jittered so that waiting writers do not wake together.
    ``deadline_s`` defaults to :data:`RETRY_DEADLINE_S`.

    Raises:
        DatabaseBusyError: still busy after ``deadline_s`` seconds.
    """
    deadline_s = RETRY_DEADLINE_S if deadline_s is None else deadline_s
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            return operation()
        except DBAPIError as error:
            if not is_busy(error):
                raise
            if time.monotonic() - start + delay > deadline_s:
                raise DatabaseBusyError(
                    f"{what}: the database stayed locked by other writers for "
                    f"{deadline_s:.0f} s; try again when they have finished") from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)


def reset_hint(where: str | Path) -> str:
    """How to move a damaged database aside, naming it with ``--db``: run as given it moves
    this file and no other (never the default database of another configuration).

    ``where`` is the file (made absolute) or, for a database that is no plain file, its URL.
    """
    text = str(where)
    url = text if "://" in text else f"sqlite:///{Path(text).expanduser().absolute()}"
    return f"move it aside with: autoconv db reset --backup --db {shlex.quote(url)}"


def check_file(path: Path) -> None:
    """Refuse a file that cannot be an intact SQLite database, naming it.

    Checks the 16-byte magic header and that the file is at least as long as the page count
    its header declares (a truncated copy is shorter). An empty file is refused too: SQLite
    would silently treat it as a new database.

    Raises:
        DatabaseCorruptError: the file is empty, not SQLite, or truncated.
    """
    hint = reset_hint(path)
    size = path.stat().st_size
    if size == 0:
        raise DatabaseCorruptError(f"{path} is an empty (0-byte) file, not a tuning database; "
                                   f"{hint}")
    with path.open("rb") as file:
        header = file.read(100)
    if not header.startswith(_HEADER):
        raise DatabaseCorruptError(f"{path} is not an SQLite database (damaged or another kind "
                                   f"of file); {hint}")
    if len(header) < 100:
        raise DatabaseCorruptError(f"{path} is truncated ({size} bytes); {hint}")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    if pages and size < pages * page_size:
        raise DatabaseCorruptError(f"{path} is truncated ({size} bytes, its header declares "
                                   f"{pages * page_size}); {hint}")


def is_corruption(error: BaseException) -> bool:
    """True for SQLite's "not a database" / "malformed" errors."""
    if isinstance(error, DBAPIError):
        error = error.orig
    elif not isinstance(error, sqlite3.DatabaseError):
        return False
    text = str(error).lower()
    return "not a database" in text or "malformed" in text or "disk image" in text
