"""Length bucketing: nearby input lengths share one tuning decision.

Speech and audio models see a new length on almost every batch. Tuning each one would cost
more than it saves, and the fastest strategy changes slowly with length, so lengths above a
threshold are rounded *up* to the next edge of a geometric ladder (edge_k = ceil(min * ratio^k)).
Rounding up keeps the representative signature valid (a longer input never makes a kernel too
long for it). With the default ratio 1.25 there are about three buckets per octave, so a model
fed every length from 1 s to 30 s of 16 kHz audio tunes about 16 signatures per layer instead
of 464,000.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from autoconv.signature import Signature

if TYPE_CHECKING:
    from autoconv.settings import Settings


def bucket_length(length: int, *, ratio: float, min_length: int) -> int:
    """The representative length of ``length``'s bucket (``length`` itself when small).

    The smallest ladder edge ``ceil(min_length * ratio**k)`` that is >= ``length``; a
    representative is its own representative, so bucketing twice changes nothing.
    """
    if length <= min_length:
        return length

    def edge(k: int) -> int:
        return math.ceil(min_length * ratio**k - 1e-9)

    k = max(0, math.floor(math.log(length / min_length) / math.log(ratio)) - 1)
    while edge(k) < length:
        k += 1
    return edge(k)


def bucket_signature(signature: Signature, *, ratio: float, min_length: int) -> Signature:
    """``signature`` with its length replaced by its bucket's representative length."""
    length = bucket_length(signature.length, ratio=ratio, min_length=min_length)
    if length == signature.length:
        return signature
    return dataclasses.replace(signature, length=length)


def decision_key(signature: Signature, settings: Settings) -> Signature:
    """The signature a decision is stored under: bucketed when ``settings.bucket_lengths``."""
    if not settings.bucket_lengths:
        return signature
    return bucket_signature(signature, ratio=settings.bucket_ratio,
                            min_length=settings.bucket_min_length)
