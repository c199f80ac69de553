"""The cost model: exact operation counts from plans, and sane predictions with fixed constants."""

from __future__ import annotations

import math

import pytest
import torch

from autoconv.signature import Signature
from autoconv.strategies import fft_plan, get
from autoconv.tuning.cost_model import CalibratedCostModel, CostConstants, direct_macs, fft_counts

CPU = torch.device("cpu")
CONSTANTS = CostConstants(direct_mac_s=3e-11, narrow_mac_s=1e-9, depthwise_mac_s=2e-10,
                          fft_unit_s=1e-10, complex_mac_s=1e-10, elementwise_s=4e-10,
                          call_s=1e-5, matmul_mac_s=2e-11, copy_byte_s=1e-10)


def sig(batch, channels, length, kernel, *, out=None, groups=1, stride=1) -> Signature:
    return Signature(batch, channels, out or channels, length, kernel, stride, 0, 0, 1, groups,
                     "float32", "cpu", False)


def model() -> CalibratedCostModel:
    return CalibratedCostModel({"cpu": CONSTANTS})


def test_direct_macs_counts_every_multiply_add() -> None:
    s = sig(2, 4, 100, 5, out=6, groups=2)
    assert direct_macs(s) == 2 * 6 * 96 * 2 * 5


def test_fft_counts_count_transforms_and_mixing() -> None:
    s = sig(2, 3, 1000, 11, out=5)
    plan = fft_plan(s)
    work = fft_counts(s, plan)
    transforms = 2 * 3 + 5 * 3 + 2 * 5
    # one frame: 990 outputs + 10 taps - 1 = 1000 samples, and 1000 = 2^3 * 5^3 is 7-smooth
    assert (plan.fft_length, plan.frames, plan.bins) == (1000, 1, 501)
    assert work.complex_macs == 2 * plan.bins * 5 * 3
    assert work.fft_units == pytest.approx(transforms * 1000 * math.log2(1000))  # N log2 N each
    assert work.elements == (2 * 3 + 2 * 5) * 1000 + 5 * 3 * plan.bins


def test_long_kernels_favour_fft_and_short_kernels_favour_direct() -> None:
    m = model()
    long = sig(2, 1, 96000, 8191)
    short = sig(1, 1, 64, 3)
    assert m.predict(long, get("fft"), {}, CPU) * 8 < m.predict(long, get("direct"), {}, CPU)
    assert m.predict(short, get("direct"), {}, CPU) < m.predict(short, get("fft"), {}, CPU)


def test_gradients_cost_more_and_parameters_a_strategy_cannot_run_are_unjudged() -> None:
    m = model()
    s = sig(1, 4, 1000, 9)
    with_grad = Signature(**{**s.as_dict(), "requires_grad": True})
    # forward plus backward: the backward is two convolutions of the forward's size
    for name in ("direct", "fft"):
        assert m.predict(with_grad, get(name), {}, CPU) == pytest.approx(
            3 * m.predict(s, get(name), {}, CPU))
    assert m.predict(s, get("fft"), {"mystery": 1}, CPU) is None  # not a parameter of fft
    assert m.predict(s, get("overlap_add"), {"block_size": 4}, CPU) is None  # block < kernel


def test_calibration_measures_positive_constants() -> None:
    constants = CalibratedCostModel().constants(CPU)
    assert all(value > 0 for value in vars(constants).values())
