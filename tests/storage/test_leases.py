"""Leases: processes sharing a database never measure one signature at the same time, and a
crashed holder's lease goes with it (SQLite and PostgreSQL, real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import tuning_db
from tests.tuning_db.factories import make_signature

REPO = Path(__file__).resolve().parents[2]

#: One process: touch its ready file once imported and connected, wait for the start file,
#: then choose the signature with a timer that takes 0.6 s (so that the other process arrives
#: while it measures), and print the answer.
TUNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    from autoconv.settings import Settings
    from autoconv.signature import Signature
    from autoconv.storage.store import TuningStore
    from autoconv.tuning.selector import Selector
    from autoconv.tuning.timing import Timing

    def slow_timer(calls, **kwargs):
        time.sleep(0.6)
        return [Timing(1e-3 * (index + 1), 0.0, 5) for index, _ in enumerate(calls)]

    url, start, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    store = TuningStore(url)
    selector = Selector(timer=slow_timer, store=store,
                        settings=Settings(mode="tune", budget_s=5.0, bucket_lengths=False))
    signature = Signature(1, 2, 2, 500, 9, 1, 4, 4, 1, 1, "float32", "cpu")
    store.candidates(signature, torch.device("cpu"))  # connected before the start
    ready.touch()
    while not start.exists():
        time.sleep(0.005)
    choice = selector.choose(signature, torch.device("cpu"))
    print(choice.source, choice.strategy, dict(choice.params))
""")


def test_two_processes_measure_a_signature_once_and_agree(backend_url: str,
                                                          tmp_path: Path) -> None:
    start = tmp_path / "start"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready = [tmp_path / f"ready{index}" for index in range(2)]
    processes = [subprocess.Popen([sys.executable, "-c", TUNER, backend_url, str(start),
                                   str(flag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for flag in ready]
    deadline = time.monotonic() + 120  # a guard against hanging, not a speed target
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # both imported and connected, however busy the machine
    start.touch()
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        answers.append(out.strip())
    sources = sorted(answer.split(" ", 1)[0] for answer in answers)
    assert sources == ["database", "measured"], answers  # one measured, one waited
    assert len({answer.split(" ", 1)[1] for answer in answers}) == 1  # one decision


HOLDER = textwrap.dedent("""
    import sys, time
    import tuning_db
    from tests.tuning_db.factories import make_signature
    db = tuning_db.connect(sys.argv[1])
    with db.lease("0123456789abcdef0123", make_signature()) as granted:
        print(granted, flush=True)
        time.sleep(600)
""")


def test_a_lease_is_exclusive_and_dies_with_its_holder(backend_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, backend_url],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "True"
        with tuning_db.connect(backend_url) as db:
            with db.lease("0123456789abcdef0123", make_signature()) as granted:
                assert not granted  # held by the other process
            with db.lease("0123456789abcdef0123", make_signature(length=7)) as granted:
                assert granted  # another signature is free
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            deadline = time.monotonic() + 30
            while True:  # the server notices the closed connection (PostgreSQL) at once
                with db.lease("0123456789abcdef0123", make_signature()) as granted:
                    if granted or time.monotonic() > deadline:
                        break
                time.sleep(0.05)
            assert granted
    finally:
        holder.kill()
