"""A fleet's tuning worker, with real processes on each backend: two serving processes in mode
predict note the signatures they answer without a measurement; ``autoconv warm --wanted
--follow`` measures them; the serving processes switch to the measured answers on their next
refresh, with no database query per call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.storage.store import device_record

pytestmark = pytest.mark.slow

SERVER = textwrap.dedent("""
    import sys, time, torch, autoconv
    from autoconv.runtime import dispatcher
    lengths = [int(n) for n in sys.argv[1:]]
    calls = [(torch.randn(1, 4, n), torch.randn(4, 4, 9)) for n in lengths]
    deadline = time.monotonic() + 120
    with torch.no_grad():
        while time.monotonic() < deadline:
            for x, w in calls:
                expected = torch.nn.functional.conv1d(x, w)
                assert torch.allclose(autoconv.conv1d(x, w), expected, atol=1e-5)
            origins = [autoconv.select(x, w).origin for x, w in calls]
            if all(origin == "database" for origin in origins):
                print("switched", *origins, flush=True)
                break
            time.sleep(0.02)
        else:
            print("never switched", *origins, flush=True)
""")


def serve(db_url: str, lengths: list[int]) -> subprocess.Popen:
    environment = {**os.environ, "AUTOCONV_DB_URL": db_url, "AUTOCONV_MODE": "predict",
                   "AUTOCONV_REFRESH_S": "0.3", "AUTOCONV_RECHECK_EVERY": "0"}
    return subprocess.Popen([sys.executable, "-c", SERVER, *map(str, lengths)],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_wanted(db_url: str, count: int, timeout_s: float = 60.0) -> list:
    deadline = time.monotonic() + timeout_s
    device_id = device_record(torch.device("cpu")).device_id
    while time.monotonic() < deadline:
        try:
            with tuning_db.connect(db_url, create=False) as db:
                rows = db.wanted(device_id)
        except tuning_db.TuningDBError:
            rows = []  # not created yet
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    pytest.fail(f"the serving processes noted {len(rows)} of {count} signatures")


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_serving_processes_switch_to_what_the_worker_measured(db: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest
                                                              ) -> None:
    db_url = (f"sqlite:///{tmp_path / 'fleet.sqlite3'}" if db == "sqlite"
              else request.getfixturevalue("pg_schema_url")())
    # lengths under the bucketing threshold: each call is its own signature; 200 is shared
    servers = [serve(db_url, [120, 200]), serve(db_url, [200, 240])]
    worker = None
    try:
        rows = wait_for_wanted(db_url, 3)
        assert {row.signature.length for row in rows} == {120, 200, 240}
        worker = subprocess.Popen(
            [sys.executable, "-m", "autoconv", "warm", "--wanted", "--follow", "--every", "0.5",
             "--db", db_url, "--budget", "0.2"],
            env={k: v for k, v in os.environ.items() if not k.startswith("AUTOCONV_")},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        outputs = [server.communicate(timeout=150) for server in servers]
        for (out, err), server in zip(outputs, servers):
            assert server.returncode == 0, err
            assert out.startswith("switched"), (out, err)
        worker.send_signal(signal.SIGINT)  # --follow runs until interrupted
        worker_out, worker_err = worker.communicate(timeout=60)
        assert worker.returncode in (0, 130), worker_err
        assert "measured" in worker_out
        with tuning_db.connect(db_url) as database:
            device_id = device_record(torch.device("cpu")).device_id
            assert database.wanted(device_id) == []  # all measured
            everything = database.wanted(device_id, unmeasured_only=False)
            calls = {row.signature.length: row.calls for row in everything}
            assert set(calls) == {120, 200, 240} and all(row.measured for row in everything)
            assert calls[200] >= 2  # noted by both servers, summed
    finally:
        for process in [*servers, worker]:
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
