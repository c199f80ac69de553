"""Bundles: export/import round trips, merge rules, and hostile files rejected untouched."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tuning_db
from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db import bundle, upsert
from tuning_db.errors import BundleError


def _fill(db: tuning_db.TuningDB) -> None:
    cpu, other = make_device(), make_device(torch_threads=1)
    for length in (100, 1000):
        signature = make_signature(length=length)
        db.record_many(cpu, [
            make_measurement(signature, strategy="direct", median_s=length * 1e-6),
            make_measurement(signature, strategy="fft", params={"nfft": 2048}, median_s=5e-4),
            make_measurement(signature, strategy="overlap_add", params={"block": 256},
                             median_s=1e-6, ok=False, note="too inaccurate")])
    db.record(other, make_measurement(make_signature(), strategy="fft", median_s=1e-3))


def _snapshot(db: tuning_db.TuningDB) -> list[Any]:
    return sorted((device_id, m.model_dump_json()) for device_id, m in db.measurements())


def test_export_then_import_reproduces_every_row(db_url: str, tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    with tuning_db.connect(source_url) as source:
        _fill(source)
        assert bundle.export_bundle(source, tmp_path / "all.json") == 7
        expected, devices = _snapshot(source), source.devices()
    with tuning_db.connect(db_url) as target:
        assert bundle.import_bundle(target, tmp_path / "all.json") == upsert.WriteCounts(7)
        assert _snapshot(target) == expected
        assert target.devices() == devices
        again = bundle.import_bundle(target, tmp_path / "all.json")  # changes nothing
        assert again == upsert.WriteCounts(new=0, updated=0, unchanged=7)
        assert _snapshot(target) == expected


def test_export_one_device_or_winners_only(tmp_path: Path) -> None:
    with tuning_db.connect(f"sqlite:///{tmp_path / 'db.sqlite3'}") as db:
        _fill(db)
        cpu = make_device().device_id
        assert bundle.export_bundle(db, tmp_path / "cpu.json", device_id=cpu) == 6
        assert bundle.export_bundle(db, tmp_path / "win.json", winners_only=True) == 3
        with pytest.raises(BundleError, match="no device 0123456789abcdef0123"):
            bundle.export_bundle(db, tmp_path / "none.json", device_id="0123456789abcdef0123")
        assert not (tmp_path / "none.json").exists()
    cpu_only = bundle.load(tmp_path / "cpu.json")
    assert [d.device_id for d in cpu_only.devices] == [cpu]
    winners = bundle.load(tmp_path / "win.json")
    assert sorted(item.strategy for group in winners.iter_groups()
                  for item in group.measurements) == [
        "direct", "fft", "fft"]


def test_merge_keeps_devices_apart_and_the_better_supported_row(tmp_path: Path) -> None:
    cpu, gpu = make_device(), make_device(gpu_name="NVIDIA H100", compute_capability="9.0")
    signature = make_signature()
    with tuning_db.connect(f"sqlite:///{tmp_path / 'a.sqlite3'}") as a:
        a.record(cpu, make_measurement(signature, strategy="fft", median_s=2e-3, samples=10))
        a.record(cpu, make_measurement(signature, strategy="direct", median_s=3e-3, samples=50))
    with tuning_db.connect(f"sqlite:///{tmp_path / 'b.sqlite3'}") as b:
        b.record(cpu, make_measurement(signature, strategy="fft", median_s=4e-3, samples=30))
        b.record(cpu, make_measurement(signature, strategy="direct", median_s=1e-3, samples=5))
        b.record(gpu, make_measurement(signature, strategy="fft", median_s=1e-5, samples=30))
        bundle.export_bundle(b, tmp_path / "b.json")
    with tuning_db.connect(f"sqlite:///{tmp_path / 'merged.sqlite3'}") as merged:
        counts = bundle.merge([f"sqlite:///{tmp_path / 'a.sqlite3'}", str(tmp_path / "b.json")],
                              merged)
        assert [count.total for count in counts.values()] == [2, 3]
        # b's fft (30 samples) replaces a's (10); b's direct (5) loses to a's (50)
        assert list(counts.values()) == [upsert.WriteCounts(2), upsert.WriteCounts(1, 1, 1)]
        rows = {(device_id, m.strategy): (m.median_s, m.samples)
                for device_id, m in merged.measurements()}
        assert rows == {(cpu.device_id, "fft"): (4e-3, 30),       # 30 samples beat 10
                        (cpu.device_id, "direct"): (3e-3, 50),    # 50 samples beat 5
                        (gpu.device_id, "fft"): (1e-5, 30)}
        assert merged.best(cpu.device_id, signature).strategy == "direct"
        assert merged.best(gpu.device_id, signature).strategy == "fft"


def test_merge_writes_nothing_when_one_source_is_bad(tmp_path: Path) -> None:
    with tuning_db.connect(f"sqlite:///{tmp_path / 'a.sqlite3'}") as a:
        _fill(a)
    (tmp_path / "bad.json").write_text("{}")
    with tuning_db.connect(f"sqlite:///{tmp_path / 'target.sqlite3'}") as target:
        with pytest.raises(BundleError, match=re.escape(str(tmp_path / "bad.json"))):
            bundle.merge([f"sqlite:///{tmp_path / 'a.sqlite3'}", str(tmp_path / "bad.json")],
                         target)
        assert _snapshot(target) == []


def test_import_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tuning_db.connect(f"sqlite:///{tmp_path / 'a.sqlite3'}") as a:
        _fill(a)
        bundle.export_bundle(a, tmp_path / "a.json")

    def fail(*args: Any) -> None:
        raise RuntimeError("disk full, say")

    with tuning_db.connect(f"sqlite:///{tmp_path / 'target.sqlite3'}") as target:
        monkeypatch.setattr(upsert, "upsert_measurements", fail)
        with pytest.raises(RuntimeError, match="disk full, say"):
            bundle.import_bundle(target, tmp_path / "a.json")
        assert target.devices() == []  # the device rows written first were rolled back


def _valid_bundle() -> dict[str, Any]:
    device = make_device()
    return json.loads(bundle.to_json(bundle.build(
        [device], [(device.device_id, make_measurement(params={"block": 512}))])))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return change


def _nul_in_fingerprint(document: dict[str, Any]) -> None:
    """A NUL byte in the CPU model, with every device id recomputed to match."""
    fingerprint = document["devices"][0]["fingerprint"]
    fingerprint["cpu_model"] = "Test\x00CPU"
    device_id = tuning_db.DeviceRecord.model_construct(**fingerprint).device_id
    document["devices"][0]["device_id"] = device_id
    document["groups"][0]["device_id"] = device_id


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    "time before year 1 in UTC": _set("groups.0.measurements.0.measured_at",
                                      "0001-01-01T00:00:00+05:00"),
    "time after year 9999 in UTC": _set("groups.0.measurements.0.measured_at",
                                        "9999-12-31T23:59:59-05:00"),
    "time in the future": _set("groups.0.measurements.0.measured_at", "2999-01-01T00:00:00Z"),
    "NUL in a note": _set("groups.0.measurements.0.note", "disk\x00full"),
    "NUL in a param": _set("groups.0.measurements.0.params", {"block": "5\x0012"}),
    "NUL in a fingerprint": _nul_in_fingerprint,
    "string for int": _set("groups.0.signature.batch", "4"),
    "float for int": _set("groups.0.measurements.0.samples", 2.5),
    "int for bool": _set("groups.0.measurements.0.ok", 1),
    "string for weight_reused": _set("groups.0.signature.weight_reused", "true"),
    "negative time": _set("groups.0.measurements.0.median_s", -1e-3),
    "zero time": _set("groups.0.measurements.0.median_s", 0),
    "huge time": _set("groups.0.measurements.0.median_s", 1e300),
    "huge int": _set("groups.0.signature.length", 10**30),
    "zero samples": _set("groups.0.measurements.0.samples", 0),
    "unknown field": _set("groups.0.measurements.0.shell", "rm -rf /"),
    "unknown top field": _set("exec", "import os"),
    "nested params": _set("groups.0.measurements.0.params", {"block": [1, 2]}),
    "path-like dtype": _set("groups.0.signature.dtype", "../../etc/passwd"),
    "long note": _set("groups.0.measurements.0.note", "x" * 10_000),
    "wrong device id": _set("devices.0.device_id", "0" * 20),
    "unlisted device": _set("groups.0.device_id", "f" * 20),
    "empty group": _set("groups.0.measurements", []),
    "wrong format": _set("format", "something-else"),
    "future version": _set("version", 2),
    "missing groups": lambda document: document.pop("groups"),
}


def test_the_unchanged_bundle_is_accepted(tmp_path: Path) -> None:
    # the control for the rejections below: without the hostile change, the same document
    # imports, so each rejection is the change's doing
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(_valid_bundle()))
    with tuning_db.connect(f"sqlite:///{tmp_path / 'target.sqlite3'}") as db:
        assert bundle.import_bundle(db, path).new == 1
        [(device_id, stored)] = list(db.measurements())
    assert device_id == make_device().device_id and stored.params == {"block": 512}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bundles_are_rejected_and_change_nothing(name: str, tmp_path: Path) -> None:
    document = _valid_bundle()
    HOSTILE[name](document)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(document))
    _assert_rejected(path, tmp_path)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_times_are_rejected(literal: str, tmp_path: Path) -> None:
    text = json.dumps(_valid_bundle()).replace('"median_s": 0.001', f'"median_s": {literal}')
    assert literal in text
    path = tmp_path / "nan.json"
    path.write_text(text)
    _assert_rejected(path, tmp_path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("content", ["pickle", "empty", "array", "garbage", "truncated"])
def test_files_that_are_not_bundles_are_rejected_and_never_executed(content: str,
                                                                     tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = {"pickle": pickle.dumps(_Payload(marker)), "empty": b"", "array": b"[1, 2]",
            "garbage": bytes(range(256)),
            "truncated": json.dumps(_valid_bundle()).encode()[:-40]}[content]
    path = tmp_path / "payload.json"
    path.write_bytes(data)
    message = _assert_rejected(path, tmp_path)
    assert not marker.exists()
    if content == "pickle":
        assert "pickle" in message


def test_a_bundle_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as file:  # 100 MB, sparse: quick to make
        file.truncate(100 * 2**20)
    assert "more than the 64 MiB" in _assert_rejected(path, tmp_path)


def test_a_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    assert "no such bundle file" in _assert_rejected(tmp_path / "nope.json", tmp_path)


def _assert_rejected(path: Path, tmp_path: Path) -> str:
    with tuning_db.connect(f"sqlite:///{tmp_path / 'target.sqlite3'}") as db:
        _fill(db)
        before = _snapshot(db)
        with pytest.raises(BundleError) as raised:
            bundle.import_bundle(db, path)
        assert _snapshot(db) == before
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    return message


def test_a_fifo_or_a_deeply_nested_file_is_refused_in_one_line(tmp_path: Path) -> None:
    import os

    from tuning_db import bundle
    from tuning_db.errors import BundleError

    fifo = tmp_path / "bundle.json"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(BundleError, match="not a regular file"):
        bundle.load(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text('{"devices": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError, match="recursion limit"):
        bundle.load(deep)


def _bundle_of(tmp_path: Path, name: str, *measurements: Any) -> Path:
    device = make_device()
    path = tmp_path / name
    path.write_bytes(bundle.to_json(bundle.build(
        [device], [(device.device_id, measurement) for measurement in measurements])))
    return path


def test_a_local_measurement_replaces_an_imported_one_and_never_the_reverse(db_url: str,
                                                                           tmp_path: Path
                                                                           ) -> None:
    device, signature = make_device(), make_signature()
    forged = _bundle_of(tmp_path, "forged.json", make_measurement(
        signature, median_s=5e-3, samples=2**31 - 1))
    with tuning_db.connect(db_url) as db:
        assert bundle.import_bundle(db, forged) == upsert.WriteCounts(new=1)
        [(_, stored)] = list(db.measurements())
        assert stored.samples == tuning_db.records.MAX_SAMPLES  # the claim is capped
        # re-measured here with 3 samples: the local row replaces the imported one
        db.record(device, make_measurement(signature, median_s=1e-3, samples=3))
        assert db.best(device.device_id, signature).median_s == 1e-3
        # and no import, however well supported it claims to be, replaces it again
        assert bundle.import_bundle(db, forged) == upsert.WriteCounts(unchanged=1)
        later = _bundle_of(tmp_path, "later.json", make_measurement(
            signature, median_s=7e-3, samples=500))
        assert bundle.import_bundle(db, later) == upsert.WriteCounts(unchanged=1)
        assert db.best(device.device_id, signature) == tuning_db.BestChoice(
            strategy="direct", params={}, median_s=1e-3, samples=3)


def test_import_counts_new_updated_and_unchanged_rows(tmp_path: Path, capsys) -> None:
    from autoconv.cli import main

    one, two = make_signature(length=100), make_signature(length=200)
    first = _bundle_of(tmp_path, "first.json", make_measurement(one, samples=5),
                       make_measurement(two, samples=5))
    better = _bundle_of(tmp_path, "better.json", make_measurement(one, samples=9),
                        make_measurement(two, samples=2),
                        make_measurement(make_signature(length=300)))
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["import", str(first), "--db", url]) == 0
    assert main(["import", str(first), "--db", url]) == 0
    assert main(["import", str(better), "--db", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "2 new, 0 updated, 0 unchanged", "0 new, 0 updated, 2 unchanged",
        "1 new, 1 updated, 1 unchanged"]
    assert lines[0].startswith(f"imported 2 measurements of 1 devices from {first} into ")


def test_an_import_that_cannot_be_stored_fails_in_one_line(tmp_path: Path, capsys) -> None:
    from autoconv.cli import main

    path = _bundle_of(tmp_path, "b.json", make_measurement())
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # not a database
    target = f"sqlite:///{image}"
    for command in (["import", str(path), "--db", target], ["merge", str(path), "--into", target]):
        assert main(command) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("autoconv: error: ") and "\n" not in error
        assert str(image) in error


def test_importing_a_large_bundle_takes_a_small_multiple_of_its_size(tmp_path: Path) -> None:
    import tracemalloc

    signatures = [make_signature(length=100 + index) for index in range(400)]
    path = _bundle_of(tmp_path, "large.json", *(
        make_measurement(signature, strategy="overlap_add", params={"block_size": block})
        for signature in signatures for block in range(50)))  # 20,000 measurements
    size = path.stat().st_size
    with tuning_db.connect(f"sqlite:///{tmp_path / 'db.sqlite3'}") as db:
        tracemalloc.start()
        try:
            counts = bundle.import_bundle(db, path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert counts.new == 20_000 == db.count(make_device().device_id)
    # the text, the groups' positions and one batch of rows; a whole validated Bundle of
    # the same file took 14x its size
    assert peak < 4 * size, (peak / size)
