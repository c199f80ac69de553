"""The frequency-domain conv1d pipeline shared by the ``fft`` and ``overlap_add`` strategies.

Given a validated :class:`~autoconv.signature.Signature` and a :class:`ConvPlan`:

1. pad (or crop) the input to the samples the outputs need, split it into ``stride`` phases
   folded into the channels, and cut it into overlapping frames (a view, no copy);
2. real FFT of every frame; the weight is dilated, phase-split and transformed the same way
   (or taken from a :class:`SpectrumCache`);
3. mix channels per frequency: depthwise (one input channel per group) is an elementwise
   product; otherwise one batched complex matrix product per (frequency, group) in a
   frequency-major layout, ``(F*G, B*frames, Cin/G) @ (F*G, Cin/G, Cout/G)``;
4. inverse FFT, keep each frame's valid outputs, add the bias.

Correlation (not flipped convolution) comes from multiplying by the conjugate weight spectrum.
Half precision is computed in float32 and returned in the input's dtype, on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.strategies.plan import ConvPlan
from autoconv.strategies.spectrum_cache import SpectrumCache

#: Dtypes the FFT strategies accept (the real floating types ``F.conv1d`` takes).
SUPPORTED_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


def supports(signature: Signature) -> bool:
    """Whether the FFT strategies can compute ``signature`` (real floating dtypes only)."""
    return signature.dtype in SUPPORTED_DTYPES


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the FFTs run in: float32 for half types, else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _is_elementwise(signature: Signature) -> bool:
    """Depthwise after the polyphase split: one (phase-)channel per group."""
    return signature.in_channels // signature.groups * signature.stride == 1


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
    out_channels, in_per_group, kernel = w.shape
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


def weight_spectrum(weight: torch.Tensor, signature: Signature, plan: ConvPlan,
                    dtype: torch.dtype) -> torch.Tensor:
    """The conjugate spectrum of ``weight`` in the layout :func:`mix` expects.

    Returns:
        Depthwise: (G, Cout/G, 1, F). Otherwise frequency-major (F*G, Cin/G*s, Cout/G).
    """
    groups = signature.groups
    w = split_weight(weight.to(dtype), signature, plan)
    if plan.shift:
        w = rotate(w, plan.fft_length, plan.shift)
    spec = torch.fft.rfft(w, n=plan.fft_length)  # (O, Cin/G*s, F)
    out_channels, cin, bins = spec.shape
    if _is_elementwise(signature):
        return spec.conj_physical().view(groups, out_channels // groups, 1, bins)
    # one pass: copying a conjugate view into a frequency-major buffer conjugates as it goes
    # (a permuted, non-contiguous operand would make bmm an order of magnitude slower)
    out = torch.empty(bins, groups, cin, out_channels // groups, dtype=spec.dtype,
                      device=spec.device)
    out.copy_(spec.view(groups, out_channels // groups, cin, bins).permute(3, 0, 2, 1).conj())
    return out.view(bins * groups, cin, out_channels // groups)


def mix(spectra: torch.Tensor, weights: torch.Tensor, signature: Signature) -> torch.Tensor:
    """Mix channels per frequency: (B, Cin*s, frames, F) -> (B, Cout, frames, F)."""
    batch, channels, frames, bins = spectra.shape
    groups = signature.groups
    if _is_elementwise(signature):
        out = spectra.view(batch, groups, 1, frames, bins) * weights
        return out.view(batch, signature.out_channels, frames, bins)
    cin, cout = channels // groups, signature.out_channels // groups
    x = spectra.view(batch, groups, cin, frames, bins).permute(4, 1, 0, 3, 2)
    x = x.reshape(bins * groups, batch * frames, cin)
    y = torch.bmm(x, weights).view(bins, groups, batch, frames, cout)
    return y.permute(2, 1, 4, 3, 0).reshape(batch, signature.out_channels, frames, bins)


def spectral_conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    signature: Signature, plan: ConvPlan,
                    spectrum_cache: SpectrumCache | None = None) -> torch.Tensor:
    """Compute ``F.conv1d`` for a validated ``signature`` along ``plan`` (see module doc).

    Raises:
        NotImplementedError: a dtype other than float16/bfloat16/float32/float64.
    """
    if not supports(signature):
        raise NotImplementedError(f"the FFT conv1d strategies support real floating dtypes "
                                  f"only, not {input.dtype}; use the direct strategy")
    dtype = compute_dtype(input.dtype)
    x = input.unsqueeze(0) if input.dim() == 2 else input
    x = split_input(x.to(dtype), signature, plan)
    n, step, frames = plan.fft_length, plan.step, plan.frames
    x = x.unfold(-1, n, step) if frames > 1 else x.unsqueeze(2)
    spectra = torch.fft.rfft(x, n=n)

    def compute() -> torch.Tensor:
        return weight_spectrum(weight, signature, plan, dtype)

    if spectrum_cache is None:
        weights = compute()
    else:
        layout = (n, plan.shift, signature.stride, signature.dilation, signature.groups, dtype)
        weights = spectrum_cache.get(weight, layout, compute)
    y = torch.fft.irfft(mix(spectra, weights, signature), n=n)  # (B, O, frames, N)
    y = join_frames(y, plan, None if bias is None else bias.to(dtype))
    y = y.to(input.dtype)
    return y.squeeze(0) if input.dim() == 2 else y


def join_frames(frames: torch.Tensor, plan: ConvPlan,
                bias: torch.Tensor | None) -> torch.Tensor:
    """Concatenate each frame's valid outputs, crop to the output length and add the bias.

    Args:
        frames: (B, O, frames, N) inverse transforms.

    Returns:
        A contiguous (B, O, output_length) tensor, written in one pass (plus the bias).
    """
    batch, channels = frames.shape[:2]
    out_len, step = plan.output_length, plan.step
    if plan.frames == 1:
        y = frames[:, :, 0, :out_len]
        return y.contiguous() if bias is None else y + bias.unsqueeze(-1)
    whole, rest = divmod(out_len, step)
    out = frames.new_empty(batch, channels, out_len)
    out[..., :whole * step].view(batch, channels, whole, step).copy_(frames[:, :, :whole, :step])
    if rest:
        out[..., whole * step:].copy_(frames[:, :, whole, :rest])
    return out if bias is None else out.add_(bias.unsqueeze(-1))
