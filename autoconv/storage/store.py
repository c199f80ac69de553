"""The tuner's view of the tuning database: signatures and outcomes in, best choices out.

Translates between autoconv's objects (Signature, torch.device, Outcome) and tuning_db's
records, opens the database lazily, and reopens it in a forked child (a DataLoader worker must
never share its parent's connection).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from pydantic import ValidationError

import tuning_db
from autoconv import __version__
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.storage.fingerprint import device_key, fingerprint_fields
from autoconv.tuning.outcome import Outcome
from tuning_db import DeviceRecord, MeasurementRecord, SignatureRecord
from tuning_db.urls import default_url, masked, parse_url, sqlite_file


def device_record(device: torch.device) -> DeviceRecord:
    """The fingerprint of ``device`` in this process, as the database stores it."""
    return DeviceRecord(**fingerprint_fields(device))


class UnstorableSignature(ValueError):
    """A signature with a field outside what the tuning database stores (sizes are 32-bit):
    the call is at fault, not the database. Nothing is stored for it, so a lookup finds
    nothing, and no failure of the database is reported.

    Attributes:
        field: the signature's field (``length``, ``stride``, ...).
        value: its value.
        low, high: the range the database stores (None when the field is not a number).
    """

    def __init__(self, field: str, value: object, low: int | None, high: int | None,
                 why: str) -> None:
        self.field, self.value, self.low, self.high = field, value, low, high
        bounds = f" (allowed: {low} to {high})" if low is not None and high is not None else ""
        super().__init__(f"{field} {value} is out of range{bounds}" if bounds
                         else f"{field} {value!r}: {why}")


def _bounds(field: str) -> tuple[int | None, int | None]:
    """The range ``SignatureRecord`` allows for ``field`` (None, None: not a bounded number)."""
    info = SignatureRecord.model_fields.get(field)
    low = high = None
    for constraint in () if info is None else info.metadata:
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


def signature_record(signature: Signature) -> SignatureRecord:
    """``signature`` as a tuning_db record.

    Raises:
        UnstorableSignature: a field outside what the database stores (the first one).
    """
    fields = signature.as_dict()
    try:
        return SignatureRecord(**fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "signature"
        raise UnstorableSignature(field, fields.get(field), *_bounds(field),
                                  first["msg"]) from None


def _storable(signature: Signature) -> SignatureRecord | None:
    """``signature``'s record, or None when the database cannot hold it."""
    try:
        return signature_record(signature)
    except UnstorableSignature:
        return None


def measurement_record(signature: SignatureRecord, outcome: Outcome) -> MeasurementRecord:
    """One tuning outcome as a measurement row."""
    return MeasurementRecord(
        signature=signature, strategy=outcome.candidate.name,
        params=dict(outcome.candidate.params), median_s=outcome.median_s,
        spread_s=outcome.spread_s, samples=outcome.samples, error=outcome.error, ok=outcome.ok,
        note=outcome.note, autoconv_version=__version__)


_UNKNOWN = object()


class TuningStore:
    """A lazily opened, fork-aware tuning database for the selector.

    Args:
        url: SQLAlchemy URL, or None for ``tuning_db``'s default (``AUTOCONV_DB_URL`` or the
            SQLite file in the user's cache directory).
        timeout_s: most seconds a database server may take to connect or answer a statement.
    """

    def __init__(self, url: str | None = None, timeout_s: float | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._db: tuning_db.TuningDB | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, int | None, int], DeviceRecord] = {}
        self._file: Path | None | object = _UNKNOWN  # the SQLite file, once looked up

    @property
    def db(self) -> tuning_db.TuningDB:
        """The open database (opened on first use, and again in a forked child)."""
        if self._db is None or self._pid != os.getpid():
            with self._lock:
                if self._db is None or self._pid != os.getpid():
                    self._db = tuning_db.connect(self.url, timeout_s=self.timeout_s)
                    self._pid = os.getpid()
        return self._db

    #: Always tried (see :class:`~autoconv.storage.guarded.GuardedStore` for one that rests).
    available = True

    @property
    def unborn(self) -> bool:
        """Whether the database is an SQLite file that does not exist yet (and was not opened
        here): it holds nothing to read, so reads answer at once, and the file is created
        by the first write (a first call never waits for a schema to be built)."""
        if self._db is not None:
            return False
        if self._file is _UNKNOWN:
            try:
                self._file = sqlite_file(parse_url(self.url or default_url()))
            except tuning_db.TuningDBError:
                self._file = None  # opening it says what is wrong
        return self._file is not None and not self._file.exists()

    @property
    def where(self) -> str:
        """The database's location, for messages (password masked)."""
        if self._db is not None:
            return self._db.where
        return masked(self.url or default_url())

    def device(self, device: torch.device) -> DeviceRecord:
        """The (cached) fingerprint record of ``device`` at the current thread count."""
        key = device_key(device)
        record = self._devices.get(key)
        if record is None:
            record = self._devices[key] = device_record(device)
        return record

    def candidates(self, signature: Signature, device: torch.device
                   ) -> list[MeasurementRecord]:
        """This device's ok measurements of ``signature``, fastest first (none for a
        signature the database cannot hold: :class:`UnstorableSignature`)."""
        record = _storable(signature)
        if self.unborn or record is None:
            return []
        return self.db.candidates(self.device(device).device_id, record)

    def failures(self, signature: Signature, device: torch.device
                 ) -> list[MeasurementRecord]:
        """This device's failed or disqualified measurements of ``signature`` (never chosen:
        shown by :mod:`autoconv.tuning.explanation`)."""
        record = _storable(signature)
        if self.unborn or record is None:
            return []
        return self.db.failures(self.device(device).device_id, record)

    def record(self, signature: Signature, device: torch.device,
               outcomes: Sequence[Outcome]) -> None:
        """Store every outcome of one tuning run in one transaction.

        Raises:
            UnstorableSignature: the signature cannot be stored (nothing was tried).
            TuningDBError: the database failed.
        """
        record = signature_record(signature)
        self.db.record_many(self.device(device),
                            [measurement_record(record, outcome) for outcome in outcomes])

    def lease(self, signature: Signature, device: torch.device
              ) -> AbstractContextManager[bool]:
        """Try to take the lease of measuring ``signature`` on ``device`` (never waits): a
        context manager yielding whether it was granted (``tuning_db.leases``); granted at
        once for a signature the database cannot hold (no other process can store it)."""
        record = _storable(signature)
        if record is None:
            return nullcontext(True)
        return self.db.lease(self.device(device).device_id, record)

    def want(self, calls: dict[tuple[Signature, torch.device], int]) -> None:
        """Note signatures answered without a measurement, with the calls seen since the last
        note (``TuningDB.want``: summed over processes, for ``autoconv warm --wanted``)."""
        per_device: dict[torch.device, dict[SignatureRecord, int]] = {}
        for (signature, device), count in calls.items():
            try:
                record = signature_record(signature)
            except UnstorableSignature:
                continue  # nothing of it is stored: there is nothing to ask a worker for
            per_device.setdefault(device, {})[record] = count
        for device, records in per_device.items():
            self.db.want(self.device(device), records)

    def close(self) -> None:
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None


def open_default_store(settings: Settings) -> TuningStore | None:
    """The store the process-wide selector uses, or None when persistence is off."""
    if not settings.persist:
        return None
    return TuningStore(settings.db_url, settings.db_timeout_s)
