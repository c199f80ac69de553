"""Relative error of a conv1d result against float64 ``F.conv1d``, within a time budget.

The error of an output is ``max |output - reference| / max |reference|`` where the reference
is ``F.conv1d`` run in float64 on the same (float64-cast) inputs. A long-kernel ``F.conv1d``
takes seconds even in float32 (2.88 s for the depthwise 2048-tap workload in
``benchmarks/selection-cpu.md``), so when the whole float64 reference would not fit the
budget it is computed on a deterministic sample of the
output instead: regions of (batch element, block of groups, window of output positions), first
and last batch, first and last groups, start / end / middle windows, each computed exactly by
float64 ``F.conv1d`` on the input slice it depends on. A sampled reference says so
(``complete`` is False) and the benchmark table marks its errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoconv.signature import Signature

_WINDOW = 1024
_GROUP_BLOCK = 8


@dataclass(frozen=True)
class Region:
    """A block of the output: batch, output-channel and output-position slices."""

    batch: slice
    channels: slice
    positions: slice

    def of(self, output: torch.Tensor) -> torch.Tensor:
        """This region of ``output`` (a ``(batch, channels, positions)`` tensor)."""
        return output[self.batch, self.channels, self.positions]


@dataclass
class Reference:
    """float64 ``F.conv1d`` values on some regions of the output (all of it if ``complete``)."""

    regions: list[tuple[Region, torch.Tensor]]
    complete: bool

    def error(self, output: torch.Tensor) -> float:
        """``max |output - reference| / max |reference|`` over the reference's regions.

        Raises:
            ValueError: ``output`` does not have the reference's shape.
        """
        worst = scale = 0.0
        for region, expected in self.regions:
            got = region.of(output)
            if got.shape != expected.shape:
                raise ValueError(f"output shape {tuple(output.shape)} does not match F.conv1d's")
            worst = max(worst, (got.double() - expected).abs().max().item())
            scale = max(scale, expected.abs().max().item())
        return worst / scale if scale > 0 else worst


class _RegionConv:
    """Computes float64 ``F.conv1d`` on regions of one call's output."""

    def __init__(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                 sig: Signature) -> None:
        self.x = F.pad(x, (sig.padding_left, sig.padding_right)).double()
        self.w, self.b, self.sig = w.double(), None if b is None else b.double(), sig
        self.in_per_group = sig.in_channels // sig.groups
        self.out_per_group = sig.out_channels // sig.groups

    def __call__(self, batch: slice, groups: slice, positions: slice
                 ) -> tuple[Region, torch.Tensor]:
        sig = self.sig
        first = positions.start * sig.stride
        last = (positions.stop - 1) * sig.stride + sig.span
        channels = slice(groups.start * self.out_per_group, groups.stop * self.out_per_group)
        x = self.x[batch, groups.start * self.in_per_group:groups.stop * self.in_per_group,
                   first:last]
        bias = None if self.b is None else self.b[channels]
        value = F.conv1d(x, self.w[channels], bias, sig.stride, 0, sig.dilation,
                         groups.stop - groups.start)
        return Region(batch, channels, positions), value


def _sample_regions(sig: Signature) -> list[tuple[slice, slice, slice]]:
    """Candidate regions, most informative first: (batch, groups, positions) slices."""
    out_length = sig.output_length
    window = min(out_length, _WINDOW)
    block = min(sig.groups, _GROUP_BLOCK)
    batches = [slice(0, 1)] + ([slice(sig.batch - 1, sig.batch)] if sig.batch > 1 else [])
    groups = [slice(0, block)] + (
        [slice(sig.groups - block, sig.groups)] if sig.groups > block else [])
    middle = (out_length - window) // 2
    windows = [slice(0, window), slice(out_length - window, out_length),
               slice(middle, middle + window)]
    regions: list[tuple[slice, slice, slice]] = []
    for position in windows:
        for index in range(max(len(batches), len(groups))):
            region = (batches[index % len(batches)], groups[index % len(groups)], position)
            if region not in regions:
                regions.append(region)
    return regions


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, sig: Signature,
              budget_s: float = 2.0) -> Reference:
    """The float64 ``F.conv1d`` reference of the call, whole if it fits ``budget_s``.

    A first small region is timed to estimate the cost of the whole reference; if that is over
    the budget, as many sample regions as fit the budget (at least two) are computed instead.
    """
    conv = _RegionConv(x, w, b, sig)
    candidates = _sample_regions(sig)
    start = time.perf_counter()
    probe = conv(*candidates[0])
    if probe[1].is_cuda:
        torch.cuda.synchronize(probe[1].device)
    probe_s = max(time.perf_counter() - start, 1e-6)
    probe_size = probe[1].numel()
    full_size = sig.batch * sig.out_channels * sig.output_length
    if probe_size == full_size:
        return Reference([probe], complete=True)
    if probe_s * full_size / probe_size <= budget_s:
        whole = conv(slice(0, sig.batch), slice(0, sig.groups), slice(0, sig.output_length))
        return Reference([whole], complete=True)
    fit = max(2, int(budget_s / probe_s))
    regions = [probe] + [conv(*region) for region in candidates[1:fit]]
    return Reference(regions, complete=False)
