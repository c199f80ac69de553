"""Issue 6's workflow end to end: warm into SQLite and PostgreSQL, shards in two processes,
interrupt and resume, and moving winners between databases with bundles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.buckets import decision_key
from autoconv.cli import main
from autoconv.offline.shapes_file import load_shapes
from autoconv.offline.warm import measuring_selector, warm
from autoconv.runtime.dispatch import dispatcher
from autoconv.settings import settings
from autoconv.storage.store import device_record, signature_record
from tests.steady import StepClock, busy_load, busy_timer, steady_timer

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]


def shapes_file(path: Path, count: int) -> Path:
    entries = [{"input_shape": [1, 2, 300 + 37 * i], "weight_shape": [2, 2, 3 + 2 * (i % 4)]}
               for i in range(count)]
    path.write_text(json.dumps(entries))
    return path


def stored_signatures(url: str) -> set:
    device_id = device_record(CPU).device_id
    with tuning_db.connect(url) as db:
        return {m.signature for _, m in db.measurements(device_id)}


@pytest.fixture(autouse=True)
def fresh_selector():
    yield
    dispatcher.reset()


@pytest.mark.usefixtures("steady_machine")
def test_warm_from_a_file_and_a_model_into_each_backend(backend_url: str, tmp_path: Path,
                                                        capsys) -> None:
    shapes = shapes_file(tmp_path / "shapes.json", 3)
    assert main(["warm", "--shapes", str(shapes), "--db", backend_url, "--budget", "0.1"]) == 0
    assert main(["warm", "--model", "tests.offline.test_shapes_and_recording:make_mixed",
                 "--input-shape", "1,1,500", "--db", backend_url, "--budget", "0.1"]) == 0
    capsys.readouterr()
    # the model's two layers also as layers call them, their weight reused
    assert len(stored_signatures(backend_url)) == 3 + 4 + 2
    dispatcher.reset()
    assert main(["warm", "--shapes", str(shapes), "--db", backend_url]) == 0
    assert "(0 measured, 3 already known)" in capsys.readouterr().out


def test_two_shards_in_two_processes_split_the_work(pg_schema_url, tmp_path: Path) -> None:
    url = pg_schema_url()
    shapes = shapes_file(tmp_path / "shapes.json", 8)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "autoconv", "warm", "--shapes", str(shapes), "--shard",
         f"{index}/2", "--save-shapes", str(tmp_path / f"shard{index}.json"), "--db", url,
         "--budget", "0.1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for index in (1, 2)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    first, second = (set(load_shapes(tmp_path / f"shard{i}.json")) for i in (1, 2))
    assert first.isdisjoint(second)
    everything = {decision_key(s, settings) for s in load_shapes(shapes)}  # bucketed lengths
    assert first | second == everything
    assert stored_signatures(url) == {signature_record(s) for s in everything}


def steady_selector():
    """The measuring selector, timed with :mod:`tests.steady`'s fakes: its decisions settled
    on any machine (a real timer under a 0.1 s budget on a busy machine leaves some
    provisional, and a resumed warm measures them again)."""
    return measuring_selector(timer=steady_timer, clock=StepClock())


def busy_selector():
    """The measuring selector on a machine busy throughout: every decision it stores is
    provisional (timed on a busy machine)."""
    return measuring_selector(timer=busy_timer, clock=StepClock(), load=busy_load())


@pytest.mark.parametrize("make_selector", [steady_selector, busy_selector],
                         ids=["steady", "busy"])
def test_an_interrupted_warm_keeps_what_it_finished_and_resumes(tmp_path: Path,
                                                                make_selector) -> None:
    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    signatures = load_shapes(shapes_file(tmp_path / "shapes.json", 5))

    class InterruptedSelector:
        def __init__(self, after: int) -> None:
            self.inner, self.calls, self.after = make_selector(), 0, after

        def choose(self, signature, device):
            self.calls += 1
            if self.calls > self.after:
                raise KeyboardInterrupt
            return self.inner.choose(signature, device)

        @property
        def unsaved(self) -> int:
            return self.inner.unsaved

    with settings.override(db_url=url, budget_s=0.1):
        report = warm(signatures, CPU, selector=InterruptedSelector(after=2))
        assert report.interrupted and len(report.visited) == 2 and report.measured == 2
        assert len(stored_signatures(url)) == 2
        resumed = warm(signatures, CPU, selector=make_selector())
        # only what was left: on a busy machine, measuring the two finished (provisional)
        # decisions again could not settle them
        assert resumed.complete and resumed.measured == 3 and resumed.remeasured == 0
        assert len(stored_signatures(url)) == 5
        assert warm(signatures, CPU, selector=make_selector()).measured == 0


def test_export_then_import_gives_the_same_winners(backend_url: str, tmp_path: Path,
                                                   capsys) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    shapes = shapes_file(tmp_path / "shapes.json", 3)
    assert main(["warm", "--shapes", str(shapes), "--db", source, "--budget", "0.1"]) == 0
    bundle = tmp_path / "bundle.json"
    assert main(["export", str(bundle), "--db", source]) == 0
    assert main(["import", str(bundle), "--db", backend_url]) == 0
    device_id = device_record(CPU).device_id
    with tuning_db.connect(source) as a, tuning_db.connect(backend_url) as b:
        for signature in load_shapes(shapes):
            record = signature_record(decision_key(signature, settings))
            assert a.best(device_id, record) == b.best(device_id, record) is not None
    capsys.readouterr()
    dispatcher.reset()
    first = load_shapes(shapes)[0]
    assert main(["select", "--input-shape", f"{first.batch},{first.in_channels},{first.length}",
                 "--weight-shape", f"{first.out_channels},{first.in_channels},{first.kernel_size}",
                 "--db", backend_url, "--mode", "tune"]) == 0
    assert "from database" in capsys.readouterr().out


@pytest.mark.usefixtures("steady_machine")
def test_warm_measures_provisional_decisions_again_and_everything_with_refresh(
        tmp_path: Path) -> None:
    from autoconv.signature import Signature
    from tuning_db.records import SETTLED_SAMPLES

    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    quick, settled = (Signature(1, 2, 2, length, 3, 1, 1, 1, 1, 1, "float32", "cpu")
                      for length in (300, 500))

    def winner_samples(db, signature):
        stored_as = signature_record(decision_key(signature, settings))
        return db.best(device_record(CPU).device_id, stored_as).samples

    with settings.override(db_url=url, budget_s=0.1, min_samples=1, max_samples=1):
        first = warm([quick], CPU)  # a first call's answer: one timed call per candidate
    with tuning_db.connect(url) as db:
        assert first.measured == 1 and winner_samples(db, quick) == 1
        assert db.stats().per_device[0].provisional == 1
    with settings.override(db_url=url, budget_s=0.1, min_samples=SETTLED_SAMPLES):
        again = warm([quick, settled], CPU)
        assert again.measured == 2  # the provisional one, and the new one
        known = warm([quick, settled], CPU)
        assert known.measured == 0  # both settled now: looked up
        refreshed = warm([quick, settled], CPU, refresh=True)
        assert refreshed.measured == 2
    with tuning_db.connect(url) as db:
        assert winner_samples(db, quick) >= SETTLED_SAMPLES
        assert db.stats().per_device[0].provisional == 0
