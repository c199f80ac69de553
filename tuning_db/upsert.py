"""Writing rows: upserts that keep the better-supported measurement, on any backend.

The rule for a measurement whose (device, signature, strategy, params) is already stored
(:func:`tuning_db.rows.replaces`): a local measurement replaces an imported one and an import
never replaces a local one; between two local ones the newer stays; between two imported ones
the one with more samples stays, and on equal samples the newer one. SQLite and PostgreSQL apply it inside
the database (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), so concurrent writers cannot
interleave between a read and a write; other backends fall back to read-compare-write inside
the caller's transaction.

Before writing, the stored versions of the keys are read in the same transaction, so that a
write can say how many rows were new, how many replaced a stored row and how many changed
nothing (:class:`WriteCounts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Self

from sqlalchemy import Table, and_, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from tuning_db.rows import replaces
from tuning_db.schema import MEASUREMENT_KEY, devices, measurements

_CHUNK = 500


@dataclass
class WriteCounts:
    """What writing measurement rows did: rows ``new`` to the database, rows that ``updated``
    a stored one, and rows that left it ``unchanged`` (the stored row was better supported,
    or the row repeated another of the same write)."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged

    def __iadd__(self, other: WriteCounts) -> Self:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


def dialect_insert(connection: Connection):  # type: ignore[no-untyped-def]
    """The dialect's ``insert`` with ``ON CONFLICT`` (SQLite, PostgreSQL), else None."""
    name = connection.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        return insert
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
        return insert
    return None


def _executemany(connection: Connection, table: Table, statement: Insert,
                 rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` for every row through the driver's own ``executemany``.

    The statement is compiled once and each value goes through its column type's bind
    processor (e.g. datetimes to SQLite's text form); this skips SQLAlchemy's per-row
    parameter handling, which is most of the time of a 100,000-row import.
    """
    dialect = connection.dialect
    names = list(rows[0])
    compiled = statement.compile(dialect=dialect, column_keys=names)
    processors = {name: processor for name in names if (processor := table.c[name].type
                  .dialect_impl(dialect).bind_processor(dialect)) is not None}

    if compiled.positiontup is not None:
        order = list(compiled.positiontup)
        pick = itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
        converted = [(index, processors[name]) for index, name in enumerate(order)
                     if name in processors]
        parameters: list[Any] = []
        for row in rows:
            values = list(pick(row))
            for index, processor in converted:
                values[index] = processor(values[index])
            parameters.append(tuple(values))
    else:
        parameters = [{**row, **{name: processor(row[name])
                                 for name, processor in processors.items()}} for row in rows]
    connection.exec_driver_sql(str(compiled), parameters)


def keep_best(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collapse rows with the same measurement key to the better-supported one, in order."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in MEASUREMENT_KEY)
        if key not in best or replaces(row, best[key]):
            best[key] = row
    return list(best.values())


def upsert_devices(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the fingerprints not stored yet; a stored device row is never rewritten.

    ``ON CONFLICT DO NOTHING`` takes no lock on an existing row, so the many processes of one
    machine, which all write under the same device id, do not queue behind each other here.
    """
    if not rows:
        return
    insert = dialect_insert(connection)
    if insert is not None:
        _executemany(connection, devices,
                     insert(devices).on_conflict_do_nothing(index_elements=["device_id"]), rows)
        return
    for row in rows:
        if connection.execute(select(devices.c.device_id).where(
                devices.c.device_id == row["device_id"])).first() is None:
            connection.execute(devices.insert(), row)


def _stored_versions(connection: Connection, keys: list[tuple[Any, ...]]
                     ) -> dict[tuple[Any, ...], Any]:
    """The stored (id, samples, measured_at, imported) of each of ``keys`` that is stored.

    Looked up by device and signature (the leading columns of the unique index: a row-value
    ``IN`` over all four key columns makes SQLite scan the table).
    """
    wanted = set(keys)
    signatures: dict[str, set[str]] = {}
    for device_id, sig_key, *_ in keys:
        signatures.setdefault(device_id, set()).add(sig_key)
    table = measurements.c
    key_columns = [table[name] for name in MEASUREMENT_KEY]
    found = {}
    for device_id, sig_keys in signatures.items():
        ordered = sorted(sig_keys)
        for start in range(0, len(ordered), _CHUNK):
            for row in connection.execute(
                    select(*key_columns, table.id, table.samples, table.measured_at,
                           table.imported)
                    .where(table.device_id == device_id,
                           table.sig_key.in_(ordered[start:start + _CHUNK]))):
                key = tuple(row[:len(MEASUREMENT_KEY)])
                if key in wanted:
                    found[key] = row
    return found


def upsert_measurements(connection: Connection, rows: list[dict[str, Any]]) -> WriteCounts:
    """Insert measurements, keeping the better-supported one for each key (module doc)."""
    given = len(rows)
    rows = keep_best(rows)
    counts = WriteCounts(unchanged=given - len(rows))
    if not rows:
        return counts
    keys = [tuple(row[name] for name in MEASUREMENT_KEY) for row in rows]
    stored = _stored_versions(connection, keys)
    changes = []
    for key, row in zip(keys, rows, strict=True):
        old = stored.get(key)
        if old is None:
            counts.new += 1
        elif replaces(row, old._mapping):
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        changes.append(row)
    if not changes:
        return counts
    insert = dialect_insert(connection)
    if insert is None:
        _write_generic(connection, changes, stored)
        return counts
    statement = insert(measurements)
    excluded = statement.excluded
    table = measurements.c
    updated = {column.name: excluded[column.name] for column in measurements.columns
               if column.name != "id" and column.name not in MEASUREMENT_KEY}
    newer = excluded.measured_at > table.measured_at
    statement = statement.on_conflict_do_update(
        index_elements=list(MEASUREMENT_KEY), set_=updated,
        where=or_(and_(not_(excluded.imported), table.imported),              # local > imported
                  and_(not_(excluded.imported), not_(table.imported), newer),  # local: newer
                  and_(excluded.imported, table.imported,                     # imported
                       or_(excluded.samples > table.samples,
                           and_(excluded.samples == table.samples, newer)))))
    _executemany(connection, measurements, statement, changes)
    return counts


def _write_generic(connection: Connection, rows: list[dict[str, Any]],
                   stored: dict[tuple[Any, ...], Any]) -> None:
    """Read-compare-write for backends without ``ON CONFLICT``, inside the caller's
    transaction (``rows`` are those :func:`upsert_measurements` found new or better)."""
    for row in rows:
        old = stored.get(tuple(row[name] for name in MEASUREMENT_KEY))
        if old is None:
            connection.execute(measurements.insert(), row)
        else:
            connection.execute(measurements.update().where(measurements.c.id == old.id)
                               .values(**row))
