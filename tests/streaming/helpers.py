"""Shared helpers of the streaming tests: the causal reference, chunk schedules, and a stream
forced onto one strategy."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import autoconv
from autoconv.choice import StreamChoice
from autoconv.strategies.streaming import get

#: Largest error relative to the reference's magnitude, per dtype.
RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def causal(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, dilation: int = 1,
           groups: int = 1) -> torch.Tensor:
    """``F.conv1d`` of ``x`` left-padded with ``dilation * (K - 1)`` zeros: what a stream's
    concatenated outputs must equal."""
    history = dilation * (w.shape[-1] - 1)
    return F.conv1d(F.pad(x, (history, 0)), w, b, 1, 0, dilation, groups)


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Within :data:`RTOL` of ``expected``'s largest magnitude, and the same shape."""
    assert actual.shape == expected.shape
    scale = expected.abs().max().item() or 1.0
    error = (actual - expected).abs().max().item() / scale
    assert error <= RTOL[expected.dtype], f"relative error {error:.3g}"


def lengths(total: int, chunk_size: int, *, seed: int | None = None) -> Iterator[int]:
    """Chunk lengths adding up to ``total``: all ``chunk_size`` (the last one shorter), or,
    with a seed, random lengths from 1 to ``chunk_size``."""
    rng = random.Random(seed)
    done = 0
    while done < total:
        n = chunk_size if seed is None else rng.randint(1, chunk_size)
        n = min(n, total - done)
        yield n
        done += n


def stream_all(stream: autoconv.Conv1dStream, x: torch.Tensor, *,
               seed: int | None = None) -> torch.Tensor:
    """Feed ``x`` to ``stream`` in chunks (see :func:`lengths`) and concatenate the outputs."""
    outputs, start = [], 0
    for n in lengths(x.shape[-1], stream.chunk_size, seed=seed):
        outputs.append(stream.stream(x[..., start:start + n]))
        start += n
    return torch.cat(outputs, dim=-1)


def forced(weight: torch.Tensor, bias: torch.Tensor | None, *, strategy: str,
           params: dict | None = None, **kwargs) -> autoconv.Conv1dStream:
    """A stream that runs ``strategy`` with ``params``, whatever the selector would say."""
    choice = StreamChoice.make(get(strategy), params or {}, source="fallback")
    return autoconv.Conv1dStream(weight, bias, choice=choice, **kwargs)


def partitions(multiple: int) -> Callable[[int], dict]:
    """The parameters of a partition of ``multiple`` chunks, given the chunk size."""
    return lambda chunk: {"partition": multiple * chunk}


def layout(**params: int) -> Callable[[int], dict]:
    """Fixed parameters (a direct layout), whatever the chunk size."""
    return lambda chunk: dict(params)


def schedule(first: int, growth: int, largest: int) -> Callable[[int], dict]:
    """The parameters of a non-uniform schedule whose first and largest partitions are
    ``first`` and ``largest`` chunks, given the chunk size."""
    return lambda chunk: {"first_partition": first * chunk, "partition_growth": growth,
                          "largest_partition": largest * chunk}


#: (strategy, parameters given the chunk size) of every streaming candidate kind; the
#: non-uniform schedules cut the test kernels into several stages.
VARIANTS = [("stateful_direct", layout()), ("partitioned", partitions(1)),
            ("partitioned", partitions(2)), ("partitioned", partitions(4)),
            ("stateful_direct", layout(time_major=1)),
            ("nonuniform", schedule(1, 2, 8)), ("nonuniform", schedule(2, 4, 16))]
VARIANT_IDS = ["direct", "partitioned_x1", "partitioned_x2", "partitioned_x4",
               "direct_time_major", "nonuniform_x1_g2", "nonuniform_x2_g4"]


def variant(weight: torch.Tensor, bias: torch.Tensor | None, strategy: str,
            params_of: Callable[[int], dict], *, chunk_size: int,
            **kwargs) -> autoconv.Conv1dStream:
    """The stream of one entry of :data:`VARIANTS`."""
    return forced(weight, bias, strategy=strategy, params=params_of(chunk_size),
                  chunk_size=chunk_size, **kwargs)
