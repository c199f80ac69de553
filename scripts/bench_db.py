"""Tuning-database performance: best-strategy lookup, bundle import, size on disk.

Builds 100,000 measurements (2 devices x 5,000 signatures x 10 candidates), then measures:

1. ``TuningDB.best`` latency on SQLite, interleaved in rounds with the same lookup on
   PostgreSQL (when ``--pg URL`` or ``AUTOCONV_TEST_DATABASE_URL`` is given) and with a plain
   dict hit on ``best_many``'s preload (the selector's in-memory cache), so that drift of this
   shared machine hits all alike. Median and 90th percentile over every call.
2. Importing a 100,000-measurement bundle into a new SQLite file (validation and write, in
   one transaction), repeated; median, with the validation share.
3. The size of that SQLite file (main file plus WAL, after a checkpoint).

Targets (issue 3): lookup <= 1 ms median, import <= 10 s, file < 50 MB.
Usage: ``.venv/bin/python scripts/bench_db.py [--pg URL] [--lookups N] [--imports N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import machine_header, markdown_table
from sqlalchemy import __version__ as sqlalchemy_version

import tuning_db
from tuning_db import DeviceRecord, MeasurementRecord, SignatureRecord, bundle

DEVICES = 2
SIGNATURES = 5_000
CANDIDATES = 10


def _devices() -> list[DeviceRecord]:
    return [DeviceRecord(cpu_model="Bench CPU", cpu_cores=16, torch_threads=threads,
                         torch_version="2.13.0+cpu", autoconv_version="0.1.0")
            for threads in (1, 8)][:DEVICES]


def _signatures(rng: random.Random) -> list[SignatureRecord]:
    found: dict[str, SignatureRecord] = {}
    while len(found) < SIGNATURES:
        channels = rng.choice([1, 4, 16, 64, 256])
        signature = SignatureRecord(
            batch=rng.choice([1, 8, 32]), in_channels=channels,
            out_channels=rng.choice([1, 16, 64, 256]), length=rng.randint(64, 2**20),
            kernel_size=rng.randint(1, 4096), stride=rng.choice([1, 1, 2]), padding_left=0,
            padding_right=0, dilation=rng.choice([1, 1, 2]), groups=1,
            dtype=rng.choice(["float32", "float64"]), device="cpu",
            requires_grad=rng.random() < 0.2)
        found[signature.key] = signature
    return list(found.values())


def build_bundle(rng: random.Random) -> tuple[bundle.Bundle, list[SignatureRecord]]:
    """The 100,000-measurement bundle, and its signatures."""
    signatures = _signatures(rng)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for device in _devices():
        for signature in signatures:
            for candidate in range(CANDIDATES):
                # one direct, four FFT length policies, five overlap-add block sizes
                strategy, params = (("direct", {}) if candidate == 0 else
                                    ("fft", {"policy": candidate}) if candidate < 5 else
                                    ("overlap_add", {"block": 2 ** (candidate + 3)}))
                rows.append((device.device_id, MeasurementRecord(
                    signature=signature, strategy=strategy, params=params,
                    median_s=rng.lognormvariate(-7, 2), spread_s=rng.random() * 1e-5,
                    samples=rng.randint(3, 25), error=rng.random() * 1e-6,
                    ok=rng.random() > 0.05,
                    measured_at=start + timedelta(seconds=rng.randint(0, 10**7)),
                    autoconv_version="0.1.0")))
    return bundle.build(_devices(), rows), signatures


def _file_bytes(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def bench_import(bundle_path: Path, folder: Path, repeats: int) -> tuple[list[float], float,
                                                                          int, Path]:
    """(import times, median validation time, file size, last database path)."""
    times, validations = [], []
    path = folder / "unused"
    for _ in range(repeats):
        path = folder / f"import-{uuid.uuid4().hex[:6]}.sqlite3"
        with tuning_db.connect(f"sqlite:///{path}") as db:
            started = time.perf_counter()
            loaded = bundle.load(bundle_path)
            validated = time.perf_counter()
            bundle.write(db, loaded)
            times.append(time.perf_counter() - started)
            validations.append(validated - started)
    return times, statistics.median(validations), _file_bytes(path), path


def bench_lookups(lookups: dict[str, Callable[[SignatureRecord], object]],
                  signatures: list[SignatureRecord], calls: int,
                  rng: random.Random) -> dict[str, list[float]]:
    """Per-call seconds of each lookup, interleaved call by call in a shuffled order."""
    samples: dict[str, list[float]] = {name: [] for name in lookups}
    for name, lookup in lookups.items():  # warm-up: connections, statement caches
        for signature in signatures[:50]:
            lookup(signature)
    for _ in range(calls):
        signature = rng.choice(signatures)
        for name in rng.sample(list(lookups), len(lookups)):
            started = time.perf_counter()
            lookup = lookups[name]
            lookup(signature)
            samples[name].append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("AUTOCONV_TEST_DATABASE_URL"),
                        help="PostgreSQL URL to compare with (default: "
                             "$AUTOCONV_TEST_DATABASE_URL; empty: SQLite only)")
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--imports", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(20261123)

    print("# Tuning database benchmark\n")
    print(machine_header("cpu"))
    print(f"- SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy_version}\n")

    built, signatures = build_bundle(rng)
    measurements = built.count
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        bundle_path = folder / "bundle.json"
        bundle_path.write_bytes(bundle.to_json(built))
        bundle_mb = bundle_path.stat().st_size / 1e6
        times, validation, size, path = bench_import(bundle_path, folder, args.imports)

        device_id = _devices()[0].device_id
        sqlite_db = tuning_db.connect(f"sqlite:///{path}")
        cache = sqlite_db.best_many(device_id)
        lookups: dict[str, Callable[[SignatureRecord], object]] = {
            "SQLite best()": lambda s: sqlite_db.best(device_id, s),
            "dict hit (best_many preload)": cache.get}
        pg_db = None
        if args.pg:
            pg_db = tuning_db.connect(args.pg)
            pg_db.delete_device(device_id)
            bundle.write(pg_db, built.model_copy(update={"groups": [
                group for group in built.groups if group.device_id == device_id]}))
            lookups["PostgreSQL best()"] = lambda s: pg_db.best(device_id, s)
        samples = bench_lookups(lookups, signatures, args.lookups, rng)
        sqlite_db.close()
        if pg_db is not None:  # leave the server's database as it was
            for device in _devices():
                pg_db.delete_device(device.device_id)
            pg_db.close()

    base = statistics.median(samples["SQLite best()"])
    rows = []
    for name, values in samples.items():
        ordered = sorted(values)
        median = statistics.median(values)
        p90 = ordered[int(len(ordered) * 0.9)]
        rows.append([name, f"{median * 1e6:.0f} us", f"{p90 * 1e6:.0f} us",
                     f"{median / base:.3g}x", len(values)])
    print(f"## Best-strategy lookup ({measurements:,} measurements, {SIGNATURES:,} signatures "
          f"per device; target <= 1 ms median on SQLite)\n")
    print(markdown_table(["lookup", "median", "p90", "vs SQLite best()", "calls"], rows))
    print(f"\nSQLite best() median / 1 ms target: {base / 1e-3:.3f}\n")
    print(f"## Import and size ({measurements:,} measurements, bundle {bundle_mb:.1f} MB)\n")
    print(markdown_table(["figure", "measured", "target", "measured / target"], [
        [f"import, median of {len(times)}", f"{statistics.median(times):.2f} s "
         f"(validation {validation:.2f} s; runs: {', '.join(f'{t:.2f}' for t in times)})",
         "<= 10 s", f"{statistics.median(times) / 10:.2f}"],
        ["SQLite file (+WAL)", f"{size / 1e6:.1f} MB", "< 50 MB", f"{size / 50e6:.2f}"]]))


if __name__ == "__main__":
    main()
