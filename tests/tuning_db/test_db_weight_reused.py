"""Reused weights in the tuning database: their own signatures (``weight_reused``, keys ending
``|wr``), stored, noted as wanted and carried by bundles apart from functional calls of the
same shapes, and databases of schema 0005 upgraded in place with their rows and keys kept."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import inspect, text

import tuning_db
from autoconv.signature import Signature
from autoconv.storage.store import TuningStore, UnstorableSignature, signature_record
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.outcome import Outcome
from tests.tuning_db.factories import (
    insert_device_row,
    make_device,
    make_measurement,
    make_signature,
)
from tuning_db import bundle, migrate
from tuning_db.engine import make_engine
from tuning_db.schema import metadata
from tuning_db.urls import parse_url

#: The key of the factories' signature, as every version before reused weights wrote it.
PLAIN_KEY = "4x16x4096>32|k129s1p64,64d1g1|float32|cpu|nograd"


def reused(**changes) -> tuning_db.SignatureRecord:
    return make_signature(weight_reused=True, **changes)


def test_a_reused_weight_has_its_own_key_and_other_records_keep_theirs() -> None:
    plain = make_signature()
    assert plain.key == PLAIN_KEY and "weight_reused" not in plain.model_dump()
    assert "weight_reused" not in plain.model_dump_json()
    assert make_signature(weight_reused=False) == plain
    assert reused().key == PLAIN_KEY + "|wr"
    assert reused(requires_grad=True).key == PLAIN_KEY.replace("nograd", "grad") + "|wr"
    assert reused().model_dump()["weight_reused"] is True and reused() != plain
    stream = make_signature(chunk_size=256)
    assert stream.key == PLAIN_KEY + "|c256" and "weight_reused" not in stream.model_dump()
    for record in (plain, reused(), stream):  # what the report and the predictor rebuild
        signature = Signature(**record.model_dump())
        assert tuning_db.SignatureRecord(**signature.as_dict()) == record
        assert signature.weight_reused == record.weight_reused


def test_a_stream_cannot_reuse_its_weight() -> None:
    with pytest.raises(ValidationError, match="stream's signature .* weight_reused") as raised:
        make_signature(chunk_size=256, weight_reused=True)
    assert raised.value.errors()[0]["loc"] == ("weight_reused",)
    stream = Signature(1, 2, 2, 256, 9, 1, 8, 0, 1, 1, "float32", "cpu", False, 256, True)
    with pytest.raises(UnstorableSignature, match="weight_reused True: .*stream") as unstorable:
        signature_record(stream)
    assert unstorable.value.field == "weight_reused"


def test_reused_weights_are_stored_and_read_apart_from_calls(db_url: str) -> None:
    device = make_device()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [
            make_measurement(make_signature(), strategy="direct", median_s=1e-3),
            make_measurement(make_signature(), strategy="fft", median_s=2e-3),
            make_measurement(reused(), strategy="fft", params={"nfft": 8192}, median_s=5e-4),
            make_measurement(reused(), strategy="direct", median_s=1e-3)])
        assert db.best(device.device_id, make_signature()).strategy == "direct"
        best = db.best(device.device_id, reused())
        assert (best.strategy, best.params) == ("fft", {"nfft": 8192})
        assert [m.strategy for m in db.candidates(device.device_id, reused())] == [
            "fft", "direct"]
        assert {m.signature for _, m in db.measurements()} == {make_signature(), reused()}
        assert not list(db.measurements(streams=True))
        winners = db.best_many(device.device_id)
        assert {s: c.strategy for s, c in winners.items()} == {
            make_signature(): "direct", reused(): "fft"}
        assert db.stats().signatures == 2
        assert not db.has_signature(device.device_id, reused(requires_grad=True))


def test_wanted_rows_keep_whether_the_weight_is_reused(db_url: str) -> None:
    device = make_device()
    with tuning_db.connect(db_url) as db:
        db.want(device, {reused(): 3, make_signature(): 1})
        rows = db.wanted(device.device_id)
        assert [(row.signature, row.calls) for row in rows] == [
            (reused(), 3), (make_signature(), 1)]
        db.record(device, make_measurement(make_signature()))  # answers the functional call
        assert [row.signature for row in db.wanted(device.device_id)] == [reused()]
        db.record(device, make_measurement(reused()))
        assert db.wanted(device.device_id) == []


def test_the_tuners_store_and_the_wanted_list_keep_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    cpu = torch.device("cpu")
    layer = Signature(2, 4, 4, 300, 9, 1, 4, 4, 1, 1, "float32", "cpu", weight_reused=True)
    functional = Signature(2, 4, 4, 300, 9, 1, 4, 4, 1, 1, "float32", "cpu")
    fft = Candidate(SimpleNamespace(name="fft"), (("nfft", 512),))
    store = TuningStore(url)
    try:
        store.record(layer, cpu, [Outcome(fft, 2e-4, 1e-6, 9)])
        [stored] = store.candidates(layer, cpu)
        assert stored.signature.key.endswith("|wr") and stored.params == {"nfft": 512}
        assert store.candidates(functional, cpu) == []
        store.want({(functional, cpu): 2})
    finally:
        store.close()
    from autoconv.offline.wanted import wanted_signatures

    assert wanted_signatures(url) == [functional]
    store = TuningStore(url)
    try:
        store.want({(layer, cpu): 5})
    finally:
        store.close()
    # the layer's call is measured already: only the functional call is still wanted
    assert wanted_signatures(url) == [functional]
    with tuning_db.connect(url) as db:
        wanted = {row.signature.weight_reused: row for row in db.wanted(unmeasured_only=False)}
    assert (wanted[True].calls, wanted[True].measured) == (5, True)
    assert Signature(**wanted[True].signature.model_dump()) == layer


def test_bundles_carry_it_and_leave_other_signatures_as_they_were(tmp_path: Path) -> None:
    device = make_device()
    calls, everything = tmp_path / "calls.json", tmp_path / "all.json"
    with tuning_db.connect(f"sqlite:///{tmp_path / 'a.sqlite3'}") as db:
        db.record_many(device, [make_measurement(),
                                make_measurement(make_signature(chunk_size=256))])
        bundle.export_bundle(db, calls)
        db.record(device, make_measurement(reused(), strategy="fft", params={"nfft": 8192}))
        assert bundle.export_bundle(db, everything) == 3
    assert "weight_reused" not in calls.read_text()  # byte for byte what it was before
    groups = json.loads(everything.read_text())["groups"]
    assert sorted(g["signature"].get("weight_reused", False) for g in groups) == [
        False, False, True]
    with tuning_db.connect(f"sqlite:///{tmp_path / 'b.sqlite3'}") as db:
        assert bundle.import_bundle(db, calls).new == 2  # an older bundle: no field, False
        assert bundle.import_bundle(db, everything).new == 1
        stored = {m.signature for _, m in db.measurements(streams=None)}
        assert stored == {make_signature(), make_signature(chunk_size=256), reused()}
        assert db.best(device.device_id, reused()).params == {"nfft": 8192}
    # a merge reads a database into a bundle of records, and carries it the same way
    with tuning_db.connect(f"sqlite:///{tmp_path / 'c.sqlite3'}") as db:
        bundle.merge([f"sqlite:///{tmp_path / 'a.sqlite3'}"], db)
        assert reused() in {m.signature for _, m in db.measurements()}


def test_a_bundle_with_a_stream_reusing_its_weight_is_refused(tmp_path: Path) -> None:
    device = make_device()
    document = json.loads(bundle.to_json(bundle.build(
        [device], [(device.device_id, make_measurement(make_signature(chunk_size=256)))])))
    document["groups"][0]["signature"]["weight_reused"] = True
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(document))
    with tuning_db.connect(f"sqlite:///{tmp_path / 'target.sqlite3'}") as db:
        with pytest.raises(tuning_db.errors.BundleError,
                           match=r"groups\.0\.signature\.weight_reused: .*stream"):
            bundle.import_bundle(db, path)
        assert list(db.measurements(streams=None)) == []


def test_a_stored_stream_row_with_a_reused_weight_is_skipped(db_url: str) -> None:
    device, stream = make_device(), make_signature(chunk_size=256)
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [make_measurement(stream, strategy="a"),
                                make_measurement(stream, strategy="b", median_s=2e-3)])
    engine = make_engine(parse_url(db_url))
    with engine.begin() as connection:  # a faulty writer's row
        connection.execute(text("UPDATE measurements SET weight_reused = true "
                                "WHERE strategy = 'a'"))
    engine.dispose()
    with tuning_db.connect(db_url) as db, pytest.warns(RuntimeWarning, match="skipped 1"):
        assert [m.strategy for m in db.candidates(device.device_id, stream)] == ["b"]


def _insert_0005_rows(connection, device: tuning_db.DeviceRecord) -> None:
    """A device, a measurement and a wanted row as schema 0005 stored them (no
    weight_reused)."""
    insert_device_row(connection, device)
    connection.execute(text(
        "INSERT INTO measurements (device_id, sig_key, strategy, params, batch, in_channels,"
        " out_channels, length, kernel_size, stride, padding_left, padding_right, dilation,"
        " groups, dtype, device, requires_grad, median_s, spread_s, samples, error, ok,"
        " measured_at, autoconv_version, imported, chunk_size) VALUES (:id, :key, 'fft', '{}',"
        " 4, 16, 32, 4096, 129, 1, 64, 64, 1, 1, 'float32', 'cpu', false, 0.002, 0.0, 7, NULL,"
        " true, '2026-01-01 00:00:00', '0.1.0', false, NULL)"),
        {"id": device.device_id, "key": PLAIN_KEY})
    connection.execute(text(
        "INSERT INTO wanted (device_id, sig_key, batch, in_channels, out_channels, length,"
        " kernel_size, stride, padding_left, padding_right, dilation, groups, dtype, device,"
        " requires_grad, chunk_size, calls, first_seen, last_seen) VALUES (:id, :key, 4, 16,"
        " 32, 8192, 129, 1, 64, 64, 1, 1, 'float32', 'cpu', false, NULL, 11,"
        " '2026-01-01 00:00:00', '2026-01-02 00:00:00')"),
        {"id": device.device_id, "key": make_signature(length=8192).key})


def test_a_0005_database_upgrades_in_place_keeping_its_rows_and_keys(db_url: str) -> None:
    engine = make_engine(parse_url(db_url))
    migrate.stamp_to(engine, "0005")
    device = make_device()
    with engine.begin() as connection:
        _insert_0005_rows(connection, device)
    engine.dispose()
    with pytest.raises(tuning_db.errors.SchemaTooOldError, match="autoconv db upgrade"):
        tuning_db.connect(db_url)
    engine = make_engine(parse_url(db_url))
    before, after = migrate.upgrade(engine, db_url, "")
    engine.dispose()
    assert (before, after) == ("0005", "0006") and tuning_db.SCHEMA_VERSION == "0006"
    with tuning_db.connect(db_url) as db:
        [(_, row)] = list(db.measurements())
        assert row.signature == make_signature() and row.signature.weight_reused is False
        assert (row.strategy, row.samples) == ("fft", 7)
        assert db.best(device.device_id, make_signature()).strategy == "fft"
        [wanted] = db.wanted(device.device_id)
        assert (wanted.signature, wanted.calls) == (make_signature(length=8192), 11)
        assert db.best(device.device_id, reused()) is None
        db.record(device, make_measurement(reused(), strategy="direct"))
        db.want(device, {make_signature(length=8192): 1, reused(length=8192): 2})
        assert db.best(device.device_id, reused()).strategy == "direct"
        assert db.best(device.device_id, make_signature()).strategy == "fft"
        assert [(w.signature, w.calls) for w in db.wanted(device.device_id)] == [
            (make_signature(length=8192), 12), (reused(length=8192), 2)]


def test_a_downgrade_to_0005_deletes_only_the_rows_it_cannot_hold(db_url: str) -> None:
    device = make_device()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [make_measurement(), make_measurement(reused())])
        db.want(device, {make_signature(length=8192): 1, reused(length=8192): 1})
    engine = make_engine(parse_url(db_url))
    with migrate.locked(engine) as connection:
        command.downgrade(migrate._config(connection), "0005")
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in ("measurements", "wanted"):
            assert "weight_reused" not in {c["name"] for c in inspector.get_columns(table)}
        assert connection.execute(text("SELECT sig_key FROM measurements")).scalars().all() == [
            PLAIN_KEY]
        assert connection.execute(text("SELECT sig_key FROM wanted")).scalars().all() == [
            make_signature(length=8192).key]
    migrate.upgrade(engine, db_url, "")
    engine.dispose()
    with tuning_db.connect(db_url) as db:
        assert [m.signature for _, m in db.measurements()] == [make_signature()]


def test_the_newest_migration_builds_the_tables_schema_py_declares(db_url: str) -> None:
    assert migrate.known_revisions()[-1] == tuning_db.SCHEMA_VERSION
    with tuning_db.connect(db_url):
        pass
    engine = make_engine(parse_url(db_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_server_default": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()
