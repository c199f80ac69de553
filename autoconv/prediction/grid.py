"""The training grid: signatures measured once so that a new machine can predict the rest.

``autoconv warm --grid`` measures these signatures into the tuning database, so the predictor
(:mod:`autoconv.prediction.predictor`) has data covering the space where the strategies trade
places. The grid is the same on every machine: a fixed-seed draw, each size log-uniform (every
octave equally likely), because which strategy wins depends on ratios of sizes. Almost half
of it is drawn **independently** on every axis, so that no combination people run is far
from a grid point; the rest **perturbs the families of real layers**, so that the grid is
dense where people actually are:

====================  ======================================================================
family                what varies (ranges inclusive, log-uniform unless listed)
====================  ======================================================================
independent           batch 1-64; groups 1 (55 %), depthwise (25 %, multiplier 1 or 2) or
                      2-256 groups (20 %); channels 1-1024 per group side; length 16-256k;
                      kernel 1-8k (at most the padded length); any stride, dilation and
                      padding mode
fir                   1 -> 1 or stereo (2 groups) filters, reverbs, matched filters: batch
                      1-64, length 1k-256k, kernel 8-48k, causal, valid or full padding
front_end             1 -> 8-512 filter banks (SincNet, wav2vec2, Conv-TasNet encoders):
                      batch 1-128, length 1k-256k, kernel 5-512, stride 1-10
dense_short           16-1024 -> 16-1024 channels, kernel 1-11 (vocoders, TCNs, WaveNet,
                      ResNets): batch 1-64, length 32-32k, dilation 1-512, same or causal
dense_mid             8-256 -> 8-256 channels, kernel 12-32, padded (ECG and time-series
                      ResNets, HiFi-GAN's and MelGAN's longer kernels): batch 4-64, length
                      256-16k, same, causal or full
downsample            C -> C or 2C, kernel 2-3x the stride 2-8 (EnCodec, Demucs, wav2vec2):
                      C 1-1024, batch 1-32, length 256-128k
depthwise_short       64-2048 channels, kernel 3-87 (Mamba, Conformer, QuartzNet, Conv-TasNet):
                      batch 1-32, length 128-16k, dilation 1-128 (half of them 1, most of
                      the rest a power of two, as TCNs stack them), same or causal
depthwise_long        64-1024 channels, kernel L/4 up to L, causal (Hyena, S4): batch 1-16,
                      length 256-8k
grouped               4-256 groups of 4-64 channels, out multiplier 1-4 (wav2vec2's positional
                      conv, MelGAN's discriminator): kernel 5-128, stride 1-4
text                  embeddings of 50-300 -> 50-256 filters (text CNNs): batch 16-256, length
                      16-1024, kernel 2-7
dense_single          (one signature in ten, drawn from a stream of its own: see below)
                      16-256 -> 8-256 channels at batch 1-2 (inference on one clip: EnCodec,
                      ECG ResNets, HiFi-GAN, MelGAN at batch 1), kernel 1-32, stride 1, 2 or
                      4, length 256-32k
====================  ======================================================================

The last family came after the rest was measured: held out, the model picked the unfolded
multiply (``gemm``) on batch-1 layers of 32-128 channels where ``F.conv1d`` ran 1.4-2x
faster, and the grid held 9 dense signatures of 16-128 channels at batch 1. It is drawn from
its own seed and takes every tenth place, so the other families' draw is unchanged: a
database measured on the grid before keeps every row, and ``warm --grid`` measures only
the new signatures.

Across families: strides 1 (most), 2, 3, 4, 5 or 8 where a family lists none; dilations 1
(most) up to 16; padding valid, same (stride 1), full, or causal (as a caller does it: the
input left-padded with ``F.pad``, then no padding, since ``F.conv1d`` pads symmetrically);
one signature in ten needs gradients (timed forward + backward). Signatures whose cheapest
plausible strategy would still be huge are redrawn (at most 16M input or output elements
and 2^32 multiply-adds or FFT butterfly units): the 2,000 of the default grid took 903 s
and 912 s on the project's 2-core test machine, within ``warm --grid``'s 900 s default
budget or just past it (a later run resumes). The bounds are as high as that because the largest real layers live there (batch-32
ECG ResNets, wav2vec2's and Conv-TasNet's encoders at 4-8 clips): with 8M and 2^31, 37 of
the 260 layers of ``autoconv.catalogue.held_out`` lay beyond anything measured, where
overlap-add's buffers outgrow the caches and its time per operation rises by half; with
these bounds, 12. The grid holds distinct
signatures *after* length bucketing (:mod:`autoconv.buckets`: what the selector stores), and
its order is shuffled, so a run stopped by its time budget covers every family evenly; a later
run resumes (signatures already in the database are skipped).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from autoconv.buckets import bucket_signature
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies.plan import fft_plan
from autoconv.tuning.cost_model import direct_macs, fft_counts

#: Signatures in the default grid, and the seed that draws them. A larger grid is the same
#: draw continued, so growing it (``--grid-size``) only measures the new signatures. The size
#: trades the time to measure it for the model's held-out accuracy
#: (``scripts/bench_real_layers.py``, ``benchmarks/real-layers-cpu.md``).
DEFAULT_SIZE = 2000
SEED = 20261202
#: The most input or output elements, and the most work of the cheaper of direct and FFT.
MAX_ELEMENTS = 1 << 24
MAX_WORK = 1 << 32
#: Share of signatures that need gradients.
GRAD_SHARE = 0.1

Draw = Callable[[np.random.Generator], Signature | None]


def _log_int(rng: np.random.Generator, low: int, high: int) -> int:
    """An int in [low, high], log-uniform."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high + 0.5)))))


def _choice(rng: np.random.Generator, values: tuple, weights: tuple[float, ...]):
    return values[int(rng.choice(len(values), p=np.asarray(weights) / sum(weights)))]


def _stride(rng: np.random.Generator) -> int:
    return _choice(rng, (1, 2, 3, 4, 5, 8), (0.7, 0.1, 0.04, 0.07, 0.04, 0.05))


def _dilation(rng: np.random.Generator, high: int = 16) -> int:
    if rng.random() < 0.8:
        return 1
    return _log_int(rng, 2, high)


#: Padding modes: none, 'same' (stride 1 only), full (K - 1 each side, e.g. a causal layer
#: that trims its output afterwards), causal (the input left-padded by the caller with
#: ``F.pad``, the convolution unpadded: a 'valid' call on the longer input).
VALID, SAME, FULL, CAUSAL = "valid", "same", "full", "causal"


def _padding(mode: str, span: int, stride: int) -> tuple[int, int]:
    if mode == SAME and stride == 1:
        return (span - 1) // 2, span - 1 - (span - 1) // 2
    if mode == FULL:
        return span - 1, span - 1
    return 0, 0


def _stacked_dilation(rng: np.random.Generator, high: int = 128) -> int:
    """1 half the time; else mostly a power of two up to ``high`` (a TCN's or Conv-TasNet's
    stack of blocks, 1, 2, 4, ...), sometimes any value in between."""
    draw = rng.random()
    if draw < 0.5:
        return 1
    if draw < 0.85:
        return 1 << int(rng.integers(1, int(math.log2(high)) + 1))
    return _log_int(rng, 2, high)


def _any_padding(rng: np.random.Generator) -> str:
    return _choice(rng, (VALID, SAME, FULL, CAUSAL), (0.4, 0.3, 0.1, 0.2))


def _make(rng: np.random.Generator, batch: int, cin: int, cout: int, length: int, kernel: int,
          groups: int = 1, stride: int = 1, dilation: int = 1, padding: str | None = None
          ) -> Signature | None:
    span = dilation * (kernel - 1) + 1
    mode = padding or _any_padding(rng)
    if mode == CAUSAL:  # the caller pads on the left (F.pad), F.conv1d pads nothing
        length += span - 1
    left, right = _padding(mode, span, stride)
    if length + left + right < span:
        return None
    return Signature(batch, cin, cout, length, kernel, stride, left, right, dilation, groups,
                     "float32", "cpu", bool(rng.random() < GRAD_SHARE))


def _independent(rng: np.random.Generator) -> Signature | None:
    mode = _choice(rng, ("dense", "depthwise", "grouped"), (0.55, 0.25, 0.2))
    if mode == "dense":
        groups, cin, cout = 1, _log_int(rng, 1, 1024), _log_int(rng, 1, 1024)
    elif mode == "depthwise":
        groups = _log_int(rng, 1, 2048)
        cin, cout = groups, groups * _choice(rng, (1, 2), (0.85, 0.15))
    else:
        groups = _log_int(rng, 2, 256)
        cin = groups * _log_int(rng, 1, 64)
        cout = groups * _log_int(rng, 1, 64)
    length = _log_int(rng, 16, 1 << 18)
    return _make(rng, _log_int(rng, 1, 64), cin, cout, length,
                 _log_int(rng, 1, min(8192, length)), groups, _stride(rng), _dilation(rng))


def _fir(rng: np.random.Generator) -> Signature | None:
    channels = _choice(rng, (1, 2), (0.7, 0.3))
    return _make(rng, _log_int(rng, 1, 64), channels, channels, _log_int(rng, 1024, 1 << 18),
                 _log_int(rng, 8, 48000), channels, 1, 1,
                 _choice(rng, (CAUSAL, VALID, FULL), (0.4, 0.4, 0.2)))


def _front_end(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 1, 128), 1, _log_int(rng, 8, 512),
                 _log_int(rng, 1024, 1 << 18), _log_int(rng, 5, 512), 1,
                 _log_int(rng, 1, 10), 1, _choice(rng, (VALID, SAME), (0.7, 0.3)))


def _dense_short(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 1, 64), _log_int(rng, 16, 1024), _log_int(rng, 16, 1024),
                 _log_int(rng, 32, 1 << 15), _log_int(rng, 1, 11), 1, 1,
                 _dilation(rng, high=512), _choice(rng, (SAME, CAUSAL, VALID), (0.5, 0.3, 0.2)))


def _dense_mid(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 4, 64), _log_int(rng, 8, 256), _log_int(rng, 8, 256),
                 _log_int(rng, 256, 1 << 14), _log_int(rng, 12, 32), 1, 1, _dilation(rng),
                 _choice(rng, (SAME, CAUSAL, FULL), (0.6, 0.3, 0.1)))


def _downsample(rng: np.random.Generator) -> Signature | None:
    stride = _log_int(rng, 2, 8)
    channels = _log_int(rng, 1, 1024)
    return _make(rng, _log_int(rng, 1, 32), channels,
                 channels * _choice(rng, (1, 2), (0.4, 0.6)), _log_int(rng, 256, 1 << 17),
                 stride * _choice(rng, (2, 3), (0.7, 0.3)), 1, stride, 1,
                 _choice(rng, (VALID, CAUSAL), (0.6, 0.4)))


def _depthwise_short(rng: np.random.Generator) -> Signature | None:
    channels = _log_int(rng, 64, 2048)
    return _make(rng, _log_int(rng, 1, 32), channels, channels, _log_int(rng, 128, 1 << 14),
                 _log_int(rng, 3, 87), channels, _choice(rng, (1, 2), (0.9, 0.1)),
                 _stacked_dilation(rng), _choice(rng, (SAME, CAUSAL), (0.6, 0.4)))


def _depthwise_long(rng: np.random.Generator) -> Signature | None:
    channels = _log_int(rng, 64, 1024)
    length = _log_int(rng, 256, 8192)
    return _make(rng, _log_int(rng, 1, 16), channels, channels, length,
                 _log_int(rng, max(1, length // 4), length), channels, 1, 1, CAUSAL)


def _grouped(rng: np.random.Generator) -> Signature | None:
    groups = _log_int(rng, 4, 256)
    per_group = _log_int(rng, 4, 64)
    return _make(rng, _log_int(rng, 1, 16), groups * per_group,
                 groups * per_group * _log_int(rng, 1, 4), _log_int(rng, 64, 1 << 14),
                 _log_int(rng, 5, 128), groups, _log_int(rng, 1, 4), 1)


def _text(rng: np.random.Generator) -> Signature | None:
    return _make(rng, _log_int(rng, 16, 256), _log_int(rng, 50, 300), _log_int(rng, 50, 256),
                 _log_int(rng, 16, 1024), _log_int(rng, 2, 7), 1, 1, 1, VALID)


#: The families, with the share of the grid each gets.
FAMILIES: dict[str, tuple[Draw, float]] = {
    "independent": (_independent, 0.44),
    "fir": (_fir, 0.08),
    "front_end": (_front_end, 0.06),
    "dense_short": (_dense_short, 0.1),
    "dense_mid": (_dense_mid, 0.06),
    "downsample": (_downsample, 0.06),
    "depthwise_short": (_depthwise_short, 0.08),
    "depthwise_long": (_depthwise_long, 0.04),
    "grouped": (_grouped, 0.05),
    "text": (_text, 0.03),
}


def _dense_single(rng: np.random.Generator) -> Signature | None:
    stride = _choice(rng, (1, 2, 4), (0.7, 0.2, 0.1))
    return _make(rng, _choice(rng, (1, 2), (0.75, 0.25)), _log_int(rng, 16, 256),
                 _log_int(rng, 8, 256), _log_int(rng, 256, 1 << 15), _log_int(rng, 1, 32), 1,
                 stride, _dilation(rng, high=8) if stride == 1 else 1)


#: The family drawn from a stream of its own, and how often it takes a place (see the
#: module docstring).
SUPPLEMENT: Draw = _dense_single
SUPPLEMENT_SEED = 20261206
SUPPLEMENT_EVERY = 10


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
    """The grid's signatures (deterministic in ``size`` and ``seed``), shuffled, distinct
    after length bucketing (each is its bucket's representative, as the selector stores it).

    Args:
        size: how many signatures.
        device: the device type written into the signatures ("cpu" or "cuda").
    """
    rng = np.random.default_rng(seed)
    # the supplement's stream is seeded alongside: SUPPLEMENT_SEED for the default grid
    supplement_rng = np.random.default_rng(SUPPLEMENT_SEED + seed - SEED)
    names = list(FAMILIES)
    shares = np.array([FAMILIES[name][1] for name in names])
    buckets = Settings.model_fields
    ratio = buckets["bucket_ratio"].default
    min_length = buckets["bucket_min_length"].default
    grid: dict[Signature, None] = {}

    def family_draw(generator: np.random.Generator) -> Signature | None:
        draw = FAMILIES[names[int(generator.choice(len(names), p=shares / shares.sum()))]][0]
        return draw(generator)

    def add(draw: Draw, generator: np.random.Generator) -> None:
        """Draw from ``generator`` until one new affordable signature joins the grid."""
        while True:
            signature = draw(generator)
            if signature is None:
                continue
            signature = dataclasses.replace(
                bucket_signature(signature, ratio=ratio, min_length=min_length), device=device)
            if affordable(signature) and signature not in grid:
                grid[signature] = None
                return

    while len(grid) < size:
        if (len(grid) + 1) % SUPPLEMENT_EVERY == 0:
            add(SUPPLEMENT, supplement_rng)
        else:
            add(family_draw, rng)
    return list(grid)
