"""Outcome: what tuning learned about one candidate (one row for the tuning database)."""

from __future__ import annotations

from dataclasses import dataclass

from autoconv.tuning.candidates import Candidate
from autoconv.tuning.timing import Timing

#: Longest note stored with an outcome (the database keeps short texts).
NOTE_LENGTH = 200
#: Shortest time an outcome records: a clock's zero is no measurement.
MIN_SECONDS = 1e-9


@dataclass(frozen=True)
class Outcome:
    """What tuning learned about one candidate.

    A candidate that failed or was disqualified has ``ok=False``, a ``note`` saying why, and
    the time of its one (warm-up) call, so it is stored, never measured again, never a winner.
    Build one with :meth:`timed`, :meth:`failed` or :meth:`disqualified`.

    Attributes:
        candidate: the strategy and parameters.
        median_s, spread_s, samples: the timing (a failed candidate: its one call).
        error: its largest error against ``F.conv1d``, relative to the output's magnitude
            (None when it was not checked).
        ok: whether it may win.
        note: why it may not.
    """

    candidate: Candidate
    median_s: float
    spread_s: float = 0.0
    samples: int = 1
    error: float | None = None
    ok: bool = True
    note: str | None = None

    @classmethod
    def timed(cls, candidate: Candidate, timing: Timing, error: float | None) -> Outcome:
        """A candidate that ran correctly and was timed."""
        return cls(candidate, max(timing.median_s, MIN_SECONDS), timing.spread_s,
                   timing.samples, error)

    @classmethod
    def failed(cls, candidate: Candidate, seconds: float, why: str,
               error: float | None = None) -> Outcome:
        """A candidate that raised (while warming up or being timed)."""
        return cls(candidate, max(seconds, MIN_SECONDS), error=error, ok=False,
                   note=f"failed: {why}"[:NOTE_LENGTH])

    @classmethod
    def disqualified(cls, candidate: Candidate, seconds: float, error: float,
                     tolerance: float) -> Outcome:
        """A candidate whose output differs from ``F.conv1d``'s by more than ``tolerance``."""
        return cls(candidate, max(seconds, MIN_SECONDS), error=error, ok=False,
                   note=f"disqualified: error {error:.3g} > {tolerance:.3g}"[:NOTE_LENGTH])
