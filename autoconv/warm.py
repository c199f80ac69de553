"""Pre-warming: tune a list of signatures ahead of time, so that later calls find answers.

Each signature goes through the selector exactly as a first call would (database first, then
measuring), so signatures already in the database are skipped and every finished signature is
stored in its own transaction: an interrupted run keeps what it finished and resumes cleanly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from autoconv.choice import Choice
from autoconv.functional import get_selector
from autoconv.signature import Signature
from autoconv.tuner import Selector

Progress = Callable[[int, int, Signature, "WarmResult"], None]


@dataclass(frozen=True)
class WarmResult:
    """One warmed signature: what it got, where from, and how long deciding took."""

    signature: Signature
    choice: Choice
    seconds: float


def warm(signatures: Iterable[Signature], device: torch.device | str = "cpu", *,
         selector: Selector | None = None, progress: Progress | None = None
         ) -> list[WarmResult]:
    """Tune every signature in order (skipping those the database already answers).

    Args:
        signatures: what to tune; duplicates (after length bucketing) cost nothing.
        device: where the measurements run.
        selector: the selector to use (default: the process-wide one, with the default
            database and settings).
        progress: called after each signature with (done, total, signature, result).

    Returns:
        One :class:`WarmResult` per signature, in order.
    """
    target = torch.device(device)
    chosen = selector or get_selector()
    todo: Sequence[Signature] = list(signatures)
    results: list[WarmResult] = []
    for index, signature in enumerate(todo):
        start = time.perf_counter()
        choice = chosen.choose(signature, target)
        result = WarmResult(signature, choice, time.perf_counter() - start)
        results.append(result)
        if progress is not None:
            progress(index + 1, len(todo), signature, result)
    return results
