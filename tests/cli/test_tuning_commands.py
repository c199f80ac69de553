"""The tuning commands: autoconv select and autoconv warm, through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.cli import main
from autoconv.runtime.dispatch import dispatcher
from tests.cli.helpers import assert_warm_measures_then_resumes


@pytest.fixture
def db_url(tmp_path: Path):
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    dispatcher.reset()


def test_select_predicts_without_measuring(db_url: str, capsys) -> None:
    assert main(["select", "--input-shape", "2,1,96000", "--weight-shape", "1,1,8191",
                 "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "from cost_model" in out or "from predicted" in out
    assert out.splitlines()[0].endswith(" ms predicted")
    assert "\nnothing was measured for 2x1x" in out
    with tuning_db.connect(db_url) as db:
        assert list(db.measurements()) == []


def test_select_tune_measures_and_stores(db_url: str, capsys) -> None:
    args = ["select", "--input-shape", "1,2,3000", "--weight-shape", "2,2,101", "--db", db_url,
            "--budget", "0.3"]
    assert main([*args, "--mode", "tune"]) == 0
    out = capsys.readouterr().out
    assert "from measured" in out and out.splitlines()[0].endswith(" ms measured")
    dispatcher.reset()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "from database" in out and out.splitlines()[0].endswith(" ms measured")
    # the explanation: a row per candidate, F.conv1d's time, the verdict
    assert "\nF.conv1d: " in out and "\ndecision: " in out
    assert any(line.startswith("*") for line in out.splitlines())


@pytest.mark.usefixtures("steady_machine")
def test_select_tunes_a_layers_call_apart_from_the_functional_one(db_url: str, capsys) -> None:
    args = ["select", "--input-shape", "1,2,3000", "--weight-shape", "2,2,101", "--db", db_url,
            "--budget", "0.3", "--mode", "tune"]
    assert main([*args, "--layer"]) == 0
    assert main(args) == 0  # measured too: the layer's decision is not the functional one's
    assert capsys.readouterr().out.count(" from measured") == 2
    with tuning_db.connect(db_url) as db:
        keys = {m.signature.key for _, m in db.measurements()}
    assert {key.endswith("|wr") for key in keys} == {True, False}
    assert main([*args, "--layer", "--grad"]) == 2
    assert "--layer names a call without gradients" in capsys.readouterr().err


def test_select_explains_a_provisional_decision_with_its_speedup(db_url: str, capsys) -> None:
    from autoconv.signature import Signature
    from autoconv.storage.store import device_record, signature_record
    from tuning_db.records import CONTENDED_NOTE

    signature = Signature(1, 2, 2, 200, 101, 1, 0, 0, 1, 1, "float32", "cpu")  # unbucketed
    busy = f"{CONTENDED_NOTE} 9 of 9 samples disturbed"
    with tuning_db.connect(db_url) as db:
        db.record_many(device_record(torch.device("cpu")), [
            tuning_db.MeasurementRecord(signature=signature_record(signature), strategy=name,
                                        params=params, median_s=seconds, samples=9, ok=ok,
                                        note=note, autoconv_version="test")
            for name, params, seconds, ok, note in (
                ("direct", {}, 8e-3, True, busy), ("fft", {}, 2e-3, True, busy),
                ("overlap_add", {"block_size": 128}, 1e-3, False, "failed: RuntimeError: boom"))])
    assert main(["select", "--input-shape", "1,2,200", "--weight-shape", "2,2,101",
                 "--db", db_url, "--mode", "predict"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("fft (no parameters) from database, 2 ms measured")
    (chosen,) = [line for line in lines if line.startswith("*")]
    assert "fft" in chosen and "4.00x" in chosen and "contended:" in chosen
    rows = [line.split() for line in lines[2:5]]  # candidates, fastest first, failed last
    assert [row[1 if row[0] == "*" else 0] for row in rows] == [
        "fft", "direct", "overlap_add(block_size=128)"]
    assert "-" in rows[2] and lines[4].endswith("failed: RuntimeError: boom")
    assert "F.conv1d: 8 ms" in lines
    assert lines[-1].startswith("decision: provisional: the winner was timed on a busy machine")


def test_select_reports_bad_arguments_in_one_line(db_url: str, capsys) -> None:
    status = main(["select", "--input-shape", "1,2,100", "--weight-shape", "1,3,5",
                   "--db", db_url])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("autoconv: error:") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["select", "--input-shape", "1,x,100", "--weight-shape", "1,1,5"])


@pytest.mark.usefixtures("steady_machine")
def test_warm_tunes_the_suite_and_resumes(db_url: str, capsys) -> None:
    assert_warm_measures_then_resumes(
        ["warm", "--suite", "--only", "tiny_many_batch", "--db", db_url, "--budget", "0.3"], 1,
        capsys)


def test_warm_unknown_workload_is_a_one_line_error(db_url: str, capsys) -> None:
    assert main(["warm", "--suite", "--only", "no_such_workload", "--db", db_url]) == 2
    assert "no_such_workload" in capsys.readouterr().err


@pytest.mark.usefixtures("steady_machine")
def test_warm_from_a_shapes_file_then_resume(db_url: str, tmp_path: Path, capsys) -> None:
    shapes = tmp_path / "shapes.json"
    shapes.write_text('[{"input_shape": [1, 1, 2000], "weight_shape": [1, 1, 301]},'
                      ' {"input_shape": [2, 4, 500], "weight_shape": [4, 4, 5], "padding": 2}]')
    assert_warm_measures_then_resumes(
        ["warm", "--shapes", str(shapes), "--db", db_url, "--budget", "0.3"], 2, capsys)


def test_warm_stores_at_least_three_timed_calls_per_candidate(db_url: str, capsys) -> None:
    # a budget far too small for a timing round: warming still times every candidate 3 times
    # (F.conv1d, 100x the budget here, is estimated on windows of it instead: one sample)
    args = ["warm", "--suite", "--only", "audio_fir_k1023", "--db", db_url, "--budget", "0.001"]
    assert main(args) == 0
    with tuning_db.connect(db_url) as db:
        rows = [m for _, m in db.measurements() if m.ok]
    timed = [m for m in rows if not (m.note or "").startswith("estimated: ")]
    assert timed and all(m.samples >= 3 for m in timed)


def test_warm_from_a_model_records_and_saves_its_shapes(db_url: str, tmp_path: Path,
                                                         capsys) -> None:
    saved = tmp_path / "recorded.yaml"
    assert main(["warm", "--model", "tests.offline.test_shapes_and_recording:make_mixed",
                 "--input-shape", "1,1,600", "--train", "--save-shapes", str(saved),
                 "--db", db_url, "--budget", "0.2"]) == 0
    assert "warmed 4/4 signatures" in capsys.readouterr().out
    from autoconv.offline.shapes_file import load_shapes
    recorded = load_shapes(saved)
    assert [s.kernel_size for s in recorded] == [9, 33, 3, 5]
    assert recorded[0].requires_grad


def test_warm_shards_split_the_work(db_url: str, tmp_path: Path, capsys) -> None:
    shapes = tmp_path / "shapes.json"
    entries = [f'{{"input_shape": [1, 1, {100 + 7 * i}], "weight_shape": [1, 1, 3]}}'
               for i in range(6)]
    shapes.write_text("[" + ",".join(entries) + "]")
    totals = []
    for index in (1, 2):
        assert main(["warm", "--shapes", str(shapes), "--shard", f"{index}/2", "--db", db_url,
                     "--budget", "0.1"]) == 0
        out = capsys.readouterr().out
        totals.append(int(out.split("/")[1].split()[0]))
    assert sum(totals) == 6


@pytest.mark.parametrize("args,message", [
    (["--shapes", "missing.json"], "missing.json"),
    (["--model", "no_such_module_xyz:make", "--input-shape", "1,1,100"], "no_such_module_xyz"),
    (["--model", "tests.offline.test_shapes_and_recording:make_mixed"], "--input-shape"),
    (["--suite", "--total-budget", "0"], "--total-budget"),
])
def test_warm_mistakes_are_one_line_errors(db_url: str, capsys, args, message: str) -> None:
    assert main(["warm", *args, "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_select_describes_a_huge_call_without_allocating_it(db_url: str, capsys) -> None:
    # 100000 x 1000 x 1000 float32 is 400 GB: described on the meta device, never measured
    assert main(["select", "--input-shape", "100000,1000,1000", "--weight-shape",
                 "1000,1000,3", "--db", db_url, "--mode", "tune"]) == 0
    assert "from cost_model" in capsys.readouterr().out
    with tuning_db.connect(db_url) as db:
        assert list(db.measurements()) == []


def test_warm_into_a_database_it_cannot_write_fails_before_measuring(tmp_path: Path,
                                                                    capsys) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # not a database
    shapes = tmp_path / "shapes.json"
    shapes.write_text('[{"input_shape": [1, 2, 100], "weight_shape": [2, 2, 3]}]')
    assert main(["warm", "--shapes", str(shapes), "--db", f"sqlite:///{image}",
                 "--budget", "0.1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing measured, no summary
    (error,) = captured.err.strip().splitlines()
    assert error.startswith(f"autoconv: error: {image} is not an SQLite database")
    assert error.endswith("(nothing was measured)")
    assert image.read_bytes().startswith(b"\x89PNG")  # left as it was
    dispatcher.reset()
