"""Synthetic measurements with a known best, for the predictor's tests (no timing at all)."""

from __future__ import annotations

import math

import numpy as np

from autoconv.prediction.predictor import Sample
from autoconv.signature import Signature
from autoconv.strategies import all_strategies, get
from autoconv.tuning.candidates import enumerate_candidates

#: The made-up machine's seconds per unit of each work term.
SYNTHETIC_PRICES = {"calls": 2e-6, "direct_macs": 1e-10, "fft_units": 3e-10,
                    "spectral_macs": 2e-10, "elements": 1e-10, "matmul_macs": 5e-11,
                    "bytes_moved": 2e-11, "transposed_bytes": 5e-11}


def synthetic_seconds(s: Signature, strategy: str, params: dict) -> float:
    """A made-up but deterministic machine: each candidate's work terms at fixed prices."""
    work = get(strategy).work(s, params)
    return sum(SYNTHETIC_PRICES[term] * count for term, count in work.terms.items())


def random_signatures(count: int, seed: int = 0) -> list[Signature]:
    """Signatures spread log-uniformly over lengths, kernels, channels and batches."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        length = int(2 ** rng.uniform(6, 14))
        kernel = int(2 ** rng.uniform(0, min(10, math.log2(length))))
        channels = int(2 ** rng.uniform(0, 6))
        batch = int(2 ** rng.uniform(0, 3))
        out.append(Signature(batch, channels, channels, length, kernel, 1, 0, 0, 1, 1,
                             "float32", "cpu"))
    return out


def synthetic_samples(signatures: list[Signature], noise: float = 0.03,
                      seed: int = 0) -> list[Sample]:
    """Every candidate of every signature, timed by :func:`synthetic_seconds` with noise."""
    rng = np.random.default_rng(seed)
    return [Sample(s, c.name, dict(c.params),
                   synthetic_seconds(s, c.name, dict(c.params)) * math.exp(rng.normal(0, noise)))
            for s in signatures for c in enumerate_candidates(all_strategies(), s)]


def true_best(s: Signature) -> tuple[str, dict]:
    """The candidate with the smallest synthetic time."""
    candidates = enumerate_candidates(all_strategies(), s)
    best = min(candidates, key=lambda c: synthetic_seconds(s, c.name, dict(c.params)))
    return best.name, dict(best.params)


def record_synthetic(store, signatures: list[Signature]) -> None:
    """Store every candidate of each signature on the CPU, timed by :func:`synthetic_seconds`
    (``store``: an :class:`autoconv.storage.store.TuningStore`)."""
    import torch

    from autoconv.tuning.outcome import Outcome

    for s in signatures:
        store.record(s, torch.device("cpu"),
                     [Outcome(c, synthetic_seconds(s, c.name, dict(c.params)), samples=5)
                      for c in enumerate_candidates(all_strategies(), s)])


class ManualClock:
    """A clock that only moves when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
