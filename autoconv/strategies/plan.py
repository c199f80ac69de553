"""The shape of an FFT convolution: FFT length, frames and polyphase split, as plain ints.

Both FFT strategies run the same pipeline (see ``spectral.py``); a plan fixes its sizes. The
plans are pure functions of a :class:`~autoconv.signature.Signature`, so a cost model can count
the exact work a strategy would do without running it.

The pipeline, for stride ``s`` and dilation ``d``: the kernel is dilated with zeros to its span
``d * (K - 1) + 1``; with ``s > 1`` the correlation ``y[t] = sum_j w[j] x[t*s + j]`` is split
into ``s`` phases (``j = q*s + p``), each a stride-1 correlation of ``x_p[m] = x[m*s + p]`` with
``w_p[q] = w[q*s + p]``, and the phases fold into the channel dimension. The resulting stride-1
problem has ``taps = ceil(span / s)`` taps per channel and needs ``output_length + taps - 1``
input samples per phase. A circular correlation of length ``N >= taps`` yields ``N - taps + 1``
correct outputs, so the signal is cut into ``frames`` overlapping frames of ``N`` samples that
advance by ``step = N - taps + 1`` (overlap-save).

The ``fft`` plan uses a single frame and pads implicitly: the input's zero padding is not laid
out in memory but left to the FFT's wrap-around. ``shift`` phase samples of left padding become
a circular rotation of the kernel, and the transform only needs to hold the real samples and
keep the wrapped zeros apart from them, so ``N >= max(samples + shift, needed - shift, outputs)``
rather than ``N >= needed`` (a "full" convolution needs ``L + K - 1``, not ``L + 2K - 2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoconv.signature import Signature
from autoconv.strategies.fast_sizes import coarse_fast_size, fast_size
from autoconv.strategies.spectrum_cache import LAYER_BYTES
from autoconv.strategies.work import Work


@dataclass(frozen=True, slots=True)
class ConvPlan:
    """Sizes of one FFT convolution (all per batch row and per channel).

    Attributes:
        fft_length: ``N``, the length of every forward and inverse real FFT.
        frames: frames per batch row (1 for the ``fft`` strategy).
        step: valid outputs each frame contributes: ``N - taps + 1``, or the whole output
            for the single frame of the ``fft`` plan.
        phases: polyphase factor (the stride); channels are multiplied by it.
        taps: kernel taps per phase after dilation and the polyphase split.
        input_length: samples per phase laid out in memory: ``(frames - 1) * step + N`` for
            frames, up to ``N`` (zero-extended by the FFT) for a single frame.
        output_length: the convolution's output length.
        shift: left padding per phase left implicit (a rotation of the kernel by ``shift``);
            0 when frames > 1.
    """

    fft_length: int
    frames: int
    step: int
    phases: int
    taps: int
    input_length: int
    output_length: int
    shift: int = 0

    @property
    def bins(self) -> int:
        """Frequency bins of one real FFT (``N // 2 + 1``)."""
        return self.fft_length // 2 + 1


def phase_taps(signature: Signature) -> int:
    """Kernel taps per phase after dilation and the polyphase split: ``ceil(span / stride)``."""
    return -(-signature.span // signature.stride)


def needed_length(signature: Signature) -> int:
    """Input samples per phase that the outputs depend on: ``output_length + taps - 1``."""
    return signature.output_length + phase_taps(signature) - 1


def _plan(signature: Signature, fft_length: int) -> ConvPlan:
    taps = phase_taps(signature)
    out = signature.output_length
    step = fft_length - taps + 1
    frames = -(-out // step)
    return ConvPlan(fft_length, frames, step, signature.stride, taps,
                    (frames - 1) * step + fft_length, out)


def fft_plan(signature: Signature, coarse: bool = False) -> ConvPlan:
    """The plan of the ``fft`` strategy: one frame of the smallest fast length that holds it.

    The FFT length is the smallest 7-smooth size that holds the input samples the output reads
    plus the left padding, and the padded length the outputs need minus the left padding (see
    the module doc): never longer than the output needs. ``coarse``: the smallest of five
    sizes per octave instead (:func:`~autoconv.strategies.fast_sizes.coarse_fast_size`, at
    most a fifth longer), so that calls of nearby lengths share one length and so one weight
    spectrum (a layer keeping its spectra: :attr:`Signature.weight_reused`).
    """
    s, taps = signature.stride, phase_taps(signature)
    shift = signature.padding_left // s
    explicit = signature.padding_left - shift * s
    needed = needed_length(signature)
    samples = max(min(-(-(signature.length + explicit) // s), needed - shift), 1)
    size = coarse_fast_size if coarse else fast_size
    n = size(max(samples + shift, needed - shift, signature.output_length, taps))
    # with the padding implicit, the one frame yields every output (N >= output_length)
    return ConvPlan(n, 1, signature.output_length, s, taps, samples, signature.output_length,
                    shift)


def overlap_add_plan(signature: Signature, block_size: int) -> ConvPlan:
    """The plan of the ``overlap_add`` strategy for FFT block length ``block_size``.

    Raises:
        TypeError: ``block_size`` is not an int.
        ValueError: ``block_size`` is shorter than the kernel's taps per phase (a block must
            hold the whole kernel).
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int):
        raise TypeError(f"block_size must be an int, not {type(block_size).__name__}")
    taps = phase_taps(signature)
    if block_size < taps:
        raise ValueError(f"block_size={block_size} is shorter than the kernel ({taps} taps per "
                         f"phase for kernel_size={signature.kernel_size}, dilation="
                         f"{signature.dilation}, stride={signature.stride})")
    return _plan(signature, block_size)


@dataclass(frozen=True)
class FFTCounts:
    """Operation counts of an FFT convolution with a given plan."""

    fft_units: float      # sum over transforms of N * log2(N)
    complex_macs: float   # channel mixing in the frequency domain
    elements: float       # spectrum / frame elements touched outside FFTs and mixing
    #: complex values copied into the frequency-major layout of a matrix-product mix (the
    #: input's spectra and the weight's); 0 for an elementwise mix, which needs no such copy
    transposed: float = 0.0
    #: real samples copied out of the mix's frequency-major layout after the inverse FFTs
    #: (every output frame); 0 for an elementwise mix, whose output keeps its layout
    transposed_out: float = 0.0


def fft_counts(s: Signature, plan: ConvPlan) -> FFTCounts:
    """Count the work of the FFT pipeline for ``plan``: the weight's spectra included, but
    where a layer keeps them (:func:`spectra_kept`)."""
    n = plan.fft_length
    per_transform = n * math.log2(max(n, 2))
    in_per_group = (s.in_channels // s.groups) * plan.phases
    input_rows = s.batch * s.in_channels * plan.phases * plan.frames
    weight_rows = 0 if spectra_kept(s, plan) else s.out_channels * in_per_group
    output_rows = s.batch * s.out_channels * plan.frames
    transforms = input_rows + weight_rows + output_rows
    mix = s.batch * plan.frames * plan.bins * s.out_channels * in_per_group
    elements = (input_rows + output_rows) * n + weight_rows * plan.bins
    elementwise = in_per_group == 1
    transposed = 0 if elementwise else (input_rows + weight_rows) * plan.bins
    transposed_out = 0 if elementwise else output_rows * n
    return FFTCounts(transforms * per_transform, mix, elements, transposed, transposed_out)


def spectra_kept(s: Signature, plan: ConvPlan) -> bool:
    """Whether the weight's spectra for ``plan`` are computed once and kept, not on every
    call: the weight is reused (:attr:`Signature.weight_reused`) and its spectra fit in what
    a layer keeps (:data:`~autoconv.strategies.spectrum_cache.LAYER_BYTES`; larger ones are
    recomputed on every call)."""
    if not s.weight_reused:
        return False
    rows = s.out_channels * (s.in_channels // s.groups) * plan.phases
    return rows * plan.bins * 2 * real_bytes(s) <= LAYER_BYTES


def real_bytes(s: Signature) -> int:
    """Bytes of one real sample as the FFT pipeline computes ``s`` (half precision runs in
    float32); a complex value of its spectra takes twice that."""
    return 8 if s.dtype == "float64" else 4


def plan_work(s: Signature, plan: ConvPlan) -> Work:
    """The work of one call of the FFT pipeline with ``plan``: four operator calls (pad and
    frame, forward FFTs, the mix, inverse FFTs), the transforms, the channel mix (a pointwise
    product when each output mixes one input spectrum: elementwise work, not a matrix
    multiply), the elements touched and, for a matrix-product mix, the copies of the input's
    and the weight's spectra into its frequency-major layout and of the output frames out of
    it (read and written once each), with the plan's shape as traits.

    Those copies reverse the data's dimension order and are as large as the spectra and the
    output: on a many-channel call they cost more than the transforms (the weight's took 222
    of an EnCodec downsampling layer's 401 ms), and on a filter bank's 512 output channels
    the output's dominates; at the memory's speed, not a cached transpose's."""
    counts = fft_counts(s, plan)
    pointwise = (s.in_channels // s.groups) * plan.phases == 1
    n = plan.fft_length
    return Work.of(calls=4, fft_units=counts.fft_units,
                   spectral_macs=0 if pointwise else counts.complex_macs,
                   elements=counts.elements + (counts.complex_macs if pointwise else 0),
                   transposed_bytes=2 * real_bytes(s) * (2 * counts.transposed
                                                         + counts.transposed_out),
                   fft_length=n, fft_frames=plan.frames,
                   block_per_taps=n / max(plan.taps, 1), fft_odd_part=n // (n & -n))
