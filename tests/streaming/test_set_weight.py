"""``Conv1dStream.set_weight``: a new weight while the stream runs, crossfaded, equal sample by
sample to two streams (one per weight, both fed the whole signal) mixed with the documented
ramp, for every streaming strategy; and its rules, refusals, state and allocations."""

from __future__ import annotations

import math

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import autoconv
from autoconv.choice import StreamChoice
from autoconv.strategies.streaming import get

from .helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    causal,
    lengths,
    partitions,
    schedule,
    stream_all,
    variant,
)
from .test_allocation import _allocations_outside_fft

CHUNK = 8


def _weights(count: int, *, k: int = 300, seed: int = 0, dtype=torch.float64):
    """``count`` (weight, bias) pairs of a depthwise-with-multiplier layer: 2 -> 4."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 1, k, generator=generator, dtype=dtype) / k ** 0.5,
             torch.randn(4, generator=generator, dtype=dtype)) for _ in range(count)]


def _signal(length: int, *, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(1, 2, length, generator=torch.Generator().manual_seed(seed),
                       dtype=dtype)


def _gains(length: int, ramp: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The documented ramp: ``t = (i + 1) / (N + 1)``."""
    t = torch.arange(1, length + 1, dtype=torch.float64) / (length + 1)
    if ramp == "linear":
        return 1 - t, t
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def _mix(old: torch.Tensor, new: torch.Tensor, at: int, length: int, ramp: str
         ) -> torch.Tensor:
    """``old`` before sample ``at``, ``new`` from ``at + length``, the ramp between."""
    mixed = new.clone()
    mixed[..., :at] = old[..., :at]
    end = min(at + length, old.shape[-1])
    if end > at:
        gain_old, gain_new = _gains(length, ramp)
        gain_old, gain_new = gain_old[:end - at], gain_new[:end - at]
        mixed[..., at:end] = old[..., at:end] * gain_old + new[..., at:end] * gain_new
    return mixed


def _run(stream, x: torch.Tensor, swaps: dict[int, tuple], *, seed: int | None = None,
         use_out: bool = False) -> torch.Tensor:
    """Stream ``x`` in chunks, calling ``set_weight(*swaps[i])`` before the chunk that
    starts at sample ``i`` (keys must be chunk boundaries of the schedule)."""
    outputs, start = [], 0
    for n in lengths(x.shape[-1], stream.chunk_size, seed=seed):
        if start in swaps:
            weight, bias, kwargs = swaps.pop(start)
            stream.set_weight(weight, bias, **kwargs)
        chunk = x[..., start:start + n]
        if use_out:
            out = x.new_empty(x.shape[0], stream.out_channels, n)
            assert stream.stream(chunk, out=out) is out
            outputs.append(out)
        else:
            outputs.append(stream.stream(chunk))
        start += n
    assert not swaps, f"swaps at samples that are not chunk boundaries: {list(swaps)}"
    return torch.cat(outputs, -1)


def _boundaries(total: int, seed: int | None) -> list[int]:
    starts, start = [], 0
    for n in lengths(total, CHUNK, seed=seed):
        starts.append(start)
        start += n
    return starts


def _two_streams(strategy, params_of, weights, x, seed):
    """Two independent streams of the strategy, one per weight, fed the whole signal."""
    return [stream_all(variant(w, b, strategy, params_of, chunk_size=CHUNK, groups=2), x,
                       seed=seed) for w, b in weights]


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("ramp", ["linear", "equal_power"])
@pytest.mark.parametrize("seed,swap_index,crossfade", [
    (None, 9, 21),  # full chunks, a ramp over several chunks, not a multiple of them
    (7, 40, 5),  # random partial chunks, a ramp shorter than a chunk, deep in the signal
    (11, 0, 300),  # before the first chunk... of a prepared stream: a long ramp
    (3, 77, 0)])  # at once
def test_a_swap_is_the_two_stream_mix(strategy, params_of, ramp, seed, swap_index,
                                      crossfade) -> None:
    (w0, b0), (w1, b1) = weights = _weights(2)
    x = _signal(900)
    at = _boundaries(900, seed)[swap_index]
    stream = variant(w0, b0, strategy, params_of, chunk_size=CHUNK, groups=2)
    stream.prepare(1)
    actual = _run(stream, x, {at: (w1, b1, {"crossfade": crossfade, "ramp": ramp})},
                  seed=seed, use_out=seed == 7)
    old, new = _two_streams(strategy, params_of, weights, x, seed)
    assert_close(actual, _mix(old, new, at, crossfade, ramp))
    assert_close(new, causal(x, w1, b1, 1, 2))  # the two streams are the convolutions


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_a_bias_may_come_and_go(strategy, params_of) -> None:
    (w0, _), (w1, b1), (w2, _) = _weights(3, seed=2)
    x = _signal(500, seed=3)
    stream = variant(w0, None, strategy, params_of, chunk_size=CHUNK, groups=2)
    actual = _run(stream, x, {96: (w1, b1, {"crossfade": 30}),
                              296: (w2, None, {"crossfade": 17})}, seed=None)
    first, second, third = (causal(x, w, b, 1, 2) for w, b in ((w0, None), (w1, b1),
                                                                 (w2, None)))
    expected = _mix(_mix(first, second, 96, 30, "linear"), third, 296, 17, "linear")
    assert_close(actual, expected)


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_a_swap_during_a_crossfade_jumps_to_the_response_being_faded_in(
        strategy, params_of) -> None:
    (w0, b0), (w1, b1), (w2, b2) = _weights(3, seed=4)
    x = _signal(600, seed=5)
    starts = _boundaries(600, 9)
    first, second = starts[20], starts[26]  # the second swap comes during the first ramp
    assert second - first < 100
    stream = variant(w0, b0, strategy, params_of, chunk_size=CHUNK, groups=2)
    actual = _run(stream, x, {first: (w1, b1, {"crossfade": 100}),
                              second: (w2, b2, {"crossfade": 40, "ramp": "equal_power"})},
                  seed=9)
    a, b, c = (causal(x, w, bias, 1, 2) for w, bias in ((w0, b0), (w1, b1), (w2, b2)))
    expected = _mix(_mix(a, b, first, 100, "linear"), c, second, 40, "equal_power")
    expected[..., second:] = _mix(b, c, second, 40, "equal_power")[..., second:]
    assert_close(actual, expected)


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_reset_after_a_swap_starts_a_new_signal_with_the_new_weight(strategy,
                                                                    params_of) -> None:
    (w0, b0), (w1, b1) = _weights(2, seed=6)
    stream = variant(w0, b0, strategy, params_of, chunk_size=CHUNK, groups=2)
    stream_all(stream, _signal(200, seed=7), seed=2)
    stream.set_weight(w1, b1, crossfade=500)
    stream.stream(_signal(CHUNK, seed=8))
    assert stream.crossfade_remaining == 500 - CHUNK
    stream.reset()
    assert stream.crossfade_remaining == 0
    x = _signal(400, seed=9)
    assert_close(stream_all(stream, x, seed=3), causal(x, w1, b1, 1, 2))


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_flush_during_a_crossfade_mixes_the_tails(strategy, params_of) -> None:
    (w0, b0), (w1, b1) = weights = _weights(2, seed=10)
    x = _signal(120, seed=11)
    stream = variant(w0, b0, strategy, params_of, chunk_size=CHUNK, groups=2)
    head = _run(stream, x, {64: (w1, b1, {"crossfade": 90})})
    tail = stream.flush(70)
    padded = torch.cat([x, x.new_zeros(1, 2, 70)], -1)
    old, new = (causal(padded, w, b, 1, 2) for w, b in weights)
    assert_close(torch.cat([head, tail], -1), _mix(old, new, 64, 90, "linear"))
    assert stream.crossfade_remaining == 0


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_no_drift_2000_chunks_after_a_swap(strategy, params_of) -> None:
    chunk = 4
    (w0, b0), (w1, b1) = _weights(2, k=60, seed=12, dtype=torch.float32)
    x = _signal(2100 * chunk, seed=13, dtype=torch.float32)
    stream = variant(w0, b0, strategy, params_of, chunk_size=chunk, groups=2)
    out = torch.empty(1, 4, chunk)
    outputs = torch.empty(1, 4, x.shape[-1])
    with torch.inference_mode():
        for i in range(x.shape[-1] // chunk):
            if i == 100:
                stream.set_weight(w1, b1, crossfade=37)
            stream.stream(x[..., i * chunk:(i + 1) * chunk], out=out)
            outputs[..., i * chunk:(i + 1) * chunk] = out
    expected = causal(x.double(), w1.double(), b1.double(), 1, 2).float()
    assert_close(outputs[..., 600:], expected[..., 600:])
    assert_close(outputs[..., -1000:], expected[..., -1000:])


def test_a_swap_before_the_first_chunk_replaces_the_weight() -> None:
    (w0, b0), (w1, b1) = _weights(2, k=20, seed=14)
    stream = variant(w0, b0, *VARIANTS[1], chunk_size=CHUNK, groups=2)
    stream.set_weight(w1, b1, crossfade=50)  # no engine yet: nothing to fade from
    x = _signal(100, seed=15)
    assert_close(stream_all(stream, x), causal(x, w1, b1, 1, 2))
    assert stream.crossfade_remaining == 0


def test_the_new_weight_is_copied() -> None:
    (w0, b0), (w1, b1) = _weights(2, k=20, seed=16)
    stream = variant(w0, b0, *VARIANTS[0], chunk_size=CHUNK, groups=2)
    stream.prepare(1)
    stream.set_weight(w1, b1)
    expected_weight, expected_bias = w1.clone(), b1.clone()
    w1.mul_(3)
    b1.zero_()
    x = _signal(40, seed=17)
    assert_close(stream_all(stream, x), causal(x, expected_weight, expected_bias, 1, 2))


@pytest.mark.parametrize("weight,bias,kwargs,match", [
    (torch.zeros(4, 1, 21, dtype=torch.float64), None, {}, r"\[4, 1, 20\].*make a new"),
    (torch.zeros(4, 2, 20, dtype=torch.float64), None, {}, "shape, dtype and device"),
    (torch.zeros(4, 1, 20), None, {}, "torch.float32"),
    ("weights", None, {}, "got str"),
    (torch.zeros(4, 1, 20, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), {},
     r"bias must be \(4,\)"),
    (torch.zeros(4, 1, 20, dtype=torch.float64), None, {"crossfade": -1}, "crossfade"),
    (torch.zeros(4, 1, 20, dtype=torch.float64), None, {"crossfade": 2.5}, "crossfade"),
    (torch.zeros(4, 1, 20, dtype=torch.float64), None, {"ramp": "cubic"}, "ramp")])
def test_what_set_weight_refuses_and_why(weight, bias, kwargs, match) -> None:
    (w0, b0), = _weights(1, k=20)
    stream = variant(w0, b0, *VARIANTS[1], chunk_size=CHUNK, groups=2)
    stream.prepare(1)
    with pytest.raises(ValueError, match=match):
        stream.set_weight(weight, bias, **kwargs)
    x = _signal(40, seed=18)
    assert_close(stream_all(stream, x), causal(x, w0, b0, 1, 2))  # unchanged


def test_the_stream_of_a_module_takes_another_modules_weight() -> None:
    torch.manual_seed(0)
    make = {"in_channels": 2, "out_channels": 4, "kernel_size": 30, "groups": 2,
            "dtype": torch.float64}
    first, second = autoconv.Conv1d(**make), autoconv.Conv1d(**make)
    with autoconv.settings.override(mode="off"):
        stream = first.stream(CHUNK)
        x = _signal(160, seed=19)
        with torch.no_grad():
            actual = _run(stream, x, {80: (second.weight, second.bias, {"crossfade": 24})})
            old, new = (causal(x, m.weight, m.bias, 1, 2) for m in (first, second))
    assert_close(actual, _mix(old, new, 80, 24, "linear"))


def test_a_swap_stops_a_live_exploration_and_keeps_the_strategy(exploring) -> None:
    (w0, b0), (w1, b1) = _weights(2, k=700, seed=20)
    stream = autoconv.Conv1dStream(w0, b0, groups=2, chunk_size=64)
    x = _signal(64 * 6, seed=21)
    with torch.no_grad():
        head = torch.cat([stream(c) for c in x[..., :128].split(64, -1)], -1)
        assert stream._live is not None, "exploring the rivals"
        engine, choice = stream._engine, stream.choice
        stream.set_weight(w1, b1, crossfade=100)
        assert stream._live is None
        assert stream._engine is engine and stream.choice is choice
        tail = torch.cat([stream(c) for c in x[..., 128:].split(64, -1)], -1)
    old, new = (causal(x, w, b, 1, 2) for w, b in ((w0, b0), (w1, b1)))
    assert_close(torch.cat([head, tail], -1), _mix(old, new, 128, 100, "linear"))


@pytest.mark.parametrize("strategy,params_of", [
    ("partitioned", partitions(1)), ("partitioned", partitions(4)),
    ("nonuniform", schedule(1, 2, 8))], ids=["partitioned_x1", "partitioned_x4",
                                             "nonuniform"])
@pytest.mark.parametrize("in_channels,groups", [(2, 2), (2, 1)], ids=["depthwise", "dense"])
def test_no_allocation_per_chunk_during_or_after_a_crossfade(strategy, params_of,
                                                             in_channels, groups) -> None:
    weights = [(torch.randn(4, in_channels // groups, 300), torch.randn(4)) for _ in range(2)]
    choice = StreamChoice.make(get(strategy), params_of(8), source="fallback")
    stream = autoconv.Conv1dStream(*weights[0], groups=groups, chunk_size=8, choice=choice)
    x, out = torch.randn(2, in_channels, 8), torch.empty(2, 4, 8)
    short = out[..., :3]
    with torch.inference_mode():
        for _ in range(8):
            stream.stream(x, out=out)
        stream.set_weight(*weights[1], crossfade=100)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(16):  # the ramp, then the new weight alone
                stream.stream(x, out=out)
                stream.stream(x[..., :3], out=short)
    assert stream.crossfade_remaining == 0
    assert _allocations_outside_fft(prof) == []
