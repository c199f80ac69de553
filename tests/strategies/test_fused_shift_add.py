"""``fused_shift_add``: a depthwise layer as one kernel compiled by ``torch.compile``.

Most tests run the generated body uncompiled (``tests/conftest.py``): the sums are the
body's, and Inductor only fuses them. Its values and gradients on the depthwise calls of
``test_shift_add.py`` are tested there, beside ``shift_add``'s. Those marked ``compiles``
compile for real (seconds each), on a few signatures, and check values, gradients, second
derivatives and contexts.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autoconv.signature import Signature
from autoconv.strategies import fused_shift_add, get
from autoconv.strategies import fused_shift_add_conv as fused
from autoconv.strategies.fused_shift_add_conv import MAX_TAPS, KernelCache, parts

from .helpers import RTOL, assert_close, reference
from .test_shift_add import depthwise_call


@settings(max_examples=200)
@given(length=st.integers(1, 40), kernel=st.integers(1, 9), stride=st.integers(1, 4),
       dilation=st.integers(1, 5), left=st.integers(0, 30), right=st.integers(0, 30))
def test_the_parts_cover_every_output_once_and_read_the_right_samples(
        length: int, kernel: int, stride: int, dilation: int, left: int, right: int) -> None:
    span = dilation * (kernel - 1) + 1
    if length + left + right < span:
        return
    s = Signature(1, 1, 1, length, kernel, stride, left, right, dilation, 1, "float64", "cpu")
    cuts = parts(s)
    assert [p.first for p in cuts] == [0, *[p.first + p.count for p in cuts[:-1]]]
    assert sum(p.count for p in cuts) == s.output_length
    for p in cuts:
        assert 0 <= p.start <= p.stop <= length
        # the window, padded, holds exactly the samples its outputs' taps read
        assert p.pad_left + (p.stop - p.start) + p.pad_right == (p.count - 1) * stride + span
        if p.stop > p.start:
            assert p.start - p.pad_left == p.first * stride - left
    inner = [p for p in cuts if p.pad_left == 0 and p.pad_right == 0]
    assert len(cuts) - len(inner) <= 2  # the padded ones are only the two ends


def test_it_takes_depthwise_layers_of_up_to_max_taps_and_nothing_else() -> None:
    s = Signature(2, 8, 8, 100, 3, 1, 1, 1, 1, 8, "float32", "cpu")
    strategy = get("fused_shift_add")
    assert strategy.supports(s)
    assert strategy.supports(dataclasses.replace(s, kernel_size=MAX_TAPS))
    assert not strategy.supports(dataclasses.replace(s, kernel_size=MAX_TAPS + 1))
    assert not strategy.supports(dataclasses.replace(s, groups=4))  # two channels a group
    assert not strategy.supports(dataclasses.replace(s, dtype="complex64"))
    assert not strategy.supports(dataclasses.replace(s, chunk_size=100))  # a stream


def test_without_a_compiler_it_supports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused.shutil, "which", lambda name: None)
    available = fused.compiler_available.__wrapped__
    assert not available("cpu")
    assert not available("mps")  # no device Inductor is asked for here
    monkeypatch.setattr(fused, "compiler_available", lambda device_type: False)
    assert not get("fused_shift_add").supports(
        Signature(2, 8, 8, 100, 3, 1, 1, 1, 1, 8, "float32", "cpu"))


def test_the_kernel_cache_estimates_compiles_and_keeps_the_latest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "KERNEL_CACHE_SIZE", 2)
    cache = KernelCache()
    s = Signature(2, 3, 3, 40, 3, 1, 1, 1, 1, 3, "float32", "cpu")
    grad = dataclasses.replace(s, requires_grad=True)
    assert cache.estimate_s(s) == KernelCache.FIRST_ESTIMATE_S
    assert cache.estimate_s(grad) == 2 * KernelCache.FIRST_ESTIMATE_S  # and its backward
    x, w = torch.randn(2, 3, 40), torch.randn(3, 1, 3)
    cache.build(s, x, w, None)
    assert cache.is_built(s) and cache.estimate_s(s) == 0.0 and not cache.is_built(grad)
    assert len(cache.compile_seconds) == 1
    assert cache.estimate_s(grad) == 2 * cache.compile_seconds[0]
    cache.build(grad, x, w, None)
    assert cache.is_built(grad) and len(cache.compile_seconds) == 2
    for length in (41, 42):  # two more signatures: the first one is dropped
        cache.build(dataclasses.replace(s, length=length), torch.randn(2, 3, length), w, None)
    assert not cache.is_built(s)


#: Calls compiled for real: Conv-TasNet's dilated form with a channel multiplier, a
#: strided one with more padding than it reads, and an unbatched "same" one.
COMPILED = [(2, 4, 64, 3, 1, 8, 8, 2), (1, 3, 50, 4, 3, 7, 1), (None, 3, 30, 5, 1, "same", 2)]


@pytest.mark.compiles
@pytest.mark.slow
@pytest.mark.parametrize("case", COMPILED, ids=str)
def test_compiled_values_gradients_and_second_derivatives(case: tuple) -> None:
    call = depthwise_call(case, torch.float32)
    rest = call.args[3:]
    assert_close(fused_shift_add(*call.args), reference(call), RTOL[torch.float32], call)
    with torch.inference_mode():
        assert_close(fused_shift_add(*call.args), reference(call), RTOL[torch.float32], call)

    leaves = [t.detach().requires_grad_(True) for t in (call.x, call.w, call.b)]
    twins = [t.detach().requires_grad_(True) for t in (call.x, call.w, call.b)]
    out, expected = fused_shift_add(*leaves, *rest), F.conv1d(*twins, *rest)
    assert out.is_contiguous()
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, leaves, grad, create_graph=True)
    want = torch.autograd.grad(expected, twins, grad, create_graph=True)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)
    # second derivatives (a gradient penalty): F.conv1d's
    penalty, wanted = sum(g.square().sum() for g in got), sum(w.square().sum() for w in want)
    for g, w in zip(torch.autograd.grad(penalty, leaves[:2]),
                    torch.autograd.grad(wanted, twins[:2])):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-3)
    # only the weight needs a gradient (an input that does not): the same graph serves
    x = call.x.detach()
    (g_w,) = torch.autograd.grad(fused_shift_add(x, leaves[1], None, *rest).sum(), leaves[1])
    (w_w,) = torch.autograd.grad(F.conv1d(x, twins[1], None, *rest).sum(), twins[1])
    torch.testing.assert_close(g_w, w_w, rtol=1e-4, atol=1e-4)


@pytest.mark.compiles
@pytest.mark.slow
def test_compiled_half_precision_and_a_transposed_input_leaving_rng_and_threads() -> None:
    call = depthwise_call((2, 4, 64, 3, 1, 8, 8), torch.bfloat16)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    out = fused_shift_add(*call.args)  # compiles
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert out.dtype == torch.bfloat16 and out.is_contiguous()
    assert_close(out, reference(call), RTOL[torch.bfloat16], call)
    x = call.x.float().transpose(1, 2).contiguous().transpose(1, 2)  # Mamba's layout
    w, b = call.w.float(), call.b.float()
    torch.testing.assert_close(fused_shift_add(x, w, b, *call.args[3:]),
                               F.conv1d(x, w, b, *call.args[3:]), rtol=1e-4, atol=1e-4)


@pytest.mark.compiles
@pytest.mark.slow
def test_the_tuner_compiles_first_and_times_the_compiled_kernel() -> None:
    from autoconv.tuning.candidates import Candidate, ConvInputs
    from autoconv.tuning.trial import Budget, OutputCheck, warm_up

    s = Signature(2, 4, 4, 64, 3, 1, 8, 8, 8, 4, "float32", "cpu", True)
    inputs = ConvInputs.random(s, torch.device("cpu"))
    strategy = get("fused_shift_add")
    warmed, rejected = warm_up([(Candidate(strategy, ()), None)], inputs,
                               Budget.of(lambda: 0.0, 1.0),  # a clock that stands still
                               OutputCheck(inputs, 1e-4, reference_runs=False))
    assert rejected == [] and len(warmed) == 1
    assert fused.KERNELS.is_built(s) and fused.KERNELS.estimate_s(s) == 0.0
    assert warmed[0].error is not None and warmed[0].error < 1e-4
