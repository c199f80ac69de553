"""Measuring the training grid (``autoconv warm --grid``) within a total time budget.

Every signature goes through a *measuring* selector (database first, then timing; never the
learned predictor, whose confident answers would otherwise stand in for measurements), so a
signature already in the database costs a lookup and an interrupted or budget-limited run
resumes where it stopped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import torch

from autoconv.cost_model import default_cost_model
from autoconv.database import open_default_store
from autoconv.settings import settings
from autoconv.signature import Signature
from autoconv.tuner import Selector


def measuring_selector() -> Selector:
    """A selector on the configured database that measures what it does not know."""
    return Selector(store=open_default_store(settings), cost_model=default_cost_model)


@dataclass(frozen=True)
class GridReport:
    """What a grid run did."""

    total: int
    visited: int
    measured: int
    seconds: float

    @property
    def complete(self) -> bool:
        """Whether every signature of the grid was visited (none left for a later run)."""
        return self.visited == self.total


class ProgressLine:
    """A one-line progress bar with an ETA on a stream (redrawn in place on a terminal)."""

    def __init__(self, total: int, budget_s: float, stream: TextIO = sys.stderr,
                 width: int = 30) -> None:
        self.total, self.budget_s, self.stream, self.width = total, budget_s, stream, width
        self.started = time.perf_counter()
        self.interactive = stream.isatty()

    def update(self, done: int, measured: int) -> None:
        """Redraw after ``done`` signatures (``measured`` of them timed in this run)."""
        elapsed = time.perf_counter() - self.started
        eta = min(elapsed / max(done, 1) * (self.total - done), self.budget_s - elapsed)
        filled = int(self.width * done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"({measured} measured) {elapsed:.0f} s, ETA {max(eta, 0):.0f} s")
        if self.interactive:
            self.stream.write("\r" + line)
        elif done == self.total or done % 25 == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def run_grid(signatures: Sequence[Signature], device: torch.device | str, *,
             total_budget_s: float, selector: Selector | None = None,
             progress: Callable[[int, int], None] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> GridReport:
    """Tune ``signatures`` in order until done or ``total_budget_s`` seconds have passed.

    Args:
        signatures: the grid (see :func:`autoconv.grid.training_grid`).
        device: where to measure.
        total_budget_s: stop starting new signatures after this many seconds (each signature
            is itself bounded by ``settings.budget_s``).
        selector: default :func:`measuring_selector` (on the configured database).
        progress: called with (visited, measured) after each signature.
    """
    target = torch.device(device)
    chosen = selector or measuring_selector()
    start = clock()
    visited = measured = 0
    for signature in signatures:
        if clock() - start >= total_budget_s:
            break
        choice = chosen.choose(signature, target)
        visited += 1
        measured += choice.origin == "measured"
        if progress is not None:
            progress(visited, measured)
    return GridReport(len(signatures), visited, measured, clock() - start)
