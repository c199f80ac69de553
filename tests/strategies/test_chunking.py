"""Weight spectra over the memory budget are built and applied in chunks of output channels."""

from __future__ import annotations

import pytest
import torch

from autoconv.strategies import (
    SpectrumCache,
    fft,
    fft_plan,
    overlap_add,
    overlap_add_plan,
    spectral,
)

from .helpers import RTOL, assert_close, make_call, reference


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spectral, "SPECTRUM_BUDGET", 1024)


def _overlap_add(*args, **kwargs):
    return overlap_add(*args, block_size=16, **kwargs)


PLANS = {fft: fft_plan, _overlap_add: lambda sig: overlap_add_plan(sig, 16)}


@pytest.mark.parametrize("conv", list(PLANS), ids=["fft", "overlap_add"])
@pytest.mark.parametrize("groups,cin,cout,stride", [(1, 4, 7, 1), (3, 2, 5, 2), (2, 3, 3, 1)])
def test_chunked_matches_conv1d(tiny_budget: None, conv, groups: int, cin: int, cout: int,
                                stride: int) -> None:
    call = make_call(1, groups, cin, cout, 30, 4, stride=stride, padding=3, dilation=2)
    plan = PLANS[conv](call.signature())
    assert len(spectral.output_chunks(call.signature(), plan, torch.float64)) > 1
    cache = SpectrumCache()
    assert_close(conv(*call.args, spectrum_cache=cache), reference(call), RTOL[torch.float64])
    chunks = len(spectral.output_chunks(call.signature(), plan, torch.float64))
    assert len(cache) == chunks and cache.hits == 0
    assert_close(conv(*call.args, spectrum_cache=cache), reference(call), RTOL[torch.float64])
    assert cache.hits == chunks  # each chunk's spectrum is cached on its own
    leaves = [t.requires_grad_(True) for t in (call.x, call.w, call.b)]
    args = (call.stride, call.padding, call.dilation, call.groups)
    assert torch.autograd.gradcheck(lambda x, w, b: conv(x, w, b, *args), leaves,
                                    fast_mode=True)


def test_default_budget_keeps_small_spectra_whole() -> None:
    call = make_call(1, 1, 64, 64, 4096, 65, padding=32, dtype=torch.float32)
    plan = overlap_add_plan(call.signature(), 512)
    assert spectral.output_chunks(call.signature(), plan, torch.float32) == [(0, 64)]
