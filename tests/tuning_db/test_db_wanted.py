"""The ``wanted`` table: signatures answered without a measurement, summed over the
processes that note them, until a measurement answers them (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import tuning_db
from tests.tuning_db.factories import make_device, make_measurement, make_signature


def test_notes_add_up_and_a_measurement_answers_them(db_url: str) -> None:
    device, other = make_device(), make_device(cpu_model="another CPU")
    wide, narrow = make_signature(in_channels=64), make_signature(in_channels=8)
    with tuning_db.connect(db_url) as db:
        db.want(device, {wide: 3, narrow: 1})
        db.want(device, {wide: 5})
        db.want(other, {narrow: 2})
        rows = db.wanted(device.device_id)
        assert [(row.signature, row.calls, row.measured) for row in rows] == [
            (wide, 8, False), (narrow, 1, False)]
        assert rows[0].last_seen >= rows[0].first_seen
        db.record_many(device, [make_measurement(wide)])
        assert [row.signature for row in db.wanted(device.device_id)] == [narrow]
        everything = db.wanted(device.device_id, unmeasured_only=False)
        assert [(row.signature, row.measured) for row in everything] == [
            (wide, True), (narrow, False)]
        assert len(db.wanted()) == 2  # every device: narrow here and on the other CPU
        stats = {item.device.device_id: item for item in db.stats().per_device}
        assert (stats[device.device_id].wanted, stats[device.device_id].wanted_measured) == (
            2, 1)


def test_many_writers_lose_no_calls(db_url: str) -> None:
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.want(device, {signature: 1})

    def writer() -> None:
        with tuning_db.connect(db_url) as db:
            for _ in range(10):
                db.want(device, {signature: 1})

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with tuning_db.connect(db_url) as db:
        [row] = db.wanted(device.device_id)
    assert row.calls == 41


def test_a_backend_without_on_conflict_sums_the_same(db_url: str,
                                                      monkeypatch) -> None:
    from tuning_db import upsert

    monkeypatch.setattr(upsert, "dialect_insert", lambda connection: None)
    device, signature = make_device(), make_signature()
    with tuning_db.connect(db_url) as db:
        db.want(device, {signature: 2})
        db.want(device, {signature: 3})
        [row] = db.wanted(device.device_id)
    assert row.calls == 5
