"""Non-uniformly partitioned streaming: exact after 10,000 chunks of a long kernel, partial
chunks anywhere, reset and flush, every kind of layer, its plan, its slots, its parameter
checks and its place among the candidates. Nothing here is timed. (The parity, state and
error suites run it too: it is among ``helpers.VARIANTS``.)"""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F

from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies.streaming import (
    NonUniformPlan,
    all_stream_strategies,
    get,
)
from autoconv.strategies.streaming.nonuniform_plan import MAX_PERIOD
from autoconv.strategies.streaming.stage_slots import StageWork, schedule
from autoconv.tuning.candidates import enumerate_candidates
from autoconv.tuning.stream_selector import StreamSelector

from .helpers import RTOL, assert_close, causal, forced, stream_all
from .helpers import schedule as schedule_of

CPU = torch.device("cpu")
NONUNIFORM = get("nonuniform")


def _signature(kernel: int, chunk: int, *, batch: int = 1, channels: int = 2,
               dtype: torch.dtype = torch.float32, device: str = "cpu") -> Signature:
    weight = torch.empty(channels, 1, kernel, dtype=dtype)
    signature = Signature.of_stream(batch, weight, dilation=1, groups=channels,
                                    chunk_size=chunk)
    return dataclasses.replace(signature, device=device)


def _last_chunks_match(dtype: torch.dtype, rtol: float) -> None:
    """10,000 chunks of 64 through a 20k-tap stereo response; the last four chunks against
    ``F.conv1d`` on what they see."""
    chunk, chunks, kernel = 64, 10_000, 20_000
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(2, 1, kernel, generator=generator, dtype=dtype) / kernel ** 0.5
    bias = torch.randn(2, generator=generator, dtype=dtype)
    x = torch.randn(1, 2, chunk * chunks, generator=generator, dtype=dtype)
    [params, *_] = NONUNIFORM.param_grid(_signature(kernel, chunk, dtype=dtype))
    engine = NONUNIFORM.build(w, bias, dilation=1, groups=2, batch=1, chunk_size=chunk,
                              **params)
    out = torch.empty(1, 2, chunk, dtype=dtype)
    last = []
    with torch.inference_mode():
        for i in range(chunks):
            engine.step(x[..., i * chunk:(i + 1) * chunk], out)
            if i >= chunks - 4:
                last.append(out.clone())
    seen = x[..., -(4 * chunk + kernel - 1):]
    expected = F.conv1d(seen.double(), w.double(), bias.double(), groups=2)
    error = (torch.cat(last, -1).double() - expected).abs().max() / expected.abs().max()
    assert error <= rtol, f"relative error {error:.3g}"


def test_exact_after_10000_chunks_of_a_long_kernel_float64() -> None:
    _last_chunks_match(torch.float64, RTOL[torch.float64])


def test_within_float32_tolerance_after_10000_chunks() -> None:
    _last_chunks_match(torch.float32, RTOL[torch.float32])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_chunks_at_random_positions(seed) -> None:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 1, 3000, generator=generator, dtype=torch.float64)
    bias = torch.randn(2, generator=generator, dtype=torch.float64)
    x = torch.randn(1, 2, 9000, generator=generator, dtype=torch.float64)
    stream = forced(w, bias, strategy="nonuniform", params=schedule_of(1, 2, 32)(16),
                    chunk_size=16, groups=2)
    assert len(NonUniformPlan.of(3000, 16, 16, 2, 512).stages) == 6
    outputs, start, rng = [], 0, random.Random(seed)
    while start < x.shape[-1]:  # full chunks, then runs of short ones, then full again
        n = 16 if rng.random() < 0.5 else rng.randint(0, 15)
        n = min(n, x.shape[-1] - start)
        outputs.append(stream.stream(x[..., start:start + n]))
        start += n
    assert_close(torch.cat(outputs, -1), causal(x, w, bias, 1, 2))


def test_reset_and_flush_of_a_long_kernel() -> None:
    generator = torch.Generator().manual_seed(3)
    w = torch.randn(2, 1, 2000, generator=generator, dtype=torch.float64)
    bias = torch.randn(2, generator=generator, dtype=torch.float64)
    x = torch.randn(1, 2, 1500, generator=generator, dtype=torch.float64)
    stream = forced(w, bias, strategy="nonuniform", params=schedule_of(2, 4, 32)(8),
                    chunk_size=8, groups=2)
    stream_all(stream, torch.randn(1, 2, 777, dtype=torch.float64), seed=1)
    stream.reset()
    head = stream_all(stream, x, seed=2)
    tail = stream.flush(2500)  # the whole decay, across every stage
    expected = causal(torch.cat([x, x.new_zeros(1, 2, 2500)], -1), w, bias, 1, 2)
    assert_close(torch.cat([head, tail], -1), expected)


#: (batch, in, out, kernel, dilation, groups): depthwise stereo, dense, grouped with a
#: channel multiplier, one input to three outputs, dilated.
LAYERS = [(2, 2, 2, 900, 1, 2), (2, 3, 4, 700, 1, 1), (1, 4, 8, 600, 1, 2),
          (1, 1, 3, 800, 1, 1), (2, 2, 4, 300, 3, 2)]


@pytest.mark.parametrize("layer", LAYERS, ids=["depthwise", "dense", "grouped", "one_to_three",
                                               "dilated"])
def test_every_kind_of_layer_with_several_stages(layer) -> None:
    b, cin, cout, k, dilation, groups = layer
    generator = torch.Generator().manual_seed(4)
    w = torch.randn(cout, cin // groups, k, generator=generator, dtype=torch.float64)
    bias = torch.randn(cout, generator=generator, dtype=torch.float64)
    x = torch.randn(b, cin, 2500, generator=generator, dtype=torch.float64)
    for growth in (2, 8):
        stream = forced(w, bias, strategy="nonuniform", params=schedule_of(1, growth, 16)(8),
                        chunk_size=8, dilation=dilation, groups=groups)
        assert_close(stream_all(stream, x, seed=growth), causal(x, w, bias, dilation, groups))
        span = dilation * (k - 1) + 1
        assert len(NonUniformPlan.of(span, 8, 8, growth, 128).stages) >= 2


@pytest.mark.parametrize("span,first,growth,largest", [
    (480_000, 256, 8, 16384), (144_000, 128, 4, 8192), (5000, 64, 2, 64), (100, 64, 4, 1024),
    (129, 64, 2, 1024)])
def test_the_plan_covers_every_tap_once_and_each_stage_starts_at_twice_its_partition(
        span, first, growth, largest) -> None:
    plan = NonUniformPlan.of(span, 64, first, growth, largest)
    assert plan.head_taps == min(span, 2 * first)
    assert plan.head_size >= plan.head_taps + 63
    covered = plan.head_taps
    for before, stage in zip((None, *plan.stages), plan.stages, strict=False):
        assert stage.offset == covered == 2 * stage.partition
        assert before is None or stage.partition == min(growth * before.partition, largest)
        covered += stage.count * stage.partition
    assert covered >= span and (not plan.stages or covered - span < plan.stages[-1].partition)
    assert plan.period == plan.largest // 64


def test_the_slots_keep_each_stage_in_order_and_spread_the_largest() -> None:
    works = [StageWork(p // 64, 2 * p, 2, 2, n, 16.0 * (p + 1))
             for p, n in ((256, 14), (2048, 14), (16384, 28))]
    slots = schedule(works)
    for work, stage in zip(works, slots, strict=True):
        assert len(stage) == work.slots
        ffts = [i for i, s in enumerate(stage) if s.fft]
        iffts = [i for i, s in enumerate(stage) if s.ifft]
        macs = [(i, s.mac) for i, s in enumerate(stage) if s.mac]
        assert len(ffts) == len(iffts) == 1 and ffts[0] <= macs[0][0] <= macs[-1][0] <= iffts[0]
        ranges = [m for _, m in macs]  # every partition once, in order
        assert [a for a, _ in ranges] == [0] + [b for _, b in ranges[:-1]]
        assert ranges[-1][1] == work.partitions
    largest = slots[-1]
    busy = [i for i, s in enumerate(largest) if s.fft or s.ifft]
    assert len(busy) == 2 and not largest[busy[0]].ifft  # its transforms in two chunks
    small = {i % works[0].slots for i, s in enumerate(largest) if s.fft or s.ifft}
    first_small = next(i for i, s in enumerate(slots[0]) if s.fft)
    assert first_small not in small  # not on the chunk where the smallest stage works


def test_grid_periods_and_flops() -> None:
    long = _signature(480_000, 64)
    grid = NONUNIFORM.param_grid(long)
    assert 3 <= len(grid) <= 8
    for params in grid:
        NONUNIFORM.validate(long, params)
        period = NONUNIFORM.period(long, params)
        assert period & (period - 1) == 0 and period <= MAX_PERIOD
        assert len(NonUniformPlan.for_signature(long, params).stages) >= 2
    partitioned = get("partitioned")
    best_uniform = min(partitioned.flops(long, p) for p in partitioned.param_grid(long))
    assert min(NONUNIFORM.flops(long, p) for p in grid) < best_uniform / 2
    assert NONUNIFORM.param_grid(_signature(3000, 64)) == []  # short: uniform does as well
    assert NONUNIFORM.param_grid(_signature(480_000, 64, dtype=torch.float16)) == []
    assert not NONUNIFORM.supports(_signature(480_000, 64, device="cuda"))
    odd = NONUNIFORM.param_grid(_signature(480_000, 40))
    assert odd and all(p["first_partition"] % 40 == 0
                       and p["largest_partition"] % p["first_partition"] == 0 for p in odd)


@pytest.mark.parametrize("params,error,match", [
    ({"partition": 64}, ValueError, "no parameter 'partition'"),
    ({"first_partition": 96}, ValueError, "power-of-two multiple"),
    ({"first_partition": 32}, ValueError, "outside"),
    ({"first_partition": 64.0}, TypeError, "must be an int"),
    ({"first_partition": 256, "partition_growth": 3}, ValueError, "partition_growth=3"),
    ({"first_partition": 256, "largest_partition": 768}, ValueError, "times a power of two"),
    ({"first_partition": 256, "largest_partition": 131072}, ValueError, "outside"),
])
def test_stored_parameters_are_checked(params, error, match) -> None:
    with pytest.raises(error, match=match):
        NONUNIFORM.validate(_signature(480_000, 64), params)
    with pytest.raises(ValueError, match=f"{MAX_PERIOD} chunks"):
        NONUNIFORM.validate(_signature(480_000, 32),
                            {"first_partition": 32, "largest_partition": 65536})


def test_cuda_streams_and_huge_spectra_are_refused() -> None:
    params = {"first_partition": 256, "partition_growth": 8, "largest_partition": 16384}
    with pytest.raises(ValueError, match="on cuda"):
        NONUNIFORM.validate(_signature(480_000, 64, device="cuda"), params)
    with pytest.raises(ValueError, match="bytes"):
        NONUNIFORM.validate(_signature(480_000, 64, batch=64, channels=64), params)


def test_the_prior_picks_it_for_a_long_response_and_not_for_a_short_one() -> None:
    selector = StreamSelector(settings=Settings(mode="predict"))
    long, short = _signature(480_000, 64), _signature(48_000, 1024)
    pick = selector.prior(long, enumerate_candidates(all_stream_strategies(), long))
    assert pick.strategy == "nonuniform"
    pick = selector.prior(short, enumerate_candidates(all_stream_strategies(), short))
    assert pick.strategy == "partitioned"
