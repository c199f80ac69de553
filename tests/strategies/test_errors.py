"""Bad arguments raise what ``F.conv1d`` raises (type and message); what it accepts, even
with zero sizes, gets its result."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

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
    with pytest.raises(expected.type) as raised:
        strategy(*args, **kwargs)
    assert str(raised.value) == str(expected.value)


@st.composite
def any_call(draw: st.DrawFn) -> tuple:
    """Arguments of a conv1d call, as often wrong as right: zero sizes, wrong ranks, bad
    strides, paddings, dilations and groups (of wrong types too), bias and dtype mismatches."""
    sizes = st.sampled_from([0, 1, 2, 3, 4])
    batch, channels, length = draw(sizes), draw(sizes), draw(st.sampled_from([0, 1, 3, 8]))
    out, per_group, kernel = draw(sizes), draw(st.sampled_from([0, 1, 2])), draw(sizes)
    rank = draw(st.sampled_from([3, 3, 2, 4]))
    shape = {2: [channels, length], 3: [batch, channels, length], 4: [1, batch, channels, length]}
    weight_shape = draw(st.sampled_from([[out, per_group, kernel], [out, per_group],
                                         [out, per_group, kernel, 1]]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    bias = draw(st.sampled_from([None, "ok", "size", "dtype"]))
    return (torch.randn(shape[rank]), torch.randn(weight_shape, dtype=dtype),
            None if bias is None else torch.randn(out + (bias == "size"),
                                                  dtype=torch.float64 if bias == "dtype"
                                                  else dtype),
            draw(st.sampled_from([1, 2, 0, -1, (1,), (1, 1), 1.5, True])),
            draw(st.sampled_from([0, 1, -1, "same", "valid", "full", (1,), (1, 1), 0.0])),
            draw(st.sampled_from([1, 2, 0, -1, (2,), 1.0])),
            draw(st.sampled_from([1, 2, 3, 0, -1, 1.0, True])))


def _answer(fn, args: tuple):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args)
    except Exception as error:  # noqa: BLE001  (the exception is what is compared)
        return error


def _assert_same_answer(expected, answer) -> None:
    """The same exception (type and message), or the same tensor."""
    if isinstance(expected, Exception):
        assert (type(answer), str(answer)) == (type(expected), str(expected))
    else:
        assert isinstance(answer, torch.Tensor), answer
        assert (answer.shape, answer.dtype) == (expected.shape, expected.dtype)
        torch.testing.assert_close(answer, expected, atol=1e-4, rtol=1e-4)


@settings(max_examples=300)
@given(args=any_call())
def test_any_call_gets_f_conv1ds_answer_from_every_strategy(strategy: Strategy, args) -> None:
    _assert_same_answer(_answer(F.conv1d, args), _answer(strategy, args))


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


@pytest.fixture(scope="module")
def tuning_in_a_private_database(tmp_path_factory: pytest.TempPathFactory):
    import autoconv
    from autoconv.runtime import dispatcher

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'tuning.sqlite3'}"
    with autoconv.settings.override(db_url=url, budget_s=0.05, mode="tune"):
        yield autoconv.conv1d
    dispatcher.reset()


@settings(max_examples=150)
@given(args=any_call())
def test_any_call_gets_f_conv1ds_answer_from_autoconv_conv1d(tuning_in_a_private_database,
                                                             args) -> None:
    _assert_same_answer(_answer(F.conv1d, args), _answer(tuning_in_a_private_database, args))
