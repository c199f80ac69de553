"""What one call of a candidate computes, as named terms: the one account of its work that
the cost model prices and the predictor's features describe, whatever kind of algorithm it is.

A strategy's ``work(signature, params)`` returns a :class:`Work`: counts of generic kinds of
work (:data:`TERMS`: direct-convolution multiply-adds, FFT butterflies, matrix-multiply
multiply-adds, bytes moved by layout conversions, bytes of the copies that turn large
spectra inside out, ...), each priced by the cost model at its
own measured rate and summed, plus a few unpriced descriptors of how the work is shaped
(:data:`TRAITS`: an FFT length, the padding left to a convolution kernel), which the
predictor sees as columns too. Neither the cost model nor the features ask what kind of
strategy a candidate is: a new strategy whose work is made of these terms (an FFT plan, a
direct convolution, an unfold and a matrix multiply, a layout conversion) is priced and
featurized with no change outside its own module. A new kind of work (one no term here
describes) is one entry in :data:`TERMS` and its rate in the cost model's constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoconv.signature import Signature

#: The priced terms: each a count of one kind of work, priced at its own rate.
TERMS: dict[str, str] = {
    "calls": "operator calls: a fixed overhead each (dispatch, a kernel launch)",
    "direct_macs": "multiply-adds of a direct convolution kernel (oneDNN, cuDNN), priced at "
                   "the direct rate of the signature's class (dense, narrow or depthwise)",
    "half_direct_macs": "multiply-adds of a direct convolution kernel run in half precision "
                        "(float16, bfloat16), priced at the direct rate of the signature's "
                        "class times the device's half-precision slowdown (10-30x on CPUs "
                        "without half-precision kernels)",
    "fft_units": "N log2 N summed over the real FFTs of length N",
    "spectral_macs": "complex multiply-adds of a frequency-domain channel mix",
    "elements": "elements touched by elementwise passes: spectra, frames, padded copies",
    "matmul_macs": "real multiply-adds of matrix multiplies (the BLAS)",
    "bytes_moved": "bytes read and written by layout conversions: copies, transposes, "
                   "unfolds",
    "transposed_bytes": "bytes read and written by copies that turn a large tensor's layout "
                        "inside out (spectra made frequency-major for a channel mix): each "
                        "element's neighbours land far apart, so beyond the caches such a "
                        "copy runs several times slower per byte than bytes_moved's",
}
#: The unpriced descriptors: how the work is shaped, for the predictor's features.
TRAITS: dict[str, str] = {
    "conv_padding": "zero padding (the larger side) left to a convolution kernel, whose fast "
                    "paths take only a few samples of it",
    "fft_length": "the length of the FFTs",
    "fft_frames": "frames per batch row (1: one FFT of the whole signal)",
    "block_per_taps": "FFT length over the kernel's taps per phase",
    "fft_odd_part": "the FFT length's odd part, which FFTs handle more slowly than powers of 2",
}
#: The term counted as overhead, not as work (see :attr:`Work.total`).
OVERHEAD = "calls"


@dataclass(frozen=True, slots=True)
class Work:
    """What one call computes: named counts of :data:`TERMS` and :data:`TRAITS`.

    Build one with :meth:`of`; a name not in either is refused (a typo would otherwise price
    nothing). ``work[name]`` is the count of ``name``, 0 when absent.

    Attributes:
        values: ``(name, count)`` pairs, sorted by name, every count positive.
    """

    values: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, **counts: float) -> Work:
        """The work with these counts (zeros dropped).

        Raises:
            ValueError: a name that is neither a term nor a trait, or a negative count.
        """
        unknown = sorted(set(counts) - set(TERMS) - set(TRAITS))
        if unknown:
            raise ValueError(f"unknown work terms {', '.join(map(repr, unknown))} (terms: "
                             f"{', '.join(TERMS)}; traits: {', '.join(TRAITS)})")
        negative = sorted(name for name, count in counts.items() if count < 0)
        if negative:
            raise ValueError(f"negative work counts: {', '.join(negative)}")
        return cls(tuple(sorted((name, count) for name, count in counts.items() if count)))

    def __getitem__(self, name: str) -> float:
        for key, count in self.values:
            if key == name:
                return count
        return 0

    def __add__(self, other: Work) -> Work:
        """Both works in one call (counts added; a trait takes the larger value)."""
        merged = dict(self.values)
        for name, count in other.values:
            before = merged.get(name, 0)
            merged[name] = max(before, count) if name in TRAITS else before + count
        return Work.of(**merged)

    @property
    def terms(self) -> dict[str, float]:
        """The priced counts, by term."""
        return {name: count for name, count in self.values if name in TERMS}

    @property
    def traits(self) -> dict[str, float]:
        """The unpriced descriptors, by name."""
        return {name: count for name, count in self.values if name in TRAITS}

    @property
    def total(self) -> float:
        """The sum of the priced counts but the overhead of calls: a rough size of the work
        (the predictor learns seconds relative to it)."""
        return sum(count for name, count in self.values
                   if name in TERMS and name != OVERHEAD)


def direct_macs(s: Signature) -> int:
    """Multiply-adds of a direct convolution of ``s``."""
    return s.batch * s.out_channels * s.output_length * (s.in_channels // s.groups) * s.kernel_size


#: The half-precision dtypes, whose direct convolutions are priced apart.
HALF_DTYPES = frozenset({"float16", "bfloat16"})


def convolution_work(s: Signature, conv_padding: int = 0, copied: int = 0) -> Work:
    """One call of a direct convolution kernel on ``s`` (in its dtype) that is left
    ``conv_padding`` of padding, after a copy of ``copied`` input elements (one more call)
    when there is one."""
    macs = "half_direct_macs" if s.dtype in HALF_DTYPES else "direct_macs"
    return Work.of(calls=1 + (copied > 0), **{macs: direct_macs(s)}, elements=copied,
                   conv_padding=conv_padding)


def conversion_elements(s: Signature) -> int:
    """Elements converted when a call is computed in another precision: the input, the
    weight and the output, once each."""
    return (s.batch * s.in_channels * s.length
            + s.out_channels * s.in_channels // s.groups * s.kernel_size
            + s.batch * s.out_channels * s.output_length)
