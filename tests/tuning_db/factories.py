"""Builders of valid records for the tuning_db tests; keyword arguments change fields."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from tuning_db import DeviceRecord, MeasurementRecord, SignatureRecord


def make_device(**changes: Any) -> DeviceRecord:
    """A CPU fingerprint; keyword arguments change fields."""
    fields: dict[str, Any] = dict(
        cpu_model="Test CPU @ 3.0GHz", cpu_cores=8, torch_threads=4, torch_version="2.13.0+cpu",
        mkl_version="2024.2", onednn_version="3.7.1", platform="Linux-x86_64",
        autoconv_version="0.1.0")
    fields.update(changes)
    return DeviceRecord(**fields)


def make_signature(**changes: Any) -> SignatureRecord:
    """A float32 CPU signature; keyword arguments change fields."""
    fields: dict[str, Any] = dict(
        batch=4, in_channels=16, out_channels=32, length=4096, kernel_size=129, stride=1,
        padding_left=64, padding_right=64, dilation=1, groups=1, dtype="float32", device="cpu",
        requires_grad=False)
    fields.update(changes)
    return SignatureRecord(**fields)


def make_measurement(signature: SignatureRecord | None = None, **changes: Any
                     ) -> MeasurementRecord:
    """A successful ``direct`` measurement; keyword arguments change fields."""
    fields: dict[str, Any] = dict(
        signature=signature or make_signature(), strategy="direct", params={}, median_s=1e-3,
        spread_s=1e-5, samples=10, error=0.0, autoconv_version="0.1.0")
    fields.update(changes)
    return MeasurementRecord(**fields)


def insert_device_row(connection: Connection, device: DeviceRecord) -> None:
    """``device``'s row, inserted in raw SQL, as every schema version stores it (the tests
    of migrations write the rows of an older schema by hand)."""
    connection.execute(text(
        "INSERT INTO devices (device_id, cpu_model, cpu_cores, torch_threads, torch_version,"
        " autoconv_version, first_seen) VALUES (:id, :cpu, 8, 4, :torch, '0.1.0', "
        "'2026-01-01 00:00:00')"),
        {"id": device.device_id, "cpu": device.cpu_model, "torch": device.torch_version})
