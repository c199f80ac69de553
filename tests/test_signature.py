"""Signature.of: normalisation and F.conv1d's errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.signature import Signature, resolve_padding


def test_batched_signature_fields() -> None:
    x = torch.randn(4, 6, 100)
    w = torch.randn(8, 3, 5)
    sig = Signature.of(x, w, torch.randn(8), stride=2, padding=3, dilation=2, groups=2)
    assert sig == Signature(4, 6, 8, 100, 5, 2, 3, 3, 2, 2, "float32", "cpu", False)
    assert sig.output_length == F.conv1d(x, w, None, 2, 3, 2, 2).shape[-1]
    assert hash(sig) == hash(Signature(**sig.as_dict()))


def test_unbatched_is_batch_one() -> None:
    sig = Signature.of(torch.randn(3, 50), torch.randn(2, 3, 4))
    assert sig == Signature(1, 3, 2, 50, 4, 1, 0, 0, 1, 1, "float32", "cpu", False)


@pytest.mark.parametrize("kernel,dilation", [(4, 1), (5, 1), (4, 3), (6, 2), (1, 1)])
def test_same_padding_matches_torch(kernel: int, dilation: int) -> None:
    left, right = resolve_padding("same", kernel, dilation, 1)
    x = torch.randn(1, 1, 20, dtype=torch.float64)
    w = torch.randn(1, 1, kernel, dtype=torch.float64)
    expected = F.conv1d(x, w, padding="same", dilation=dilation)
    got = F.conv1d(F.pad(x, (left, right)), w, dilation=dilation)
    torch.testing.assert_close(got, expected)


def test_requires_grad_only_when_grad_enabled() -> None:
    x = torch.randn(1, 1, 10, requires_grad=True)
    w = torch.randn(1, 1, 3)
    assert Signature.of(x, w).requires_grad
    with torch.no_grad():
        assert not Signature.of(x, w).requires_grad


@pytest.mark.parametrize("kwargs,x_shape,w_shape", [
    ({"stride": 0}, (1, 1, 10), (1, 1, 3)),
    ({"padding": "foo"}, (1, 1, 10), (1, 1, 3)),
    ({"padding": "same", "stride": 2}, (1, 1, 10), (1, 1, 3)),
    ({"padding": -1}, (1, 1, 10), (1, 1, 3)),
    ({}, (1, 1, 10), (1, 1, 20)),
    ({}, (1, 1, 10), (1, 2, 3)),
    ({}, (2, 2, 3, 4), (1, 2, 3)),
    ({"groups": 2}, (1, 4, 10), (3, 2, 3)),
    ({"dilation": 0}, (1, 1, 10), (1, 1, 3)),
])
def test_errors_match_f_conv1d(kwargs: dict, x_shape: tuple, w_shape: tuple) -> None:
    x, w = torch.randn(*x_shape), torch.randn(*w_shape)
    with pytest.raises(RuntimeError) as torch_error:
        F.conv1d(x, w, **kwargs)
    with pytest.raises(RuntimeError) as ours:
        Signature.of(x, w, **kwargs)
    assert type(ours.value) is type(torch_error.value)


def test_degenerate_calls_are_answered_by_f_conv1d_itself() -> None:
    from autoconv.signature import signature_or_answer

    x, w = torch.randn(0, 4, 10), torch.randn(5, 4, 3)
    assert Signature.of(x, w).is_degenerate
    answer = signature_or_answer(x, w)
    assert isinstance(answer, torch.Tensor) and answer.shape == (0, 5, 8)
    assert not Signature.of(torch.randn(1, 4, 10), w).is_degenerate
    assert isinstance(signature_or_answer(torch.randn(1, 4, 10), w), Signature)
    with pytest.raises(RuntimeError, match="expected weight to be at least 1 at dimension 0"):
        signature_or_answer(torch.randn(1, 4, 10), torch.randn(0, 4, 3))
