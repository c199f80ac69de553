"""The cost model: seconds predicted from operation counts and a few measured constants.

It serves the cold start (no measurements for this device yet) and pruning in the tuner: a
candidate predicted to be many times slower than the predicted best is never run. Each
strategy counts its own work exactly (:attr:`Strategy.work <autoconv.strategies.Strategy>`,
a :class:`~autoconv.strategies.Work` of named terms: direct multiply-adds, FFT butterflies,
matrix-multiply multiply-adds, bytes moved, ...); the model prices every term at its rate
(:data:`PRICES`) and sums them, without asking what kind of strategy the work came from. The
rates (seconds per direct multiply-add, per FFT butterfly, per complex multiply-add in the
channel mix, per element, per matrix-multiply multiply-add, per byte of a layout conversion
within the caches and beyond them, per call) come from a handful of micro-measurements on
this device, taken once per process and device, in well under a second.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from autoconv import plain
from autoconv.contexts import may_measure
from autoconv.signature import Signature
from autoconv.strategies import Strategy, Work, direct_macs
from autoconv.strategies.plan import FFTCounts, fft_counts

__all__ = ["PRICES", "CalibratedCostModel", "CostConstants", "FFTCounts", "calibrate",
           "default_cost_model", "direct_macs", "fft_counts", "seconds"]


@dataclass(frozen=True)
class CostConstants:
    """Seconds per unit of work on one device (see the module docstring)."""

    direct_mac_s: float
    narrow_mac_s: float
    depthwise_mac_s: float
    fft_unit_s: float
    complex_mac_s: float
    elementwise_s: float
    call_s: float
    matmul_mac_s: float
    copy_byte_s: float
    #: a dense direct multiply-add in bfloat16 (0: not measured, half priced as float32)
    half_direct_mac_s: float = 0.0
    #: a byte of a transposing copy beyond the caches (0: not measured, priced as
    #: ``copy_byte_s``)
    transposed_byte_s: float = 0.0


#: Channels per group from which a direct convolution runs at its dense (GEMM-like) speed.
DENSE_CHANNELS = 16


def _direct_mac_s(c: CostConstants, s: Signature) -> float:
    """Seconds per multiply-add of a direct convolution: dense, depthwise or narrow."""
    in_per_group = s.in_channels // s.groups
    if in_per_group >= DENSE_CHANNELS:
        return c.direct_mac_s
    if in_per_group == 1 and s.groups > 1:
        return c.depthwise_mac_s
    return c.narrow_mac_s


def _half_direct_mac_s(c: CostConstants, s: Signature) -> float:
    """Seconds per multiply-add of a direct convolution in half precision: its class's
    float32 rate times the slowdown measured on a dense layer (never below 1)."""
    slowdown = max(1.0, c.half_direct_mac_s / c.direct_mac_s) if c.half_direct_mac_s else 1.0
    return _direct_mac_s(c, s) * slowdown


#: The rate of every term of :data:`~autoconv.strategies.TERMS`: ``(constants, signature)
#: -> seconds per unit``.
PRICES: dict[str, Callable[[CostConstants, Signature], float]] = {
    "calls": lambda c, s: c.call_s,
    "direct_macs": _direct_mac_s,
    "half_direct_macs": _half_direct_mac_s,
    "fft_units": lambda c, s: c.fft_unit_s,
    "spectral_macs": lambda c, s: c.complex_mac_s,
    "elements": lambda c, s: c.elementwise_s,
    "matmul_macs": lambda c, s: c.matmul_mac_s,
    "bytes_moved": lambda c, s: c.copy_byte_s,
    "transposed_bytes": lambda c, s: c.transposed_byte_s or c.copy_byte_s,
}


def seconds(work: Work, signature: Signature, constants: CostConstants) -> float:
    """One forward call's seconds: the sum of ``work``'s terms, each at its price.

    Raises:
        KeyError: a term without a price.
    """
    return sum(PRICES[term](constants, signature) * count
               for term, count in work.terms.items())


class CalibratedCostModel:
    """Predicts a candidate's seconds on a device; calibrates itself on first use.

    Args:
        constants: known constants per device type (tests), at the current thread count.
        calibrator: measures (or looks up) a device's constants; default :func:`calibrate`,
            in every process. ``autoconv.storage.cost_cache`` gives one that measures once
            per device fingerprint and reuses the result, so that every process predicts
            the same.
    """

    def __init__(self, constants: dict[str, CostConstants] | None = None, *,
                 calibrator: Callable[[torch.device], CostConstants] | None = None) -> None:
        self.calibrator = calibrator or calibrate
        self._constants: dict[tuple[str, int, int], CostConstants] = {}
        self._lock = threading.Lock()
        for key, value in (constants or {}).items():
            self._constants[(key, 0, torch.get_num_threads())] = value

    def constants(self, device: torch.device) -> CostConstants | None:
        """The constants for ``device`` (and the current thread count), measured once.

        None on a device not yet calibrated where nothing may run (a CUDA graph captured, a
        trace or torch.func transform active: :func:`autoconv.contexts.may_measure`): the
        model cannot judge then (and guesses are never cached).
        """
        key = (device.type, device.index or 0, torch.get_num_threads())
        cached = self._constants.get(key)
        if cached is None:
            if not may_measure(device):
                return None
            with self._lock:
                cached = self._constants.get(key)
                if cached is None:
                    cached = self.calibrator(device)
                    self._constants[key] = cached
        return cached

    def predict(self, signature: Signature, strategy: Strategy, params: dict[str, Any],
                device: torch.device) -> float | None:
        """Predicted seconds for one call of ``strategy`` with ``params``, or None when the
        model cannot judge (no constants yet, or parameters the strategy cannot run).

        The work is the strategy's own account of it (:attr:`Strategy.work`), priced term by
        term (:func:`seconds`), whatever kind of strategy it is. With gradients the
        call is forward plus backward, and backward computes two convolutions of the
        forward's size (to the input and to the weight): three in all.
        """
        c = self.constants(device)
        if c is None:
            return None
        try:
            strategy.validate(signature, params)
            work = strategy.work(signature, params)
        except (TypeError, ValueError):
            return None
        factor = 3.0 if signature.requires_grad else 1.0
        return factor * seconds(work, signature, c)


def _best_time(fn, device: torch.device, repeats: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(device: torch.device) -> CostConstants:
    """Measure the cost constants on ``device`` with a few small float32 operations.

    The best of a few runs is used (not the median), on shapes where each kernel runs near
    its peak: the constants describe the machine at its fastest, so that pruning errs on the
    side of timing a candidate rather than dropping it.
    """
    generator = torch.Generator().manual_seed(0)  # the caller's random stream stays untouched

    def make(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype).to(device)

    with torch.no_grad():
        x, w = make(1, 64, 2048), make(64, 64, 31)
        dense = _best_time(lambda: plain.conv1d(x, w), device) / (64 * 64 * 2018 * 31)
        xn, wn = make(8, 1, 4096), make(1, 1, 255)
        narrow = _best_time(lambda: plain.conv1d(xn, wn), device) / (8 * 3842 * 255)
        xd, wd = make(1, 64, 4096), make(64, 1, 15)
        depthwise = _best_time(lambda: plain.conv1d(xd, wd, groups=64), device) / (64 * 4082 * 15)
        signal = make(64, 4096)
        fft_unit = _best_time(lambda: torch.fft.rfft(signal), device) / (64 * 4096 * 12)
        a = make(513, 8, 64, dtype=torch.complex64)
        b = make(513, 64, 64, dtype=torch.complex64)
        complex_mac = _best_time(lambda: torch.matmul(a, b), device) / (513 * 8 * 64 * 64)
        spectra = make(64, 2049, dtype=torch.complex64)
        elementwise = _best_time(lambda: spectra * spectra, device) / spectra.numel()
        tiny_x, tiny_w = make(1, 1, 64), make(1, 1, 3)
        call = _best_time(lambda: plain.conv1d(tiny_x, tiny_w), device, repeats=20)
        left, right = make(384, 384), make(384, 384)
        matmul = _best_time(lambda: torch.matmul(left, right), device) / 384 ** 3
        # a layout conversion: a transposing copy (channel-major to time-major), read and
        # written, of a size well beyond the first cache levels
        planes = make(64, 16384)
        copy = _best_time(lambda: planes.t().contiguous(), device) / (2 * planes.numel() * 4)
        # the same beyond the caches, on spectra: 34 MB of complex values, which a CPU copies
        # at its memory's speed (about 4 GB/s here, against 10 GB/s for the 4 MB above)
        spectra_rows = make(4096, 1025, dtype=torch.complex64)
        transposed = _best_time(lambda: spectra_rows.t().contiguous(), device,
                                repeats=3) / (2 * spectra_rows.numel() * 8)
        # the dense layer in bfloat16, smaller: without half kernels it runs 10-30x slower
        xh, wh = x[..., :512].bfloat16(), w[..., :7].bfloat16()
        half = _best_time(lambda: plain.conv1d(xh, wh), device, repeats=3) / (64 * 64 * 506 * 7)
    return CostConstants(dense, narrow, depthwise, fft_unit, complex_mac, elementwise, call,
                         matmul, copy, half, transposed)


#: The process-wide cost model the selector uses by default.
default_cost_model = CalibratedCostModel()
