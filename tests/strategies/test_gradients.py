"""Gradients of every strategy equal the direct gradients (float64 gradcheck, float32 parity)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.strategies import Strategy

from .helpers import make_call

CASES = [
    # batch, groups, cin, cout, length, kernel, stride, padding, dilation
    (2, 1, 2, 3, 12, 3, 1, 1, 1),
    (1, 2, 2, 1, 11, 4, 2, "valid", 2),
    (2, 3, 1, 2, 10, 3, 1, "same", 2),
    (None, 1, 2, 2, 9, 2, 3, 2, 1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradcheck_float64(strategy: Strategy, case: tuple) -> None:
    batch, groups, cin, cout, length, kernel, stride, padding, dilation = case
    call = make_call(batch, groups, cin, cout, length, kernel, stride, padding, dilation)
    params = strategy.param_grid(call.signature())[0]
    tensors = [t.requires_grad_(True) for t in (call.x, call.w, call.b)]

    def fn(x, w, b):
        return strategy(x, w, b, stride, padding, dilation, groups, **params)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, "same", 1, 1), (2, 3, 2, 2),
                                                            (1, 0, 1, 4)])
def test_float32_gradients_match_direct(strategy: Strategy, stride, padding, dilation,
                                        groups) -> None:
    cin, cout = (1, 2) if groups == 4 else (3, 2)
    call = make_call(2, groups, cin, cout, 96, 9, stride, padding, dilation, dtype=torch.float32)
    for params in strategy.param_grid(call.signature()):
        grads = []
        for fn in (F.conv1d, lambda *a, params=params: strategy(*a, **params)):
            leaves = [t.detach().clone().requires_grad_(True) for t in (call.x, call.w, call.b)]
            out = fn(leaves[0], leaves[1], leaves[2], stride, padding, dilation, groups)
            out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
            grads.append([t.grad for t in leaves])
        for mine, ref in zip(grads[1], grads[0]):
            scale = ref.abs().max().item()
            assert (mine - ref).abs().max().item() <= 1e-4 * scale


def test_gradient_through_cached_strategy_still_reaches_weight() -> None:
    from autoconv.strategies import SpectrumCache, fft

    call = make_call(2, 1, 2, 2, 40, 5, padding=2)
    cache = SpectrumCache()
    w = call.w.clone().requires_grad_(True)
    fft(call.x, w, call.b, padding=2, spectrum_cache=cache).sum().backward()
    ref_w = call.w.clone().requires_grad_(True)
    F.conv1d(call.x, ref_w, call.b, padding=2).sum().backward()
    assert len(cache) == 0
    torch.testing.assert_close(w.grad, ref_w.grad)
