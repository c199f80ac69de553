"""The report's data: each tuned signature's decision, taken from its stored rows as the
selector takes it (rows checked by their strategies, the tie rule, provisional decisions),
with its provenance and its measured speed-up over ``F.conv1d``.

A speed-up is only ever one against an ``F.conv1d`` that was *timed* for the same signature:
never against a prediction, nor against the estimate the tuner keeps for an ``F.conv1d`` too
slow to time within its budget (:meth:`autoconv.tuning.outcome.Outcome.estimated`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import tuning_db
from autoconv.settings import settings
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.tuning.outcome import Outcome, provisional_reason, tie_winner
from autoconv.tuning.stored import stored_outcomes
from tuning_db.records import CONTENDED_NOTE

#: How :meth:`Outcome.estimated <autoconv.tuning.outcome.Outcome.estimated>` notes a time it
#: estimated rather than timed (after ``contended:`` when the machine was busy).
ESTIMATED_NOTE = "estimated"
#: How the report names ``F.conv1d`` as called among the candidates.
REFERENCE_LABEL = "F.conv1d"


def is_estimate(note: str | None) -> bool:
    """Whether a stored row's note says its time was estimated, not timed."""
    if note is None:
        return False
    return note.removeprefix(CONTENDED_NOTE).lstrip().startswith(ESTIMATED_NOTE)


@dataclass(frozen=True)
class Tuned:
    """One tuned signature: its decision and the evidence behind it.

    Attributes:
        signature: the signature (length bucketed as stored).
        winner: the strategy the tie rule picks from the stored rows, as the selector does.
        best_s: the winner's median time.
        speedup: the timed ``F.conv1d``'s median over the winner's; None when ``F.conv1d``
            was not timed for this signature (or only estimated, or the winner is itself an
            estimate).
        samples: how many times the winner was timed.
        reference_samples: how many times ``F.conv1d`` was timed (0: not timed).
        provisional: why the decision is provisional
            (:func:`~autoconv.tuning.outcome.provisional_reason`), None when final.
        contended: whether the winner, or ``F.conv1d``, was timed on a busy machine.
        estimated_speedup: the tuner's *estimate* of ``F.conv1d`` over the winner's time,
            where ``F.conv1d`` was too slow to time within the budget (never drawn as a
            speed-up).
        candidate: the winner as the report names it (``F.conv1d``, or the strategy with
            its parameters).
    """

    signature: Signature
    winner: str
    best_s: float
    speedup: float | None = None
    samples: int = 1
    reference_samples: int = 0
    provisional: str | None = None
    contended: bool = False
    estimated_speedup: float | None = None
    candidate: str = ""

    @property
    def compared(self) -> bool:
        """Whether the winner was measured against a timed ``F.conv1d``."""
        return self.speedup is not None

    @property
    def uncertain(self) -> bool:
        """Whether the figure may be far off: the decision is provisional, or the winner or
        ``F.conv1d`` was timed on a busy machine."""
        return self.provisional is not None or self.contended

    @property
    def provenance(self) -> str:
        """How the decision was measured, in a few words: ``fft 5 samples vs F.conv1d 5``,
        ``F.conv1d won, 5 samples``, then ``, provisional`` and ``, busy machine`` where they
        apply."""
        winner = self.candidate or self.winner
        count = f"{self.samples} sample{'s' * (self.samples != 1)}"
        if self.compared and winner == REFERENCE_LABEL:
            text = f"F.conv1d won, {count}"
        elif self.compared:
            text = f"{winner} {count} vs F.conv1d {self.reference_samples}"
        else:
            text = f"{winner} {count}, F.conv1d not timed"
        return (text + (", provisional" if self.provisional else "")
                + (", busy machine" if self.contended else ""))


def decide(signature: Signature, rows: Sequence) -> Tuned | None:
    """The decision the stored ``rows`` of ``signature`` make, with its provenance; None when
    no row is one a strategy here can run."""
    strategies = all_strategies()
    order = [strategy.name for strategy in strategies]
    outcomes = stored_outcomes(signature, rows, strategies)
    winner = tie_winner(outcomes, order, settings.tie_margin)
    if winner is None:
        return None
    reference = next((o for o in outcomes if o.candidate.is_plain_conv1d), None)
    timed = (reference is not None and not is_estimate(reference.note)
             and not is_estimate(winner.note))
    estimated = (reference is not None and not timed and reference is not winner
                 and is_estimate(reference.note))
    return Tuned(
        signature, winner.candidate.name, winner.median_s,
        speedup=reference.median_s / winner.median_s if timed else None,
        samples=winner.samples, reference_samples=reference.samples if timed else 0,
        provisional=provisional_reason(outcomes, order, settings.tie_margin),
        contended=_contended(winner, reference),
        estimated_speedup=reference.median_s / winner.median_s if estimated else None,
        candidate=candidate_label(winner))


def candidate_label(outcome: Outcome) -> str:
    """A candidate as the report names it: ``F.conv1d`` as called, else its label
    (``overlap_add(block_size=4096)``)."""
    return REFERENCE_LABEL if outcome.candidate.is_plain_conv1d else outcome.candidate.label


def _contended(winner: Outcome, reference: Outcome | None) -> bool:
    return winner.contended or (reference is not None and reference.contended)


def tuned_signatures(measurements: Iterable[tuning_db.MeasurementRecord]) -> list[Tuned]:
    """The decision of every signature with at least one valid measurement among
    ``measurements`` (rows of one device)."""
    by_signature: dict[Signature, list[tuning_db.MeasurementRecord]] = {}
    for measurement in measurements:
        if measurement.ok:
            signature = Signature(**measurement.signature.model_dump())
            by_signature.setdefault(signature, []).append(measurement)
    decided = (decide(signature, rows) for signature, rows in by_signature.items())
    return [tuned for tuned in decided if tuned is not None]


def measured_channels(tuned: Iterable[Tuned], most: int = 3) -> list[int]:
    """The input channel counts measured most often (at most ``most``, ascending; of those
    measured as often, the smallest): the winners map's default panels, so that it shows
    the measured signatures."""
    return sorted(most_common_channels(tuned)[:most])


def most_common_channels(tuned: Iterable[Tuned]) -> list[int]:
    """The input channel counts of ``tuned``, the most often measured first (ties: the
    smaller first)."""
    counts = Counter(t.signature.in_channels for t in tuned)
    return sorted(counts, key=lambda channels: (-counts[channels], channels))


def geometric_mean(values: list[float]) -> float:
    """exp(mean(log(values))): the average of ratios (speed-ups, regrets)."""
    return math.exp(statistics.fmean(math.log(v) for v in values))
