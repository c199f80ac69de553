"""Bundles: versioned JSON files that carry measurements between databases and machines.

A bundle is plain data. Importing one reads at most :data:`MAX_BUNDLE_BYTES`, parses it as
JSON (never pickle, never eval), validates every record strictly (types, finite and bounded
numbers, short strings, no unknown fields, device ids that match their fingerprints) before
anything is written, and then writes everything in one transaction: a bad bundle leaves the
database unchanged. No string inside a bundle is ever used as a path.

Layout (version 1): measurements are grouped by (device, signature), so that a signature is
written once for all its candidates (a 100,000-measurement bundle is about half the size)::

    {"format": "autoconv-tuning-bundle", "version": 1, "created_at": "...",
     "devices": [{"device_id": "...", "fingerprint": {DeviceRecord fields}}],
     "groups": [{"device_id": "...", "signature": {SignatureRecord fields},
                 "measurements": [{CandidateMeasurement fields}, ...]}]}
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuning_db.errors import BundleError
from tuning_db.records import CandidateMeasurement, DeviceRecord, MeasurementRecord, SignatureRecord
from tuning_db.rows import candidate_row, device_row, signature_columns
from tuning_db.store import TuningDB, connect

FORMAT = "autoconv-tuning-bundle"
VERSION = 1
#: Largest bundle accepted by default (the 100,000 measurements of 10 candidates per
#: signature that ``scripts/bench_db.py`` builds take 25.3 MiB); ``load(max_bytes=...)`` and
#: ``--max-mb`` raise it.
MAX_BUNDLE_BYTES = 64 * 2**20
_PICKLE_PROTOCOL_MARK = b"\x80"


class BundleDevice(BaseModel):
    """A fingerprint in a bundle, with the id the measurements refer to it by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    fingerprint: DeviceRecord

    @model_validator(mode="after")
    def _id_matches(self) -> BundleDevice:
        if self.device_id != self.fingerprint.device_id:
            raise ValueError(f"device_id {self.device_id} is not the hash of its fingerprint "
                             f"({self.fingerprint.device_id})")
        return self


class BundleGroup(BaseModel):
    """The measurements of one signature on one device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    signature: SignatureRecord
    measurements: list[CandidateMeasurement] = Field(min_length=1)


class Bundle(BaseModel):
    """A whole bundle file (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["autoconv-tuning-bundle"]
    version: Literal[1]
    created_at: datetime
    devices: list[BundleDevice]
    groups: list[BundleGroup]

    @model_validator(mode="after")
    def _devices_known(self) -> Bundle:
        known = {device.device_id for device in self.devices}
        if len(known) != len(self.devices):
            raise ValueError("a device is listed twice")
        for index, group in enumerate(self.groups):
            if group.device_id not in known:
                raise ValueError(f"groups[{index}] refers to device {group.device_id}, "
                                 "which the bundle does not list")
        return self

    @property
    def count(self) -> int:
        """How many measurements the bundle holds."""
        return sum(len(group.measurements) for group in self.groups)

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(device rows, measurement rows) to write; a device is first seen at its oldest row."""
        oldest: dict[str, datetime] = {}
        measurement_rows = []
        for group in self.groups:
            base = signature_columns(group.device_id, group.signature)
            measurement_rows += [candidate_row(base, item) for item in group.measurements]
            first = min(item.measured_at for item in group.measurements)
            oldest[group.device_id] = min(first, oldest.get(group.device_id, first))
        device_rows = [device_row(device.fingerprint,
                                  oldest.get(device.device_id, self.created_at))
                       for device in self.devices]
        return device_rows, measurement_rows


def build(devices: Iterable[DeviceRecord],
          measurements: Iterable[tuple[str, MeasurementRecord]]) -> Bundle:
    """A bundle of already-validated records (no second validation pass).

    Measurements of the same device and signature that come one after another (as
    ``TuningDB.measurements`` orders them) share a group.
    """
    groups = [
        BundleGroup.model_construct(device_id=device_id, signature=signature,
                                    measurements=[measurement for _, measurement in run])
        for (device_id, _, signature), run in groupby(
            measurements, key=lambda item: (item[0], item[1].signature.key,
                                            item[1].signature))]
    used = {group.device_id for group in groups}
    listed = [BundleDevice.model_construct(device_id=device.device_id, fingerprint=device)
              for device in devices if device.device_id in used]
    return Bundle.model_construct(format=FORMAT, version=VERSION, created_at=datetime.now(UTC),
                                  devices=listed, groups=groups)


def to_json(bundle: Bundle) -> bytes:
    """The bundle as compact JSON (device ids are written once, beside each fingerprint)."""
    return bundle.model_dump_json(
        exclude={"devices": {"__all__": {"fingerprint": {"device_id"}}}},
        warnings=False).encode()


def export_bundle(db: TuningDB, path: str | os.PathLike[str], device_id: str | None = None,
                  winners_only: bool = False) -> int:
    """Write ``db``'s measurements to a bundle file, atomically; returns how many.

    Args:
        device_id: only this device's measurements.
        winners_only: only the winner of each (device, signature).

    Raises:
        BundleError: ``device_id`` is not in the database, or the file cannot be written.
    """
    devices = db.devices()
    if device_id is not None and device_id not in {device.device_id for device in devices}:
        known = ", ".join(device.device_id for device in devices) or "none"
        raise BundleError(f"no device {device_id} in {db.where} (devices: {known})")
    bundle = build(devices, db.measurements(device_id, winners_only=winners_only))
    count = bundle.count
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_bytes(to_json(bundle))
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BundleError(f"cannot write {target}: {error.strerror}") from None
    return count


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse(data: bytes, name: str) -> Bundle:
    """Validate bundle bytes strictly; ``name`` is used in messages only.

    Raises:
        BundleError: not JSON, a pickle, or any record that fails validation.
    """
    if data.startswith(_PICKLE_PROTOCOL_MARK):
        raise BundleError(f"{name} looks like a Python pickle, not a JSON bundle; pickles are "
                          "never loaded")
    if not data.lstrip()[:1] == b"{":
        raise BundleError(f"{name} is not a JSON bundle (it does not start with '{{')")
    try:
        return Bundle.model_validate_json(data, strict=True)
    except ValidationError as error:
        raise BundleError(f"{name} is not a valid tuning bundle: {_describe(error)}") from None


def load(path: str | os.PathLike[str], max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """Read and validate a bundle file (see :func:`parse`), refusing one over ``max_bytes``.

    Raises:
        BundleError: missing, unreadable, too large, or invalid.
    """
    source = Path(path)
    try:
        status = source.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would block or never end
            raise BundleError(f"{source} is not a regular file, not a bundle file")
        size = status.st_size
        if size > max_bytes:
            raise BundleError(f"{source} is {size / 2**20:.1f} MiB, more than the "
                              f"{max_bytes / 2**20:.3g} MiB a bundle may have")
        with source.open("rb") as file:
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise BundleError(f"no such bundle file: {source}") from None
    except IsADirectoryError:
        raise BundleError(f"{source} is a folder, not a bundle file") from None
    except OSError as error:
        raise BundleError(f"cannot read {source}: {error.strerror}") from None
    if len(data) > max_bytes:
        raise BundleError(f"{source} is larger than the {max_bytes / 2**20:.3g} MiB a bundle "
                          "may have")
    return parse(data, str(source))


def import_bundle(db: TuningDB, path: str | os.PathLike[str],
                  max_bytes: int = MAX_BUNDLE_BYTES) -> int:
    """Validate a whole bundle, then write it in one transaction; returns its measurements.

    Measurements already stored keep the better-supported version (see ``TuningDB``).
    """
    return write(db, load(path, max_bytes))


def write(db: TuningDB, bundle: Bundle) -> int:
    """Write a validated bundle in one transaction; returns its measurements."""
    device_rows, measurement_rows = bundle.rows()
    db.write_rows(device_rows, measurement_rows)
    return len(measurement_rows)


def _read_source(source: str, max_bytes: int) -> Bundle:
    """A bundle file, or a database URL read (without creating anything) into a bundle."""
    if "://" not in source:
        return load(source, max_bytes)
    with connect(source, create=False) as db:
        return build(db.devices(), db.measurements())


def merge(sources: Sequence[str], into: TuningDB,
          max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, int]:
    """Merge bundles and databases into ``into`` in one transaction.

    Every source is read and validated before anything is written. Rows stay with their
    device; for the same (device, signature, strategy, params) the better-supported
    measurement is kept (more samples, then newer).

    Returns:
        Measurements read per source.
    """
    device_rows: list[dict[str, Any]] = []
    measurement_rows: list[dict[str, Any]] = []
    counts = {}
    for source in sources:
        devices, measurements = _read_source(source, max_bytes).rows()
        device_rows += devices
        measurement_rows += measurements
        counts[source] = len(measurements)
    into.write_rows(device_rows, measurement_rows)
    return counts
