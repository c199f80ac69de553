"""The training grid: signatures measured once so that a new machine can predict the rest.

``autoconv warm --grid`` measures these signatures into the tuning database, so the predictor
(:mod:`autoconv.prediction.predictor`) has data covering the space where the strategies trade
places. The grid is the same on every machine: a fixed-seed draw from five families of real conv1d
uses, each size drawn log-uniformly (every octave equally likely), because which strategy wins
depends on ratios of sizes:

=================  =========================================================================
family             what varies (ranges inclusive, log-uniform unless listed)
=================  =========================================================================
single_channel     1 -> 1 channel filters (FIR, reverb, resampling): batch 1-64, length
                   64-256k, kernel 2-8k; 'valid', 'same' or full padding
filter_bank        1 -> 8-256 channels (SincNet, encoders): batch 1-64, length 256-64k,
                   kernel 2-1k, stride 1/2/4/8
dense              2-512 -> 2-512 channels, groups 1: batch 1-32, length 16-16k, kernel 1-512
depthwise          16-1024 channels, groups = channels (Mamba, Hyena, TCN): batch 1-16,
                   length 64-32k, kernel 2 up to the length, dilation 1/2/4/16
grouped            2-32 groups of 4-64 channels (wav2vec2's positional conv): batch 1-16,
                   length 64-8k, kernel 2-256
=================  =========================================================================

Across families: strides 1 (most), 2, 4 or 8; dilations 1 (most), 2, 4 or 16 in the
single-channel, dense and depthwise families (1 elsewhere); one signature in ten needs
gradients (timed forward + backward). Signatures whose cheapest plausible strategy would still
be huge are redrawn (at most 4M input or output elements and 2^30 multiply-adds or FFT
butterfly units), so one signature tunes in about a second or less. The order is shuffled, so
a run stopped by its time budget covers every family evenly; a later run resumes (signatures
already in the database are skipped).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from autoconv.signature import Signature
from autoconv.strategies.plan import fft_plan
from autoconv.tuning.cost_model import direct_macs, fft_counts

#: Signatures in the default grid, and the seed that draws them. A larger grid is the same
#: draw continued, so growing it (``--grid-size``) only measures the new signatures. The size
#: trades the time to measure it for the model's held-out accuracy
#: (``scripts/bench_predictor.py``, ``benchmarks/predictor-cpu.md``).
DEFAULT_SIZE = 2000
SEED = 20251123
#: The most input or output elements, and the most work of the cheaper of direct and FFT.
MAX_ELEMENTS = 1 << 22
MAX_WORK = 1 << 30
#: Share of signatures that need gradients.
GRAD_SHARE = 0.1

Draw = Callable[[np.random.Generator], Signature | None]


def _log_int(rng: np.random.Generator, low: int, high: int) -> int:
    """An int in [low, high], log-uniform."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high + 0.5)))))


def _choice(rng: np.random.Generator, values: tuple[int, ...], weights: tuple[float, ...]
            ) -> int:
    return int(rng.choice(values, p=np.asarray(weights) / sum(weights)))


def _stride(rng: np.random.Generator) -> int:
    return _choice(rng, (1, 2, 4, 8), (0.7, 0.12, 0.1, 0.08))


def _dilation(rng: np.random.Generator) -> int:
    return _choice(rng, (1, 2, 4, 16), (0.8, 0.08, 0.07, 0.05))


def _padding(rng: np.random.Generator, span: int, stride: int) -> tuple[int, int]:
    mode = _choice(rng, (0, 1, 2), (0.45, 0.35, 0.2))  # valid, same, full
    if mode == 1 and stride == 1:
        return (span - 1) // 2, span - 1 - (span - 1) // 2
    if mode == 2:
        return span - 1, span - 1
    return 0, 0


def _make(rng: np.random.Generator, batch: int, cin: int, cout: int, length: int, kernel: int,
          groups: int, stride: int, dilation: int) -> Signature | None:
    span = dilation * (kernel - 1) + 1
    left, right = _padding(rng, span, stride)
    if length + left + right < span:
        return None
    return Signature(batch, cin, cout, length, kernel, stride, left, right, dilation, groups,
                     "float32", "cpu", bool(rng.random() < GRAD_SHARE))


def _single_channel(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 1, 64), 1, 1, _log_int(rng, 64, 1 << 18),
                 _log_int(rng, 2, 8192), 1, _stride(rng), _dilation(rng))


def _filter_bank(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 1, 64), 1, _log_int(rng, 8, 256),
                 _log_int(rng, 256, 1 << 16), _log_int(rng, 2, 1024), 1, _stride(rng), 1)


def _dense(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 1, 32), _log_int(rng, 2, 512), _log_int(rng, 2, 512),
                 _log_int(rng, 16, 1 << 14), _log_int(rng, 1, 512), 1, _stride(rng),
                 _dilation(rng))


def _depthwise(rng: np.random.Generator) -> Signature | None:
    channels = _log_int(rng, 16, 1024)
    length = _log_int(rng, 64, 1 << 15)
    return _make(rng, _log_int(rng, 1, 16), channels, channels, length,
                 _log_int(rng, 2, length), channels, _stride(rng), _dilation(rng))


def _grouped(rng: np.random.Generator) -> Signature | None:
    groups = _log_int(rng, 2, 32)
    per_group = _log_int(rng, 4, 64)
    return _make(rng, _log_int(rng, 1, 16), groups * per_group, groups * per_group,
                 _log_int(rng, 64, 8192), _log_int(rng, 2, 256), groups, _stride(rng), 1)


#: The families, with the share of the grid each gets.
FAMILIES: dict[str, tuple[Draw, float]] = {
    "single_channel": (_single_channel, 0.25),
    "filter_bank": (_filter_bank, 0.1),
    "dense": (_dense, 0.3),
    "depthwise": (_depthwise, 0.2),
    "grouped": (_grouped, 0.15),
}


def affordable(s: Signature) -> bool:
    """Whether tuning ``s`` stays small (see the module docstring's bounds)."""
    if s.batch * s.in_channels * s.padded_length > MAX_ELEMENTS:
        return False
    if s.batch * s.out_channels * s.output_length > MAX_ELEMENTS:
        return False
    work = fft_counts(s, fft_plan(s))
    return min(direct_macs(s), work.fft_units + work.complex_macs) <= MAX_WORK


def training_grid(size: int = DEFAULT_SIZE, *, seed: int = SEED,
                  device: str = "cpu") -> list[Signature]:
    """The grid's signatures (deterministic in ``size`` and ``seed``), shuffled, no repeats.

    Args:
        size: how many signatures.
        device: the device type written into the signatures ("cpu" or "cuda").
    """
    rng = np.random.default_rng(seed)
    names = list(FAMILIES)
    shares = np.array([FAMILIES[name][1] for name in names])
    grid: dict[Signature, None] = {}
    while len(grid) < size:
        draw = FAMILIES[names[int(rng.choice(len(names), p=shares / shares.sum()))]][0]
        signature = draw(rng)
        if signature is not None and affordable(signature):
            grid[dataclasses.replace(signature, device=device)] = None
    return list(grid)
