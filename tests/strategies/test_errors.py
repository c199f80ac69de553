"""Bad arguments raise the exception type ``F.conv1d`` raises (or a clearer one)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.strategies import Strategy, get, overlap_add

x3 = torch.randn(2, 4, 20)
w3 = torch.randn(6, 2, 3)

BAD_CALLS = {
    "input rank 1": ((torch.randn(20), w3), {}),
    "input rank 4": ((torch.randn(1, 2, 4, 20), w3), {}),
    "weight rank 2": ((x3, torch.randn(6, 4)), {}),
    "channel mismatch": ((x3, torch.randn(6, 3, 3)), {}),
    "groups mismatch": ((x3, w3), {"groups": 4}),
    "out channels not divisible": ((x3, torch.randn(5, 2, 3)), {"groups": 2}),
    "kernel longer than padded input": ((x3, torch.randn(6, 4, 23)), {"padding": 1}),
    "dilated kernel too long": ((x3, torch.randn(6, 4, 8)), {"dilation": 3}),
    "stride 0": ((x3, torch.randn(6, 4, 3)), {"stride": 0}),
    "negative padding": ((x3, torch.randn(6, 4, 3)), {"padding": -1}),
    "unknown padding string": ((x3, torch.randn(6, 4, 3)), {"padding": "full"}),
    "same with stride": ((x3, torch.randn(6, 4, 3)), {"padding": "same", "stride": 2}),
    "bias size": ((x3, torch.randn(6, 4, 3), torch.randn(5)), {}),
    "dtype mismatch": ((x3, torch.randn(6, 4, 3, dtype=torch.float64)), {}),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_same_exception_type_as_conv1d(strategy: Strategy, name: str) -> None:
    args, kwargs = BAD_CALLS[name]
    with pytest.raises(Exception) as expected:
        F.conv1d(*args, **kwargs)
    with pytest.raises(expected.type):
        strategy(*args, **kwargs)


@pytest.mark.parametrize("name", ["fft", "overlap_add"])
def test_integer_dtype_is_refused_clearly(name: str) -> None:
    x = torch.ones(1, 1, 8, dtype=torch.int64)
    with pytest.raises(NotImplementedError, match="floating"):
        get(name)(x, torch.ones(1, 1, 3, dtype=torch.int64))
    assert not get(name).supports(_signature(x))


def _signature(x: torch.Tensor):
    from autoconv.signature import Signature

    return Signature.of(x, torch.ones(1, 1, 3, dtype=x.dtype))


@pytest.mark.parametrize("block", [2, 0, -8])
def test_block_size_shorter_than_kernel(block: int) -> None:
    with pytest.raises(ValueError, match="block_size"):
        overlap_add(x3, torch.randn(6, 4, 3), block_size=block)


def test_block_size_must_be_int() -> None:
    with pytest.raises(TypeError, match="int"):
        overlap_add(x3, torch.randn(6, 4, 3), block_size=64.0)
