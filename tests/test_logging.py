"""The ``autoconv`` log: silent by default; at INFO, each signature's decision; one warning per
cause of a database failure, the rest logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from autoconv.settings import Settings
from autoconv.storage.guarded import GuardedStore
from autoconv.tuning.selector import Selector

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_decisions_are_logged_at_info_with_the_winner_its_time_and_the_source(
        caplog, tmp_path: Path) -> None:
    from autoconv.signature import Signature
    from autoconv.storage.store import TuningStore
    from autoconv.tuning.cost_model import default_cost_model

    store = TuningStore(f"sqlite:///{tmp_path / 'tuning.sqlite3'}")
    signature = Signature(1, 2, 2, 400, 5, 1, 2, 2, 1, 1, "float32", "cpu")
    settings = Settings(mode="tune", budget_s=0.2, bucket_lengths=False)
    with caplog.at_level(logging.INFO, logger="autoconv"):
        first = Selector(store=store, cost_model=default_cost_model, settings=settings)
        first.choose(signature, CPU)
        Selector(store=store, cost_model=default_cost_model, settings=settings).choose(
            signature, CPU)
        first.choose(signature, CPU)  # from memory: the hot path logs nothing
    store.close()
    # the decisions' lines (on a busy machine the tuner may also say that it estimated
    # F.conv1d from windows of it: the count must not depend on the load)
    lines = [r.getMessage() for r in caplog.records if r.name == "autoconv.tuning.selector"
             and "(decided in " in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("1x2x400 K=5 padding=2,2 -> 2 (float32, cpu) on cpu: ")
    assert "ms measured, from measured" in lines[0]
    assert "ms measured, from database" in lines[1]


def test_nothing_is_printed_by_default_and_the_variable_turns_the_log_on(
        tmp_path: Path) -> None:
    code = ("import torch, autoconv\n"
            "autoconv.conv1d(torch.ones(1, 1, 50), torch.ones(1, 1, 3))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOCONV_PERSIST": "false",
           "AUTOCONV_BUDGET_S": "0.1"}
    env.pop("AUTOCONV_LOG_LEVEL", None)
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "AUTOCONV_LOG_LEVEL": "info"}, timeout=120)
    assert loud.returncode == 0
    assert loud.stderr.startswith("autoconv: 1x1x50 K=3 -> 1 (float32, cpu) on cpu: ")


def test_a_database_failure_warns_once_per_cause_and_logs_the_rest(caplog) -> None:
    import warnings

    from autoconv.signature import Signature

    class Refusing:
        where = "postgresql://db/x"
        available = True

        def candidates(self, signature, device):
            raise ConnectionRefusedError("connection refused")

    guarded = GuardedStore(Refusing(), retry_s=0.0)  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO,
                                                                         logger="autoconv"):
        warnings.simplefilter("always")
        for length in (100, 200, 300):
            guarded.candidates(Signature(1, 1, 1, length, 3, 1, 0, 0, 1, 1, "float32",
                                         "cpu"), CPU)
    assert len(caught) == 1 and "1x1x100 K=3" in str(caught[0].message)
    logged = [r.getMessage() for r in caplog.records if r.name == "autoconv.storage.guarded"]
    assert len(logged) == 2 and "1x1x300 K=3" in logged[1]
