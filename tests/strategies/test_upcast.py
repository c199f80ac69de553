"""``upcast``: a half-precision call computed by ``F.conv1d`` in float32, gradients included."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.strategies import get, upcast
from autoconv.tuning.cost_model import CalibratedCostModel, CostConstants
from tests.conftest import STEADY_CPU_CONSTANTS

from .helpers import RTOL, Call, assert_close, make_call, reference

HALF = [torch.bfloat16, torch.float16]
#: batch, groups, in/out channels per group, length, kernel, stride, padding, dilation
CASES = [
    (2, 1, 3, 4, 60, 7, 1, 3, 1),
    (1, 2, 2, 3, 45, 5, 2, "valid", 2),
    (2, 1, 2, 2, 40, 4, 1, "same", 1),  # asymmetric padding
    (None, 1, 3, 2, 30, 3, 1, 1, 1),  # unbatched
    (2, 4, 1, 1, 50, 31, 1, 15, 1),  # depthwise, long padding (where pre_pad pays)
]


def _as_float32(call: Call) -> Call:
    b = None if call.b is None else call.b.float()
    return Call(call.x.float(), call.w.float(), b, call.stride, call.padding, call.dilation,
                call.groups)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("pre_pad", [0, 1])
def test_half_values_are_the_float32_sums_rounded_once(case: tuple, dtype: torch.dtype,
                                                       pre_pad: int) -> None:
    call = make_call(*case, dtype=dtype)
    out = upcast(*call.args, pre_pad=pre_pad)
    assert out.dtype == dtype and out.is_contiguous()
    # the float32 sums of the same half values, rounded once: what oneDNN's half kernels
    # compute too (they accumulate in float32), up to the order of the sums
    exact = reference(_as_float32(call)).to(dtype)
    assert_close(out, exact, RTOL[torch.float32], call)
    assert_close(out, reference(call), RTOL[dtype], call)


@pytest.mark.parametrize("dtype", HALF)
def test_gradients_come_back_in_each_tensors_dtype(dtype: torch.dtype) -> None:
    call = make_call(2, 2, 3, 2, 48, 5, 1, 2, 2, dtype=dtype)
    grads = []
    for fn in (F.conv1d, upcast):
        leaves = [t.detach().clone().requires_grad_(True) for t in (call.x, call.w, call.b)]
        out = fn(*leaves, *call.args[3:])
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out))
        grads.append([t.grad for t in leaves])
    for mine, theirs in zip(grads[1], grads[0], strict=True):
        assert mine.dtype == theirs.dtype == dtype
        assert_close(mine, theirs, RTOL[dtype])


def test_gradients_equal_the_float32_gradients_rounded() -> None:
    call = make_call(2, 1, 3, 4, 40, 3, 1, 1, 1, dtype=torch.bfloat16)
    leaves = [t.detach().clone().requires_grad_(True) for t in (call.x, call.w, call.b)]
    upcast(*leaves, *call.args[3:]).sum().backward()
    exact = [t.detach().float().requires_grad_(True) for t in (call.x, call.w, call.b)]
    F.conv1d(*exact, *call.args[3:]).sum().backward()
    for mine, theirs in zip(leaves, exact, strict=True):
        assert_close(mine.grad, theirs.grad.to(torch.bfloat16), RTOL[torch.float32])


def test_under_cpu_autocast_float32_parameters_get_float32_gradients() -> None:
    call = make_call(2, 1, 3, 4, 60, 7, 1, 3, 1, dtype=torch.float32)
    grads = []
    for fn in (F.conv1d, upcast):
        leaves = [t.detach().clone().requires_grad_(True) for t in (call.x, call.w, call.b)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(*leaves, *call.args[3:])
        assert out.dtype == torch.bfloat16
        out.float().square().sum().backward()
        grads.append([t.grad for t in leaves])
    for mine, theirs in zip(grads[1], grads[0], strict=True):
        assert mine.dtype == theirs.dtype == torch.float32
        assert_close(mine, theirs, RTOL[torch.bfloat16])


@pytest.mark.parametrize("dtype,expected", [(torch.bfloat16, True), (torch.float16, True),
                                            (torch.float32, False), (torch.float64, False)])
def test_offered_for_half_precision_only(dtype: torch.dtype, expected: bool) -> None:
    x, w = torch.zeros(2, 4, 64, dtype=dtype), torch.zeros(8, 4, 3, dtype=dtype)
    assert get("upcast").supports(Signature.of(x, w)) is expected


def test_other_calls_get_f_conv1ds_own_answer_or_error() -> None:
    call = make_call(2, 1, 3, 2, 40, 5, padding=2, dtype=torch.float32)
    assert upcast(*call.args).equal(reference(call))
    mixed = make_call(2, 1, 3, 2, 40, 5, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError) as theirs:
        F.conv1d(mixed.x, mixed.w.float())
    with pytest.raises(RuntimeError) as ours:
        upcast(mixed.x, mixed.w.float())
    assert str(ours.value) == str(theirs.value)


def test_work_is_directs_in_float32_plus_the_conversions() -> None:
    call = make_call(2, 1, 3, 4, 60, 7, 1, 3, 1, dtype=torch.bfloat16)
    s = call.signature()
    for params in get("upcast").param_grid(s):
        ours, direct = get("upcast").work(s, params), get("direct").work(s, params)
        # direct runs its multiply-adds in bfloat16, upcast in float32
        assert ours["half_direct_macs"] == 0 and direct["direct_macs"] == 0
        assert ours["direct_macs"] == direct["half_direct_macs"] > 0
        converted = 2 * 3 * 60 + 4 * 3 * 7 + 2 * 4 * s.output_length
        assert ours["elements"] == direct["elements"] + converted
        assert ours["calls"] == direct["calls"] + 3


def test_the_cost_model_prices_it_below_a_slow_half_precision_direct() -> None:
    # constants of a CPU without half kernels (this one's: a bfloat16 dense multiply-add 38x
    # the float32 one), so that the tuner times upcast first instead of running out of
    # budget on F.conv1d in bfloat16 (as it did on HiFi-GAN's K=7 layer: 0.9 s a call)
    steady = CostConstants(**STEADY_CPU_CONSTANTS)
    slow_half = dataclasses.replace(steady, half_direct_mac_s=38 * steady.direct_mac_s)
    model = CalibratedCostModel({"cpu": slow_half})
    s = make_call(8, 1, 256, 256, 256, 7, 1, 3, 1, dtype=torch.bfloat16).signature()
    cpu = torch.device("cpu")
    direct = model.predict(s, get("direct"), {}, cpu)
    ours = model.predict(s, get("upcast"), {}, cpu)
    assert ours < direct / 10
    # where half precision is as fast as float32 (or unmeasured), upcast costs a little more
    same = CalibratedCostModel({"cpu": steady})
    assert same.predict(s, get("direct"), {}, cpu) < same.predict(s, get("upcast"), {}, cpu)
