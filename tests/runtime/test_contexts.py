"""autoconv in every PyTorch context: autocast, torch.func transforms, jit.trace, export; and
none of the caller's state (random streams, threads, grad mode) changed by tuning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.runtime import dispatcher

pytestmark = pytest.mark.usefixtures("fresh_autoconv")
REPO = Path(__file__).resolve().parents[2]


def stored_rows() -> list:
    return [m for _, m in dispatcher.selector.store.db.measurements()]


def test_under_cpu_autocast_the_output_is_f_conv1ds_and_the_tuning_is_in_bfloat16() -> None:
    x, w = torch.randn(2, 1, 4000), torch.randn(1, 1, 1023)
    # no racing and room in the budget: every candidate is warmed up and checked, whatever
    # the machine's load (the check at bfloat16 precision is what is under test)
    with torch.autocast("cpu", dtype=torch.bfloat16), autoconv.settings.override(
            race=False, budget_s=10.0):
        expected = F.conv1d(x, w, padding=511)
        out = autoconv.conv1d(x, w, padding=511)
        choice = autoconv.select(x, w, padding=511)
    assert out.dtype == expected.dtype == torch.bfloat16
    scale = expected.float().abs().max().item()
    assert (out.float() - expected.float()).abs().max().item() <= 2e-2 * scale
    rows = stored_rows()
    assert {row.signature.dtype for row in rows} == {"bfloat16"}
    # the FFT candidates were judged at bfloat16 precision, not disqualified against it
    assert all(row.ok for row in rows if row.strategy != "direct")
    assert {row.strategy for row in rows} >= {"fft", "overlap_add"}
    assert choice.source == "memory"
    # outside autocast the same call is another signature, in float32
    assert autoconv.conv1d(x, w, padding=511).dtype == torch.float32
    assert {row.signature.dtype for row in stored_rows()} == {"bfloat16", "float32"}


def test_the_module_under_autocast_keeps_its_gradients() -> None:
    layer = autoconv.Conv1d(4, 4, 129, padding=64)
    reference = torch.nn.Conv1d(4, 4, 129, padding=64)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 1500)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = layer(x), reference(x)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    ours.float().sum().backward()
    theirs.float().sum().backward()
    for a, b in zip(layer.parameters(), reference.parameters()):
        assert a.grad.dtype == b.grad.dtype == torch.float32
        torch.testing.assert_close(a.grad, b.grad, rtol=3e-2, atol=3e-2 * b.grad.abs().max())


TRANSFORMS = {
    "vmap": lambda f, x, w: torch.vmap(lambda xi: f(xi, w, padding=16))(x),
    "grad": lambda f, x, w: torch.func.grad(lambda wi: f(x, wi, padding=16).square().sum())(w),
    "jacrev": lambda f, x, w: torch.func.jacrev(lambda xi: f(xi, w, padding=16))(x[:1, :, :40]),
    "jvp": lambda f, x, w: torch.func.jvp(lambda xi: f(xi, w, padding=16), (x,),
                                          (torch.ones_like(x),))[1],
    "vmap of grad": lambda f, x, w: torch.vmap(torch.func.grad(
        lambda xi: f(xi, w, padding=16).sum()))(x),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_torch_func_transforms_give_f_conv1ds_result_and_measure_nothing(name: str) -> None:
    x, w = torch.randn(3, 4, 300), torch.randn(4, 4, 33)
    transform = TRANSFORMS[name]
    torch.testing.assert_close(transform(autoconv.conv1d, x, w), transform(F.conv1d, x, w))
    assert stored_rows() == []
    # the same call outside the transform is tuned as usual
    assert autoconv.select(x[0], w, padding=16).source == "measured"


def test_a_strategy_tuned_before_a_transform_still_gives_f_conv1ds_result_inside() -> None:
    x, w = torch.randn(3, 4, 3000), torch.randn(4, 4, 513)
    assert autoconv.select(x[0], w, padding=256).strategy != "direct"  # an FFT strategy
    expected = torch.vmap(lambda xi: F.conv1d(xi, w, padding=256))(x)
    torch.testing.assert_close(torch.vmap(lambda xi: autoconv.conv1d(xi, w, padding=256))(x),
                               expected, rtol=1e-4, atol=1e-4)


def test_functional_call_swaps_the_parameters() -> None:
    layer = autoconv.Conv1d(4, 4, 9, padding=4)
    weight, bias = torch.randn(4, 4, 9), torch.randn(4)
    x = torch.randn(2, 4, 100)
    out = torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))
    torch.testing.assert_close(out, F.conv1d(x, weight, bias, padding=4))


def test_jit_trace_and_export_of_the_module() -> None:
    layer = autoconv.Conv1d(4, 4, 65, padding=32)
    x = torch.randn(2, 4, 700)
    expected = torch.nn.functional.conv1d(x, layer.weight, layer.bias, padding=32)
    traced = torch.jit.trace(layer, x, check_trace=False)
    # nothing was measured while tracing: the graph holds F.conv1d, no tuning run
    assert [n.kind() for n in traced.graph.nodes() if n.kind().startswith("aten::")] == [
        "aten::_convolution"]
    assert stored_rows() == []
    torch.testing.assert_close(traced(x), expected, rtol=1e-4, atol=1e-4)
    torch.jit.trace(layer, x)  # with the trace's own check, which runs it eagerly too
    exported = torch.export.export(layer, (x,))
    torch.testing.assert_close(exported.module()(x), expected, rtol=1e-4, atol=1e-4)


def test_tracing_after_a_transform_works() -> None:
    layer = autoconv.Conv1d(4, 4, 33, padding=16)
    x = torch.randn(3, 4, 300)
    torch.vmap(layer)(x)
    traced = torch.jit.trace(layer, x)
    torch.testing.assert_close(traced(x), layer(x), rtol=1e-4, atol=1e-4)


def test_tuning_leaves_threads_and_grad_mode_as_they_were() -> None:
    threads = torch.get_num_threads()
    x, w = torch.randn(1, 4, 2000, requires_grad=True), torch.randn(4, 4, 101)
    with torch.no_grad():
        autoconv.conv1d(x, w, padding=50)
        assert not torch.is_grad_enabled()
    out = autoconv.conv1d(x, w, padding=50)  # a second signature, with gradients
    assert torch.is_grad_enabled() and out.requires_grad
    assert torch.get_num_threads() == threads
    assert len({(row.signature.requires_grad) for row in stored_rows()}) == 2


def test_the_first_call_leaves_the_random_stream_as_it_was(tmp_path: Path) -> None:
    # In a new process, where the cost model calibrates itself and the first signature is
    # tuned: the numbers drawn after autoconv's first call are those drawn without it.
    script = textwrap.dedent(f"""
        import torch, autoconv
        autoconv.settings.db_url = "sqlite:///{tmp_path / 'tuning.sqlite3'}"
        autoconv.settings.budget_s = 0.3
        x, w = torch.ones(1, 2, 3000), torch.ones(2, 2, 257)
        torch.manual_seed(0)
        expected = torch.rand(5)
        torch.manual_seed(0)
        autoconv.conv1d(x, w, padding=128)
        assert autoconv.select(x, w, padding=128).origin == "measured"
        assert torch.equal(torch.rand(5), expected)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_autocast_and_deterministic_mode() -> None:
    x, w = torch.randn(2, 4, 4000, device="cuda"), torch.randn(4, 4, 1023, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        expected, out = F.conv1d(x, w, padding=511), autoconv.conv1d(x, w, padding=511)
    assert out.dtype == expected.dtype == torch.float16
    scale = expected.float().abs().max().item()
    assert (out.float() - expected.float()).abs().max().item() <= 2e-2 * scale
    torch.use_deterministic_algorithms(True)
    try:
        x.requires_grad_(True)
        autoconv.conv1d(x, w, padding=511).sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
