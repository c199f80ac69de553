"""The TuningDB contract, run against every backend (SQLite file, PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tuning_db
from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db import BestChoice, SignatureRecord, upsert

WORKERS = 8
PER_WORKER = 200


def test_empty_database_has_no_answer(db_url: str) -> None:
    with tuning_db.connect(db_url) as db:
        device = make_device()
        assert db.best(device.device_id, make_signature()) is None
        assert not db.has_signature(device.device_id, make_signature())
        assert db.devices() == [] and list(db.measurements()) == []
        assert db.stats().measurements == 0


def test_best_is_the_fastest_ok_measurement(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [
            make_measurement(signature, strategy="direct", median_s=3e-3),
            make_measurement(signature, strategy="fft", params={"nfft": 8192}, median_s=2e-3),
            make_measurement(signature, strategy="overlap_add", params={"block": 512},
                             median_s=1e-3, ok=False, note="error 1e-2 above tolerance"),
        ])
        best = db.best(device.device_id, signature)
        assert best == BestChoice(strategy="fft", params={"nfft": 8192}, median_s=2e-3,
                                  samples=10)
        assert db.has_signature(device.device_id, signature)
        assert not db.has_signature(device.device_id, make_signature(length=4097))
        ok_rows = db.candidates(device.device_id, signature)
        assert [(m.strategy, m.median_s) for m in ok_rows] == [("fft", 2e-3), ("direct", 3e-3)]
        assert ok_rows[0].spread_s == 1e-5 and ok_rows[0].params == {"nfft": 8192}
        assert db.candidates(device.device_id, make_signature(length=4097)) == []


def test_failed_candidates_are_kept_but_never_win(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.record(device, make_measurement(signature, ok=False, note="raised RuntimeError"))
        assert db.best(device.device_id, signature) is None
        assert db.has_signature(device.device_id, signature)
        [(_, stored)] = list(db.measurements())
        assert stored.ok is False and stored.note == "raised RuntimeError"
        db.record(device, make_measurement(signature, strategy="fft"))
        [failed] = db.failures(device.device_id, signature)  # what an explanation shows
        assert (failed.strategy, failed.ok, failed.note) == ("direct", False,
                                                             "raised RuntimeError")
        assert [m.strategy for m in db.candidates(device.device_id, signature)] == ["fft"]
        assert db.failures(device.device_id, make_signature(length=4097)) == []


def test_count_is_per_device_and_skips_failed_rows_unless_asked(db_url: str) -> None:
    here, there = make_device(), make_device(torch_threads=1)
    with tuning_db.connect(db_url) as db:
        assert db.count(here.device_id) == 0
        db.record(here, make_measurement(make_signature(length=100), strategy="direct"))
        db.record(here, make_measurement(make_signature(length=200), strategy="fft"))
        db.record(here, make_measurement(make_signature(length=300), ok=False, note="x"))
        db.record(there, make_measurement(make_signature(length=100), strategy="direct"))
        assert db.count(here.device_id) == 2
        assert db.count(here.device_id, ok_only=False) == 3
        assert db.count(there.device_id) == 1


def test_a_local_measurement_replaces_an_older_one_whatever_the_samples(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    old = datetime(2026, 1, 1, tzinfo=UTC)
    with tuning_db.connect(db_url) as db:
        db.record(device, make_measurement(signature, median_s=2e-3, samples=20, measured_at=old))
        # measured again later, with fewer samples (a refresh): replaces
        db.record(device, make_measurement(signature, median_s=1e-3, samples=5,
                                           measured_at=old + timedelta(days=1)))
        assert db.best(device.device_id, signature).median_s == 1e-3
        # an older one, even with more samples (a late writer): ignored
        db.record(device, make_measurement(signature, median_s=9e-3, samples=50,
                                           measured_at=old))
        [(_, stored)] = list(db.measurements())
        assert (stored.median_s, stored.samples) == (1e-3, 5)


def test_record_many_collapses_duplicates_within_one_call(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        now = datetime.now(UTC)
        count = db.record_many(device, [make_measurement(
            signature, samples=samples, median_s=samples * 1e-4,
            measured_at=now - timedelta(seconds=samples)) for samples in (3, 9, 5)])
        assert count == 3
        [(_, stored)] = list(db.measurements())
        assert stored.samples == 3  # the newest


def test_params_distinguish_measurements(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [
            make_measurement(signature, strategy="overlap_add", params={"block": block},
                             median_s=median)
            for block, median in ((256, 3e-3), (1024, 1e-3), (4096, 2e-3))])
        assert db.best(device.device_id, signature).params == {"block": 1024}
        assert len(list(db.measurements())) == 3


def test_another_devices_measurement_is_never_this_devices_winner(db_url: str) -> None:
    here, there = make_device(), make_device(torch_threads=1)
    gpu = make_device(gpu_name="NVIDIA H100", compute_capability="9.0", cuda_version="12.8")
    assert len({here.device_id, there.device_id, gpu.device_id}) == 3
    signature = make_signature()
    with tuning_db.connect(db_url) as db:
        db.record(there, make_measurement(signature, strategy="fft", median_s=1e-6))
        db.record(gpu, make_measurement(signature, strategy="fft", median_s=1e-7))
        assert db.best(here.device_id, signature) is None
        assert db.best_many(here.device_id) == {}
        db.record(here, make_measurement(signature, strategy="direct", median_s=5e-3))
        assert db.best(here.device_id, signature).strategy == "direct"
        assert {d for d, _ in db.measurements(here.device_id)} == {here.device_id}


def test_best_many_preloads_every_winner(db_url: str) -> None:
    device = make_device()
    signatures = [make_signature(length=length) for length in (100, 1000, 10000)]
    with tuning_db.connect(db_url) as db:
        for signature in signatures:
            db.record_many(device, [
                make_measurement(signature, strategy="direct", median_s=signature.length * 1e-6),
                make_measurement(signature, strategy="fft", median_s=5e-3)])
        winners = db.best_many(device.device_id)
        assert set(winners) == set(signatures)
        assert {s.length: w.strategy for s, w in winners.items()} == {
            100: "direct", 1000: "direct", 10000: "fft"}
        for signature in signatures:
            assert winners[signature] == db.best(device.device_id, signature)


def test_measurements_round_trip_every_field(db_url: str) -> None:
    device = make_device()
    signature = make_signature(requires_grad=True, dtype="float64", padding_right=7)
    written = make_measurement(signature, strategy="fft", params={"nfft": 8192, "real": True,
                               "policy": "pow2", "scale": 0.5}, error=1.5e-7,
                               measured_at=datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC))
    with tuning_db.connect(db_url) as db:
        db.record(device, written)
        assert list(db.measurements()) == [(device.device_id, written)]
        assert list(db.measurements(winners_only=True)) == [(device.device_id, written)]
        assert db.devices() == [device]


def test_winners_only_lists_one_per_signature(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [make_measurement(signature, strategy=name, median_s=median)
                                for name, median in (("direct", 2e-3), ("fft", 1e-3))])
        [(_, winner)] = list(db.measurements(winners_only=True))
        assert winner.strategy == "fft"


def test_delete_device_removes_only_its_rows(db_url: str) -> None:
    keep, drop = make_device(), make_device(cpu_model="Other CPU")
    with tuning_db.connect(db_url) as db:
        db.record_many(drop, [make_measurement(make_signature(length=n)) for n in (10, 20)])
        db.record(keep, make_measurement())
        assert db.delete_device(drop.device_id) == 2
        assert db.devices() == [keep]
        assert [d for d, _ in db.measurements()] == [keep.device_id]
        assert db.delete_device(drop.device_id) == 0


def test_stats_count_per_device(db_url: str) -> None:
    device = make_device()
    with tuning_db.connect(db_url) as db:
        db.record_many(device, [
            make_measurement(make_signature(length=10), strategy="direct", median_s=1e-3),
            make_measurement(make_signature(length=10), strategy="fft", median_s=2e-3),
            make_measurement(make_signature(length=20), strategy="fft", median_s=1e-3)])
        stats = db.stats()
    assert (stats.devices, stats.signatures, stats.measurements) == (1, 2, 3)
    assert stats.schema_version == tuning_db.SCHEMA_VERSION
    assert stats.per_device[0].wins == {"direct": 1, "fft": 1}


def _write_many(url: str, worker: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    device = make_device()
    barrier.wait()
    with tuning_db.connect(url) as db:
        for index in range(PER_WORKER):
            signature = make_signature(length=1000 + index % 50)
            db.record(device, make_measurement(
                signature, strategy="fft", params={"worker": worker, "index": index},
                median_s=(1 + (worker * PER_WORKER + index) % 997) * 1e-5))


def _run_processes(target, args_for) -> None:  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WORKERS)
    processes = [context.Process(target=target, args=(*args_for(worker), barrier))
                 for worker in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WORKERS


@pytest.mark.slow
def test_concurrent_writers_store_every_row_once(db_url: str) -> None:
    tuning_db.connect(db_url).close()
    _run_processes(_write_many, lambda worker: (db_url, worker))
    device = make_device()
    with tuning_db.connect(db_url) as db:
        rows = list(db.measurements())
        assert len(rows) == WORKERS * PER_WORKER
        keys = {(m.signature, tuple(sorted(m.params.items()))) for _, m in rows}
        assert len(keys) == WORKERS * PER_WORKER
        winners = db.best_many(device.device_id)
        assert len(winners) == 50  # lengths 1000..1049
        for signature, winner in winners.items():
            fastest = min(m.median_s for _, m in rows if m.signature == signature)
            assert winner.median_s == fastest


def _open(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    tuning_db.connect(url).close()


def test_processes_creating_one_new_database_make_one_schema(db_url: str) -> None:
    _run_processes(_open, lambda worker: (db_url,))
    with tuning_db.connect(db_url) as db:
        assert db.stats().schema_version == tuning_db.SCHEMA_VERSION
        db.record(make_device(), make_measurement())


def _child_uses_own_connection(db: tuning_db.TuningDB, parent_connection: object,
                               queue: multiprocessing.Queue) -> None:
    raw = db._fresh_engine().raw_connection()
    own = raw.dbapi_connection is not parent_connection
    raw.close()
    db.record(make_device(), make_measurement(make_signature(length=77)))
    queue.put((own, db.best(make_device().device_id, make_signature(length=77)) is not None))


def test_forked_child_does_not_share_the_parents_connection(db_url: str) -> None:
    db = tuning_db.connect(db_url)
    db.record(make_device(), make_measurement())
    raw = db._engine.raw_connection()  # the pooled connection the child would inherit
    parent_connection = raw.dbapi_connection
    raw.close()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_uses_own_connection,
                            args=(db, parent_connection, queue))
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and result == (True, True)
    # and the parent's connection still works
    assert db.best(make_device().device_id, make_signature()) == BestChoice(
        strategy="direct", params={}, median_s=1e-3, samples=10)
    assert db.has_signature(make_device().device_id, make_signature(length=77))
    db.close()


def test_signature_record_matches_autoconv_signature() -> None:
    signature_module = pytest.importorskip("autoconv.signature")
    fields = [field.name for field in
              signature_module.Signature.__dataclass_fields__.values()]
    assert fields == list(SignatureRecord.model_fields)
    values = dict(zip(fields, (2, 3, 6, 100, 5, 1, 2, 2, 1, 3, "float32", "cpu", False, None,
                               False), strict=True))
    record = SignatureRecord(**signature_module.Signature(**values).as_dict())
    del values["chunk_size"], values["weight_reused"]  # a conv1d call's record dumps as it
    assert record.model_dump() == values                 # did before streams and reused weights
    stream = {**values, "padding_left": 4, "padding_right": 0, "chunk_size": 100}
    record = SignatureRecord(**signature_module.Signature(**stream).as_dict())
    assert record.model_dump() == stream and record.key.endswith("|c100")
    layer = {**values, "weight_reused": True}
    record = SignatureRecord(**signature_module.Signature(**layer).as_dict())
    assert record.model_dump() == layer and record.key.endswith("|nograd|wr")


def test_connect_uses_the_environment_and_the_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    assert tuning_db.default_url() == f"sqlite:///{tuning_db.default_path()}"
    assert str(tuning_db.default_path()).startswith(os.environ["XDG_CACHE_HOME"])
    with tuning_db.connect() as db:
        assert db.where == str(tuning_db.default_path())
    target = tmp_path / "from_env.sqlite3"
    monkeypatch.setenv("AUTOCONV_DB_URL", f"sqlite:///{target}")
    with tuning_db.connect() as db:
        assert db.where == str(target) and target.exists()


def test_backends_without_on_conflict_apply_the_same_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upsert, "dialect_insert", lambda connection: None)
    device, signature = make_device(), make_signature()
    old = datetime(2026, 1, 1, tzinfo=UTC)
    with tuning_db.connect(f"sqlite:///{tmp_path / 'generic.sqlite3'}") as db:
        db.record(device, make_measurement(signature, median_s=2e-3, samples=20, measured_at=old))
        db.record(device, make_measurement(signature, median_s=1e-3, samples=5))  # newer
        db.record_many(device, [
            make_measurement(signature, median_s=4e-3, samples=20,  # older than the last
                             measured_at=old + timedelta(days=1)),
            make_measurement(signature, strategy="fft", median_s=3e-3)])
        assert db.devices() == [device]
        assert sorted((m.strategy, m.median_s) for _, m in db.measurements()) == [
            ("direct", 1e-3), ("fft", 3e-3)]
        assert db.best(device.device_id, signature).strategy == "direct"
