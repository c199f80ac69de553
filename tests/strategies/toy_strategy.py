"""A toy fourth strategy: one FFT of the whole signal at a power-of-two length.

It exists to prove that adding a strategy takes this one module and one registration
(``register(TOY)``): the tuner times it, the cost model prunes it, the predictor's features
describe it and the report draws it, with no other file touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies import (
    ConvPlan,
    SpectrumCache,
    Strategy,
    Work,
    overlap_add_plan,
    plan_work,
    spectral_supports,
)
from autoconv.strategies.plan import needed_length
from autoconv.strategies.spectral import spectral_call


def pow2_plan(signature: Signature) -> ConvPlan:
    """One frame of the next power of two that holds every sample the outputs need."""
    return overlap_add_plan(signature, 1 << (needed_length(signature) - 1).bit_length())


def fft_pow2(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
             stride: int | tuple[int] = 1, padding: PaddingArg = 0,
             dilation: int | tuple[int] = 1, groups: int = 1, *,
             spectrum_cache: SpectrumCache | None = None) -> torch.Tensor:
    """``F.conv1d`` through one power-of-two FFT."""
    return spectral_call(input, weight, bias, stride, padding, dilation, groups, pow2_plan,
                         spectrum_cache)


def pow2_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    return plan_work(signature, pow2_plan(signature))


#: Its registry entry (reddish purple, the Okabe-Ito hue the others do not use).
TOY = Strategy("fft_pow2", fft_pow2, supports=spectral_supports, work=pow2_work,
               takes_spectrum_cache=True, colour="#CC79A7")
