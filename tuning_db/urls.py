"""Database URLs: the default location, driver mapping, and password masking for messages."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tuning_db.errors import BadURLError

#: Environment variable that overrides the default database URL.
ENV_VAR = "AUTOCONV_DB_URL"
#: File name of the default SQLite database inside the user's cache directory.
DEFAULT_FILE = "tuning.sqlite3"


def default_path() -> Path:
    """The default SQLite file: ``$XDG_CACHE_HOME/autoconv/tuning.sqlite3`` on Linux.

    ``platformdirs`` honours ``XDG_CACHE_HOME`` on Linux and uses the platform's cache folder
    elsewhere (``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows).
    """
    return Path(user_cache_dir("autoconv", appauthor=False)) / DEFAULT_FILE


def default_url() -> str:
    """The URL :func:`tuning_db.connect` uses without an argument.

    ``AUTOCONV_DB_URL`` when it is set and not empty, else the SQLite file of
    :func:`default_path`.
    """
    from_env = os.environ.get(ENV_VAR, "").strip()
    return from_env or f"sqlite:///{default_path()}"


def parse_url(url: str) -> URL:
    """Parse ``url`` and pick the psycopg 3 driver for a bare ``postgresql://`` URL.

    Raises:
        BadURLError: the text is not an SQLAlchemy URL.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise BadURLError(f"not a database URL: {url!r} ({error})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def masked(url: str | URL) -> str:
    """``url`` as text with its password replaced by ``***`` (safe for messages and logs)."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for in-memory and ``file:`` URI databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()
