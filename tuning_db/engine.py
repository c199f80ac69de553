"""Opening a database: the engine, a new SQLite file created atomically, error translation."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from tuning_db import migrate, sqlite_safety
from tuning_db.errors import BadURLError, ConnectionFailedError, DatabaseCorruptError, TuningDBError
from tuning_db.urls import masked

#: Seconds a server may take to connect or to answer one statement (``AUTOCONV_DB_TIMEOUT_S``).
TIMEOUT_ENV_VAR = "AUTOCONV_DB_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 5.0


def timeout_s() -> float:
    """The server timeout: ``AUTOCONV_DB_TIMEOUT_S`` when set to a positive number, else
    :data:`DEFAULT_TIMEOUT_S`."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV_VAR, ""))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def with_timeouts(url: URL, seconds: float) -> URL:
    """``url`` with bounded waits on a server: a connect timeout (libpq counts whole seconds,
    two at least) and a statement timeout, added to whatever ``options`` it already has.
    URLs of other dialects come back unchanged (SQLite has its own bounded busy wait)."""
    if not url.drivername.startswith("postgresql"):
        return url
    options = " ".join(filter(None, [str(url.query.get("options") or ""),
                                     f"-c statement_timeout={int(seconds * 1000)}"]))
    query = {"connect_timeout": str(max(2, math.ceil(seconds))), "options": options}
    query.update({k: v for k, v in url.query.items() if k == "connect_timeout"})
    return url.update_query_dict(query)


def make_engine(url: URL, timeout: float | None = None) -> Engine:
    """An engine for ``url``; SQLite engines are set up for concurrent writers, server
    engines get bounded waits (:func:`with_timeouts`) and check a pooled connection before
    using it, so a dropped connection is replaced rather than failing a query. ``timeout``:
    seconds (None: :func:`timeout_s`).

    Raises:
        BadURLError: unknown dialect, or its driver is not installed.
    """
    try:
        if url.drivername.startswith("postgresql"):
            engine = create_engine(with_timeouts(url, timeout or timeout_s()),
                                   pool_pre_ping=True)
        else:
            engine = create_engine(url)
    except (NoSuchModuleError, ArgumentError, ImportError) as error:
        hint = " (pip install 'psycopg[binary]')" if "postgresql" in url.drivername else ""
        raise BadURLError(f"cannot use database URL {masked(url)}: {error}{hint}") from None
    if engine.dialect.name == "sqlite":
        sqlite_safety.install(engine)
    return engine


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Turn driver errors a user can cause into one-line :class:`TuningDBError` messages."""
    try:
        yield
    except TuningDBError:
        raise
    except DBAPIError as error:
        first_line = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
        if sqlite_safety.is_corruption(error):
            raise DatabaseCorruptError(
                f"{where} is damaged ({first_line}); {sqlite_safety.reset_hint(where)}"
            ) from None
        if isinstance(error, OperationalError) and not sqlite_safety.is_busy(error):
            raise ConnectionFailedError(f"cannot open the tuning database at {where}: "
                                        f"{first_line}") from None
        raise
    except sqlite3.DatabaseError as error:  # raw_connection() hands driver errors on unwrapped
        first_line = (str(error).strip().splitlines() or [""])[0]
        if sqlite_safety.is_corruption(error):
            raise DatabaseCorruptError(
                f"{where} is damaged ({first_line}); {sqlite_safety.reset_hint(where)}"
            ) from None
        raise ConnectionFailedError(f"cannot open the tuning database at {where}: "
                                    f"{first_line}") from None


#: A temporary file left by a creator this long ago (and whose process is gone) is an orphan.
ORPHAN_AGE_S = 600.0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is not ours to signal
        return True
    return True


def remove_orphans(path: Path, *, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete temporary files that a creator of ``path`` killed mid-way left behind.

    A file named like the ones :func:`create_sqlite_file` makes (``.NAME.PID.XXXXXXXX.tmp``,
    and its ``-wal``/``-shm``) is removed only when its process no longer runs *and* it is
    older than ``min_age_s`` (the age guards against a creator on another host sharing the
    folder, whose pid means nothing here). Returns what was removed.
    """
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp(-wal|-shm)?$")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            if now - entry.stat().st_mtime < min_age_s:
                continue
            entry.unlink()
            removed.append(entry)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def create_sqlite_file(path: Path, url: URL) -> None:
    """Create a new database at ``path`` so that no other process ever sees it half made.

    The schema is built in a temporary file next to ``path`` (WAL journal on), which is then
    hard-linked into place; if another process got there first, its file is kept and ours
    dropped. Readers therefore see either no file or a complete database. Temporary files of
    creators that were killed mid-way are cleared first (:func:`remove_orphans`).

    Raises:
        ConnectionFailedError: the folder cannot be created or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConnectionFailedError(f"cannot create the folder for {path}: "
                                    f"{error.strerror}") from None
    remove_orphans(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    engine = make_engine(url.set(database=str(temporary)))
    try:
        with translated(str(path)):
            sqlite_safety.enable_wal(engine)
            migrate.stamp_to(engine, "head")
        engine.dispose()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # created by another process meanwhile: theirs is complete too
        except OSError:  # a file system without hard links: fall back to a checked rename
            if not path.exists():
                os.replace(temporary, path)
    except TuningDBError:
        raise
    except OSError as error:
        raise ConnectionFailedError(f"cannot create the tuning database {path}: "
                                    f"{error.strerror}") from None
    finally:
        engine.dispose()
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            leftover.unlink(missing_ok=True)
