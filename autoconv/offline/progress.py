"""A one-line progress bar with an ETA, for long runs on the command line."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """A one-line progress bar with an ETA on a stream (redrawn in place on a terminal).

    On a stream that is not a terminal (a log file, CI) it prints a line every ``every``
    items and at the end, instead of redrawing.
    """

    def __init__(self, total: int, budget_s: float | None = None,
                 stream: TextIO | None = None, width: int = 30, every: int = 25) -> None:
        stream = stream if stream is not None else sys.stderr  # looked up now, not at import
        self.total, self.budget_s, self.stream, self.width = total, budget_s, stream, width
        self.every = every
        self.started = time.perf_counter()
        self.interactive = stream.isatty()

    def update(self, done: int, measured: int) -> None:
        """Redraw after ``done`` items (``measured`` of them timed in this run)."""
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(done, 1) * (self.total - done)
        if self.budget_s is not None:
            eta = min(eta, self.budget_s - elapsed)
        filled = int(self.width * done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
                f"({measured} measured) {elapsed:.0f} s, ETA {max(eta, 0):.0f} s")
        if self.interactive:
            self.stream.write("\r" + line)
        elif done == self.total or done % self.every == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the line (on a terminal)."""
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
