"""The ``fft`` strategy: one real FFT of the whole (padded) signal per channel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.plan import ConvPlan, fft_plan, plan_work
from autoconv.strategies.spectral import spectral_call
from autoconv.strategies.spectrum_cache import SpectrumCache
from autoconv.strategies.work import Work


def fft(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
        stride: int | tuple[int] = 1, padding: PaddingArg = 0,
        dilation: int | tuple[int] = 1, groups: int = 1, *,
        spectrum_cache: SpectrumCache | None = None) -> torch.Tensor:
    """``F.conv1d`` (cross-correlation) through one FFT of the whole signal.

    The FFT length is the smallest 7-smooth size that holds the samples the output needs
    (:func:`~autoconv.strategies.plan.fft_plan`). Strides are computed by a polyphase split,
    not by discarding outputs. Accepts and returns exactly what ``F.conv1d`` does.

    Args:
        input, weight, bias, stride, padding, dilation, groups: as ``F.conv1d``.
        spectrum_cache: reuse the weight's spectrum across calls while the weight is unchanged
            (only where no gradient flows to the weight). The FFT length is then one of five
            per octave (``fft_plan(coarse=True)``): calls of nearby lengths share a spectrum.

    Raises:
        RuntimeError: bad arguments, as ``F.conv1d`` raises them.
        NotImplementedError: a non-floating or complex dtype.
    """
    plan_of = fft_plan if spectrum_cache is None else _coarse_plan
    return spectral_call(input, weight, bias, stride, padding, dilation, groups, plan_of,
                         spectrum_cache)


def _coarse_plan(signature: Signature) -> ConvPlan:
    return fft_plan(signature, coarse=True)


def fft_param_grid(signature: Signature) -> list[dict[str, Any]]:
    """The ``fft`` strategy has no parameter worth tuning: its length is fixed by the signal."""
    return [{}]


def fft_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The work of one ``fft`` call: its single-frame plan (the coarse one of a layer keeping
    its spectra, which runs with a spectrum cache)."""
    return plan_work(signature, fft_plan(signature, coarse=signature.weight_reused))
