"""``connect(url)`` and :class:`TuningDB`: the tuning database behind an SQLAlchemy URL.

The contract, whatever the backend:

* A measurement is identified by (device, signature, strategy, params). Recording one that is
  already stored keeps the better-supported of the two (an upsert, atomic under concurrent
  writers): a measurement recorded here replaces an imported one (bundles, merge) and an
  import never replaces one recorded here; between two recorded here the newer wins (the
  machine measured again on purpose); between two imported ones more samples win, then the
  newer. Imported rows claim at most :data:`tuning_db.records.MAX_SAMPLES` samples.
* The winner of a (device, signature) is derived, never stored: the ``ok`` measurement with
  the smallest median (ties broken by insertion order). Failed or disqualified candidates
  (``ok=False``) are kept, so they are not measured again, but never win.
* Rows of different devices never mix: every query takes a device id, the hash of the
  machine's fingerprint, so one machine's timings are never served to another.
* Streams (signatures with a ``chunk_size``) are stored beside conv1d calls under keys of
  their own; :meth:`TuningDB.measurements` returns conv1d calls' rows unless asked for
  streams (bundles carry both). Calls whose weight is reused (``weight_reused``: a layer's in
  inference) are conv1d calls with keys of their own too, returned with the others.
* The schema version is checked when the database is opened (see :mod:`tuning_db.migrate`).
* A :class:`TuningDB` may be used from several threads, and survives ``fork``: a child process
  (e.g. a DataLoader worker) opens its own connections instead of sharing its parent's.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, delete, distinct, func, select
from sqlalchemy.engine import Connection, Engine

from tuning_db import migrate, sqlite_safety, upsert
from tuning_db import wanted as wanted_rows
from tuning_db.engine import create_sqlite_file, make_engine, remove_orphans, translated
from tuning_db.errors import DatabaseMissingError
from tuning_db.leases import Leases
from tuning_db.records import (
    SETTLED_SAMPLES,
    BestChoice,
    DeviceRecord,
    DeviceStats,
    MeasurementRecord,
    SignatureRecord,
    Stats,
    WantedRecord,
    is_contended,
)
from tuning_db.rows import (
    as_utc,
    best_from_row,
    device_from_row,
    device_row,
    measurement_from_row,
    measurement_row,
    signature_from_row,
)
from tuning_db.schema import SCHEMA_VERSION, devices, measurements
from tuning_db.urls import default_url, masked, parse_url, sqlite_file

_T = TypeVar("_T")
_m = measurements.c
# Built once: the hot lookups only bind values (the unique index starts with these columns).
_SAME_SIGNATURE = (_m.device_id == bindparam("device_id"), _m.sig_key == bindparam("sig_key"))
_BEST = (select(_m.strategy, _m.params, _m.median_s, _m.samples, _m.note)
         .where(*_SAME_SIGNATURE, _m.ok).order_by(_m.median_s, _m.id).limit(1))
_OK_ROWS = select(measurements).where(*_SAME_SIGNATURE, _m.ok).order_by(_m.median_s, _m.id)
_FAILED_ROWS = (select(measurements).where(*_SAME_SIGNATURE, _m.ok.is_(False))
                .order_by(_m.median_s, _m.id))
_ANY = select(_m.id).where(*_SAME_SIGNATURE).limit(1)


def _location(url: str) -> tuple[str, str]:
    """(file or masked URL for messages, ``--db`` option for commands in messages).

    The option is always given, however the database was configured (``--db``,
    ``AUTOCONV_DB_URL``, the default file): a command copied from a message acts on that
    database and no other.
    """
    parsed = parse_url(url)
    path = sqlite_file(parsed)
    where = str(path) if path is not None else masked(url)
    return where, f" --db {shlex.quote(masked(url))}"


def open_engine(url: str | None = None, *, create: bool = True,
                timeout_s: float | None = None) -> tuple[Engine, str, str]:
    """Engine for ``url`` after the file checks, without the schema check (``db upgrade``).

    Returns:
        (engine, where, db_option) as :func:`_location` describes.
    """
    text = url or default_url()
    parsed = parse_url(text)
    where, db_option = _location(text)
    path = sqlite_file(parsed)
    if path is not None:
        if not path.exists():
            if not create:
                raise DatabaseMissingError(f"no tuning database at {path}")
            create_sqlite_file(path, parsed)
        elif path.is_dir():
            raise DatabaseMissingError(f"{path} is a folder, not a tuning database")
        else:
            sqlite_safety.check_file(path)
            remove_orphans(path)  # temporary files of a creator killed before it finished
    return make_engine(parsed, timeout_s), where, db_option


def connect(url: str | None = None, *, create: bool = True,
            timeout_s: float | None = None) -> TuningDB:
    """Open the tuning database at ``url``, creating its schema in an empty database.

    Args:
        url: any SQLAlchemy URL (``postgresql://`` uses psycopg 3); None = ``AUTOCONV_DB_URL``
            or, when that is unset, the SQLite file in the user's cache directory.
        create: create a missing SQLite file (False: raise :class:`DatabaseMissingError`).
        timeout_s: most seconds a server may take to connect or to answer one statement
            (None: ``AUTOCONV_DB_TIMEOUT_S``, else 5).

    Raises:
        TuningDBError: a subclass that says what is wrong (bad URL, unreachable server,
            damaged file, foreign or too old/new schema), naming the file or URL.
    """
    engine, where, db_option = open_engine(url, create=create, timeout_s=timeout_s)
    try:
        with translated(where):
            migrate.ensure_schema(engine, where, db_option)
    except BaseException:
        engine.dispose()
        raise
    return TuningDB(engine, where, masked(url or default_url()))


class TuningDB:
    """Measurements of conv1d strategies, per device; see the module doc for the contract.

    Build one with :func:`connect`. Usable as a context manager (closes on exit).
    """

    def __init__(self, engine: Engine, where: str, url: str | None = None) -> None:
        self._engine = engine
        self._pid = os.getpid()
        #: The file or masked URL, for messages.
        self.where = where
        #: The URL as the user gave it, password masked (not the engine's, which carries the
        #: driver and the timeouts added to it).
        self.url = url if url is not None else masked(engine.url)
        self._leases = Leases(engine, sqlite_file(engine.url))

    # -- connections -----------------------------------------------------------------------

    def _fresh_engine(self) -> Engine:
        """The engine, after dropping (without closing) connections inherited through fork."""
        if os.getpid() != self._pid:
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine

    def _read(self, work: Callable[[Connection], _T]) -> _T:
        with translated(self.where), self._fresh_engine().connect() as connection:
            return work(connection)

    def _write(self, work: Callable[[Connection], _T], what: str) -> _T:
        engine = self._fresh_engine()

        def transaction() -> _T:
            with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    connection = connection.execution_options(**{sqlite_safety.IMMEDIATE: True})
                with connection.begin():
                    return work(connection)

        with translated(self.where):
            return sqlite_safety.retry_busy(transaction, f"{what} in {self.where}")

    # -- writing ---------------------------------------------------------------------------

    def record(self, device: DeviceRecord, measurement: MeasurementRecord) -> None:
        """Store one measurement made on ``device`` (upsert: see the module doc)."""
        self.record_many(device, [measurement])

    def record_many(self, device: DeviceRecord, measurements: Iterable[MeasurementRecord]) -> int:
        """Store measurements made on ``device`` in one transaction; returns how many were given."""
        device_id = device.device_id
        rows = [measurement_row(device_id, measurement) for measurement in measurements]
        self.write_rows([device_row(device, datetime.now(UTC))], rows)
        return len(rows)

    def write_rows(self, device_rows: list[dict[str, Any]],
                   measurement_rows: list[dict[str, Any]]) -> upsert.WriteCounts:
        """Upsert prepared rows (see :mod:`tuning_db.rows`) in one transaction (bundles, merge);
        returns how many were new, replaced a stored row, or changed nothing."""

        return self.write_batches(device_rows, lambda: [measurement_rows])[0]

    def write_batches(self, device_rows: list[dict[str, Any]],
                      batches: Callable[[], Iterable[list[dict[str, Any]]]]
                      ) -> list[upsert.WriteCounts]:
        """Upsert device rows, then batches of measurement rows, all in one transaction, so
        that a large import never holds all its rows at once.

        ``batches`` is called to start the batches (again, if a busy SQLite file makes the
        transaction start over). Returns the counts of each batch, in order.
        """

        def work(connection: Connection) -> list[upsert.WriteCounts]:
            upsert.upsert_devices(connection, device_rows)
            return [upsert.upsert_measurements(connection, batch) for batch in batches()]

        return self._write(work, "writing measurements")

    def delete_device(self, device_id: str) -> int:
        """Delete a device and all its measurements; returns how many measurements went."""

        def work(connection: Connection) -> int:
            gone = connection.execute(delete(measurements).where(_m.device_id == device_id))
            connection.execute(delete(devices).where(devices.c.device_id == device_id))
            return int(gone.rowcount or 0)

        return self._write(work, f"deleting device {device_id}")

    def want(self, device: DeviceRecord, calls: Mapping[SignatureRecord, int]) -> None:
        """Note signatures answered without a measurement on ``device``, with the calls seen
        since the last note (summed into one row per signature: :mod:`tuning_db.wanted`)."""
        now = datetime.now(UTC)

        def work(connection: Connection) -> None:
            upsert.upsert_devices(connection, [device_row(device, now)])
            wanted_rows.note(connection, device.device_id, calls, now)

        if calls:
            self._write(work, "noting wanted signatures")

    def wanted(self, device_id: str | None = None, *, unmeasured_only: bool = True
               ) -> list[WantedRecord]:
        """The signatures noted by :meth:`want` (of one device, or all) that no ``ok``
        measurement answers yet (``unmeasured_only=False``: all of them), most called
        first."""
        return self._read(lambda connection: wanted_rows.read(
            connection, device_id, unmeasured_only=unmeasured_only))

    # -- reading ---------------------------------------------------------------------------

    def best(self, device_id: str, signature: SignatureRecord) -> BestChoice | None:
        """The winner for ``signature`` on ``device_id``, or None when nothing ok is stored."""
        values = {"device_id": device_id, "sig_key": signature.key}
        row = self._read(lambda connection: connection.execute(_BEST, values).first())
        return None if row is None else best_from_row(row._mapping)

    def candidates(self, device_id: str, signature: SignatureRecord) -> list[MeasurementRecord]:
        """Every ok measurement of ``signature`` on ``device_id``, fastest first (one indexed
        query), for a caller that applies its own rule to the near-ties."""
        values = {"device_id": device_id, "sig_key": signature.key}
        rows = self._read(lambda connection: connection.execute(_OK_ROWS, values).mappings()
                          .all())
        return [measurement for _, measurement in self._valid(
            ((device_id, row) for row in rows), f"{signature.key} on device {device_id}")]

    def failures(self, device_id: str, signature: SignatureRecord) -> list[MeasurementRecord]:
        """Every failed or disqualified measurement of ``signature`` on ``device_id`` (``ok``
        false, ``note`` saying why), fastest first: what explains a candidate's absence."""
        values = {"device_id": device_id, "sig_key": signature.key}
        rows = self._read(lambda connection: connection.execute(_FAILED_ROWS, values)
                          .mappings().all())
        return [measurement for _, measurement in self._valid(
            ((device_id, row) for row in rows), f"{signature.key} on device {device_id}")]

    def best_many(self, device_id: str) -> dict[SignatureRecord, BestChoice]:
        """The winner of every signature measured on ``device_id`` (to preload a cache)."""
        query = (select(measurements).where(_m.device_id == device_id, _m.ok)
                 .order_by(_m.sig_key, _m.median_s, _m.id))

        def work(connection: Connection) -> dict[SignatureRecord, BestChoice]:
            winners: dict[SignatureRecord, BestChoice] = {}
            last_key = None
            for row in connection.execute(query).mappings():
                if row["sig_key"] != last_key:
                    last_key = row["sig_key"]
                    winners[signature_from_row(row)] = best_from_row(row)
            return winners

        return self._read(work)

    def has_signature(self, device_id: str, signature: SignatureRecord) -> bool:
        """Whether anything (ok or not) was recorded for ``signature`` on ``device_id``."""
        values = {"device_id": device_id, "sig_key": signature.key}
        return self._read(lambda connection: connection.execute(_ANY, values).first() is not None)

    def count(self, device_id: str, *, ok_only: bool = True) -> int:
        """How many measurements ``device_id`` has (only valid ones by default): one indexed
        query, so a caller can tell whether anything changed without reading the rows."""
        query = select(func.count()).where(_m.device_id == device_id)
        if ok_only:
            query = query.where(_m.ok)
        return int(self._read(lambda connection: connection.execute(query).scalar_one()))

    def measurements(self, device_id: str | None = None, winners_only: bool = False, *,
                     streams: bool | None = False) -> Iterator[tuple[str, MeasurementRecord]]:
        """Every stored measurement as (device id, measurement), e.g. to train a predictor.

        Args:
            device_id: only this device's rows (None: all devices).
            winners_only: only each (device, signature)'s winner.
            streams: False (the default): only conv1d calls' rows, what a predictor or a
                report reads; True: only streams' (signatures with a ``chunk_size``); None:
                both (bundles).
        """
        query: Select[Any] = select(measurements).order_by(_m.device_id, _m.sig_key,
                                                            _m.median_s, _m.id)
        if device_id is not None:
            query = query.where(_m.device_id == device_id)
        if streams is not None:
            query = query.where(_m.chunk_size.is_not(None) if streams
                                else _m.chunk_size.is_(None))
        if winners_only:
            query = query.where(_m.ok)
        with translated(self.where), self._fresh_engine().connect() as connection:
            last = None
            rows = connection.execution_options(yield_per=2000).execute(query).mappings()
            for device, measurement in self._valid(((row["device_id"], row) for row in rows),
                                                   "the measurements"):
                key = (device, measurement.signature.key)
                if winners_only:
                    if key == last:
                        continue
                    last = key
                yield device, measurement

    def _valid(self, rows: Iterable[tuple[str, Any]], what: str
               ) -> Iterator[tuple[str, MeasurementRecord]]:
        """The rows that validate, as records; the others (written by a faulty or hostile
        writer into a shared database) are skipped, with one warning saying how many."""
        skipped, first = 0, ""
        for device, row in rows:
            try:
                measurement = measurement_from_row(row)
            except (ValueError, TypeError, OverflowError) as error:
                skipped += 1
                first = first or str(error).strip().splitlines()[0]
                continue
            yield device, measurement
        if skipped:
            warnings.warn(f"tuning_db: {self.where}: skipped {skipped} invalid stored row(s) "
                          f"of {what} ({first[:200]})", RuntimeWarning, stacklevel=3)

    def devices(self) -> list[DeviceRecord]:
        """Every device with rows in the database, ordered by device id."""
        query = select(devices).order_by(devices.c.device_id)
        return self._read(lambda connection: [
            device_from_row(row) for row in connection.execute(query).mappings()])

    def stats(self) -> Stats:
        """Counts per device and overall, wins per strategy, and the file size for SQLite."""
        per_device = []
        for device in self.devices():
            device_id = device.device_id
            query = (select(func.count(), func.count(distinct(_m.sig_key)),
                            func.min(_m.measured_at), func.max(_m.measured_at))
                     .where(_m.device_id == device_id))
            count, signatures, first, last = self._read(
                lambda connection, query=query: connection.execute(query).one())
            wins: dict[str, int] = {}
            provisional = 0
            for choice in self.best_many(device_id).values():
                wins[choice.strategy] = wins.get(choice.strategy, 0) + 1
                provisional += choice.samples < SETTLED_SAMPLES or is_contended(choice.note)
            wanted, wanted_measured = self._read(
                lambda connection, device_id=device_id: wanted_rows.counts(connection,
                                                                           device_id))
            per_device.append(DeviceStats(
                device=device, measurements=count, signatures=signatures, wins=wins,
                provisional=provisional, wanted=wanted, wanted_measured=wanted_measured,
                first_measured=None if first is None else as_utc(first),
                last_measured=None if last is None else as_utc(last)))
        path = sqlite_file(self._engine.url)
        size = None
        if path is not None:
            size = sum(candidate.stat().st_size for candidate in
                       (path, Path(f"{path}-wal")) if candidate.exists())
        return Stats(url=self.url, schema_version=SCHEMA_VERSION,
                     devices=len(per_device),
                     measurements=sum(item.measurements for item in per_device),
                     signatures=sum(item.signatures for item in per_device),
                     size_bytes=size, per_device=per_device)

    # -- life cycle ------------------------------------------------------------------------

    def lease(self, device_id: str, signature: SignatureRecord
              ) -> AbstractContextManager[bool]:
        """Try to take the lease of measuring ``signature`` on ``device_id`` (never waits):
        a context manager yielding whether it was granted (see :mod:`tuning_db.leases`)."""
        self._fresh_engine()
        return self._leases.hold(device_id, signature.key)

    def close(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        self._leases.close()
        self._engine.dispose()

    def __enter__(self) -> TuningDB:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TuningDB({self.where!r})"
