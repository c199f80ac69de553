"""Streams on CUDA: exact for every strategy, tuned, and replayed from one captured CUDA
graph (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

import autoconv

from .helpers import VARIANT_IDS, VARIANTS, assert_close, causal, stream_all, variant

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


def _tensors(dtype, length=400, k=100):
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(2, 1, k, generator=generator, dtype=dtype) / k ** 0.5
    b = torch.randn(2, generator=generator, dtype=dtype)
    x = torch.randn(2, 2, length, generator=generator, dtype=dtype)
    return x.to(CUDA), w.to(CUDA), b.to(CUDA)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_matches_conv1d_on_cuda(strategy, params_of, dtype) -> None:
    x, w, b = _tensors(dtype)
    stream = variant(w, b, strategy, params_of, chunk_size=16, groups=2)
    for seed in (None, 1):
        stream.reset()
        out = stream_all(stream, x, seed=seed)
        assert out.device.type == "cuda"
        assert_close(out, causal(x, w, b, 1, 2))


@pytest.mark.usefixtures("fresh_autoconv")
def test_a_stream_is_tuned_on_cuda() -> None:
    x, w, b = _tensors(torch.float32)
    stream = autoconv.Conv1dStream(w, b, groups=2, chunk_size=16)
    assert stream.prepare(2).source == "measured"
    assert_close(stream_all(stream, x), causal(x, w, b, 1, 2))


@pytest.mark.parametrize("strategy,params_of", VARIANTS[:2] + VARIANTS[4:5],
                         ids=VARIANT_IDS[:2] + VARIANT_IDS[4:5])
def test_one_captured_chunk_replays_the_stream(strategy, params_of) -> None:
    x, w, b = _tensors(torch.float32, length=320)
    chunk = 16
    stream = variant(w, b, strategy, params_of, chunk_size=chunk, groups=2)
    stream.prepare(2)
    x_static = torch.zeros(2, 2, chunk, device=CUDA)
    y_static = torch.empty(2, 2, chunk, device=CUDA)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):  # warm up: plans, workspaces
            stream.stream(x_static, out=y_static)
    torch.cuda.current_stream().wait_stream(side)
    stream.reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        stream.stream(x_static, out=y_static)
    outputs = []
    for start in range(0, x.shape[-1], chunk):
        x_static.copy_(x[..., start:start + chunk])
        graph.replay()
        outputs.append(y_static.clone())
    assert_close(torch.cat(outputs, -1), causal(x, w, b, 1, 2))


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_a_swap_on_cuda_is_the_two_stream_mix(strategy, params_of) -> None:
    x, w, b = _tensors(torch.float64)
    w1, b1 = torch.flip(w, (-1,)), -b
    stream = variant(w, b, strategy, params_of, chunk_size=16, groups=2)
    first = stream_all(stream, x[..., :96])
    stream.set_weight(w1, b1, crossfade=40)
    rest = stream_all(stream, x[..., 96:], seed=2)
    old, new = causal(x, w, b, 1, 2), causal(x, w1, b1, 1, 2)
    ramp = torch.arange(1, 41, dtype=torch.float64, device=CUDA) / 41
    expected = new.clone()
    expected[..., :96] = old[..., :96]
    expected[..., 96:136] = old[..., 96:136] * (1 - ramp) + new[..., 96:136] * ramp
    assert_close(torch.cat([first, rest], -1), expected)
