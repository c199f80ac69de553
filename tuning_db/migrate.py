"""Schema versions: check on open, create a new schema once, upgrade with alembic.

The schema version is alembic's revision, stored in the ``alembic_version`` table. Opening a
database compares it with :data:`tuning_db.schema.SCHEMA_VERSION`: an older one names the
command that upgrades it, a newer or unknown one is refused, and a database with tables but
no version is not ours. Creation and upgrades run under a lock (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-scoped advisory lock), so processes that open a new database at the
same moment create one schema between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from tuning_db.errors import ForeignSchemaError, SchemaTooNewError, SchemaTooOldError
from tuning_db.schema import SCHEMA_VERSION
from tuning_db.sqlite_safety import IMMEDIATE

_MIGRATIONS = Path(__file__).parent / "migrations"
#: Key of the PostgreSQL advisory lock held while a schema is created or upgraded.
_PG_LOCK_KEY = 0x6175746F636F6E76 & 0x7FFFFFFFFFFFFFFF  # "autoconv"
#: The tables every schema revision has (later ones add tables: ``wanted`` from 0005).
_OUR_TABLES = frozenset({"devices", "measurements"})


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its schema revision (None if unversioned) and its tables."""

    revision: str | None
    tables: frozenset[str]

    @property
    def is_empty(self) -> bool:
        """No tables at all: a new database, safe to create the schema in."""
        return self.revision is None and not self.tables


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def known_revisions() -> tuple[str, ...]:
    """Every revision this code has migrations for, oldest first."""
    script = ScriptDirectory.from_config(_config())
    return tuple(reversed([revision.revision for revision in script.walk_revisions()]))


def read_state(connection: Connection) -> SchemaState:
    """The schema state of the database ``connection`` is open on."""
    tables = frozenset(inspect(connection).get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(revision, tables - {"alembic_version"})


def check(state: SchemaState, where: str, db_option: str) -> None:
    """Raise unless ``state`` is the current schema.

    Args:
        state: as :func:`read_state` returns it.
        where: the file or masked URL, for the message.
        db_option: ``--db URL`` text for the upgrade command in the message.

    Raises:
        SchemaTooOldError: an older revision; the message gives the upgrade command.
        SchemaTooNewError: a revision this code does not know (written by a newer autoconv).
        ForeignSchemaError: tables but no revision, or not the tables of a tuning database.
    """
    if state.revision == SCHEMA_VERSION:
        return
    if state.revision is None:
        if state.tables:
            shown = ", ".join(sorted(state.tables)[:5])
            raise ForeignSchemaError(
                f"{where} is not an autoconv tuning database (it has other tables: {shown}); "
                "point AUTOCONV_DB_URL or --db elsewhere")
        return
    if not _OUR_TABLES <= state.tables:  # another application's alembic-managed database
        shown = ", ".join(sorted(state.tables)[:5]) or "none"
        raise ForeignSchemaError(
            f"{where} is not an autoconv tuning database (its alembic revision is "
            f"{state.revision} and its tables are: {shown}); point AUTOCONV_DB_URL or --db "
            "elsewhere")
    if state.revision in known_revisions():
        raise SchemaTooOldError(
            f"{where} has tuning-database schema {state.revision}, older than this autoconv's "
            f"{SCHEMA_VERSION}; upgrade it with: autoconv db upgrade{db_option}")
    raise SchemaTooNewError(
        f"{where} has tuning-database schema {state.revision}, newer than this autoconv "
        f"understands ({SCHEMA_VERSION}); upgrade autoconv, or use another database")


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that excludes other schema changers; commits on exit."""
    with engine.connect() as connection:
        dialect = engine.dialect.name
        if dialect == "sqlite":
            connection = connection.execution_options(**{IMMEDIATE: True})
        with connection.begin():
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _PG_LOCK_KEY})
            yield connection


def ensure_schema(engine: Engine, where: str, db_option: str) -> None:
    """Create the schema in an empty database, or check that an existing one is current."""
    with engine.connect() as connection:
        state = read_state(connection)
    if not state.is_empty:
        check(state, where, db_option)
        return
    with locked(engine) as connection:
        state = read_state(connection)  # another process may have created it meanwhile
        if state.is_empty:
            command.upgrade(_config(connection), "head")
        else:
            check(state, where, db_option)


def upgrade(engine: Engine, where: str, db_option: str) -> tuple[str | None, str]:
    """Bring the database to :data:`SCHEMA_VERSION`; returns (revision before, after).

    Raises:
        SchemaTooNewError, ForeignSchemaError: as :func:`check`; nothing is changed.
    """
    with locked(engine) as connection:
        state = read_state(connection)
        try:
            check(state, where, db_option)
        except SchemaTooOldError:
            pass
        if state.revision != SCHEMA_VERSION:
            command.upgrade(_config(connection), "head")
    return state.revision, SCHEMA_VERSION


def stamp_to(engine: Engine, revision: str) -> None:
    """Create the schema only up to ``revision`` (tests and old-database fixtures)."""
    with locked(engine) as connection:
        command.upgrade(_config(connection), revision)
