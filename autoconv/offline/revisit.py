"""Which stored decisions ``autoconv warm`` measures again.

A decision is *provisional* (:func:`~autoconv.tuning.outcome.provisional_reason`) when its
winner was timed fewer than :data:`~tuning_db.records.SETTLED_SAMPLES` times, was only
estimated, or was timed (it or a close ``F.conv1d``) on a busy machine. Warming measures a
provisional decision again only when measuring it *now* can settle it: otherwise a resumed
warm would measure again, on the same busy machine or under the same budget, what the run
before it had just finished, and store another provisional decision in its place (on a busy
2-core machine every decision of the suite was provisional, and every rerun measured all 28
again).

- timed too few times (a first call's answer): always, since warming times every candidate
  at least :data:`~tuning_db.records.SETTLED_SAMPLES` times;
- timed on a busy machine: only while the machine is quiet;
- ``F.conv1d`` estimated because the whole call did not fit in the budget: only when the
  budget now leaves room to time it in full.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoconv.settings import Settings
from autoconv.strategies import all_strategies
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.outcome import Outcome, provisional_reason, tie_winner
from autoconv.tuning.trial import REFERENCE_SHARE
from tuning_db.records import SETTLED_SAMPLES


def _order() -> list[str]:
    return [strategy.name for strategy in all_strategies()]


def is_provisional(outcomes: Sequence[Outcome], tie_margin: float) -> bool:
    """Whether the decision the tie rule takes on ``outcomes`` is provisional."""
    return provisional_reason(outcomes, _order(), tie_margin) is not None


class Revisit:
    """The ``revisit`` rule of a warm's :class:`~autoconv.tuning.selector.Selector`: whether
    stored outcomes are measured again (see the module doc), counting the yeses.

    Args:
        settings: the tie margin and the budget the warm measures with.
        load: how busy the machine is now (the selector's own, so that both read alike).
        refresh: measure every stored decision again (``autoconv warm --refresh``).
    """

    def __init__(self, settings: Settings, load: MachineLoad | QuietMachine,
                 refresh: bool = False) -> None:
        self.settings = settings
        self.load = load
        self.refresh = refresh
        #: decisions found in the database and measured again
        self.count = 0

    def __call__(self, outcomes: Sequence[Outcome]) -> bool:
        again = self.refresh or self.settles_now(outcomes)
        self.count += again
        return again

    def settles_now(self, outcomes: Sequence[Outcome]) -> bool:
        """Whether ``outcomes`` make a provisional decision that measuring now can settle."""
        margin = self.settings.tie_margin
        if not is_provisional(outcomes, margin):
            return False
        winner = tie_winner(outcomes, _order(), margin)
        if winner is None:
            return False
        if winner.is_estimate:
            return winner.median_s <= REFERENCE_SHARE * self.settings.budget_s
        if winner.samples < SETTLED_SAMPLES and not winner.contended:
            return True
        return not self.load.busy()  # timed on a busy machine: worth it on a quiet one
