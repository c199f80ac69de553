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
Half precision is computed in float32 and returned in the input's dtype, on every device (cuFFT
could run float16 at power-of-two lengths, but with float16 accumulation in the channel mix).
A weight spectrum larger than :data:`SPECTRUM_BUDGET` bytes is built and applied in chunks of
output channels, so memory stays bounded (``C_out * C_in * F`` complex values can be gigabytes
for many channels and long signals).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from autoconv.signature import Signature
from autoconv.strategies.guard import guarded_call
from autoconv.strategies.layout import join_frames, rotate, split_input, split_weight
from autoconv.strategies.plan import ConvPlan
from autoconv.strategies.spectrum_cache import SpectrumCache

#: Dtypes the FFT strategies accept (the real floating types ``F.conv1d`` takes).
SUPPORTED_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
#: Largest weight spectrum (bytes) built at once; beyond it output channels go in chunks.
SPECTRUM_BUDGET = 32 * 2**20


def supports(signature: Signature) -> bool:
    """Whether the FFT strategies can compute ``signature`` (real floating dtypes only)."""
    return signature.dtype in SUPPORTED_DTYPES


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the FFTs run in: float32 for half types, else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _is_elementwise(signature: Signature) -> bool:
    """Depthwise after the polyphase split: one (phase-)channel per group."""
    return signature.in_channels // signature.groups * signature.stride == 1


def output_chunks(signature: Signature, plan: ConvPlan, dtype: torch.dtype
                  ) -> list[tuple[int, int]]:
    """Ranges of output channels per group whose weight spectrum fits :data:`SPECTRUM_BUDGET`."""
    per_group = signature.out_channels // signature.groups
    if _is_elementwise(signature):
        return [(0, per_group)]
    cin = signature.in_channels * signature.stride
    per_channel = plan.bins * cin * 2 * torch.empty((), dtype=dtype).element_size()
    size = max(1, SPECTRUM_BUDGET // per_channel)
    return [(start, min(start + size, per_group)) for start in range(0, per_group, size)]


def weight_spectrum(weight: torch.Tensor, signature: Signature, plan: ConvPlan,
                    dtype: torch.dtype) -> torch.Tensor:
    """The conjugate spectrum of ``weight`` in the layout :func:`mix_inverse` expects.

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


def frequency_major(spectra: torch.Tensor, signature: Signature) -> torch.Tensor:
    """(B, Cin*s, frames, F) -> (F*G, B*frames, Cin/G*s), the left operand of the mix
    (returned unchanged for the elementwise mix)."""
    if _is_elementwise(signature):
        return spectra
    batch, channels, frames, bins = spectra.shape
    groups = signature.groups
    x = spectra.view(batch, groups, channels // groups, frames, bins).permute(4, 1, 0, 3, 2)
    # contiguous, not reshape: with one frame reshape can return a strided view, which sends
    # bmm down a per-matrix copying path two orders of magnitude slower
    return x.contiguous().view(bins * groups, batch * frames, channels // groups)


def mix_inverse(spectra: torch.Tensor, weights: torch.Tensor, signature: Signature,
                batch: int, frames: int, n: int) -> torch.Tensor:
    """Mix channels per frequency and inverse-transform: (B, G, Cout/G, frames, N) frames.

    The matrix product's frequency-major result is inverse-transformed along its first
    dimension where it lies, and returned as a permuted view: the layout change happens once,
    on real samples, when :func:`~autoconv.strategies.layout.join_frames` copies the valid ones.

    Args:
        spectra: the input spectra as :func:`frequency_major` returns them.
        weights: as :func:`weight_spectrum` returns them for ``signature``.
        n: the FFT length.
    """
    groups = signature.groups
    per_group = signature.out_channels // groups
    if _is_elementwise(signature):
        bins = spectra.shape[-1]
        out = spectra.view(batch, groups, 1, frames, bins) * weights
        return torch.fft.irfft(out, n=n)
    bins = spectra.shape[0] // groups
    y = torch.bmm(spectra, weights).view(bins, groups, batch, frames, per_group)
    return torch.fft.irfft(y, n=n, dim=0).permute(2, 1, 4, 3, 0)


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
    x = split_input(input.to(dtype), signature, plan)
    n, frames = plan.fft_length, plan.frames
    x = x.unfold(-1, n, plan.step) if frames > 1 else x.unsqueeze(2)
    batch = x.shape[0]
    spectra = frequency_major(torch.fft.rfft(x), signature)
    bias = None if bias is None else bias.to(dtype)
    chunks = output_chunks(signature, plan, dtype)
    if len(chunks) == 1:
        weights = _spectrum(weight, signature, plan, dtype, spectrum_cache)
        y = join_frames(mix_inverse(spectra, weights, signature, batch, frames, n), plan, bias)
    else:
        y = _chunked(spectra, weight, bias, signature, plan, dtype, chunks, batch,
                     spectrum_cache)
    return y.to(input.dtype)


def _spectrum(weight: torch.Tensor, signature: Signature, plan: ConvPlan, dtype: torch.dtype,
              cache: SpectrumCache | None, chunk: tuple[int, int] | None = None,
              source: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`weight_spectrum`, through ``cache`` when given (keyed by ``weight``, the plan's
    layout and the output-channel ``chunk``; ``source`` is the chunk's slice of ``weight``)."""
    source = weight if source is None else source
    if cache is None:
        return weight_spectrum(source, signature, plan, dtype)
    layout = (plan.fft_length, plan.shift, signature.stride, signature.dilation,
              signature.groups, dtype, chunk)
    return cache.get(weight, layout, lambda: weight_spectrum(source, signature, plan, dtype))


def _chunked(spectra: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             signature: Signature, plan: ConvPlan, dtype: torch.dtype,
             chunks: list[tuple[int, int]], batch: int,
             cache: SpectrumCache | None) -> torch.Tensor:
    """The mix, inverse FFT and join for each chunk of output channels per group in turn."""
    groups, out_channels = signature.groups, signature.out_channels
    per_group = out_channels // groups
    out = spectra.new_empty(batch, groups, per_group, plan.output_length, dtype=dtype)
    grouped = weight.view(groups, per_group, *weight.shape[1:])
    for start, stop in chunks:
        sub = dataclasses.replace(signature, out_channels=groups * (stop - start))
        w = grouped[:, start:stop].reshape(sub.out_channels, *weight.shape[1:])
        b = None if bias is None else bias.view(groups, per_group)[:, start:stop].reshape(-1)
        spectrum = _spectrum(weight, sub, plan, dtype, cache, (start, stop), w)
        y = mix_inverse(spectra, spectrum, sub, batch, plan.frames, plan.fft_length)
        y = join_frames(y, plan, b)
        out[:, :, start:stop].copy_(y.view(batch, groups, stop - start, -1))
    return out.view(batch, out_channels, plan.output_length)


def spectral_call(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride, padding, dilation, groups: int,
                  plan_of: Callable[[Signature], ConvPlan],
                  spectrum_cache: SpectrumCache | None = None) -> torch.Tensor:
    """A strategy on the FFT pipeline, as it must behave everywhere ``F.conv1d`` is called.

    Through :func:`~autoconv.strategies.guard.guarded_call` (autocast's casts; degenerate,
    refused and transformed calls to ``F.conv1d``); the rest is convolved along
    ``plan_of(signature)``.
    """
    return guarded_call(input, weight, bias, stride, padding, dilation, groups,
                        lambda x, w, b, s: spectral_conv1d(x, w, b, s, plan_of(s),
                                                           spectrum_cache))
