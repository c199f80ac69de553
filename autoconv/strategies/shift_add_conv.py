"""The shift-and-add strategy: a depthwise convolution as one scaled, shifted view per tap.

A depthwise layer (``groups == in_channels == out_channels``) does only ``K`` multiply-adds
per output sample, so ``F.conv1d`` spends its time moving memory, not computing; on the CPU
oneDNN's depthwise kernels are slow for dilated layers (Conv-TasNet's and TCNs' dilations of
32 or 64) and those with more padding than its JIT kernels take. Here the output is

    out[b, c, t] = bias[c] + sum_k weight[c, 0, k] * x[b, c, t * stride + k * dilation - pad]

computed tap by tap over the whole tensor: each tap reads a strided view of the input (no
copy, and no padded copy either: a tap only touches the outputs whose sample falls inside the
input, :class:`TapRange`), multiplies it by the tap's per-channel weight and adds it into the
output in place (``addcmul``), after the bias (or the widest tap writing first). Each
pass streams a slice of the output and one view, contiguous along time for stride 1, so it
runs near the copy bandwidth whatever the dilation.

When autograd records the call, the backward is of the same kind (:class:`_ShiftAdd`): the
input's gradient is added tap by tap into views of a zero tensor, and each tap's gradient is
one product and reduction; under ``create_graph`` the same sums are formed out of place, so
higher derivatives are ``F.conv1d``'s too. The sums are added in another order than
``F.conv1d``'s: equal within floating-point tolerance.

Offered for depthwise layers of up to :data:`MAX_TAPS` taps in float32 or float64 (half
precision would accumulate in half; ``F.conv1d`` accumulates in float32). Other calls to
:func:`shift_add` get ``F.conv1d``'s answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from autoconv import contexts, plain
from autoconv.signature import PaddingArg, Signature, signature_or_answer
from autoconv.strategies.work import Work

#: The longest kernel offered: each tap is a pass over the output, and beyond a few dozen
#: taps padding first (``direct``) or the FFT strategies always win.
MAX_TAPS = 32
#: The dtypes it computes itself.
DTYPES = frozenset({"float32", "float64"})


def is_depthwise(signature: Signature) -> bool:
    """One input and one output channel per group."""
    s = signature
    return s.groups == s.in_channels == s.out_channels


def computes(signature: Signature) -> bool:
    """Whether it computes ``signature`` itself (see the module docstring)."""
    return (is_depthwise(signature) and signature.dtype in DTYPES
            and signature.kernel_size <= MAX_TAPS)


@dataclass(frozen=True)
class TapRange:
    """The outputs one tap reaches inside the input (the rest of its samples are padding).

    Attributes:
        tap: the tap's index in the kernel.
        first: the first output it reaches.
        count: how many consecutive outputs it reaches (at least 1).
        start: the input sample the first of them reads; the next ones read every
            ``stride``-th sample after it.
    """

    tap: int
    first: int
    count: int
    start: int

    def outputs(self, out: torch.Tensor) -> torch.Tensor:
        """The view of ``out`` (``(B, C, L_out)``) this tap reaches."""
        return out[..., self.first: self.first + self.count]

    def inputs(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """The view of ``x`` (``(B, C, L)``) this tap reads, one sample per output."""
        return x[..., self.start: self.start + stride * (self.count - 1) + 1: stride]


def tap_ranges(signature: Signature) -> list[TapRange]:
    """Every tap that reaches at least one output sample inside the input, widest first."""
    s = signature
    ranges = []
    for k in range(s.kernel_size):
        offset = k * s.dilation - s.padding_left  # output t reads input t * stride + offset
        first = max(0, -(offset // s.stride))  # ceil(-offset / stride), at least 0
        last = min(s.output_length - 1, (s.length - 1 - offset) // s.stride)
        if last >= first:
            ranges.append(TapRange(k, first, last - first + 1, first * s.stride + offset))
    return sorted(ranges, key=lambda r: -r.count)


def shift_add_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """One elementwise pass over the output per tap (a call each), as the FFT strategies
    count their passes over spectra: by the elements of the pass, not the tensors it
    reads."""
    s = signature
    return Work.of(calls=s.kernel_size,
                   elements=s.kernel_size * s.batch * s.out_channels * s.output_length)


def _sum_in_place(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None,
                  s: Signature) -> torch.Tensor:
    """The sums added into one output tensor ``(B, C, L_out)``, each output written once
    per tap that reaches it, and once more for the bias.

    The bias is copied in first, not folded into the first tap's ``addcmul``: a bias
    broadcast along time makes that kernel several times slower than a copy and a plain
    ``addcmul_`` (0.27 ms against 0.04 + 0.06 ms for a ``(1, 512, 2369)`` output here)."""
    out = torch.empty((x.shape[0], s.out_channels, s.output_length), dtype=x.dtype,
                      device=x.device)
    ranges = tap_ranges(s)
    if bias is not None:
        out.copy_(bias.unsqueeze(1).expand_as(out))
    elif not ranges:
        out.zero_()
    else:  # the widest tap writes its outputs; the ones it does not reach start at zero
        out[..., :ranges[0].first].zero_()
        out[..., ranges[0].first + ranges[0].count:].zero_()
    for i, r in enumerate(ranges):
        view, weight = r.inputs(x, s.stride), taps[:, r.tap:r.tap + 1]
        if i or bias is not None:
            r.outputs(out).addcmul_(view, weight)
        else:
            torch.mul(view, weight, out=r.outputs(out))
    return out


def _sum_recorded(x: torch.Tensor, taps: torch.Tensor, s: Signature) -> torch.Tensor:
    """The sums without bias, out of place (for higher derivatives)."""
    out = x.new_zeros((x.shape[0], s.out_channels, s.output_length))
    for r in tap_ranges(s):
        out = out.slice_scatter(r.outputs(out) + r.inputs(x, s.stride) * taps[:, r.tap:r.tap + 1],
                                dim=2, start=r.first, end=r.first + r.count)
    return out


class _ShiftAdd(torch.autograd.Function):
    """The sums, with a backward of the same kind (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None,
                signature: Signature) -> torch.Tensor:
        ctx.save_for_backward(x, taps)
        ctx.signature = signature
        return _sum_in_place(x, taps, bias, signature)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        x, taps = ctx.saved_tensors
        s: Signature = ctx.signature
        wants_x, wants_taps, wants_bias, _ = ctx.needs_input_grad
        recorded = torch.is_grad_enabled()  # create_graph: out of place, differentiable
        grad_x = grad_taps = grad_bias = None
        if wants_x:
            grad_x = (_input_grad_recorded if recorded else _input_grad_in_place)(grad, taps, x, s)
        if wants_taps:
            grad_taps = (_taps_grad_recorded if recorded else _taps_grad_in_place)(grad, x, s)
        if wants_bias:
            grad_bias = grad.sum((0, 2))
        return grad_x, grad_taps, grad_bias, None


def _input_grad_in_place(grad: torch.Tensor, taps: torch.Tensor, x: torch.Tensor,
                         s: Signature) -> torch.Tensor:
    """The input's gradient: each tap's share added into the input samples it read."""
    grad_x = torch.zeros(x.shape, dtype=grad.dtype, device=grad.device)
    for r in tap_ranges(s):
        r.inputs(grad_x, s.stride).addcmul_(r.outputs(grad), taps[:, r.tap:r.tap + 1])
    return grad_x


def _input_grad_recorded(grad: torch.Tensor, taps: torch.Tensor, x: torch.Tensor,
                         s: Signature) -> torch.Tensor:
    """The input's gradient out of place (for higher derivatives)."""
    grad_x = grad.new_zeros(x.shape)
    for r in tap_ranges(s):
        share = r.inputs(grad_x, s.stride) + r.outputs(grad) * taps[:, r.tap:r.tap + 1]
        grad_x = grad_x.slice_scatter(share, dim=2, start=r.start,
                                      end=r.start + s.stride * (r.count - 1) + 1, step=s.stride)
    return grad_x


def _taps_grad_in_place(grad: torch.Tensor, x: torch.Tensor, s: Signature) -> torch.Tensor:
    """Each tap's gradient: the output's gradient times the samples the tap read, summed over
    batch and time, the products written into one reused buffer."""
    grad_taps = torch.zeros((s.out_channels, s.kernel_size), dtype=grad.dtype,
                            device=grad.device)
    products = torch.empty(grad.shape, dtype=grad.dtype, device=grad.device)
    for r in tap_ranges(s):
        product = r.outputs(products)
        torch.mul(r.outputs(grad), r.inputs(x, s.stride), out=product)
        torch.sum(product, (0, 2), out=grad_taps[:, r.tap])
    return grad_taps


def _taps_grad_recorded(grad: torch.Tensor, x: torch.Tensor, s: Signature) -> torch.Tensor:
    """Each tap's gradient out of place (for higher derivatives)."""
    columns = [grad.new_zeros(s.out_channels)] * s.kernel_size
    for r in tap_ranges(s):
        columns[r.tap] = (r.outputs(grad) * r.inputs(x, s.stride)).sum((0, 2))
    return torch.stack(columns, 1)


def shift_add(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
              stride: int | tuple[int] = 1, padding: PaddingArg = 0,
              dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)`` for a depthwise
    layer, summed tap by tap over shifted views (see the module docstring). Degenerate and
    refused calls, and calls it does not compute itself, get ``F.conv1d``'s own answer; under
    autocast the tensors get autocast's casts first, as ``F.conv1d``'s do.

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    input, weight, bias, autocast_device = contexts.autocast_inputs(input, weight, bias)
    with contexts.autocast_off(autocast_device):
        s = signature_or_answer(input, weight, bias, stride, padding, dilation, groups)
        if isinstance(s, torch.Tensor):  # F.conv1d's answer
            return s
        if not computes(s):
            return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
        unbatched = input.dim() == 2
        x = input.unsqueeze(0) if unbatched else input
        taps = weight[:, 0, :]  # (C, K)
        if s.requires_grad:
            out = _ShiftAdd.apply(x, taps, bias, s)
        else:
            out = _sum_in_place(x, taps, bias, s)
        return out[0] if unbatched else out
