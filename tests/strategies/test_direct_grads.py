"""``direct_grads``: a depthwise, stride-1 layer whose gradients are forward convolutions.
Parity, gradients on every argument form and errors are the registry-wide suites'."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.strategies import direct_grads, get
from autoconv.strategies.direct_grads_conv import computes, direct_grads_work
from autoconv.strategies.work import convolution_work

from .helpers import RTOL, assert_close, make_call, reference

#: Depthwise, stride-1 calls: batch, channels, length, kernel, padding, dilation, outputs per
#: input channel.
CALLS = [
    (2, 3, 40, 31, 15, 1, 1),  # a Conformer's form: "same" padding past oneDNN's fast path
    (2, 3, 60, 3, 32, 16, 1),  # Conv-TasNet's: dilation of half the padding
    (3, 4, 37, 5, "valid", 3, 1),
    (2, 5, 29, 6, "same", 2, 1),  # asymmetric padding
    (1, 2, 20, 3, 9, 1, 1),  # more padding than the taps reach: the gradient cropped
    (None, 3, 30, 3, 1, 1, 1),  # unbatched
    (2, 4, 9, 9, 0, 1, 1),  # one output sample
    (2, 3, 40, 3, 8, 8, 2),  # a channel multiplier: two outputs per input channel
    (3, 2, 25, 4, 3, 1, 3),  # causal-style padding, three outputs per channel
]


def depthwise_call(case: tuple, dtype: torch.dtype = torch.float64, bias: bool = True):
    batch, channels, length, kernel, padding, dilation, multiplier = case
    return make_call(batch, channels, 1, multiplier, length, kernel, 1, padding, dilation,
                     bias=bias, dtype=dtype)


@pytest.mark.parametrize("case", CALLS, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_and_second_derivatives(case: tuple, bias: bool) -> None:
    call = depthwise_call(case, bias=bias)
    leaves = [t.requires_grad_(True) for t in (call.x, call.w, call.b) if t is not None]
    rest = call.args[3:]

    def fn(x, w, *b):
        return direct_grads(x, w, b[0] if b else None, *rest)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradgradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("case", CALLS, ids=str)
def test_float32_gradients_equal_f_conv1d_s(case: tuple) -> None:
    call = depthwise_call(case, torch.float32)
    grads = []
    for fn in (F.conv1d, direct_grads):
        leaves = [t.detach().clone().requires_grad_(True) for t in (call.x, call.w, call.b)]
        out = fn(*leaves, *call.args[3:])
        assert out.is_contiguous()
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        grads.append([t.grad for t in leaves])
    for mine, ref in zip(*grads[::-1]):
        assert mine.shape == ref.shape
        assert (mine - ref).abs().max() <= RTOL[torch.float32] * ref.abs().max()


def test_only_the_gradients_it_is_asked_for_are_computed() -> None:
    call = depthwise_call(CALLS[0], torch.float32)
    weight = call.w.requires_grad_(True)
    out = direct_grads(call.x, weight, call.b, *call.args[3:])
    (grad,) = torch.autograd.grad(out.sum(), weight)
    ref = torch.autograd.grad(F.conv1d(call.x, weight, call.b, *call.args[3:]).sum(), weight)[0]
    torch.testing.assert_close(grad, ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_without_gradients_it_is_the_padded_direct_convolution(dtype: torch.dtype) -> None:
    call = depthwise_call(CALLS[0], dtype)
    signature = call.signature()
    assert computes(signature) and not get("direct_grads").supports(signature)
    assert_close(direct_grads(*call.args), reference(call), RTOL[dtype], call)
    assert direct_grads_work(signature, {}) == convolution_work(
        signature, 0, signature.batch * signature.in_channels * signature.padded_length)


def test_it_is_timed_where_gradients_are_needed() -> None:
    call = depthwise_call(CALLS[0], torch.float32)
    call.x.requires_grad_(True)
    assert get("direct_grads").supports(call.signature())


@pytest.mark.parametrize("case,reason", [
    ((2, 1, 3, 2, 40, 3, 1, 1), "dense"),
    ((2, 3, 1, 1, 40, 3, 2, 1), "strided"),
])
def test_what_it_leaves_to_f_conv1d(case: tuple, reason: str) -> None:
    call = make_call(*case, dtype=torch.float32)
    call.x.requires_grad_(True)
    assert not computes(call.signature()), reason
    out = direct_grads(*call.args)
    torch.testing.assert_close(out, F.conv1d(*call.args), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gets_f_conv1d_s_answer(dtype: torch.dtype) -> None:
    call = depthwise_call(CALLS[0], dtype)
    assert not computes(call.signature())
    torch.testing.assert_close(direct_grads(*call.args), F.conv1d(*call.args), rtol=0, atol=0)
