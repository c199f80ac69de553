"""``autoconv warm`` never loses its measuring (issue 27): a database it cannot use is one line
before anything is measured; one that fails midway leaves a bundle to import; a resumed warm
measures only what is left; a signature it cannot measure is skipped, and says why.

Every warm here times with the fakes of :mod:`tests.steady`: nothing depends on the
machine's speed or load.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

import pytest

import tuning_db
from autoconv.cli import main
from autoconv.offline import warm as warm_module
from autoconv.runtime.dispatch import dispatcher
from autoconv.storage.store import TuningStore
from autoconv.tuning.contention import QuietMachine
from tests.steady import StepClock, busy_load, busy_timer, steady_timer
from tuning_db.errors import ConnectionFailedError


def shapes_file(path: Path, count: int) -> Path:
    entries = [{"input_shape": [1, 2, 300 + 37 * i], "weight_shape": [2, 2, 3 + 2 * (i % 4)]}
               for i in range(count)]
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def db_url(tmp_path: Path):
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    dispatcher.reset()


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The machine warm measures on, changeable between runs: a timer and a load."""
    real = warm_module.measuring_selector
    now = {"timer": steady_timer, "load": QuietMachine()}
    monkeypatch.setattr(warm_module, "measuring_selector", lambda refresh=False: real(
        refresh, timer=now["timer"], clock=StepClock(), load=now["load"]))
    return now


def warm(shapes: Path, db_url: str, capsys) -> tuple[int, str, str]:
    """``autoconv warm --shapes`` in a fresh process state: (status, stdout, stderr less
    the progress bar)."""
    dispatcher.reset()
    status = main(["warm", "--shapes", str(shapes), "--db", db_url, "--budget", "0.1"])
    captured = capsys.readouterr()
    said = [line for line in captured.err.splitlines() if not line.startswith("[#")]
    return status, captured.out, "".join(f"{line}\n" for line in said)


def test_an_unreachable_database_is_one_line_before_anything_is_measured(
        tmp_path: Path, machine: dict, capsys) -> None:
    timed = []
    machine["timer"] = lambda candidates, **kwargs: timed.append(1) or steady_timer(
        candidates, **kwargs)
    shapes = shapes_file(tmp_path / "shapes.json", 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # port 1: no server listens there, the connection is refused at once
        status, out, err = warm(shapes, "postgresql://postgres@127.0.0.1:1/x", capsys)
    assert status == 2 and out == "" and not timed
    assert [str(w.message) for w in caught] == []  # no Python warning dump
    (line,) = err.strip().splitlines()
    assert line.startswith("autoconv: error: cannot open the tuning database at "
                           "postgresql://postgres@127.0.0.1:1/x: ")
    assert line.endswith("(nothing was measured)")


def test_a_database_failing_midway_leaves_a_bundle_to_import(
        tmp_path: Path, db_url: str, machine: dict, capsys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_record = TuningStore.record
    writes = []

    def failing_after_two(self, signature, device, outcomes):
        writes.append(signature)
        if len(writes) > 2:  # the server goes away
            raise ConnectionFailedError(f"cannot open the tuning database at {self.where}: "
                                        "server closed the connection unexpectedly")
        return real_record(self, signature, device, outcomes)

    monkeypatch.setattr(TuningStore, "record", failing_after_two)
    monkeypatch.chdir(tmp_path)
    shapes = shapes_file(tmp_path / "shapes.json", 5)
    with pytest.warns(RuntimeWarning, match="kept for a bundle file") as caught:
        status, out, err = warm(shapes, db_url, capsys)
    assert len(caught) == 1  # one line for the failure, not one per signature
    assert status == 2 and "warmed 5/5 signatures (5 measured, 0 already known)" in out
    (line,) = err.strip().splitlines()
    assert line.startswith(f"autoconv: error: the measurements of 3 of 5 measured signatures "
                           f"could not be stored in {db_url}; they are kept in ")
    command = line.split("add them with: ")[1]
    assert command.startswith("autoconv import ") and command.endswith(f"--db {db_url}")
    bundle = Path(shlex.split(command)[2])
    assert bundle.parent == tmp_path and re.fullmatch(r"autoconv-unsaved-[\d-]+\.json",
                                                      bundle.name)

    monkeypatch.setattr(TuningStore, "record", real_record)  # the database is back
    assert main(shlex.split(command)[1:]) == 0
    assert "imported" in capsys.readouterr().out
    status, out, _ = warm(shapes, db_url, capsys)
    assert status == 0 and "(0 measured, 5 already known)" in out  # nothing was lost


def test_a_resumed_warm_on_a_busy_machine_measures_only_what_is_left(
        tmp_path: Path, db_url: str, machine: dict, capsys) -> None:
    shapes = shapes_file(tmp_path / "shapes.json", 5)
    calls = []

    def interrupted_on_the_third(candidates, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third signature is timed
        return busy_timer(candidates, **kwargs)

    machine.update(timer=interrupted_on_the_third, load=busy_load())
    status, out, _ = warm(shapes, db_url, capsys)
    assert status == 130
    assert "warmed 2/5 signatures (2 measured, 0 already known)" in out
    assert "3 left: run the same command again" in out
    # Its decisions are provisional (timed on a busy machine); measuring them again on the
    # machine still busy would only store another busy machine's timings.
    machine["timer"] = busy_timer
    status, out, _ = warm(shapes, db_url, capsys)
    assert status == 0 and "warmed 5/5 signatures (3 measured, 2 already known)" in out
    status, out, _ = warm(shapes, db_url, capsys)
    assert "(0 measured, 5 already known)" in out
    # Once the machine is quiet, they are measured again, and say so; then they are settled.
    machine.update(timer=steady_timer, load=QuietMachine())
    status, out, _ = warm(shapes, db_url, capsys)
    assert "(0 measured, 5 measured again, 0 already known)" in out
    status, out, _ = warm(shapes, db_url, capsys)
    assert "(0 measured, 5 already known)" in out


@pytest.mark.usefixtures("machine")
def test_a_signature_over_max_tune_bytes_is_skipped_and_said(tmp_path: Path, db_url: str,
                                                            capsys) -> None:
    huge = {"input_shape": [100, 1000, 250_000], "weight_shape": [1000, 1000, 3]}  # 100 GB
    alone = tmp_path / "huge.json"
    alone.write_text(json.dumps([huge]))
    status, out, err = warm(alone, db_url, capsys)
    lines = out.splitlines()
    assert status == 2 and len(lines) == 2
    assert lines[0].startswith("skipped 100x1000x") and lines[0].endswith(
        "over settings.max_tune_bytes = 4 GiB (AUTOCONV_MAX_TUNE_BYTES)")
    assert "its tensors take 1" in lines[0]
    assert lines[1].startswith("warmed 0/1 signatures (0 measured, 0 already known, "
                               "1 skipped)")
    assert err.strip() == ("autoconv: error: nothing could be warmed: all 1 signature(s) "
                           "were skipped (the reasons are above)")

    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([huge, {"input_shape": [1, 2, 300],
                                        "weight_shape": [2, 2, 3]}]))
    status, out, _ = warm(mixed, db_url, capsys)
    assert status == 0 and out.startswith("skipped 100x1000x")
    assert "warmed 1/2 signatures (1 measured, 0 already known, 1 skipped)" in out
    with tuning_db.connect(db_url) as db:
        assert len({m.signature for _, m in db.measurements()}) == 1
