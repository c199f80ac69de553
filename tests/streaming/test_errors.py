"""Mistakes a user can make with a stream get a clear message and the exception type
``F.conv1d`` or the standard library would raise."""

from __future__ import annotations

import pytest
import torch

import autoconv

from .helpers import VARIANT_IDS, VARIANTS, variant

W = torch.randn(4, 2, 5)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"weight": torch.randn(4, 5)}, ValueError, r"weight must be \(out_channels"),
    ({"weight": torch.ones(4, 2, 5, dtype=torch.int64)}, TypeError, "floating point"),
    ({"groups": 3}, ValueError, "does not suit groups=3"),
    ({"weight": torch.randn(4, 2, 0)}, ValueError, "no dimension may be 0"),
    ({"groups": 0}, ValueError, "groups must be at least 1"),
    ({"dilation": 0}, ValueError, "dilation must be at least 1"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be at least 1"),
    ({"chunk_size": 8.0}, TypeError, "chunk_size must be an int"),
    ({"bias": torch.randn(3)}, ValueError, r"bias must be \(4,\)"),
    ({"bias": torch.randn(4, dtype=torch.float64)}, ValueError, "dtype and device"),
])
def test_bad_arguments_are_refused_when_the_stream_is_made(kwargs, error, match) -> None:
    arguments = {"weight": W, "chunk_size": 8} | kwargs
    with pytest.raises(error, match=match):
        autoconv.Conv1dStream(arguments.pop("weight"), **arguments)


@pytest.mark.parametrize("strategy,params_of", VARIANTS[:2], ids=VARIANT_IDS[:2])
def test_bad_chunks_are_refused(strategy, params_of) -> None:
    stream = variant(W, None, strategy, params_of, chunk_size=8, groups=2)
    with pytest.raises(ValueError, match="a chunk of 9 samples is longer than the stream's "
                                         "chunk_size 8"):
        stream.stream(torch.randn(1, 4, 9))
    with pytest.raises(RuntimeError, match="expected 4 input channels, got a chunk of 3"):
        stream.stream(torch.randn(1, 3, 8))
    with pytest.raises(RuntimeError, match=r"expected a chunk \(batch, 4, n\)"):
        stream.stream(torch.randn(8))
    with pytest.raises(RuntimeError, match="the chunk is torch.float64 on cpu, the stream "
                                           "torch.float32 on cpu"):
        stream.stream(torch.randn(1, 4, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="on meta"):
        stream.stream(torch.randn(1, 4, 8, device="meta"))
    with pytest.raises(RuntimeError, match="inference-only"):
        stream.stream(torch.randn(1, 4, 8, requires_grad=True))
    with torch.no_grad():  # outside grad mode a chunk requiring grad is just data
        assert stream.stream(torch.randn(1, 4, 8, requires_grad=True)).shape == (1, 4, 8)
    with pytest.raises(RuntimeError, match="out must be"):
        stream.stream(torch.randn(1, 4, 8), out=torch.empty(1, 4, 8, dtype=torch.float64))
