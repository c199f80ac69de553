"""The per-layer speed benchmark (scripts/bench_layers.py): the floor's arithmetic, and a smoke
run of --quick whose report has every column and row (its figures are never asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bench_layers
import pytest

import autoconv
from autoconv.catalogue import ordinary
from autoconv.catalogue.suite import get

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_layers.py"


def test_the_floor_is_the_larger_of_compute_and_memory() -> None:
    dense = get("whisper_stem_conv2")  # 3 multiply-adds a weight, many per byte
    depthwise = get("mamba_causal_dw_k4")  # 4 multiply-adds an output: few per byte
    rates = bench_layers.Rates(macs_per_s=1e10, bytes_per_s=1e10, mm_side=1, copy_bytes=1)
    seconds, bound = rates.floor(dense)
    assert bound == "compute" and seconds == dense.macs / 1e10
    seconds, bound = rates.floor(depthwise)
    assert bound == "memory" and seconds == depthwise.signature().tensor_bytes / 1e10


def test_a_training_step_s_floor_counts_the_gradients_work() -> None:
    dense, depthwise = get("whisper_stem_conv2"), get("mamba_causal_dw_k4")
    rates = bench_layers.Rates(macs_per_s=1e10, bytes_per_s=1e10, mm_side=1, copy_bytes=1)
    assert rates.floor(dense, training=True) == (3 * dense.macs / 1e10, "compute")
    assert rates.floor(depthwise, training=True) == (
        2 * depthwise.signature().tensor_bytes / 1e10, "memory")


def test_quick_run_reports_every_strategy_and_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "layers.md"
    env = {**os.environ, "AUTOCONV_MODEL_DIR": str(tmp_path / "models")}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(SCRIPT), "--quick", "--budget", "0.05",
         "--repeats", "1", "--cell-budget", "0.01", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert report.strip() == result.stdout.strip()
    assert "load average" in report and "matrix-multiply rate" in report
    assert "copy bandwidth" in report and "torch " in report
    lines = report.splitlines()
    header = next(line for line in lines if line.startswith("| layer | shape |"))
    columns = [cell.strip() for cell in header.split("|")[1:-1]]
    assert columns[2] == "F.conv1d"
    assert [f"best {name}" for name in autoconv.strategies.names()] == columns[3:-6]
    assert columns[-6:] == ["pick", "pick time", "speed-up", "floor", "bound",
                            "fastest / floor"]
    for layer in ordinary.select(quick=True):
        row = next(line for line in lines if line.startswith(f"| {layer.name} |"))
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert len(cells) == len(columns)
        assert cells[-1].replace(".", "").isdigit() and cells[-2] in ("compute", "memory")
        assert cells[-4].endswith("x")
    assert "speed-up of the pick over F.conv1d, geometric mean" in report


def test_training_times_the_candidates_that_need_gradients(tmp_path: Path) -> None:
    """With ``--training`` the strategies offered only where gradients are needed are timed
    (a depthwise, stride-1 layer's ``direct_grads``), and the report says what was timed."""
    out = tmp_path / "layers.md"
    env = {**os.environ, "AUTOCONV_MODEL_DIR": str(tmp_path / "models")}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(SCRIPT), "--only", "mamba_dw_k4",
         "--training", "--budget", "0.05", "--repeats", "1", "--cell-budget", "0.01",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr
    report = out.read_text()
    assert "(a training step: forward and gradients)" in report
    lines = report.splitlines()
    header = next(line for line in lines if line.startswith("| layer | shape |"))
    columns = [cell.strip() for cell in header.split("|")[1:-1]]
    row = next(line for line in lines if line.startswith("| mamba_dw_k4 |"))
    cells = dict(zip(columns, (cell.strip() for cell in row.split("|")[1:-1])))
    assert cells["best direct_grads"].endswith("s") and cells["best gemm"] == "-"


def test_an_unknown_layer_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_layers.main(["--only", "nope"]) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err
