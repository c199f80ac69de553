"""Writing rows: upserts that keep the better-supported measurement, on any backend.

The rule for a measurement whose (device, signature, strategy, params) is already stored: the
one with more samples stays; on equal samples the newer one replaces the older. SQLite and
PostgreSQL apply it inside the database (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), so
concurrent writers cannot interleave between a read and a write; other backends fall back to
read-compare-write inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, and_, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from tuning_db.rows import better_supported
from tuning_db.schema import MEASUREMENT_KEY, devices, measurements

_CHUNK = 500


def _dialect_insert(connection: Connection):  # type: ignore[no-untyped-def]
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
        if key not in best or better_supported(row, best[key]):
            best[key] = row
    return list(best.values())


def upsert_devices(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the fingerprints not stored yet; a stored device row is never rewritten.

    ``ON CONFLICT DO NOTHING`` takes no lock on an existing row, so the many processes of one
    machine, which all write under the same device id, do not queue behind each other here.
    """
    if not rows:
        return
    insert = _dialect_insert(connection)
    if insert is not None:
        _executemany(connection, devices,
                     insert(devices).on_conflict_do_nothing(index_elements=["device_id"]), rows)
        return
    for row in rows:
        if connection.execute(select(devices.c.device_id).where(
                devices.c.device_id == row["device_id"])).first() is None:
            connection.execute(devices.insert(), row)


def upsert_measurements(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert measurements, keeping the better-supported one for each key (module doc)."""
    rows = keep_best(rows)
    if not rows:
        return
    insert = _dialect_insert(connection)
    if insert is None:
        _upsert_generic(connection, rows)
        return
    statement = insert(measurements)
    excluded = statement.excluded
    table = measurements.c
    updated = {column.name: excluded[column.name] for column in measurements.columns
               if column.name != "id" and column.name not in MEASUREMENT_KEY}
    statement = statement.on_conflict_do_update(
        index_elements=list(MEASUREMENT_KEY), set_=updated,
        where=or_(excluded.samples > table.samples,
                  and_(excluded.samples == table.samples,
                       excluded.measured_at >= table.measured_at)))
    _executemany(connection, measurements, statement, rows)


def _upsert_generic(connection: Connection, rows: list[dict[str, Any]]) -> None:
    key_columns = [measurements.c[name] for name in MEASUREMENT_KEY]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        keys = [tuple(row[name] for name in MEASUREMENT_KEY) for row in chunk]
        existing = {
            tuple(found[:4]): found for found in connection.execute(
                select(*key_columns, measurements.c.id, measurements.c.samples,
                       measurements.c.measured_at).where(tuple_(*key_columns).in_(keys)))}
        for key, row in zip(keys, chunk, strict=True):
            old = existing.get(key)
            if old is None:
                connection.execute(measurements.insert(), row)
            elif better_supported(row, old._mapping):
                connection.execute(measurements.update().where(measurements.c.id == old.id)
                                   .values(**row))
