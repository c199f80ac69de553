"""Features of a (signature, candidate) pair for the learned predictor.

Every size enters on a log2 scale (time grows with products of sizes, which a log turns into
sums a tree ensemble learns easily). The features fall in three groups:

* the signature: log sizes (batch, channels in/out and per group, lengths, kernel, span,
  stride, dilation, groups), the kernel/length ratio, flags (depthwise, gradients, device
  type), the dtype's width, the channels' alignment (how many times 2 divides them: the
  direct kernels vectorise over channels) and the total padding (the direct kernels' speed
  per multiply-add varies several-fold on depthwise layers, partly with the padding; held
  out, this column markedly cut the worst pick);
* the work, counted exactly from the strategies' plans as the cost model counts it
  (:mod:`autoconv.tuning.cost_model`): direct multiply-adds, and for the single-FFT plan its
  length, butterfly units, frequency-domain multiply-adds and elements touched;
* the candidate: one indicator per strategy (in the order given to :class:`FeatureSpace`), and
  the same FFT work counts for the candidate's own plan (an ``overlap_add`` block size, its
  frames, the odd part of its FFT length, which FFTs handle more slowly than powers of two),
  so the model compares candidates by what they do, not only by name; the padding the
  candidate leaves to ``F.conv1d`` (``direct`` as called: the call's own; padding first or an
  FFT strategy: none), because oneDNN's fast JIT kernels take only a few samples of it and
  fall back to a GEMM path up to tens of times slower beyond (see
  :mod:`autoconv.strategies.direct_conv`); the input elements it copies first (padding
  first, or the odd sample of ``'same'``); last, log2 of the candidate's total work
  (:data:`WORK_COLUMN`), which the predictor uses as its baseline.

Only plain ints and strings go in; nothing here touches a tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoconv.signature import Signature
from autoconv.strategies import ConvPlan, Work, fft_plan, get
from autoconv.strategies.plan import phase_taps
from autoconv.tuning.cost_model import direct_macs, fft_counts

#: Bumped whenever the meaning or order of the columns changes: a model (or a cached one)
#: built for another version is incompatible and is never used.
FEATURES_VERSION = 7

_DTYPE_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}

SIGNATURE_COLUMNS = (
    "log_batch", "log_in_channels", "log_out_channels", "log_in_per_group",
    "log_out_per_group", "log_groups", "log_length", "log_padded_length", "log_output_length",
    "log_kernel", "log_span", "log_taps", "log_stride", "log_dilation", "log_span_ratio",
    "depthwise", "requires_grad", "cuda", "dtype_bits", "channel_alignment", "log_padding",
)
WORK_COLUMNS = (
    "log_direct_macs", "log_fft_length", "log_fft_units", "log_fft_mix", "log_fft_elements",
)
CANDIDATE_COLUMNS = (
    "log_plan_length", "log_plan_frames", "log_plan_units", "log_plan_mix",
    "log_plan_elements", "log_block_per_taps", "log_plan_odd_part", "log_conv_padding",
    "log_copied", "log_work",
)
#: The column holding log2 of the candidate's total work (the predictor's baseline).
WORK_COLUMN = "log_work"


def _log2(value: float) -> float:
    return math.log2(max(float(value), 1.0))


def _twos(value: int, cap: int = 6) -> int:
    """How many times 2 divides ``value`` (at most ``cap``): SIMD and cache alignment."""
    count = 0
    while value > 0 and value % 2 == 0 and count < cap:
        value //= 2
        count += 1
    return count


def signature_vector(s: Signature) -> list[float]:
    """The signature's own features (see :data:`SIGNATURE_COLUMNS`)."""
    in_per_group = s.in_channels // s.groups
    return [
        _log2(s.batch), _log2(s.in_channels), _log2(s.out_channels), _log2(in_per_group),
        _log2(s.out_channels // s.groups), _log2(s.groups), _log2(s.length),
        _log2(s.padded_length), _log2(s.output_length), _log2(s.kernel_size), _log2(s.span),
        _log2(phase_taps(s)), _log2(s.stride), _log2(s.dilation),
        math.log2(s.span / s.padded_length),
        float(s.is_depthwise), float(s.requires_grad), float(s.device == "cuda"),
        float(_DTYPE_BITS.get(s.dtype, 32)), float(_twos(s.in_channels)),
        _log2(1 + s.padding_left + s.padding_right),
    ]


def _plan_vector(s: Signature, plan: ConvPlan) -> list[float]:
    counts = fft_counts(s, plan)
    return [_log2(plan.fft_length), _log2(plan.frames), _log2(counts.fft_units),
            _log2(counts.complex_macs), _log2(counts.elements),
            math.log2(plan.fft_length / max(plan.taps, 1)),
            _log2(plan.fft_length >> _twos(plan.fft_length, cap=64)), 0.0, 0.0,
            _log2(counts.fft_units + counts.complex_macs + counts.elements)]


def work_vector(s: Signature, fft: list[float] | None = None) -> list[float]:
    """Direct and single-FFT operation counts (see :data:`WORK_COLUMNS`); ``fft``: the
    single-FFT plan's candidate columns, when already computed."""
    plan = fft if fft is not None else _plan_vector(s, fft_plan(s))
    return [_log2(direct_macs(s)), plan[0], plan[2], plan[3], plan[4]]


def _time_domain_vector(s: Signature, work: Work) -> list[float]:
    """The candidate columns of a call without an FFT plan: its work is the direct work,
    with the padding it leaves to ``F.conv1d`` and the input it copies first (padding
    first: on a memory-bound depthwise layer the copy costs as much as the convolution)."""
    macs = direct_macs(s)
    return [0.0, 0.0, _log2(macs), 0.0, 0.0, 0.0, 0.0, _log2(1 + work.conv_padding),
            _log2(1 + work.copied), _log2(macs + work.copied)]


def candidate_vector(s: Signature, strategy: str, params: Mapping[str, Any],
                     fft: tuple[ConvPlan, list[float]] | None = None) -> list[float]:
    """The candidate columns (:data:`CANDIDATE_COLUMNS`) of one candidate of ``s``: its FFT
    plan's counts, or the time-domain work (the strategy's own :attr:`Strategy.work`).

    Args:
        fft: the single-FFT plan of ``s`` and its columns, when already computed.

    Raises:
        KeyError: ``strategy`` is not registered.
        ValueError, TypeError: parameters the strategy cannot run.
    """
    work = get(strategy).work(s, params)
    if work.plan is None:
        return _time_domain_vector(s, work)
    if fft is not None and work.plan == fft[0]:
        return fft[1]
    return _plan_vector(s, work.plan)


@dataclass(frozen=True)
class FeatureSpace:
    """The columns of the model's input: fixed by the strategies known when it was fitted.

    Attributes:
        strategies: strategy names, in indicator-column order.
    """

    strategies: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column name, in order."""
        indicators = tuple(f"is_{name}" for name in self.strategies)
        return SIGNATURE_COLUMNS + WORK_COLUMNS + indicators + CANDIDATE_COLUMNS

    def knows(self, strategy: str) -> bool:
        """Whether candidates of ``strategy`` can be described (and so predicted)."""
        return strategy in self.strategies

    def rows(self, s: Signature, candidates: Sequence[tuple[str, Mapping[str, Any]]]
             ) -> np.ndarray:
        """One row per (strategy, params) candidate of signature ``s``.

        Raises:
            KeyError: a candidate's strategy is not in :attr:`strategies`.
        """
        plan = fft_plan(s)
        fft = (plan, _plan_vector(s, plan))  # the signature's, and the fft candidate's own
        base = signature_vector(s) + work_vector(s, fft[1])
        matrix = np.empty((len(candidates), len(self.columns)), dtype=np.float64)
        for i, (strategy, params) in enumerate(candidates):
            if strategy not in self.strategies:
                raise KeyError(f"the model does not know strategy {strategy!r}")
            indicators = [0.0] * len(self.strategies)
            indicators[self.strategies.index(strategy)] = 1.0
            matrix[i] = base + indicators + candidate_vector(s, strategy, params, fft)
        return matrix


def neighbourhood_vector(s: Signature) -> np.ndarray:
    """The coordinates used to tell how far a signature is from anything measured.

    Log2 sizes (one unit = one octave) plus categorical flags scaled so that a mismatch in
    dtype, gradients, device or depthwise-ness alone counts as far.
    """
    far = 8.0
    return np.array([
        _log2(s.batch), _log2(s.in_channels // s.groups), _log2(s.out_channels // s.groups),
        _log2(s.groups), _log2(s.padded_length), _log2(s.span), _log2(s.stride),
        far * s.is_depthwise, far * s.requires_grad, far * (s.device == "cuda"),
        far * _log2(_DTYPE_BITS.get(s.dtype, 32)),
    ])
