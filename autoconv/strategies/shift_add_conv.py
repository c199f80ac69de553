"""The shift-and-add strategy: a depthwise convolution as one scaled, shifted view per tap.

A depthwise layer (``groups == in_channels``, ``m`` output channels per input channel,
usually 1) does only ``K`` multiply-adds per output sample, so ``F.conv1d`` spends its time
moving memory, not computing; on the CPU oneDNN's depthwise kernels are slow for dilated
layers (Conv-TasNet's and TCNs' dilations of 32 or 64), for those with more padding than its
JIT kernels take, and for any channel multiplier ``m > 1``. Here the output is

    out[b, c*m + j, t] = bias[c*m + j]
                         + sum_k weight[c*m + j, 0, k] * x[b, c, t * stride + k * dilation - pad]

computed tap by tap over the whole tensor: each tap reads a strided view of the input (no
copy, and no padded copy either: a tap only touches the outputs whose sample falls inside the
input, :class:`TapRange`), multiplies it by the tap's weights (broadcast over a channel's ``m`` outputs)
and adds it into the output in place (``addcmul``), after the bias (or the widest tap writing first). Each
pass streams a slice of the output and one view, contiguous along time for stride 1, so it
runs near the copy bandwidth whatever the dilation.

When autograd records the call, the backward is of the same kind (:class:`_ShiftAdd`): the
input's gradient is added tap by tap into views of a zero tensor, and each tap's gradient is
one product and reduction; under ``create_graph`` the same sums are formed out of place, so
higher derivatives are ``F.conv1d``'s too. The sums are added in another order than
``F.conv1d``'s: equal within floating-point tolerance.

Offered for depthwise layers of up to :data:`MAX_TAPS` taps. Half-precision calls are summed
in float32 and rounded once, as ``F.conv1d``'s half kernels sum (summed in half, the taps
would lose bits). Other calls to
:func:`shift_add` get ``F.conv1d``'s answer. A layer of one input channel counts, its outputs
being the multiplier: it wins on mono filters (8x1x16000, K=15: 0.30 against 0.45 ms here)
and loses where many outputs share the one input (wav2vec2's first layer, 1 -> 512: 22
against 2.1 ms), which the tuner measures like any other candidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.guard import guarded_call, half_in_float32
from autoconv.strategies.work import HALF_DTYPES, Work, conversion_elements

#: The longest kernel offered: each tap is a pass over the output, and beyond a few dozen
#: taps padding first (``direct``) or the FFT strategies always win.
MAX_TAPS = 32
#: The dtypes it computes itself (half precision in float32: see the module docstring).
DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})


def is_depthwise(signature: Signature) -> bool:
    """One input channel per group (and so ``m`` output channels for each, ``F.conv1d``
    taking only whole multiples: a channel multiplier)."""
    return signature.groups == signature.in_channels


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
    reads. In half precision, the conversions to float32 and back as well."""
    s = signature
    half = s.dtype in HALF_DTYPES
    return Work.of(calls=s.kernel_size + 4 * half,
                   elements=s.kernel_size * s.batch * s.out_channels * s.output_length
                   + half * conversion_elements(s))


def _multiplier(s: Signature) -> int:
    """Output channels per input channel."""
    return s.out_channels // s.in_channels


def _per_channel(t: torch.Tensor, s: Signature) -> torch.Tensor:
    """An output-channel tensor ``(B, C * m, ...)`` seen as ``(B, C, m, ...)``: each input
    channel's ``m`` outputs side by side (a view when the layout allows it)."""
    return t.reshape(t.shape[0], s.in_channels, _multiplier(s), *t.shape[2:])


def _tap_weights(taps: torch.Tensor, s: Signature, tap: int) -> torch.Tensor:
    """One tap's weights, ``(C, m, 1)``: they broadcast over a tap's view of ``(B, C, 1, L)``."""
    return taps.reshape(s.in_channels, _multiplier(s), -1)[:, :, tap:tap + 1]


def _sum_in_place(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None,
                  s: Signature) -> torch.Tensor:
    """The sums added into one output tensor ``(B, C * m, L_out)``, each output written once
    per tap that reaches it, and once more for the bias.

    The bias is copied in first, not folded into the first tap's ``addcmul``: a bias
    broadcast along time makes that kernel several times slower than a copy and a plain
    ``addcmul_`` (0.27 ms against 0.04 + 0.06 ms for a ``(1, 512, 2369)`` output here)."""
    out = torch.empty((x.shape[0], s.out_channels, s.output_length), dtype=x.dtype,
                      device=x.device)
    out4, x4 = _per_channel(out, s), x.unsqueeze(2)
    ranges = tap_ranges(s)
    if bias is not None:
        out4.copy_(_per_channel(bias.view(1, -1, 1), s).expand_as(out4))
    elif not ranges:
        out.zero_()
    else:  # the widest tap writes its outputs; the ones it does not reach start at zero
        out[..., :ranges[0].first].zero_()
        out[..., ranges[0].first + ranges[0].count:].zero_()
    for i, r in enumerate(ranges):
        view, weight = r.inputs(x4, s.stride), _tap_weights(taps, s, r.tap)
        if i or bias is not None:
            r.outputs(out4).addcmul_(view, weight)
        else:
            torch.mul(view, weight, out=r.outputs(out4))
    return out


def _sum_recorded(x: torch.Tensor, taps: torch.Tensor, s: Signature) -> torch.Tensor:
    """The sums without bias, out of place (for higher derivatives)."""
    x4 = x.unsqueeze(2)
    out4 = x.new_zeros((x.shape[0], s.in_channels, _multiplier(s), s.output_length))
    for r in tap_ranges(s):
        share = r.outputs(out4) + r.inputs(x4, s.stride) * _tap_weights(taps, s, r.tap)
        out4 = out4.slice_scatter(share, dim=3, start=r.first, end=r.first + r.count)
    return out4.reshape(x.shape[0], s.out_channels, s.output_length)


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
        grad4 = _per_channel(grad, s)
        grad_x = grad_taps = grad_bias = None
        if wants_x:
            grad_x = (_input_grad_recorded if recorded else _input_grad_in_place)(grad4, taps, x, s)
        if wants_taps:
            grad_taps = (_taps_grad_recorded if recorded else _taps_grad_in_place)(grad4, x, s)
        if wants_bias:
            grad_bias = grad.sum((0, 2))
        return grad_x, grad_taps, grad_bias, None


def _input_grad_in_place(grad4: torch.Tensor, taps: torch.Tensor, x: torch.Tensor,
                         s: Signature) -> torch.Tensor:
    """The input's gradient: each tap's share, from each of a channel's outputs, added into
    the input samples it read."""
    grad_x = torch.zeros(x.shape, dtype=grad4.dtype, device=grad4.device)
    for r in tap_ranges(s):
        weights = _tap_weights(taps, s, r.tap)
        for j in range(_multiplier(s)):
            r.inputs(grad_x, s.stride).addcmul_(r.outputs(grad4[:, :, j]), weights[:, j])
    return grad_x


def _input_grad_recorded(grad4: torch.Tensor, taps: torch.Tensor, x: torch.Tensor,
                         s: Signature) -> torch.Tensor:
    """The input's gradient out of place (for higher derivatives)."""
    grad_x = grad4.new_zeros(x.shape)
    for r in tap_ranges(s):
        shares = (r.outputs(grad4) * _tap_weights(taps, s, r.tap)).sum(2)
        grad_x = grad_x.slice_scatter(r.inputs(grad_x, s.stride) + shares, dim=2,
                                      start=r.start, end=r.start + s.stride * (r.count - 1) + 1,
                                      step=s.stride)
    return grad_x


def _taps_grad_in_place(grad4: torch.Tensor, x: torch.Tensor, s: Signature) -> torch.Tensor:
    """Each tap's gradient: the output's gradient times the samples the tap read, summed over
    batch and time, the products written into one reused buffer."""
    grad_taps = torch.zeros((s.in_channels, _multiplier(s), s.kernel_size), dtype=grad4.dtype,
                            device=grad4.device)
    products = torch.empty(grad4.shape, dtype=grad4.dtype, device=grad4.device)
    x4 = x.unsqueeze(2)
    for r in tap_ranges(s):
        product = r.outputs(products)
        torch.mul(r.outputs(grad4), r.inputs(x4, s.stride), out=product)
        torch.sum(product, (0, 3), out=grad_taps[:, :, r.tap])
    return grad_taps.view(s.out_channels, s.kernel_size)


def _taps_grad_recorded(grad4: torch.Tensor, x: torch.Tensor, s: Signature) -> torch.Tensor:
    """Each tap's gradient out of place (for higher derivatives)."""
    x4 = x.unsqueeze(2)
    columns = [grad4.new_zeros(grad4.shape[1:3])] * s.kernel_size
    for r in tap_ranges(s):
        columns[r.tap] = (r.outputs(grad4) * r.inputs(x4, s.stride)).sum((0, 3))
    return torch.stack(columns, 2).reshape(s.out_channels, s.kernel_size)


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
    return guarded_call(input, weight, bias, stride, padding, dilation, groups,
                        half_in_float32(_shift_add), computes)


def _shift_add(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               s: Signature) -> torch.Tensor:
    """The sums of a call :func:`computes` takes (recorded for autograd when it needs
    gradients)."""
    # contiguous along time: on a transposed view (Mamba's conv input is a linear layer's
    # output, transposed) the taps' passes stride across memory, 5x slower with backward
    x = input.contiguous()
    taps = weight[:, 0, :]  # (C * m, K)
    if s.requires_grad:
        return _ShiftAdd.apply(x, taps, bias, s)
    return _sum_in_place(x, taps, bias, s)
