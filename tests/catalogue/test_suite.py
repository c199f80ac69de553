"""The benchmark workload suite: valid calls, unique names, the issue's target shapes, and a
smoke run of ``scripts/bench_strategies.py``."""

from __future__ import annotations

import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from autoconv.catalogue import suite
from autoconv.catalogue.suite import SUITE
from autoconv.catalogue.workload import Workload
from autoconv.signature import Signature
from autoconv.tuning.cost_model import direct_macs

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _meta_tensors(workload: Workload) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Shape-only tensors (no memory) with the workload's shapes and dtype."""
    dtype = workload.torch_dtype
    x = torch.empty(workload.input_shape, dtype=dtype, device="meta")
    w = torch.empty(workload.weight_shape, dtype=dtype, device="meta")
    b = torch.empty(workload.weight_shape[0], dtype=dtype, device="meta") if workload.bias else None
    return x, w, b


@pytest.mark.parametrize("workload", SUITE, ids=lambda w: w.name)
def test_workload_is_a_valid_conv1d_call(workload: Workload) -> None:
    x, w, b = _meta_tensors(workload)
    sig = Signature.of(x, w, b, **workload.conv_kwargs())
    assert sig == workload.signature("meta")
    out = F.conv1d(x, w, b, **workload.conv_kwargs())
    assert tuple(out.shape) == workload.output_shape
    assert workload.macs == direct_macs(sig)
    assert f"K{workload.weight_shape[2]}" in workload.summary()
    assert workload.description and workload.source


@pytest.mark.parametrize("workload", [w for w in SUITE if w.quick] + [suite.get(
    "wav2vec2_pos_conv")], ids=lambda w: w.name)
def test_tensors_match_the_declared_shapes(workload: Workload) -> None:
    x, w, b = workload.tensors(seed=3)
    assert tuple(x.shape) == workload.input_shape and tuple(w.shape) == workload.weight_shape
    assert (b is not None) == workload.bias
    assert x.dtype == w.dtype == workload.torch_dtype
    assert Signature.of(x, w, b, **workload.conv_kwargs()) == workload.signature()
    x2, w2, _ = workload.tensors(seed=3)
    assert torch.equal(x, x2) and torch.equal(w, w2)
    # nn.Conv1d-like scaling keeps outputs of order one whatever the kernel length
    assert float(w.std()) == pytest.approx((w.shape[1] * w.shape[2]) ** -0.5, rel=0.3)


def test_names_are_unique_and_identifiers() -> None:
    names = suite.names()
    assert len(names) == len(set(names)) == len(SUITE)
    assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in names)


def test_the_issue_target_shapes_exist() -> None:
    expected = {
        "many_channel_k65": ((4, 64, 4096), (64, 64, 65), 1),
        "many_channel_k511": ((4, 64, 4096), (64, 64, 511), 1),
        "audio_fir_k1023": ((8, 1, 16000), (1, 1, 1023), 1),
        "long_reverb_k8191": ((2, 1, 96000), (1, 1, 8191), 1),
        "depthwise_long_k2048": ((4, 256, 2048), (256, 1, 2048), 256),
    }
    for name, (input_shape, weight_shape, groups) in expected.items():
        workload = suite.get(name)
        assert (workload.input_shape, workload.weight_shape, workload.groups) == (
            input_shape, weight_shape, groups)
    from bench_targets import TARGETS

    named = {target.workload for target in TARGETS} - {None}
    assert named and named <= set(suite.names())


def test_the_suite_covers_the_real_models() -> None:
    encoder = [suite.get(f"wav2vec2_fe{i}") for i in range(7)]
    assert [w.weight_shape[2] for w in encoder] == [10, 3, 3, 3, 3, 2, 2]
    assert [w.stride for w in encoder] == [5, 2, 2, 2, 2, 2, 2]
    for previous, layer in pairwise(encoder):  # each layer reads the one before
        assert layer.input_shape == previous.output_shape
    pos = suite.get("wav2vec2_pos_conv")
    assert (pos.weight_shape, pos.groups, pos.padding) == ((768, 48, 128), 16, 64)
    mamba = suite.get("mamba_causal_dw_k4")
    assert (mamba.weight_shape[2], mamba.padding, mamba.groups) == (4, 3, mamba.input_shape[1])
    tiny = suite.get("tiny_many_batch")
    assert (tiny.input_shape, tiny.weight_shape) == ((256, 1, 64), (1, 1, 16))
    assert {w.dilation for w in SUITE if "tcn" in w.tags} >= {1, 64, 512}


def test_select_and_get() -> None:
    assert [w.name for w in suite.select(["tiny_many_batch", "audio_fir_k1023"])] == [
        "tiny_many_batch", "audio_fir_k1023"]
    assert suite.select() == list(SUITE)
    quick = suite.select(quick=True)
    assert quick and all(w.quick for w in quick) and len(quick) < len(SUITE)
    with pytest.raises(KeyError, match="unknown workload 'nope'"):
        suite.get("nope")


def test_bench_strategies_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(SCRIPTS / "bench_strategies.py"),
         "--only", "tiny_many_batch", "--repeats", "2", "--budget", "0.05"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "torch " in out and "CPU:" in out
    header = next(line for line in out.splitlines() if line.startswith("| workload | shape"))
    assert "F.conv1d" in header and "best / F.conv1d" in header
    row = next(line for line in out.splitlines() if line.startswith("| tiny_many_batch |"))
    assert re.search(r"\| \d+(\.\d+)? (us|ms|s)\b", row), row
    assert "## Targets" in out and "not measured" in out


def test_bench_strategies_rejects_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    import bench_strategies

    assert bench_strategies.main(["--only", "nope"]) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err
