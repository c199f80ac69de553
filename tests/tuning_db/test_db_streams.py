"""Streams in the tuning database: their own signatures (``chunk_size``), apart from conv1d
calls' in queries, carried by bundles, and older databases upgraded with their keys kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

import tuning_db
from tests.tuning_db.factories import (
    insert_device_row,
    make_device,
    make_measurement,
    make_signature,
)
from tuning_db import bundle, migrate
from tuning_db.engine import make_engine
from tuning_db.urls import parse_url


def make_stream(**changes) -> tuning_db.SignatureRecord:
    fields = {"batch": 1, "in_channels": 2, "out_channels": 2, "length": 256,
              "kernel_size": 48_000, "padding_left": 47_999, "padding_right": 0, "groups": 2,
              "chunk_size": 256} | changes
    return make_signature(**fields)


def test_a_stream_signature_has_its_own_key_and_a_call_keeps_its_old_one() -> None:
    call = make_signature()
    assert call.key == "4x16x4096>32|k129s1p64,64d1g1|float32|cpu|nograd"
    assert "chunk_size" not in call.model_dump() and not call.is_stream
    stream = make_stream()
    assert stream.key.endswith("|nograd|c256") and stream.is_stream
    same_shape = make_stream(chunk_size=None)
    assert same_shape.key != stream.key


def test_streams_are_stored_and_read_apart_from_calls(db_url: str) -> None:
    device = make_device()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [
            make_measurement(make_stream(), strategy="partitioned", params={"partition": 512},
                             median_s=2e-4),
            make_measurement(make_stream(), strategy="stateful_direct", median_s=5e-2),
            make_measurement(make_stream(chunk_size=None), strategy="fft", median_s=1e-3)])
        best = db.best(device.device_id, make_stream())
        assert (best.strategy, best.params) == ("partitioned", {"partition": 512})
        assert [m.strategy for m in db.candidates(device.device_id, make_stream())] == [
            "partitioned", "stateful_direct"]
        assert [m.strategy for _, m in db.measurements()] == ["fft"]
        streams = [m for _, m in db.measurements(streams=True)]
        assert {m.signature for m in streams} == {make_stream()}
        assert len(list(db.measurements(streams=None))) == 3
        assert db.stats().signatures == 2


def test_bundles_carry_streams_and_leave_calls_as_they_were(tmp_path: Path) -> None:
    device = make_device()
    calls, everything = tmp_path / "calls.json", tmp_path / "all.json"
    with tuning_db.connect(f"sqlite:///{tmp_path / 'a.sqlite3'}") as db:
        db.record(device, make_measurement())
        bundle.export_bundle(db, calls)
        db.record(device, make_measurement(make_stream(), strategy="partitioned",
                                           params={"partition": 256}))
        assert bundle.export_bundle(db, everything) == 2
    assert "chunk_size" not in calls.read_text()
    groups = json.loads(everything.read_text())["groups"]
    assert sorted(g["signature"].get("chunk_size", 0) for g in groups) == [0, 256]
    with tuning_db.connect(f"sqlite:///{tmp_path / 'b.sqlite3'}") as db:
        assert bundle.import_bundle(db, everything).new == 2
        [(_, stream)] = list(db.measurements(streams=True))
        assert stream.signature == make_stream() and stream.params == {"partition": 256}


def test_a_0003_database_upgrades_keeping_its_rows_and_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = make_engine(parse_url(url))
    migrate.stamp_to(engine, "0003")
    engine.dispose()
    with pytest.raises(tuning_db.errors.SchemaTooOldError, match="autoconv db upgrade"):
        tuning_db.connect(url)
    engine = make_engine(parse_url(url))
    with engine.begin() as connection:  # a row as schema 0003 stored it: no chunk_size
        device = make_device()
        insert_device_row(connection, device)
        connection.execute(text(
            "INSERT INTO measurements (device_id, sig_key, strategy, params, batch, in_channels,"
            " out_channels, length, kernel_size, stride, padding_left, padding_right, dilation,"
            " groups, dtype, device, requires_grad, median_s, spread_s, samples, error, ok,"
            " measured_at, autoconv_version, imported) VALUES (:id, :key, 'fft', '{}', 4, 16,"
            " 32, 4096, 129, 1, 64, 64, 1, 1, 'float32', 'cpu', false, 0.002, 0.0, 7, NULL,"
            " true, '2026-01-01 00:00:00', '0.1.0', false)"),
            {"id": device.device_id, "key": make_signature().key})
    before, after = migrate.upgrade(engine, url, "")
    engine.dispose()
    assert (before, after) == ("0003", tuning_db.SCHEMA_VERSION)
    with tuning_db.connect(url) as db:
        [(_, row)] = list(db.measurements())
        assert row.signature == make_signature() and row.signature.chunk_size is None
        assert db.best(device.device_id, make_signature()).strategy == "fft"
        db.record(device, make_measurement(make_stream(), strategy="stateful_direct"))
        assert len(list(db.measurements(streams=None))) == 2
