"""Every registered strategy returns what ``F.conv1d`` returns (shape, dtype and values)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoconv.strategies import Strategy

from .helpers import RTOL, Call, assert_close, conv_calls, make_call, reference


def run_all_params(strategy: Strategy, call: Call, **kwargs) -> list[torch.Tensor]:
    """The strategy's output for every parameter set its grid lists for the call."""
    return [strategy(*call.args, **params, **kwargs)
            for params in strategy.param_grid(call.signature())]


class TestParity:
    """One class, parametrized over every registered strategy (the scipy.signal style)."""

    @settings(max_examples=40)
    @given(call=conv_calls())
    def test_float64_matches_conv1d(self, strategy: Strategy, call: Call) -> None:
        ref = reference(call)
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64], call)

    @settings(max_examples=15)
    @given(call=conv_calls(dtype=torch.float32))
    def test_float32_matches_conv1d(self, strategy: Strategy, call: Call) -> None:
        ref = reference(call)
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float32], call)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_on_cpu_returns_input_dtype(self, strategy: Strategy,
                                             dtype: torch.dtype) -> None:
        call = make_call(2, 2, 3, 2, 80, 7, stride=2, padding=3, dilation=2, dtype=dtype)
        as32 = Call(call.x.float(), call.w.float(), call.b.float(), call.stride, call.padding,
                    call.dilation, call.groups)
        ref = reference(as32).to(dtype)
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[dtype])

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
    def test_under_cpu_autocast_returns_what_f_conv1d_returns(self, strategy: Strategy,
                                                             dtype: torch.dtype) -> None:
        call = make_call(2, 2, 3, 2, 80, 7, stride=2, padding=3, dilation=2,
                         dtype=torch.float32)
        with torch.autocast("cpu", dtype=dtype):
            ref = reference(call)
            outs = run_all_params(strategy, call)
        assert ref.dtype == dtype
        for out in outs:
            assert_close(out, ref, RTOL[dtype])

    @pytest.mark.parametrize("padding", ["same", "valid", 0, 5, (2,)])
    @pytest.mark.parametrize("kernel,dilation", [(4, 1), (5, 2), (6, 3), (1, 1)])
    def test_padding_forms(self, strategy: Strategy, padding, kernel: int,
                           dilation: int) -> None:
        call = make_call(2, 1, 3, 4, 37, kernel, padding=padding, dilation=dilation)
        ref = reference(call)
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64])

    @pytest.mark.parametrize("groups,cin,cout", [(1, 6, 5), (3, 2, 2), (6, 1, 1), (6, 1, 3)])
    @pytest.mark.parametrize("stride", [1, 2, 5])
    def test_groups_and_stride(self, strategy: Strategy, groups: int, cin: int, cout: int,
                               stride: int) -> None:
        call = make_call(3, groups, cin, cout, 64, 9, stride=stride, padding=4, dilation=2)
        ref = reference(call)
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64])

    def test_an_output_whose_taps_all_fall_on_padding(self, strategy: Strategy) -> None:
        # F.conv1d gives exactly 0; an FFT gives rounding noise of the whole signal's scale
        call = Call(torch.tensor([[1.5410, -0.2934]], dtype=torch.float64),
                    torch.tensor([[[-2.1788, 0.5684]]], dtype=torch.float64), None, 1, 1, 3, 1)
        ref = reference(call)
        assert ref.abs().max().item() == 0.0
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64], call)

    def test_unbatched(self, strategy: Strategy) -> None:
        call = make_call(None, 2, 2, 3, 50, 5, padding="same")
        ref = reference(call)
        assert ref.dim() == 2
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64])

    def test_kernel_as_long_as_padded_input(self, strategy: Strategy) -> None:
        call = make_call(2, 1, 2, 2, 30, 34, padding=2)
        ref = reference(call)
        assert ref.shape[-1] == 1
        for out in run_all_params(strategy, call):
            assert_close(out, ref, RTOL[torch.float64])

    def test_output_is_contiguous(self, strategy: Strategy) -> None:
        call = make_call(2, 1, 3, 3, 100, 7, stride=3, bias=False)
        for out in run_all_params(strategy, call):
            assert out.is_contiguous()

    @pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
    def test_no_grad_and_inference_mode(self, strategy: Strategy, mode) -> None:
        call = make_call(2, 2, 3, 2, 60, 5, padding=2)
        call.w.requires_grad_(True)
        ref = reference(call).detach()
        with mode():
            for out in run_all_params(strategy, call):
                assert not out.requires_grad
                assert_close(out, ref, RTOL[torch.float64])


@pytest.mark.parametrize("block", [3, 4, 7, 16, 100, 1000])
def test_overlap_add_any_block_at_least_the_kernel(block: int) -> None:
    from autoconv.strategies import overlap_add

    call = make_call(2, 1, 2, 3, 90, 3, stride=1, padding=1, dilation=1)
    assert_close(overlap_add(*call.args, block_size=block), reference(call), 1e-10)


@settings(max_examples=20)
@given(call=conv_calls(), data=st.data())
def test_overlap_add_random_block_sizes(call: Call, data: st.DataObject) -> None:
    from autoconv.strategies import overlap_add
    from autoconv.strategies.plan import phase_taps

    taps = phase_taps(call.signature())
    block = data.draw(st.integers(taps, taps + 80))
    # scaled by the call's magnitude: an output of exact zeros (every tap in the padding)
    # comes back from the FFT as rounding noise of the input's size
    assert_close(overlap_add(*call.args, block_size=block), reference(call), 1e-10, call)
