"""The FFT strategies on CUDA (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.strategies import SpectrumCache, Strategy

from .helpers import RTOL, assert_close, make_call

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, "same", 1, 1), (2, 3, 2, 2),
                                                            (1, 0, 1, 4), (3, "valid", 1, 1)])
def test_matches_conv1d_on_cuda(strategy: Strategy, dtype, stride, padding, dilation,
                                groups) -> None:
    cin, cout = (1, 2) if groups == 4 else (3, 2)
    call = make_call(2, groups, cin, cout, 300, 17, stride, padding, dilation, dtype=dtype,
                     device="cuda")
    ref = F.conv1d(call.x.double(), call.w.double(), call.b.double(), stride, padding,
                   dilation, groups).to(dtype)
    for params in strategy.param_grid(call.signature()):
        out = strategy(*call.args, **params)
        assert out.device.type == "cuda"
        assert_close(out, ref, max(RTOL[dtype], 1e-5))


def test_gradients_on_cuda(strategy: Strategy) -> None:
    call = make_call(2, 1, 3, 2, 64, 5, 1, 2, 1, dtype=torch.float64, device="cuda")
    leaves = [t.requires_grad_(True) for t in (call.x, call.w, call.b)]
    assert torch.autograd.gradcheck(lambda x, w, b: strategy(x, w, b, 1, 2), leaves)


def test_spectrum_cache_on_cuda() -> None:
    from autoconv.strategies import fft

    call = make_call(2, 1, 3, 2, 64, 5, device="cuda")
    cache = SpectrumCache()
    with torch.no_grad():
        fft(*call.args, spectrum_cache=cache)
        out = fft(*call.args, spectrum_cache=cache)
    assert cache.hits == 1
    assert_close(out, F.conv1d(*call.args), RTOL[torch.float64])
