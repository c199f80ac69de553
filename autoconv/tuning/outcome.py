"""Outcome: what tuning learned about one candidate (one row for the tuning database)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from autoconv.tuning.candidates import Candidate
from autoconv.tuning.timing import Timing, summarize
from tuning_db.records import CONTENDED_NOTE, SETTLED_SAMPLES, is_contended

#: Longest note stored with an outcome (the database keeps short texts).
NOTE_LENGTH = 200
#: Shortest time an outcome records: a clock's zero is no measurement.
MIN_SECONDS = 1e-9
#: The tie margin of ``F.conv1d`` as called against the fastest when either was timed on a
#: busy machine: F.conv1d keeps the decision unless the other is more than 1.5x as fast.
#: Contention does not slow every candidate alike (torch's parallel regions wait for every
#: thread's core, so a multi-threaded call suffers most): on the 2-core test machine beside
#: one spinning process, an overlap-add measured faster than F.conv1d ran 5x slower once the
#: machine was quiet. A large gain (FFT on a long kernel) still shows; a provisional
#: decision is measured again by ``autoconv warm`` and re-checked on live calls.
CONTENDED_TIE_MARGIN = 0.5
#: The same margin holds when the fastest was timed fewer than ``SETTLED_SAMPLES`` times (a
#: call so long that the budget fits its warm-up alone): one sample on a quiet machine
#: still varies by 2-3x (here a 4x1x84704, K=10, stride 5 ``F.conv1d`` that takes 75-90 ms
#: took 232 ms once), and a 7% lead on one sample stored an overlap-add that runs 2.4x
#: slower than ``F.conv1d``. Keeping ``F.conv1d`` costs at most 1.5x; a noisy winner, any
#: factor.
#: ``F.conv1d`` within this factor of the winner makes the decision a close call: if either
#: was timed on a busy machine, the decision is provisional.
CLOSE_CALL = 2.0
#: How an outcome estimated rather than timed in full says so (its ``note`` starts with it):
#: ``F.conv1d`` as called, too long for the budget, timed on windows of its output.
ESTIMATED_NOTE = "estimated:"


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
        """A candidate that ran correctly and was timed; a timing taken on a busy machine
        says so in its note (:data:`~tuning_db.records.CONTENDED_NOTE`)."""
        note = None
        if timing.contended:
            note = (f"{CONTENDED_NOTE} {timing.disturbed} of {timing.samples} samples "
                    f"disturbed{timing.busy_note}")[:NOTE_LENGTH]
        return cls(candidate, max(timing.median_s, MIN_SECONDS), timing.spread_s,
                   timing.samples, error, note=note)

    @classmethod
    def of_live_times(cls, candidate: Candidate, times: Sequence[float], note: str
                      ) -> Outcome:
        """An outcome of seconds timed on live calls (a live re-check, mode live's
        exploration): their median and spread, as a timing's
        (:func:`~autoconv.tuning.timing.summarize`)."""
        summary = summarize(times)
        return cls(candidate, max(summary.median_s, MIN_SECONDS), summary.spread_s,
                   summary.samples, note=note[:NOTE_LENGTH])

    @classmethod
    def estimated(cls, candidate: Candidate, seconds: float, how: str, *,
                  busy: bool = False) -> Outcome:
        """A candidate not run in full, whose time was estimated on this device (``how``
        says from what): it may win, and a decision it wins is provisional (one sample).
        An estimate taken on a busy machine is noted as contended."""
        note = (f"{CONTENDED_NOTE} estimated from {how}" if busy
                else f"{ESTIMATED_NOTE} {how}")
        return cls(candidate, max(seconds, MIN_SECONDS), note=note[:NOTE_LENGTH])

    def at_one_thread(self, threads: int) -> Outcome:
        """This outcome, noted as timed at one torch thread of ``threads`` because other
        work held the cores (:func:`~autoconv.tuning.contention.one_thread_when_busy`), on
        the thread's CPU clock: a contended, provisional measurement (the calls will run
        at ``threads``), whatever its samples said."""
        if not self.ok:
            return self
        detail = self.note.removeprefix(CONTENDED_NOTE).strip() if self.contended else ""
        note = (f"{CONTENDED_NOTE} timed at 1 torch thread of {threads} on its CPU clock, "
                f"other work held the cores" + (f"; {detail}" if detail else ""))
        return dataclasses.replace(self, note=note[:NOTE_LENGTH])

    @property
    def contended(self) -> bool:
        """Whether it was timed on a machine too busy to trust its time
        (:class:`~autoconv.tuning.timing.Timing` ``.contended``)."""
        return self.ok and is_contended(self.note)

    @property
    def is_estimate(self) -> bool:
        """Whether its time is an estimate on a quiet machine (:meth:`estimated`), not a
        timing: measuring again under the same budget estimates it again."""
        return self.ok and (self.note or "").startswith(ESTIMATED_NOTE)

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


def tie_winner(outcomes: Sequence[Outcome], order: Sequence[str], tie_margin: float
               ) -> Outcome | None:
    """The outcome the tie rule picks: the fastest valid one, unless it is tied with a
    simpler strategy (None when none is valid).

    An outcome is tied with the fastest when its median is within ``tie_margin`` of it
    (``F.conv1d`` as called: :data:`CONTENDED_TIE_MARGIN`, when either was timed on a busy
    machine or the fastest fewer than ``SETTLED_SAMPLES`` times), or when their interquartile ranges overlap (unless either was timed on a busy
    machine: beside two spinning processes, a 7.8 ms FFT "tied" a 1.2 ms overlap-add by its
    spread, and won the tie as the simpler strategy). A tie goes to the strategy that
    comes first in ``order`` (registry order: simpler first), then to its form without
    parameters, then to the faster median. Both selectors (conv1d calls and streams) decide
    with it, on fresh measurements and on stored ones alike.
    """
    valid = [o for o in outcomes if o.ok]
    if not valid:
        return None
    fastest = min(valid, key=lambda o: o.median_s)

    unsettled = fastest.samples < SETTLED_SAMPLES

    def tied(o: Outcome) -> bool:
        contended = o.contended or fastest.contended
        margin = (max(tie_margin, CONTENDED_TIE_MARGIN)
                  if (contended or unsettled) and o.candidate.is_plain_conv1d else tie_margin)
        if o.median_s <= fastest.median_s * (1 + margin):
            return True
        # a busy machine's spread is its neighbours' noise, not the candidates'
        return not contended and (o.median_s - o.spread_s / 2
                                  <= fastest.median_s + fastest.spread_s / 2)

    rank = {name: index for index, name in enumerate(order)}
    return min((o for o in valid if tied(o)),
               key=lambda o: (rank.get(o.candidate.name, len(rank)),
                              bool(o.candidate.params), o.median_s))


def provisional_reason(outcomes: Sequence[Outcome], order: Sequence[str], tie_margin: float
                       ) -> str | None:
    """Why the decision the tie rule takes on ``outcomes`` is provisional, or None when it is
    final.

    Provisional: its winner was timed fewer than :data:`~tuning_db.records.SETTLED_SAMPLES`
    times, or its winner or a close rival ``F.conv1d`` (within :data:`CLOSE_CALL` of it) was
    timed on a busy machine. A
    provisional decision is used, but ``autoconv warm`` measures it again, and the live
    re-check watches it.
    """
    winner = tie_winner(outcomes, order, tie_margin)
    if winner is None:
        return None
    if winner.samples < SETTLED_SAMPLES:
        return f"the winner was timed {winner.samples} time(s), fewer than {SETTLED_SAMPLES}"
    close = [o for o in outcomes if o.ok and o is not winner and o.candidate.is_plain_conv1d
             and o.median_s <= CLOSE_CALL * winner.median_s]
    for outcome in [winner, *close]:
        if outcome.contended:
            who = "the winner" if outcome is winner else "F.conv1d"
            return f"{who} was timed on a busy machine ({outcome.note})"
    return None
