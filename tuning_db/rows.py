"""Conversions between the pydantic records and table rows (plain dicts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tuning_db.records import (
    MAX_SAMPLES,
    BestChoice,
    CandidateMeasurement,
    DeviceRecord,
    MeasurementRecord,
    SignatureRecord,
    params_key,
)
from tuning_db.schema import SIGNATURE_COLUMNS

_DEVICE_FIELDS = tuple(name for name in DeviceRecord.model_fields)


def as_utc(value: datetime) -> datetime:
    """Database times are UTC; SQLite gives them back naive."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def device_row(device: DeviceRecord, seen: datetime) -> dict[str, Any]:
    """The ``devices`` row of a fingerprint, first seen at ``seen``."""
    row = {name: getattr(device, name) for name in _DEVICE_FIELDS}
    row["device_id"] = device.device_id
    row["first_seen"] = seen
    return row


def device_from_row(row: Mapping[str, Any]) -> DeviceRecord:
    """The fingerprint stored in a ``devices`` row."""
    return DeviceRecord.model_validate({name: row[name] for name in _DEVICE_FIELDS})


def signature_columns(device_id: str, signature: SignatureRecord) -> dict[str, Any]:
    """The columns of a ``measurements`` or ``wanted`` row that a signature and device
    determine."""
    row: dict[str, Any] = {name: getattr(signature, name) for name in SIGNATURE_COLUMNS}
    row["device_id"] = device_id
    row["sig_key"] = signature.key
    return row


def candidate_row(base: dict[str, Any], measurement: CandidateMeasurement, *,
                  imported: bool = False) -> dict[str, Any]:
    """A ``measurements`` row: ``base`` (:func:`signature_columns`) plus what was measured.

    An ``imported`` row (bundle, merge) claims at most :data:`MAX_SAMPLES` samples, what a
    real measurement can have, so that a forged count cannot make it outrank others.
    """
    row = dict(base)
    samples = min(measurement.samples, MAX_SAMPLES) if imported else measurement.samples
    row.update(
        strategy=measurement.strategy, params=params_key(measurement.params),
        median_s=measurement.median_s, spread_s=measurement.spread_s,
        samples=samples, error=measurement.error, ok=measurement.ok,
        note=measurement.note, measured_at=measurement.measured_at,
        autoconv_version=measurement.autoconv_version, imported=imported)
    return row


def measurement_row(device_id: str, measurement: MeasurementRecord) -> dict[str, Any]:
    """The ``measurements`` row of one measurement on device ``device_id``."""
    return candidate_row(signature_columns(device_id, measurement.signature), measurement)


def signature_from_row(row: Mapping[str, Any]) -> SignatureRecord:
    """The signature held in the signature columns of a ``measurements`` or ``wanted`` row."""
    values = {name: row[name] for name in SIGNATURE_COLUMNS}
    values["requires_grad"] = bool(values["requires_grad"])
    values["weight_reused"] = bool(values["weight_reused"])
    return SignatureRecord.model_validate(values)


def measurement_from_row(row: Mapping[str, Any]) -> MeasurementRecord:
    """The measurement held in a ``measurements`` row (validated again on the way out)."""
    return MeasurementRecord.model_validate({
        "signature": signature_from_row(row), "strategy": row["strategy"],
        "params": json.loads(row["params"]), "median_s": row["median_s"],
        "spread_s": row["spread_s"], "samples": row["samples"], "error": row["error"],
        "ok": bool(row["ok"]), "note": row["note"], "measured_at": as_utc(row["measured_at"]),
        "autoconv_version": row["autoconv_version"]})


def best_from_row(row: Mapping[str, Any]) -> BestChoice:
    """The winner described by a ``measurements`` row."""
    return BestChoice(strategy=row["strategy"], params=json.loads(row["params"]),
                      median_s=row["median_s"], samples=row["samples"], note=row["note"])


def replaces(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """The rule an upsert applies to two rows of the same key: whether ``new`` replaces
    ``old``.

    A local measurement (made by a tuner on this fingerprint) replaces an imported one, and an
    imported one never replaces a local one. Between two local ones the newer wins: the machine
    measured again on purpose (a provisional decision settled, ``warm --refresh``). Between two
    imported ones, more samples win and, on a tie, the newer. The same row written again
    changes nothing.
    """
    if bool(new["imported"]) != bool(old["imported"]):
        return not new["imported"]
    newer = as_utc(new["measured_at"]) > as_utc(old["measured_at"])
    if not new["imported"]:
        return newer
    return new["samples"] > old["samples"] or (new["samples"] == old["samples"] and newer)
