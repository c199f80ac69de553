"""SpectrumCache: reused while the weight is unchanged, never stale, never leaking."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

from autoconv.strategies import SpectrumCache, fft, overlap_add

from .helpers import assert_close, make_call

STRATS = {"fft": fft, "overlap_add": overlap_add}


@pytest.fixture(params=list(STRATS))
def conv(request: pytest.FixtureRequest):
    return STRATS[request.param]


def test_reused_when_weight_unchanged(conv) -> None:
    call = make_call(2, 2, 3, 2, 64, 5, stride=2, padding=1, dilation=2)
    cache = SpectrumCache()
    first = conv(*call.args, spectrum_cache=cache)
    second = conv(*call.args, spectrum_cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert_close(second, F.conv1d(*call.args), 1e-10)


def test_in_place_update_invalidates(conv) -> None:
    call = make_call(2, 1, 3, 3, 64, 5, padding="same")
    cache = SpectrumCache()
    conv(*call.args, spectrum_cache=cache)
    with torch.no_grad():
        call.w.mul_(-2.0)
    out = conv(*call.args, spectrum_cache=cache)
    # recomputed, and the stale entry replaced rather than kept beside the new one
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 1)
    assert_close(out, F.conv1d(*call.args), 1e-10)


def test_optimizer_step_invalidates(conv) -> None:
    call = make_call(2, 1, 3, 3, 64, 5)
    weight = torch.nn.Parameter(call.w.clone())
    cache = SpectrumCache()
    with torch.no_grad():
        conv(call.x, weight, spectrum_cache=cache)
    F.conv1d(call.x, weight).square().sum().backward()
    torch.optim.SGD([weight], lr=0.1).step()
    with torch.no_grad():
        out = conv(call.x, weight, spectrum_cache=cache)
        assert_close(out, F.conv1d(call.x, weight), 1e-10)
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 1)


def test_layouts_do_not_collide(conv) -> None:
    call = make_call(1, 1, 2, 2, 80, 5)
    cache = SpectrumCache()
    for stride, dilation in [(1, 1), (2, 1), (1, 2), (3, 2)]:
        out = conv(call.x, call.w, None, stride, 0, dilation, spectrum_cache=cache)
        assert_close(out, F.conv1d(call.x, call.w, None, stride, 0, dilation), 1e-10)
    assert cache.hits == 0 and len(cache) == 4


def test_not_used_when_weight_needs_grad(conv) -> None:
    call = make_call(2, 1, 2, 2, 40, 3)
    call.w.requires_grad_(True)
    cache = SpectrumCache()
    conv(*call.args, spectrum_cache=cache)
    out = conv(*call.args, spectrum_cache=cache)
    assert len(cache) == 0 and cache.hits == 0
    assert out.requires_grad
    with torch.no_grad():
        conv(*call.args, spectrum_cache=cache)
        conv(*call.args, spectrum_cache=cache)
    assert cache.hits == 1


def test_inference_mode_entries_stay_in_inference_mode(conv) -> None:
    call = make_call(2, 1, 2, 2, 40, 3)
    cache = SpectrumCache()
    with torch.inference_mode():
        conv(*call.args, spectrum_cache=cache)
    x = call.x.clone().requires_grad_(True)
    out = conv(x, call.w, call.b, spectrum_cache=cache)
    out.sum().backward()  # an inference-mode spectrum here would fail to save for backward
    expected = call.x.clone().requires_grad_(True)
    F.conv1d(expected, call.w, call.b).sum().backward()
    torch.testing.assert_close(x.grad, expected.grad)
    # a second entry, outside inference mode, beside the first
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)


def test_dead_weight_frees_its_spectrum(conv) -> None:
    cache = SpectrumCache()
    call = make_call(1, 1, 2, 2, 40, 3)
    conv(*call.args, spectrum_cache=cache)
    assert len(cache) == 1
    del call
    gc.collect()
    assert len(cache) == 0


def test_bounded_size(conv) -> None:
    cache = SpectrumCache(max_entries=3)
    x = torch.randn(1, 2, 30)
    weights = [torch.randn(2, 2, 3) for _ in range(5)]
    for w in weights:
        conv(x, w, spectrum_cache=cache)
    assert len(cache) == 3
    conv(x, weights[-1], spectrum_cache=cache)
    assert cache.hits == 1
    # weights 2, 3, 4 are kept; using 2 again leaves 3 the least recently used
    conv(x, weights[2], spectrum_cache=cache)
    conv(x, weights[0], spectrum_cache=cache)  # a miss that drops weights[3]
    conv(x, weights[2], spectrum_cache=cache)  # still there
    assert (cache.hits, cache.misses, len(cache)) == (3, 6, 3)
    conv(x, weights[3], spectrum_cache=cache)  # dropped: recomputed
    assert (cache.hits, cache.misses, len(cache)) == (3, 7, 3)


def test_bounded_bytes(conv) -> None:
    x = torch.randn(1, 2, 30)
    weights = [torch.randn(2, 2, 3) for _ in range(3)]
    probe = SpectrumCache()
    conv(x, weights[0], spectrum_cache=probe)
    size = probe.nbytes  # one spectrum's bytes
    cache = SpectrumCache(max_bytes=2 * size)
    for w in weights:
        conv(x, w, spectrum_cache=cache)
    assert (len(cache), cache.nbytes) == (2, 2 * size)  # the oldest dropped for the third
    conv(x, weights[0], spectrum_cache=cache)
    assert cache.hits == 0 and cache.nbytes == 2 * size
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)


def test_a_spectrum_larger_than_the_bound_is_computed_every_call(conv) -> None:
    call = make_call(1, 1, 2, 2, 40, 3)
    cache = SpectrumCache(max_bytes=8)
    for _ in range(2):
        out = conv(*call.args, spectrum_cache=cache)
    assert (cache.hits, cache.misses, len(cache), cache.nbytes) == (0, 2, 0, 0)
    assert_close(out, F.conv1d(*call.args), 1e-10)


def test_a_dead_weight_gives_its_bytes_back(conv) -> None:
    call = make_call(1, 1, 2, 2, 40, 3)
    cache = SpectrumCache.of_layer()
    conv(*call.args, spectrum_cache=cache)
    assert cache.nbytes > 0
    del call
    gc.collect()
    assert (len(cache), cache.nbytes) == (0, 0)


def test_rejects_empty_cache() -> None:
    with pytest.raises(ValueError, match="max_entries must be >= 1, got 0"):
        SpectrumCache(max_entries=0)
    with pytest.raises(ValueError, match="max_bytes must be >= 1 or None, got 0"):
        SpectrumCache(max_bytes=0)
