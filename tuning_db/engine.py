"""Opening a database: the engine, a new SQLite file created atomically, error translation."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from tuning_db import migrate, sqlite_safety
from tuning_db.errors import (BadURLError, ConnectionFailedError, DatabaseCorruptError,
                              TuningDBError)
from tuning_db.urls import masked


def make_engine(url: URL) -> Engine:
    """An engine for ``url``; SQLite engines are set up for concurrent writers.

    Raises:
        BadURLError: unknown dialect, or its driver is not installed.
    """
    try:
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
                f"{where} is damaged ({first_line}); move it aside with: "
                "autoconv db reset --backup") from None
        if isinstance(error, OperationalError) and not sqlite_safety.is_busy(error):
            raise ConnectionFailedError(f"cannot open the tuning database at {where}: "
                                        f"{first_line}") from None
        raise


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
