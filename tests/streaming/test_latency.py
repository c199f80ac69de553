"""``Conv1dStream(latency=)``: outputs late by the latency, exactly ``F.conv1d`` delayed, for
every strategy and every block the latency allows; partial chunks, reset, flush, a swap; the
signature and decisions per latency; the grid, checks and periods of the blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from autoconv.strategies.streaming import all_stream_strategies, get
from autoconv.strategies.streaming.latency import BLOCK

from .helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    causal,
    forced,
    stream_all,
    variant,
)
from .test_set_weight import _mix, _run, _weights

CHUNK = 8


def _tensors(length: int, *, k: int = 300, seed: int = 0, dtype=torch.float64):
    """A signal of ``length`` samples and one (weight, bias) pair of :func:`_weights`."""
    ((w, b),) = _weights(1, k=k, seed=seed, dtype=dtype)
    generator = torch.Generator().manual_seed(seed + 1000)
    return torch.randn(1, 2, length, generator=generator, dtype=dtype), w, b


def delayed(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, latency: int
            ) -> torch.Tensor:
    """The causal convolution, ``latency`` samples late, zeros first: what a stream of that
    latency gives."""
    return F.pad(causal(x, w, b, 1, 2), (latency, 0))[..., :x.shape[-1]]


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("latency", [1, 8, 13, 40])
@pytest.mark.parametrize("seed", [None, 4])
def test_outputs_are_conv1d_late_by_the_latency(strategy, params_of, latency, seed) -> None:
    x, w, b = _tensors(400)
    stream = variant(w, b, strategy, params_of, chunk_size=CHUNK, groups=2, latency=latency)
    actual = stream_all(stream, x, seed=seed)
    assert_close(actual, delayed(x, w, b, latency))
    assert not actual[..., :latency].any()
    assert stream.latency == latency


#: Blocks larger than the chunk (the parameters of the strategy's engine for the block).
BLOCKS = [("stateful_direct", {BLOCK: 16}), ("stateful_direct", {BLOCK: 32}),
          ("stateful_direct", {BLOCK: 32, "time_major": 1}),
          ("partitioned", {BLOCK: 32, "partition": 32}),
          ("partitioned", {BLOCK: 16, "partition": 64}),
          ("nonuniform", {BLOCK: 16, "first_partition": 16, "partition_growth": 2,
                          "largest_partition": 64})]


@pytest.mark.parametrize("strategy,params", BLOCKS,
                         ids=[f"{s}_{p[BLOCK]}_{i}" for i, (s, p) in enumerate(BLOCKS)])
@pytest.mark.parametrize("seed", [None, 5, 6])
def test_blocks_larger_than_the_chunk_are_exact_with_any_chunks(strategy, params,
                                                                 seed) -> None:
    latency = params[BLOCK] - CHUNK + 3
    x, w, b = _tensors(500, seed=1)
    stream = forced(w, b, strategy=strategy, params=params, chunk_size=CHUNK, groups=2,
                    latency=latency)
    assert_close(stream_all(stream, x, seed=seed), delayed(x, w, b, latency))
    stream.reset()
    x2 = x.flip(-1)
    assert_close(stream_all(stream, x2, seed=seed), delayed(x2, w, b, latency))


@pytest.mark.parametrize("strategy,params_of", VARIANTS[:2] + VARIANTS[5:6],
                         ids=VARIANT_IDS[:2] + VARIANT_IDS[5:6])
def test_flush_gives_the_delayed_samples_and_the_tail(strategy, params_of) -> None:
    latency, k = 20, 30
    x, w, b = _tensors(45, k=k, seed=2)
    stream = variant(w, b, strategy, params_of, chunk_size=CHUNK, groups=2, latency=latency)
    head = stream_all(stream, x, seed=7)
    tail = stream.flush(latency + k - 1)
    padded = torch.cat([x, x.new_zeros(1, 2, latency + k - 1)], -1)
    assert_close(torch.cat([head, tail], -1), delayed(padded, w, b, latency))


def test_reset_starts_a_new_signal_with_blocks_waiting() -> None:
    x, w, b = _tensors(200, k=40, seed=3)
    stream = forced(w, b, strategy="partitioned", params={BLOCK: 32, "partition": 32},
                    chunk_size=CHUNK, groups=2, latency=30)
    stream_all(stream, x[..., :77], seed=1)  # a block under way, outputs waiting
    stream.reset()
    assert_close(stream_all(stream, x, seed=2), delayed(x, w, b, 30))


@pytest.mark.parametrize("strategy,params", [("stateful_direct", {}),
                                             ("partitioned", {BLOCK: 32, "partition": 32}),
                                             ("nonuniform", BLOCKS[-1][1])],
                         ids=["direct", "partitioned_block", "nonuniform_block"])
def test_a_swap_with_latency_ramps_the_next_chunks_outputs_latency_samples_later(
        strategy, params) -> None:
    latency = 30
    x, w0, b0 = _tensors(600, seed=4)
    _, w1, b1 = _tensors(1, seed=5)
    stream = forced(w0, b0, strategy=strategy, params=params, chunk_size=CHUNK, groups=2,
                    latency=latency)
    actual = _run(stream, x, {200: (w1, b1, {"crossfade": 50})}, seed=None)
    old, new = delayed(x, w0, b0, latency), delayed(x, w1, b1, latency)
    assert_close(actual, _mix(old, new, 200 + latency, 50, "linear"))


def test_the_signature_records_the_latency_as_left_padding() -> None:
    w = torch.empty(2, 1, 40)
    plain = Signature.of_stream(1, w, dilation=2, groups=2, chunk_size=64)
    late = Signature.of_stream(1, w, dilation=2, groups=2, chunk_size=64, latency=256)
    assert (plain.latency, late.latency) == (0, 256)
    assert late.padding_left == plain.padding_left + 256 == 78 + 256
    assert "latency 256" in late.short() and "latency" not in plain.short()
    from autoconv.storage.store import signature_record
    assert signature_record(late).key != signature_record(plain).key
    stream = autoconv.Conv1dStream(w, groups=2, dilation=2, chunk_size=64, latency=256)
    assert stream.signature(1) == late and "latency=256" in repr(stream)


def test_the_grid_offers_the_blocks_the_latency_allows() -> None:
    w = torch.empty(2, 1, 48_000)
    chunk = 64
    for latency, blocks in ((0, set()), (63, set()), (64, {128}), (1024, {512, 1024})):
        signature = Signature.of_stream(1, w, dilation=1, groups=2, chunk_size=chunk,
                                        latency=latency)
        for strategy in all_stream_strategies():
            grid = strategy.param_grid(signature)
            assert {p[BLOCK] for p in grid if BLOCK in p} <= blocks
            for params in grid:
                strategy.validate(signature, params)
                period = strategy.period(signature, params)
                assert period * chunk > latency  # a cycle sees outputs that are not zeros
        partitioned = get("partitioned").param_grid(signature)
        assert {p.get(BLOCK) for p in partitioned} - {None} == blocks


@pytest.mark.parametrize("params,latency,match", [
    ({BLOCK: 16}, 0, "latency of 8"), ({BLOCK: 32}, 16, "latency of 24"),
    ({BLOCK: 24}, 100, "power-of-two"), ({BLOCK: 8}, 100, "latency_block"),
    ({BLOCK: 16, "partition": 24}, 100, "not a multiple of the chunk size 16")])
def test_a_stored_block_the_latency_does_not_allow_is_refused(params, latency, match) -> None:
    signature = Signature.of_stream(1, torch.empty(2, 1, 400), dilation=1, groups=2,
                                    chunk_size=CHUNK, latency=latency)
    with pytest.raises(ValueError, match=match):
        get("partitioned").validate(signature, params)


def test_a_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency must be an int >= 0"):
        autoconv.Conv1dStream(torch.randn(1, 1, 4), chunk_size=8, latency=-1)


@pytest.mark.usefixtures("fresh_autoconv")
def test_a_stream_with_latency_is_tuned_and_stored_apart() -> None:
    torch.manual_seed(0)
    w, b = torch.randn(2, 1, 700) / 26, torch.randn(2)
    x = torch.randn(1, 2, 1024)
    with autoconv.settings.override(budget_s=2.0):
        late = autoconv.Conv1dStream(w, b, groups=2, chunk_size=32, latency=96)
        assert_close(stream_all(late, x, seed=0), delayed(x, w, b, 96))
        assert late.choice.source == "measured"
        now = autoconv.Conv1dStream(w, b, groups=2, chunk_size=32)
        assert_close(stream_all(now, x, seed=0), causal(x, w, b, 1, 2))
    db = dispatcher.selector.store.db
    keys = {m.signature.key for _, m in db.measurements(streams=True)}
    assert len(keys) == 2
    blocks = {m.params.get(BLOCK) for _, m in db.measurements(streams=True)}
    assert {64, 128} & blocks  # the blocks the latency allows were measured
    dispatcher.reset()  # as a new process would: the stored decision, checked, read back
    again = autoconv.Conv1dStream(w, b, groups=2, chunk_size=32, latency=96)
    assert again.prepare(1).source == "database"
    assert again.choice.params == late.choice.params



@pytest.mark.parametrize("latency,total", [(0, 24), (5, 24), (30, 24), (30, 40)])
def test_the_tuners_reference_is_the_stream_late_by_its_latency(latency, total) -> None:
    from autoconv.tuning.stream_trial import last_outputs
    x, w, b = _tensors(total, k=20, seed=6)
    signature = Signature.of_stream(1, w, dilation=1, groups=2, chunk_size=CHUNK,
                                    latency=latency)
    expected = delayed(x, w, b, latency)[..., -CHUNK:]
    assert_close(last_outputs(x, w, b, signature, CHUNK), expected)
