"""``autoconv.Conv1d.stream``: which modules stream, what their stream equals, and the
refusals, each naming its reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import autoconv
from autoconv.streaming import stream_of_module

from .helpers import assert_close, stream_all


def _module(**kwargs) -> autoconv.Conv1d:
    torch.manual_seed(0)
    arguments = {"in_channels": 4, "out_channels": 6, "kernel_size": 5, "groups": 2,
                     "dtype": torch.float64} | kwargs
    return autoconv.Conv1d(**arguments)


@pytest.fixture(autouse=True)
def _plain_selection():
    with autoconv.settings.override(mode="off"):
        yield


@pytest.mark.parametrize("dilation", [1, 3])
def test_a_left_padded_causal_layer_streams_as_itself(dilation) -> None:
    layer = _module(dilation=dilation)
    x = torch.randn(2, 4, 100, dtype=torch.float64)
    history = dilation * 4
    with torch.no_grad():
        expected = layer(F.pad(x, (history, 0)))
    assert_close(stream_all(layer.stream(16), x, seed=0), expected)


def test_a_pad_both_and_trim_layer_streams_as_its_first_outputs() -> None:
    layer = _module(padding=8, dilation=2)
    x = torch.randn(1, 4, 64, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)[..., :64]
    assert_close(stream_all(layer.stream(8), x), expected)


def test_a_plain_nn_conv1d_and_valid_padding_stream_too() -> None:
    torch.manual_seed(1)
    layer = nn.Conv1d(3, 3, 7, padding="valid", dtype=torch.float64)
    x = torch.randn(1, 3, 40, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(F.pad(x, (6, 0)))
    assert_close(stream_all(stream_of_module(layer, 10), x), expected)
    pointwise = _module(kernel_size=1, padding="same")  # no look-ahead at all
    assert pointwise.stream(4).history == 0


def test_a_parametrized_layer_streams_its_current_weight() -> None:
    layer = autoconv.patch(nn.utils.parametrizations.weight_norm(
        nn.Conv1d(2, 2, 3, dtype=torch.float64)))
    x = torch.randn(1, 2, 20, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(F.pad(x, (2, 0)))
    assert_close(stream_all(layer.stream(5), x), expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"stride": 2}, "stride 2 gives fewer outputs than inputs"),
    ({"padding": "same"}, "padding='same' makes each output depend on 2 later samples"),
    ({"padding": 1}, (r"padding=\(1,\) makes each output depend on 3 later samples.*"
                      r"padding=0.*padding=4")),
    ({"padding": 4, "padding_mode": "reflect"}, "padding_mode='reflect'"),
])
def test_layers_that_would_need_look_ahead_or_stride_are_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        _module(**kwargs).stream(8)


def test_only_conv1d_layers_stream() -> None:
    with pytest.raises(TypeError, match="only an nn.Conv1d can stream, not Linear"):
        stream_of_module(nn.Linear(2, 2), 8)
