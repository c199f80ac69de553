"""The time-major direct strategy: ``F.conv1d``'s sums computed on a channels-last layout.

The input ``(B, C, L)`` is copied once into time-major rows ``(B, L + padding, C)`` (the
padding written with it, so the convolution itself takes none), seen without a copy as a
one-row channels-last image ``(B, C, 1, L')``, and convolved by ``F.conv2d`` with the weight
as a ``(O, C / groups, 1, K)`` channels-last kernel: the same sums as ``F.conv1d``, through
torch's kernels for that layout (oneDNN's on the CPU vectorise over channels, cuDNN's NHWC
ones on a GPU). The result, channels-last, is copied once more into the contiguous
channel-major ``(B, O, L_out)`` tensor ``F.conv1d`` returns. The streaming side's stateful
direct has the same layout as a parameter
(:mod:`autoconv.strategies.streaming.direct`).

Where the conversions pay is the tuner's to measure: on depthwise layers with many channels
the channels-last kernels can be several times faster than ``F.conv1d``'s; on others the two
transposing copies cost more than they save. A single input channel has no channels-last
layout of its own (the image is as contiguous one way as the other, and torch keeps its
channel-major kernels), so such calls are not offered (:func:`supports_time_major`).
Neither are half-precision calls on the CPU: without AVX-512 BF16 torch runs channels-last
half-precision convolutions on legacy fallbacks (pytorch/pytorch#183815), and a bfloat16
depthwise one of 15 taps or more ran for minutes here (torch 2.13, an AVX2 EPYC); the
strategy leaves them to ``F.conv1d`` even when called directly. Autograd runs through the
copies and ``F.conv2d``, so gradients are ``F.conv1d``'s too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from autoconv import contexts, plain
from autoconv.signature import PaddingArg, Signature, signature_or_answer
from autoconv.strategies.work import Work, direct_macs

#: The dtypes it computes itself, per device type (others are left to ``F.conv1d``).
REAL_FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})
CPU_DTYPES = frozenset({"float32", "float64"})


def computes(signature: Signature) -> bool:
    """Whether it computes ``signature``'s dtype on its device itself (see the module
    docstring)."""
    return signature.dtype in (CPU_DTYPES if signature.device == "cpu" else REAL_FLOATING)


def supports_time_major(signature: Signature) -> bool:
    """Dtypes it computes itself, and more than one input channel (see the module
    docstring)."""
    return computes(signature) and signature.in_channels > 1


def time_major_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The direct multiply-adds (no padding left to the kernel), and the bytes the layout
    conversions move: the input read and its padded rows written, the weight, and the output
    read and written channel-major; four calls (input, weight, convolution, output)."""
    s = signature
    itemsize = getattr(torch, s.dtype).itemsize
    elements = (s.batch * s.in_channels * (s.length + s.padded_length)
                + 2 * s.out_channels * (s.in_channels // s.groups) * s.kernel_size
                + 2 * s.batch * s.out_channels * s.output_length)
    return Work.of(calls=4, direct_macs=direct_macs(s), bytes_moved=elements * itemsize)


def time_major(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               stride: int | tuple[int] = 1, padding: PaddingArg = 0,
               dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)``, computed on a
    time-major (channels-last) layout (see the module docstring). Degenerate and refused
    calls, and dtypes it does not compute itself, get ``F.conv1d``'s own answer; under
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
        x = (input.unsqueeze(0) if unbatched else input).transpose(1, 2)
        if s.padding_left or s.padding_right:
            rows = F.pad(x, (0, 0, s.padding_left, s.padding_right))
        else:
            rows = x.contiguous()
        image = rows.transpose(1, 2).unsqueeze(2)  # (B, C, 1, L'): channels-last strides
        kernel = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        out = F.conv2d(image, kernel, bias, (1, s.stride), 0, (1, s.dilation), groups)
        out = out.squeeze(2).contiguous()
        return out[0] if unbatched else out
