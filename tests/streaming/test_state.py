"""A stream's state: no drift over 10,000 chunks, reset, flush, prepare, batch sizes, empty
chunks, ``out=``, and the inference contexts."""

from __future__ import annotations

import pytest
import torch

import autoconv

from .helpers import (
    VARIANT_IDS,
    VARIANTS,
    assert_close,
    causal,
    layout,
    partitions,
    stream_all,
    variant,
)


def _tensors(length: int, *, k: int = 24, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(2, 1, k, generator=generator, dtype=dtype) / k ** 0.5
    bias = torch.randn(2, generator=generator, dtype=dtype)
    x = torch.randn(1, 2, length, generator=generator, dtype=dtype)
    return x, w, bias


@pytest.mark.parametrize("strategy,params_of", VARIANTS[:3] + VARIANTS[4:],
                         ids=VARIANT_IDS[:3] + VARIANT_IDS[4:])
def test_no_drift_after_10000_chunks(strategy, params_of) -> None:
    chunk = 4
    x, w, bias = _tensors(10_000 * chunk)
    stream = variant(w, bias, strategy, params_of, chunk_size=chunk, groups=2)
    out = torch.empty(1, 2, chunk)
    outputs = torch.empty(1, 2, x.shape[-1])
    with torch.inference_mode():
        for i in range(10_000):
            stream.stream(x[..., i * chunk:(i + 1) * chunk], out=out)
            outputs[..., i * chunk:(i + 1) * chunk] = out
    expected = causal(x.double(), w.double(), bias.double(), 1, 2).float()
    assert_close(outputs, expected)
    assert_close(outputs[..., -1000:], expected[..., -1000:])  # the end as good as the start


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_reset_starts_a_new_signal(strategy, params_of) -> None:
    x, w, bias = _tensors(90, dtype=torch.float64)
    stream = variant(w, bias, strategy, params_of, chunk_size=8, groups=2)
    stream_all(stream, torch.randn(1, 2, 37, dtype=torch.float64), seed=3)
    stream.reset()
    assert_close(stream_all(stream, x, seed=4), causal(x, w, bias, 1, 2))


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_flush_is_the_tail_as_if_zeros_were_fed(strategy, params_of) -> None:
    x, w, bias = _tensors(45, dtype=torch.float64)
    stream = variant(w, bias, strategy, params_of, chunk_size=8, groups=2)
    head = stream_all(stream, x, seed=5)
    tail = stream.flush(30)  # longer than a chunk, not a multiple of it
    padded = torch.cat([x, x.new_zeros(1, 2, 30 + 7)], -1)
    expected = causal(padded, w, bias, 1, 2)
    assert_close(torch.cat([head, tail], -1), expected[..., :75])
    assert_close(stream.stream(x.new_zeros(1, 2, 7)), expected[..., 75:])  # and it goes on
    assert stream.flush(0).shape == (1, 2, 0)


def test_flush_of_an_unbatched_stream_is_unbatched_and_needs_a_batch_size() -> None:
    _, w, bias = _tensors(1)
    stream = autoconv.Conv1dStream(w, bias, groups=2, chunk_size=8)
    with pytest.raises(RuntimeError, match="batch size is unknown"):
        stream.flush(4)
    with autoconv.settings.override(mode="off"):
        stream.stream(torch.zeros(2, 8))
    assert stream.flush(5).shape == (2, 5)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        stream.flush(-1)


@pytest.mark.parametrize("strategy,params_of", VARIANTS[:2], ids=VARIANT_IDS[:2])
def test_the_batch_size_is_fixed_until_reset(strategy, params_of) -> None:
    x, w, bias = _tensors(40, dtype=torch.float64)
    stream = variant(w, bias, strategy, params_of, chunk_size=8, groups=2)
    stream.stream(x[..., :8])
    with pytest.raises(RuntimeError, match=r"batch 1, this chunk 3; call reset\(\)"):
        stream.stream(x.expand(3, -1, -1)[..., 8:16])
    stream.reset()
    three = x.expand(3, -1, -1).contiguous()
    assert_close(stream_all(stream, three), causal(three, w, bias, 1, 2))
    with pytest.raises(RuntimeError, match="reset"):
        stream.prepare(1)


def test_prepare_chooses_before_the_first_chunk_and_restarts_the_signal() -> None:
    x, w, bias = _tensors(24, dtype=torch.float64)
    stream = autoconv.Conv1dStream(w, bias, groups=2, chunk_size=8)
    assert stream.choice is None and stream.latency == 0 and stream.history == 23
    with autoconv.settings.override(mode="off"):
        choice = stream.prepare(1)
    assert choice.source == "off" and stream.choice is choice
    stream.stream(torch.ones(1, 2, 8, dtype=torch.float64))
    assert stream.prepare(1) is choice  # same batch: the signal starts again
    assert_close(stream_all(stream, x), causal(x, w, bias, 1, 2))
    assert "stateful_direct" in repr(stream)


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_empty_chunks_and_out(strategy, params_of) -> None:
    x, w, bias = _tensors(24, dtype=torch.float64)
    stream = variant(w, bias, strategy, params_of, chunk_size=8, groups=2)
    assert stream.stream(x[..., :0]).shape == (1, 2, 0)
    out = torch.empty(1, 2, 8, dtype=torch.float64)
    pieces = []
    for start in range(0, 24, 8):
        assert stream.stream(x[..., start:start + 8], out=out) is out
        pieces.append(out.clone())
    assert_close(torch.cat(pieces, -1), causal(x, w, bias, 1, 2))
    with pytest.raises(RuntimeError, match="out must be"):
        stream.stream(x[..., :4], out=out)


def test_inference_mode_and_no_grad_and_back() -> None:
    x, w, bias = _tensors(48, dtype=torch.float64)
    w.requires_grad_(True)
    stream = variant(w, bias, "partitioned", partitions(2), chunk_size=16, groups=2)
    with torch.inference_mode():
        first = stream.stream(x[..., :16])  # the buffers are made here
    with torch.no_grad():
        second = stream.stream(x[..., 16:32])
    third = stream.stream(x[..., 32:])  # grad mode, weight requiring grad: still inference
    assert not third.requires_grad
    assert_close(torch.cat([first, second, third], -1), causal(x, w.detach(), bias, 1, 2))


def test_the_weight_is_copied_when_the_stream_is_made() -> None:
    x, w, bias = _tensors(16, dtype=torch.float64)
    stream = variant(w, bias, "stateful_direct", layout(), chunk_size=8, groups=2)
    expected = causal(x, w, bias, 1, 2)
    w.mul_(2)
    bias.zero_()
    assert_close(stream_all(stream, x), expected)
