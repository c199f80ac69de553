"""The ``overlap_add`` strategy: block convolution with a tunable FFT block size.

Implemented as overlap-save: the signal is cut into overlapping frames of ``block_size``
samples, each frame is correlated with the kernel by one FFT of that length, and the valid
outputs of the frames are concatenated. Frames are views of the padded input (no copy), and
the frames of all batch rows form the rows of one matrix product per frequency, so small blocks
turn a few long transforms into many short ones with a better-shaped channel mix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.fast_sizes import fast_size
from autoconv.strategies.plan import (
    ConvPlan,
    needed_length,
    overlap_add_plan,
    phase_taps,
    plan_work,
)
from autoconv.strategies.registry import check_int, check_names
from autoconv.strategies.spectral import spectral_call
from autoconv.strategies.spectrum_cache import SpectrumCache
from autoconv.strategies.work import Work

#: Most block sizes :func:`block_size_grid` proposes.
MAX_GRID = 6
#: The smallest block worth timing: shorter FFTs cost more per sample in call overhead than
#: they save (in the predictor's training grid, ``autoconv.prediction.grid``, shorter blocks
#: never won).
MIN_BLOCK = 16


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def default_block_size(signature: Signature) -> int:
    """A block size that is good without tuning: about four times the kernel, a power of two
    (at least :data:`MIN_BLOCK`), never longer than the whole signal needs."""
    return min(_next_pow2(max(4 * phase_taps(signature), MIN_BLOCK)),
               largest_block_size(signature))


def largest_block_size(signature: Signature) -> int:
    """The longest block worth running: one that covers the whole signal (longer ones only
    transform more zeros)."""
    return fast_size(needed_length(signature))


def block_size_grid(signature: Signature) -> list[dict[str, Any]]:
    """The block sizes worth timing for ``signature``: ``[{"block_size": n}, ...]``.

    Powers of two and three times powers of two (the fastest FFT lengths, a factor of about 1.4
    apart) from twice the kernel's taps per phase (at least :data:`MIN_BLOCK`) up to, not
    including, the single block that covers the whole signal (that is the ``fft`` strategy);
    the :data:`MAX_GRID` smallest, as blocks of a few kernel lengths are the ones that win.
    When the signal is too short for two blocks, the one block that covers it.
    """
    taps = phase_taps(signature)
    whole = largest_block_size(signature)
    low = max(2 * taps, MIN_BLOCK)
    sizes: list[int] = []
    n = _next_pow2(low) // 2
    while len(sizes) < MAX_GRID + 2 and n < whole:
        sizes.extend(size for size in (n, 3 * n // 2) if low <= size < whole)
        n *= 2
    return [{"block_size": n} for n in sorted(sizes)[:MAX_GRID] or [whole]]


def overlap_add(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                dilation: int | tuple[int] = 1, groups: int = 1, *,
                block_size: int | None = None,
                spectrum_cache: SpectrumCache | None = None) -> torch.Tensor:
    """``F.conv1d`` (cross-correlation) by blocks of ``block_size``-point FFTs (overlap-save).

    Args:
        input, weight, bias, stride, padding, dilation, groups: as ``F.conv1d``.
        block_size: FFT length of one block; at least the kernel's taps per phase
            (``ceil((dilation * (kernel_size - 1) + 1) / stride)``). ``None`` picks
            :func:`default_block_size`; :func:`block_size_grid` lists the ones worth tuning.
        spectrum_cache: reuse the weight's spectrum across calls while the weight is unchanged.

    Raises:
        RuntimeError: bad conv arguments, as ``F.conv1d`` raises them.
        ValueError: a ``block_size`` shorter than the kernel.
        TypeError: a ``block_size`` that is not an int.
        NotImplementedError: a non-floating or complex dtype.
    """
    return spectral_call(input, weight, bias, stride, padding, dilation, groups,
                         lambda signature: _plan(signature, block_size), spectrum_cache)


def _plan(signature: Signature, block_size: int | None) -> ConvPlan:
    return overlap_add_plan(signature, default_block_size(signature) if block_size is None
                            else block_size)


def overlap_add_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The work of one ``overlap_add`` call: the plan of its block size (default when none).

    Raises:
        ValueError, TypeError: a block size the strategy cannot run (see
            :func:`~autoconv.strategies.plan.overlap_add_plan`).
    """
    return plan_work(signature, _plan(signature, params.get("block_size")))


def check_overlap_add_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """Only ``block_size``: an int from the kernel's taps per phase to
    :func:`largest_block_size`.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, {"block_size"}, "overlap_add")
    check_int(params, "block_size", phase_taps(signature), largest_block_size(signature))
