"""A toy strategy of a new kind: neither an FFT plan nor a direct convolution, but the input
unfolded into a matrix of every output's taps and one matrix multiply.

It exists to prove that a strategy whose work is of another kind still takes this one module
and one registration (``register(UNFOLD)``): its :class:`~autoconv.strategies.Work` is
matrix-multiply multiply-adds and the bytes the unfold moves, which the cost model prices and
the predictor's features describe by name, with no other file touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from autoconv import contexts
from autoconv.signature import PaddingArg, Signature, signature_or_answer
from autoconv.strategies import Strategy, Work, direct_macs


def unfold_matmul(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                  dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d`` as one matrix multiply over the unfolded (padded) input."""
    input, weight, bias, autocast_device = contexts.autocast_inputs(input, weight, bias)
    with contexts.autocast_off(autocast_device):
        s = signature_or_answer(input, weight, bias, stride, padding, dilation, groups)
        if isinstance(s, torch.Tensor):  # F.conv1d's answer
            return s
        x = input.unsqueeze(0) if input.dim() == 2 else input
        x = F.pad(x, (s.padding_left, s.padding_right))
        taps = x.unfold(2, s.span, s.stride)[..., :: s.dilation]  # (B, C, L_out, K)
        g = s.groups
        taps = taps.reshape(s.batch, g, s.in_channels // g, s.output_length, s.kernel_size)
        w = weight.reshape(g, s.out_channels // g, s.in_channels // g, s.kernel_size)
        out = torch.einsum("bgclk,gock->bgol", taps, w).reshape(s.batch, s.out_channels, -1)
        if bias is not None:
            out = out + bias.view(1, -1, 1)
        out = out.contiguous()
        return out[0] if input.dim() == 2 else out


def unfold_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """Three calls (pad, unfold, multiply), the multiply-adds of the direct sum at the matrix
    multiply's rate, and the unfolded matrix written and read once."""
    s = signature
    itemsize = getattr(torch, s.dtype).itemsize
    unfolded = s.batch * s.in_channels * s.kernel_size * s.output_length * itemsize
    return Work.of(calls=3, matmul_macs=direct_macs(s), bytes_moved=2 * unfolded)


#: Its registry entry (vermillion, an Okabe-Ito hue the others do not use).
UNFOLD = Strategy("unfold_matmul", unfold_matmul, work=unfold_work, colour="#D55E00")
