"""Time-domain layout of the FFT strategies: padding, polyphase split, kernel rotation, and
joining the frames' valid outputs. See ``plan.py`` for the sizes and why they suffice."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.strategies.plan import ConvPlan


def zero_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """``F.pad(x, (left, right))`` in one pass: only the margins are zeroed (no copy if none)."""
    if left == 0 and right == 0:
        return x
    length = x.shape[-1]
    out = x.new_empty(*x.shape[:-1], left + length + right)
    out[..., :left].zero_()
    out[..., left + length:].zero_()
    out[..., left:left + length].copy_(x)
    return out


def split_input(x: torch.Tensor, signature: Signature, plan: ConvPlan) -> torch.Tensor:
    """Zero-pad/crop ``x`` (B, C, L) to what ``plan`` reads and fold its phases into channels.

    Returns:
        (B, C * stride, M): ``out[:, c*s + p, m] = padded[:, c, m*s + p]``, with ``M`` the
        plan's ``input_length``, or its ``fft_length`` for a single frame (padded here in one
        pass rather than by the FFT).
    """
    s, length = plan.phases, signature.length
    per_phase = plan.fft_length if plan.frames == 1 else plan.input_length
    left = signature.padding_left - s * plan.shift
    need = s * per_phase
    keep = min(max(need - left, 0), length)
    lead = min(left, need)
    x = zero_pad(x[..., :keep], lead, need - lead - keep)
    if s > 1:
        batch, channels = x.shape[:2]
        x = x.view(batch, channels, per_phase, s).transpose(2, 3)
        x = x.reshape(batch, channels * s, per_phase)
    return x


def split_weight(w: torch.Tensor, signature: Signature, plan: ConvPlan) -> torch.Tensor:
    """Dilate ``w`` (O, C/G, K) with zeros and fold its phases into channels like the input.

    Returns:
        (O, C/G * stride, plan.taps).
    """
    d, s = signature.dilation, plan.phases
    out_channels, in_per_group, _ = w.shape
    if d > 1:
        w = F.pad(w.unsqueeze(-1), (0, d - 1)).flatten(-2)[..., :signature.span]
    if s > 1:
        w = F.pad(w, (0, s * plan.taps - w.shape[-1]))
        w = w.view(out_channels, in_per_group, plan.taps, s).transpose(2, 3)
        w = w.reshape(out_channels, in_per_group * s, plan.taps)
    return w


def rotate(w: torch.Tensor, n: int, shift: int) -> torch.Tensor:
    """Zero-extend ``w`` (..., taps) to ``n`` samples, rotated left by ``shift``: tap ``q`` lands
    at ``(q - shift) mod n``, which turns ``shift`` samples of left padding into wrap-around."""
    taps = w.shape[-1]
    if shift >= taps:
        return F.pad(w, (n - shift, shift - taps))
    return torch.cat([F.pad(w[..., shift:], (0, n - taps)), w[..., :shift]], dim=-1)


def join_frames(frames: torch.Tensor, plan: ConvPlan,
                bias: torch.Tensor | None) -> torch.Tensor:
    """Concatenate each frame's valid outputs, crop to the output length and add the bias.

    Args:
        frames: (B, G, Cout/G, frames, N) inverse transforms, any strides.

    Returns:
        A contiguous (B, Cout, output_length) tensor, written in one pass (plus the bias).
    """
    batch, groups, per_group = frames.shape[:3]
    out_len, step = plan.output_length, plan.step
    whole, rest = divmod(out_len, step)
    out = frames.new_empty(batch, groups, per_group, out_len)
    if whole:
        out[..., :whole * step].view(batch, groups, per_group, whole, step).copy_(
            frames[..., :whole, :step])
    if rest:
        out[..., whole * step:].copy_(frames[..., whole, :rest])
    out = out.view(batch, groups * per_group, out_len)
    return out if bias is None else out.add_(bias.unsqueeze(-1))
