"""``direct``: F.conv1d itself, or F.conv1d on an input padded beforehand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autoconv.choice import Choice
from autoconv.signature import Signature
from autoconv.strategies import get
from autoconv.strategies.direct_conv import padded_first

from .test_errors import BAD_CALLS


def test_padding_first_is_offered_only_when_the_call_pads() -> None:
    x, w = torch.randn(1, 2, 50), torch.randn(3, 2, 5)
    grid = get("direct").param_grid
    assert grid(Signature.of(x, w)) == [{}]
    assert grid(Signature.of(x, w, padding="same")) == [{}, {"pre_pad": 1}]
    assert grid(Signature.of(x, w, padding=1)) == [{}, {"pre_pad": 1}]


def test_without_parameters_a_choice_runs_f_conv1d_itself() -> None:
    assert Choice.make("direct", {}, source="measured").run is F.conv1d
    assert Choice.make("direct", {"pre_pad": 1}, source="measured").run is padded_first


@pytest.mark.parametrize("kwargs", [
    dict(padding="same", dilation=3),  # 4 taps at dilation 3 span 10: padded 4 left, 5 right
    dict(padding=7, stride=3, dilation=3),  # the last samples of the right padding unused
    dict(padding=2, groups=2),
    dict(padding="valid"),
])
def test_padding_first_equals_f_conv1d_with_gradients(kwargs: dict) -> None:
    torch.manual_seed(0)
    groups = kwargs.get("groups", 1)
    x = torch.randn(2, 4, 61, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    expected = F.conv1d(x, w, b, **kwargs)
    got = padded_first(x, w, b, **kwargs)
    torch.testing.assert_close(got, expected)
    grads = torch.autograd.grad(got.square().sum(), (x, w, b))
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, w, b))
    for mine, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(mine, theirs)


def test_unbatched_input() -> None:
    x, w = torch.randn(3, 40), torch.randn(5, 3, 7)
    torch.testing.assert_close(padded_first(x, w, padding=6), F.conv1d(x, w, padding=6))


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_padding_first_raises_what_f_conv1d_raises(name: str) -> None:
    args, kwargs = BAD_CALLS[name]
    with pytest.raises(Exception) as expected:
        F.conv1d(*args, **kwargs)
    with pytest.raises(expected.type):
        get("direct")(*args, pre_pad=1, **kwargs)
