"""Every streaming strategy, through ``Conv1dStream``, equals ``F.conv1d`` on the whole signal
left-padded with ``dilation * (K - 1)`` zeros: full chunks, random shorter chunks at any
time, every kind of layer, float32 and float64."""

from __future__ import annotations

import pytest
import torch

from autoconv.strategies.streaming import UniformPartitioned, all_stream_strategies

from .helpers import VARIANT_IDS, VARIANTS, assert_close, causal, stream_all, variant

#: (batch, in, out, kernel, dilation, groups, chunk, length): depthwise reverb-like, dense,
#: grouped with a channel multiplier, dilated, 1x1, a kernel shorter than the chunk, one
#: many times longer, one input to several outputs.
LAYERS = [
    (1, 2, 2, 300, 1, 2, 16, 700),
    (2, 3, 4, 9, 1, 1, 8, 200),
    (2, 4, 8, 5, 1, 2, 8, 150),
    (1, 2, 4, 7, 3, 2, 8, 200),
    (2, 3, 3, 1, 1, 1, 8, 50),
    (1, 4, 4, 3, 1, 4, 16, 100),
    (1, 1, 1, 129, 2, 1, 8, 600),
    (1, 1, 3, 40, 1, 1, 8, 150),
]
LAYER_IDS = ["depthwise_long", "dense", "grouped_x2", "dilated", "pointwise", "short",
             "dilated_long", "one_to_three"]


def _tensors(b, cin, cout, k, groups, length, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin // groups, k, generator=generator, dtype=dtype)
    bias = torch.randn(cout, generator=generator, dtype=dtype)
    x = torch.randn(b, cin, length, generator=generator, dtype=dtype)
    return x, w, bias


def test_every_registered_streaming_strategy_is_in_these_suites() -> None:
    assert {s.name for s in all_stream_strategies()} == {name for name, _ in VARIANTS}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layer", LAYERS, ids=LAYER_IDS)
@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_full_and_random_chunks_match_conv1d(strategy, params_of, layer, dtype) -> None:
    b, cin, cout, k, dilation, groups, chunk, length = layer
    x, w, bias = _tensors(b, cin, cout, k, groups, length, dtype)
    expected = causal(x, w, bias, dilation, groups)
    for seed in (None, 1, 2):
        stream = variant(w, bias, strategy, params_of, chunk_size=chunk, dilation=dilation,
                         groups=groups)
        assert_close(stream_all(stream, x, seed=seed), expected)


@pytest.mark.parametrize("strategy,params_of", VARIANTS, ids=VARIANT_IDS)
def test_without_bias_and_unbatched(strategy, params_of) -> None:
    x, w, _ = _tensors(1, 2, 2, 50, 2, 120, torch.float64)
    stream = variant(w, None, strategy, params_of, chunk_size=8, groups=2)
    outputs = [stream.stream(x[0, :, i:i + 8]) for i in range(0, 120, 8)]
    assert outputs[0].shape == (2, 8)
    assert_close(torch.cat(outputs, -1), causal(x, w, None, 1, 2)[0])


@pytest.mark.parametrize("multiple", [1, 2, 4])
@pytest.mark.parametrize("layer", LAYERS[:4], ids=LAYER_IDS[:4])
def test_static_state_the_cuda_graph_form_matches_too(layer, multiple) -> None:
    # The form CUDA uses (the delay line shifts by copies), checked here on the CPU.
    b, cin, cout, k, dilation, groups, chunk, length = layer
    x, w, bias = _tensors(b, cin, cout, k, groups, length, torch.float64)
    engine = UniformPartitioned(w, bias, dilation=dilation, groups=groups, batch=b,
                                chunk_size=chunk, partition=multiple * chunk,
                                static_state=True)
    outputs, start = [], 0
    for n in [chunk, 3, chunk, 1, chunk, chunk] * 100:
        if start >= length:
            break
        n = min(n, length - start)
        outputs.append(engine.step(x[..., start:start + n]))
        start += n
    assert_close(torch.cat(outputs, -1), causal(x, w, bias, dilation, groups))
