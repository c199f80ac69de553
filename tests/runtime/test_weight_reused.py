"""Calls whose weight is reused (an ``autoconv.Conv1d`` layer's, in inference): decided under
a signature of their own (:attr:`Signature.weight_reused`), and their FFT candidates timed
with the spectrum kept across calls, as the layer keeps it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.functional import conv1d_cached
from autoconv.runtime import dispatcher
from autoconv.signature import Signature
from autoconv.strategies import SpectrumCache, get
from autoconv.tuning.candidates import Candidate, CandidateCall, ConvInputs
from tests.runtime.test_live_check import store

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[Signature]:
    """The signatures the dispatcher asks its selector to decide."""
    seen: list[Signature] = []
    choose = dispatcher.choose

    def recording(signature: Signature, device: torch.device):
        seen.append(signature)
        return choose(signature, device)

    monkeypatch.setattr(dispatcher, "choose", recording)
    return seen


def layer_call(x: torch.Tensor, w: torch.Tensor, cache: SpectrumCache) -> torch.Tensor:
    return conv1d_cached(x, w, None, 1, 2, 1, 1, cache, weight_reused=True)


def test_only_a_layers_call_without_gradients_or_autocast_is_decided_as_reused(asked) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(6, 4, 5)
    cache = SpectrumCache.of_layer()
    expected = F.conv1d(x, w, None, 1, 2)
    with autoconv.settings.override(mode="predict", refresh_s=0):
        with torch.no_grad():
            torch.testing.assert_close(layer_call(x, w, cache), expected)
            autoconv.conv1d(x, w, None, 1, 2)  # a functional call: its weight may be new
            with torch.autocast("cpu", dtype=torch.bfloat16):
                layer_call(x, w, cache)  # autocast casts the weight anew on every call
        with torch.inference_mode():  # the keys of the calls above: nothing asked again
            torch.testing.assert_close(layer_call(x, w, cache), expected)
            # an inference tensor, which no cache keeps: the functional call's key
            torch.testing.assert_close(layer_call(x, w.clone(), cache), expected)
        w.requires_grad_()
        layer_call(x, w, cache).sum().backward()  # training: the weight changes every step
    assert [s.weight_reused for s in asked] == [True, False, False, False]
    assert [s.requires_grad for s in asked] == [False, False, False, True]
    assert asked[0] == dataclasses.replace(asked[1], weight_reused=True)


def test_the_reused_signature_has_decisions_of_its_own() -> None:
    x, w = torch.randn(2, 4, 300), torch.randn(6, 4, 33)
    signature = dispatcher.selector.key_signature(Signature.of(x, w, None, 1, 2))
    reused = dispatcher.selector.key_signature(Signature(**{**signature.as_dict(),
                                                            "weight_reused": True}))
    store(signature, ("direct", 1e-4), ("fft", 1e-3))
    store(reused, ("direct", 1e-4), ("fft", 1e-5))  # the spectrum kept: FFT wins
    cache = SpectrumCache.of_layer()
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0,
                                                     recheck_every=0):
        assert autoconv.select(x, w, None, 1, 2).strategy == "direct"
        for _ in range(3):
            torch.testing.assert_close(layer_call(x, w, cache), F.conv1d(x, w, None, 1, 2),
                                       rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(autoconv.conv1d(x, w, None, 1, 2),
                                       F.conv1d(x, w, None, 1, 2))
    assert (cache.misses, cache.hits) == (1, 2)  # FFT ran, with its spectrum kept


@pytest.mark.parametrize("reused", [True, False])
def test_the_tuner_times_a_layers_fft_with_the_spectrum_it_would_keep(
        monkeypatch: pytest.MonkeyPatch, reused: bool) -> None:
    made: list[SpectrumCache] = []

    def of_layer(cls) -> SpectrumCache:
        made.append(cls())
        return made[-1]

    monkeypatch.setattr(SpectrumCache, "of_layer", classmethod(of_layer))
    signature = Signature(2, 4, 6, 300, 33, 1, 16, 16, 1, 1, "float32", "cpu",
                          weight_reused=reused)
    inputs = ConvInputs.random(signature, torch.device("cpu"))
    for name in ("fft", "overlap_add", "direct"):
        params = get(name).param_grid(signature)[0]
        call = CandidateCall(Candidate(get(name), tuple(params.items())), inputs)
        call.prime()  # fills the kept spectra: every timed call finds them
        outputs = [call() for _ in range(2)]
        torch.testing.assert_close(outputs[-1], inputs.reference(), rtol=1e-4, atol=1e-4)
    if reused:  # one cache per FFT candidate: filled by its first call, then reused
        assert [(c.misses, c.hits) for c in made] == [(1, 2), (1, 2)]
    else:
        assert made == []


def test_only_a_layers_calls_with_its_weight_reused_run_with_its_spectra() -> None:
    x, w = torch.randn(2, 4, 300), torch.randn(6, 4, 33)
    call = Signature.of(x, w, None, 1, 2)
    for signature in (dataclasses.replace(call, weight_reused=True),
                      dataclasses.replace(call, requires_grad=True)):
        store(dispatcher.selector.key_signature(signature), ("fft", 1e-5), ("direct", 1e-3))
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=0):
        with torch.no_grad():
            run, cached, _ = dispatcher.runners(x, w, None, 1, 2, 1, 1, True)
            assert run is get("fft").run and cached is run
        w.requires_grad_()  # a layer's training call: the FFT as the functional call's
        run, cached, _ = dispatcher.runners(x, w, None, 1, 2, 1, 1, True)
        assert run is get("fft").run and cached is None


def test_a_kept_spectrum_serves_nearby_lengths() -> None:
    w = torch.randn(6, 4, 33, dtype=torch.float64)
    cache = SpectrumCache.of_layer()
    fft = get("fft").run
    for length in (300, 301, 310, 300):  # one coarse FFT length for all of them
        x = torch.randn(2, 4, length, dtype=torch.float64)
        torch.testing.assert_close(fft(x, w, None, 1, 2, spectrum_cache=cache),
                                   F.conv1d(x, w, None, 1, 2))
    assert (cache.misses, cache.hits, len(cache)) == (1, 3, 1)
    # and the cost model prices a layer's call at that length
    layer = Signature(2, 4, 6, 301, 33, 1, 2, 2, 1, 1, "float32", "cpu", weight_reused=True)
    assert get("fft").work(layer, {})["fft_length"] == next(
        iter(cache._entries))[2][0]  # the layout's FFT length
