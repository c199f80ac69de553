"""Features of a (signature, candidate) pair for the learned predictor.

A row is built by column name: each group below gives a dict ``{column: value}``, and the
:class:`FeatureSpace` places the values in its fixed column order (a column a candidate does
not report is 0). Every size enters on a log2 scale (time grows with products of sizes, which
a log turns into sums a tree ensemble learns easily). The groups:

* the signature (:data:`SIGNATURE_COLUMNS`): log sizes (batch, channels in/out and per group,
  lengths, kernel, span, stride, dilation, groups), the kernel/length ratio, flags (depthwise,
  gradients, device type, a layer's weight reused), the dtype's width, the channels'
  alignment (how many times 2 divides them: the direct kernels vectorise over channels) and
  the total padding (the direct kernels' speed per multiply-add varies several-fold on
  depthwise layers, partly with the padding; held out, this column markedly cut the worst
  pick);
* the signature's work counted two reference ways (:data:`WORK_COLUMNS`): as a direct
  convolution's multiply-adds, and as one FFT of the whole signal (its length, butterfly
  units, frequency-domain multiply-adds and elements touched);
* the candidate: one indicator per strategy (in the order given to :class:`FeatureSpace`),
  then the candidate's own account of its work (:attr:`Strategy.work
  <autoconv.strategies.Strategy>`, a :class:`~autoconv.strategies.Work`), one column per
  term and trait of :mod:`autoconv.strategies.work`, ``log2(1 + count)``
  (:data:`CANDIDATE_COLUMNS`): direct multiply-adds and the padding left to the convolution
  kernel (oneDNN's fast JIT kernels take only a few samples of it and fall back to a GEMM
  path up to tens of times slower beyond: :mod:`autoconv.strategies.direct_conv`), FFT
  butterflies, length, frames and the length's odd part, matrix-multiply multiply-adds,
  bytes moved (within the caches, and transposed beyond them), elements copied, calls: so
  the model compares candidates by what they do, not only by name, whatever kind of
  strategy they are; last, log2 of the candidate's total work
  (:data:`WORK_COLUMN`, :attr:`Work.total <autoconv.strategies.Work.total>`), which the
  predictor uses as its baseline.

Only plain ints and strings go in; nothing here touches a tensor.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoconv.signature import Signature
from autoconv.strategies import TERMS, TRAITS, Work, direct_macs, fft_plan, get
from autoconv.strategies.plan import fft_counts, phase_taps

#: Bumped whenever the meaning or order of the columns changes: a model (or a cached one)
#: built for another version is incompatible and is never used.
FEATURES_VERSION = 12

_DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}

SIGNATURE_COLUMNS = (
    "log_batch", "log_in_channels", "log_out_channels", "log_in_per_group",
    "log_out_per_group", "log_groups", "log_length", "log_padded_length", "log_output_length",
    "log_kernel", "log_span", "log_taps", "log_stride", "log_dilation", "log_span_ratio",
    "depthwise", "requires_grad", "cuda", "dtype_bits", "channel_alignment", "log_padding",
    "weight_reused",
)
WORK_COLUMNS = (
    "log_direct_macs", "log_fft_length", "log_fft_units", "log_fft_mix", "log_fft_elements",
)
#: The column holding log2 of the candidate's total work (the predictor's baseline).
WORK_COLUMN = "log_work"
#: The candidate's work: one column per term and trait of a :class:`Work`, then its total.
CANDIDATE_COLUMNS = (*(f"work_{name}" for name in (*TERMS, *TRAITS)), WORK_COLUMN)


def _log2(value: float) -> float:
    return math.log2(max(float(value), 1.0))


def _twos(value: int, cap: int = 6) -> int:
    """How many times 2 divides ``value`` (at most ``cap``): SIMD and cache alignment."""
    count = 0
    while value > 0 and value % 2 == 0 and count < cap:
        value //= 2
        count += 1
    return count


def signature_features(s: Signature) -> dict[str, float]:
    """The signature's own features (see :data:`SIGNATURE_COLUMNS`)."""
    in_per_group = s.in_channels // s.groups
    return dict(zip(SIGNATURE_COLUMNS, (
        _log2(s.batch), _log2(s.in_channels), _log2(s.out_channels), _log2(in_per_group),
        _log2(s.out_channels // s.groups), _log2(s.groups), _log2(s.length),
        _log2(s.padded_length), _log2(s.output_length), _log2(s.kernel_size), _log2(s.span),
        _log2(phase_taps(s)), _log2(s.stride), _log2(s.dilation),
        math.log2(s.span / s.padded_length),
        float(s.is_depthwise), float(s.requires_grad), float(s.device == "cuda"),
        float(_DTYPE_BITS.get(s.dtype, 32)), float(_twos(s.in_channels)),
        _log2(1 + s.padding_left + s.padding_right), float(s.weight_reused),
    ), strict=True))


def reference_work_features(s: Signature) -> dict[str, float]:
    """The signature's work counted as a direct convolution and as one FFT (see
    :data:`WORK_COLUMNS`)."""
    plan = fft_plan(s)
    counts = fft_counts(s, plan)
    return dict(zip(WORK_COLUMNS, (
        _log2(direct_macs(s)), _log2(plan.fft_length), _log2(counts.fft_units),
        _log2(counts.complex_macs), _log2(counts.elements)), strict=True))


def work_features(work: Work) -> dict[str, float]:
    """The candidate columns of ``work`` (see :data:`CANDIDATE_COLUMNS`): each term and
    trait it reports, and its total."""
    features = {f"work_{name}": math.log2(1.0 + count) for name, count in work.values}
    features[WORK_COLUMN] = _log2(work.total)
    return features


def candidate_features(s: Signature, strategy: str, params: Mapping[str, Any]
                       ) -> dict[str, float]:
    """The candidate columns of one candidate of ``s``: its strategy's own account of its
    work (:attr:`Strategy.work <autoconv.strategies.Strategy>`), whatever its kind.

    Raises:
        KeyError: ``strategy`` is not registered.
        ValueError, TypeError: parameters the strategy cannot run.
    """
    return work_features(get(strategy).work(s, params))


@dataclass(frozen=True)
class FeatureSpace:
    """The columns of the model's input: fixed by the strategies known when it was fitted.

    Attributes:
        strategies: strategy names, in indicator-column order.
    """

    strategies: tuple[str, ...]

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column name, in order."""
        indicators = tuple(f"is_{name}" for name in self.strategies)
        return SIGNATURE_COLUMNS + WORK_COLUMNS + indicators + CANDIDATE_COLUMNS

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Each column's position."""
        return {name: i for i, name in enumerate(self.columns)}

    def knows(self, strategy: str) -> bool:
        """Whether candidates of ``strategy`` can be described (and so predicted)."""
        return strategy in self.strategies

    def row(self, features: Mapping[str, float]) -> np.ndarray:
        """The row of named ``features``, in column order (0 where a column is not named).

        Raises:
            KeyError: a name that is not a column.
        """
        row = np.zeros(len(self.columns), dtype=np.float64)
        for name, value in features.items():
            try:
                row[self.index[name]] = value
            except KeyError:
                raise KeyError(f"no feature column {name!r}") from None
        return row

    def rows(self, s: Signature, candidates: Sequence[tuple[str, Mapping[str, Any]]]
             ) -> np.ndarray:
        """One row per (strategy, params) candidate of signature ``s``.

        Raises:
            KeyError: a candidate's strategy is not in :attr:`strategies`.
        """
        base = signature_features(s) | reference_work_features(s)
        matrix = np.empty((len(candidates), len(self.columns)), dtype=np.float64)
        for i, (strategy, params) in enumerate(candidates):
            if strategy not in self.strategies:
                raise KeyError(f"the model does not know strategy {strategy!r}")
            matrix[i] = self.row(base | {f"is_{strategy}": 1.0}
                                 | candidate_features(s, strategy, params))
        return matrix


def neighbourhood_vector(s: Signature) -> np.ndarray:
    """The coordinates used to tell how far a signature is from anything measured.

    Log2 sizes (one unit = one octave) plus categorical flags scaled so that a mismatch in
    dtype, gradients, device, depthwise-ness or a layer's reused weight alone counts as far.
    """
    far = 8.0
    return np.array([
        _log2(s.batch), _log2(s.in_channels // s.groups), _log2(s.out_channels // s.groups),
        _log2(s.groups), _log2(s.padded_length), _log2(s.span), _log2(s.stride),
        far * s.is_depthwise, far * s.requires_grad, far * (s.device == "cuda"),
        far * _log2(_DTYPE_BITS.get(s.dtype, 32)), far * s.weight_reused,
    ])
