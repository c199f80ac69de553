"""The ``wanted`` table's reads and writes: signatures answered without a measurement.

A process that answers a signature without a measurement (mode predict, or a call that live
exploration does not cover) notes it with the calls it saw; notes of many processes add up in
one row per (device, signature) (an upsert: calls summed, ``last_seen`` moved on). A tuning
worker of the same fingerprint reads the rows still without an ``ok`` measurement and
measures them (``autoconv warm --wanted``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Connection

from tuning_db import upsert
from tuning_db.records import SignatureRecord, WantedRecord
from tuning_db.rows import as_utc, signature_columns, signature_from_row
from tuning_db.schema import measurements, wanted

_w = wanted.c
_m = measurements.c
#: whether an ``ok`` measurement of a wanted row's signature exists on its device
_MEASURED = exists().where(and_(_m.device_id == _w.device_id, _m.sig_key == _w.sig_key, _m.ok))


def note(connection: Connection, device_id: str, calls: Mapping[SignatureRecord, int],
         now: datetime) -> None:
    """Add ``calls`` (signature -> calls seen since the last note) to the device's rows."""
    rows = [{**signature_columns(device_id, signature), "calls": max(1, count),
             "first_seen": now, "last_seen": now}
            for signature, count in sorted(calls.items(), key=lambda item: item[0].key)]
    if not rows:
        return
    insert = upsert.dialect_insert(connection)
    if insert is not None:
        statement = insert(wanted)
        statement = statement.on_conflict_do_update(
            index_elements=["device_id", "sig_key"],
            set_={"calls": _w.calls + statement.excluded.calls,
                  "last_seen": statement.excluded.last_seen})
        for row in rows:  # a few per note: rows of one process's recent unmeasured calls
            connection.execute(statement, row)
        return
    for row in rows:
        key = and_(_w.device_id == device_id, _w.sig_key == row["sig_key"])
        if connection.execute(select(_w.calls).where(key)).first() is None:
            connection.execute(wanted.insert(), row)
        else:
            connection.execute(wanted.update().where(key).values(
                calls=_w.calls + row["calls"], last_seen=now))


def read(connection: Connection, device_id: str | None, *, unmeasured_only: bool
         ) -> list[WantedRecord]:
    """The wanted rows (of one device, or all), most called first."""
    query = select(wanted, _MEASURED.label("measured"))
    if device_id is not None:
        query = query.where(_w.device_id == device_id)
    if unmeasured_only:
        query = query.where(~_MEASURED)
    query = query.order_by(_w.calls.desc(), _w.sig_key)
    return [WantedRecord(device_id=row["device_id"], signature=signature_from_row(row),
                         calls=row["calls"], first_seen=as_utc(row["first_seen"]),
                         last_seen=as_utc(row["last_seen"]), measured=bool(row["measured"]))
            for row in connection.execute(query).mappings()]


def counts(connection: Connection, device_id: str) -> tuple[int, int]:
    """(signatures wanted on the device, how many of them are measured now)."""
    query = (select(func.count(), func.count().filter(_MEASURED))
             .where(_w.device_id == device_id))
    total, measured = connection.execute(query).one()
    return int(total or 0), int(measured or 0)
