"""The GEMM strategy: a convolution lowered to one matrix multiply over the input's taps.

Each output sample of group ``g`` is the dot product of the group's filter with the
``C_g * K`` input samples under the kernel (the "taps"). Laid out as a matrix, the taps of
every output of a batch row form ``cols[g]`` of shape ``(C_g * K, L_out)`` (im2col), and

    out[b, g] = weight[g] @ cols[b, g]          weight[g]: (O_g, C_g * K)

is one batched matrix multiply whose result is already the contiguous channel-major
``(B, O, L_out)`` tensor ``F.conv1d`` returns: no transposing copy afterwards. The taps are
an ``unfold`` view of the (padded) input (one strided slice per tap when dilated:
:func:`_taps`), copied into a matrix ``K / stride`` times the input's size (no copy for a
pointwise, stride-1 layer, whose input is that matrix), which the BLAS then reads at its
full rate.

It pays where ``F.conv1d``'s kernel is far from the matrix multiply's rate. On a Sapphire
Rapids Xeon (torch 2.13, oneDNN 3.12) it ran 1.4x faster on a pointwise layer (128 -> 512)
and 1.9x on wav2vec2's first layer (1 -> 512 channels, 10 taps, stride 5), where oneDNN's
direct kernel writes a blocked output and reorders it; it loses on dense layers of 3 or more
taps, whose direct kernels already run at the matrix multiply's rate without the copy, and
on an AMD EPYC it lost everywhere. The tuner measures which.

**Tiny rows.** A batch of many small rows would be as many small multiplies, whose calls
cost more than their sums: 256 single-channel windows of 64 samples through a 16-tap filter
took 0.59 ms, against ``F.conv1d``'s 0.09 ms. Rows of at most :data:`FOLD_MAX_ROW_MACS`
multiply-adds are folded into the columns of one multiply per group, whose
``(G, O_g, B, L_out)`` product is then copied once into ``(B, O, L_out)``
(:func:`folds_batch`): 0.10 ms there through the strategy (0.06 ms for the multiply and its
copies alone). Above that, folding lost or tied (a 64x4x256 layer of
16 outputs and 8 taps: 0.30 against 0.29 ms; 8x64x1000 of 64 outputs and 3 taps: 1.33
against 1.26 ms).

**Memory guard.** The unfolded matrix is sized before anything is allocated: batch rows are
multiplied in chunks whose matrix stays under :data:`MAX_UNFOLDED_BYTES`, and a signature
whose one batch row alone needs more is not offered (:func:`computes`); a pointwise,
stride-1 layer copies nothing and is not limited. Depthwise layers
(one input channel per group) are left to the shift-and-add strategies, whose passes do the
same sums without the matrix. Half-precision calls are multiplied in float32 and rounded
once (:func:`~autoconv.strategies.guard.half_in_float32`), as ``F.conv1d``'s half kernels
sum.

**Gradients** flow through the pad and the multiply (autograd's own); the input's gradient
is the multiply's transpose added back onto the samples each tap read, one strided pass per
tap (:class:`_Columns`). A training step of wav2vec2's second layer (512 channels, 3 taps,
stride 2, 3199 samples) took 27.5 ms here, against 33.3 ms through ``F.conv1d`` (its
multiply-add floor: 23.6 ms). A pointwise, stride-1, ungrouped layer multiplies the input
itself (:func:`_pointwise`): with gradients 0.98 against 1.25 ms for ``F.conv1d`` on a
Conformer's 256 -> 512 layer of 250 frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.guard import guarded_call, half_in_float32, padded_input
from autoconv.strategies.work import HALF_DTYPES, Work, conversion_elements, direct_macs

#: The largest unfolded matrix one multiply reads: more batch rows are multiplied in chunks.
MAX_UNFOLDED_BYTES = 64 * 2**20
#: Batch rows of at most this many multiply-adds are multiplied as one matrix
#: (:func:`folds_batch`).
FOLD_MAX_ROW_MACS = 8192
#: The dtypes it computes itself (half precision in float32).
DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})


def _itemsize(signature: Signature) -> int:
    """Bytes per element multiplied (float32 for half-precision calls)."""
    return 4 if signature.dtype in HALF_DTYPES else getattr(torch, signature.dtype).itemsize


def row_bytes(signature: Signature) -> int:
    """Bytes of one batch row's unfolded matrix."""
    s = signature
    return s.in_channels * s.kernel_size * s.output_length * _itemsize(s)


def folds_batch(signature: Signature) -> bool:
    """Whether the batch rows are folded into one multiply's columns: more than one row,
    each of at most :data:`FOLD_MAX_ROW_MACS` multiply-adds."""
    s = signature
    return s.batch > 1 and direct_macs(s) <= FOLD_MAX_ROW_MACS * s.batch


def copies_taps(signature: Signature) -> bool:
    """Whether the multiply copies the taps into a matrix: all but a pointwise, stride-1
    layer whose rows are not folded, whose input is already that matrix."""
    return signature.kernel_size > 1 or signature.stride > 1 or folds_batch(signature)


def rows_per_chunk(signature: Signature) -> int:
    """Batch rows multiplied at once, their unfolded matrix within the guard (all of them
    when nothing is copied)."""
    if not copies_taps(signature):
        return signature.batch
    return max(1, min(signature.batch, MAX_UNFOLDED_BYTES // max(1, row_bytes(signature))))


def computes(signature: Signature) -> bool:
    """Whether it computes ``signature`` itself (see the module docstring)."""
    s = signature
    return (s.dtype in DTYPES and (s.groups == 1 or s.groups < s.in_channels)
            and (not copies_taps(s) or row_bytes(s) <= MAX_UNFOLDED_BYTES))


def _tap(x: torch.Tensor, s: Signature, k: int) -> torch.Tensor:
    """The samples tap ``k`` reads, one per output: a strided view of ``x`` (``(rows, C, L)``,
    padded)."""
    start = k * s.dilation
    return x[..., start: start + s.stride * (s.output_length - 1) + 1: s.stride]


def _taps(x: torch.Tensor, s: Signature) -> torch.Tensor:
    """``(rows, C, K, L_out)``: the samples each output reads, tap by tap (a view when
    undilated: ``unfold``; one strided slice per tap, stacked, when dilated)."""
    if s.dilation == 1:
        return x.unfold(2, s.kernel_size, s.stride).transpose(2, 3)
    return torch.stack([_tap(x, s, k) for k in range(s.kernel_size)], dim=2)


class _Columns(torch.autograd.Function):
    """The taps as one contiguous ``(rows, C, K, L_out)`` matrix, whose backward adds each
    tap's gradient into the samples it read: ``K`` strided passes over one zeroed tensor.

    Autograd's own backward of the ``unfold`` took 4.9 ms of a 36 ms training step on
    wav2vec2's second layer (512 channels, 3 taps, stride 2, 3199 samples), and through the
    stacked slices of a dilated call each tap's gradient was a zeroed input-sized tensor of its
    own (at dilation 323, a backward 30x ``F.conv1d``'s through the ``unfold``); here it costs
    a pass per tap. Under ``create_graph`` the same sums are formed out of place, so higher
    derivatives flow through them."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, s: Signature) -> torch.Tensor:
        ctx.input_shape, ctx.signature = x.shape, s
        return _taps(x, s).contiguous()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        s: Signature = ctx.signature
        grad_x = grad.new_zeros(ctx.input_shape)
        if not torch.is_grad_enabled():
            for k in range(s.kernel_size):
                _tap(grad_x, s, k).add_(grad[:, :, k])
            return grad_x, None
        reach = s.stride * (s.output_length - 1) + 1
        for k in range(s.kernel_size):  # create_graph: differentiable, out of place
            start = k * s.dilation
            grad_x = grad_x.slice_scatter(_tap(grad_x, s, k) + grad[:, :, k], dim=2,
                                          start=start, end=start + reach, step=s.stride)
        return grad_x, None


def _columns(x: torch.Tensor, s: Signature) -> torch.Tensor:
    """``(rows, C, K, L_out)``, contiguous: the taps copied into a matrix, through
    :class:`_Columns` when autograd records the call."""
    if x.requires_grad and torch.is_grad_enabled():
        return _Columns.apply(x, s)
    return _taps(x, s).contiguous()


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               s: Signature) -> torch.Tensor:
    """A pointwise, stride-1, ungrouped layer: ``weight @ x`` on the input itself.

    Without gradients, one broadcast multiply and the bias added in place; with them, one
    batched multiply that starts from the bias (``baddbmm``). Forward and backward ran
    1.2-1.5x faster than ``F.conv1d``'s on 1-8 rows of 128-256 -> 256-512 channels
    (250-1000 samples), and faster than the broadcast multiply's from 4 rows up (1.2x at 4
    rows, 2.3x at 8: its weight gradient is summed over the batch apart; about even at one
    row). On 768 channels of 49 samples it was 1.17x ``F.conv1d``'s speed but 0.67x the
    broadcast multiply's: the tuner measures."""
    w = weight.reshape(s.out_channels, s.in_channels)
    if not s.requires_grad:
        out = torch.matmul(w, x)
        return out if bias is None else out.add_(bias.view(1, -1, 1))
    w = w.expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(w, x)
    return torch.baddbmm(bias.view(1, -1, 1).expand(x.shape[0], -1, x.shape[2]), w, x)


def _multiply(x: torch.Tensor, weight: torch.Tensor, s: Signature) -> torch.Tensor:
    """``F.conv1d``'s output (no bias) for batch rows ``x``, already padded."""
    rows, g, taps = x.shape[0], s.groups, (s.in_channels // s.groups) * s.kernel_size
    cols = (_columns(x, s) if copies_taps(s) else _taps(x, s)).reshape(
        rows, g, taps, s.output_length)
    w = weight.reshape(g, s.out_channels // g, taps)
    if not folds_batch(s):
        return torch.matmul(w, cols).view(rows, s.out_channels, s.output_length)
    folded = cols.permute(1, 2, 0, 3).reshape(g, taps, rows * s.output_length)
    product = torch.matmul(w, folded).view(g, s.out_channels // g, rows, s.output_length)
    return product.permute(2, 0, 1, 3).contiguous().view(rows, s.out_channels, s.output_length)


def _gemm(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
          s: Signature) -> torch.Tensor:
    """The multiplies of a call :func:`computes` takes, batch rows in chunks (the guard)."""
    x = padded_input(input, s)
    if not copies_taps(s) and s.groups == 1:
        return _pointwise(x, weight, bias, s)
    step = rows_per_chunk(s)
    chunks = [_multiply(x[i: i + step], weight, s) for i in range(0, s.batch, step)]
    out = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    if bias is not None:
        out = out.add_(bias.view(1, -1, 1))  # the multiply keeps no reference to its output
    return out


def gemm(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
         stride: int | tuple[int] = 1, padding: PaddingArg = 0,
         dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)`` as one matrix
    multiply over the unfolded input (see the module docstring). Calls it does not compute
    (depthwise, complex, over the memory guard), degenerate and refused calls get
    ``F.conv1d``'s own answer; under autocast the tensors get autocast's casts first.

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    return guarded_call(input, weight, bias, stride, padding, dilation, groups,
                        half_in_float32(_gemm), computes)


def gemm_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The direct sum's multiply-adds at the matrix multiply's rate; the unfolded matrix
    written and read once (:func:`copies_taps`) and the output written, as bytes moved (a
    multiply over a few taps, as in wav2vec2's first layer, is bound by writing its output:
    without it the estimate was 3.8x optimistic there), read and written once more when the
    rows are folded (:func:`folds_batch`); a padded copy of the input when the call pads; in
    half precision, the conversions to float32 and back."""
    s = signature
    half = s.dtype in HALF_DTYPES
    folded = folds_batch(s)
    chunks = -(-s.batch // rows_per_chunk(s))
    output_bytes = s.batch * s.out_channels * s.output_length * _itemsize(s)
    padded = s.batch * s.in_channels * s.padded_length if s.padding_left + s.padding_right else 0
    return Work.of(calls=3 + chunks * (1 + 2 * folded) + (chunks > 1) + 4 * half,
                   matmul_macs=direct_macs(s),
                   bytes_moved=(2 * s.batch * row_bytes(s) * copies_taps(s)
                                + (1 + 2 * folded) * output_bytes),
                   elements=padded + half * conversion_elements(s))
