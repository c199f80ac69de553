"""Why a signature runs what it runs: every candidate's measured time, ``F.conv1d``'s, and
whether the decision is provisional.

Built from what the tuning database holds for the signature (rows checked by their
strategies, as the selector reads them) and the choice the selector made; nothing is timed
here. A speed-up is shown only against an ``F.conv1d`` that was timed for the same
signature: never one against a prediction.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from autoconv.choice import Choice
from autoconv.signature import Signature
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.protocols import FailureStore
from autoconv.tuning.stored import failed_outcomes


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


@dataclass(frozen=True)
class Explanation:
    """A decision and the evidence behind it.

    Attributes:
        signature: the call's signature (length bucketed as stored).
        device: where it runs.
        choice: what the selector chose, and where from.
        outcomes: every stored candidate of the signature, fastest first; the failed and
            disqualified ones (``ok`` false, ``note`` saying why) last.
        provisional: why the decision is provisional, or None when it is final (or nothing
            was measured).
    """

    signature: Signature
    device: torch.device
    choice: Choice
    outcomes: tuple[Outcome, ...]
    provisional: str | None

    @property
    def reference(self) -> Outcome | None:
        """``F.conv1d`` as called, when it was timed (or estimated) for this signature."""
        return next((o for o in self.outcomes if o.ok and o.candidate.is_plain_conv1d), None)

    def speedup(self, outcome: Outcome) -> float | None:
        """``F.conv1d``'s time over ``outcome``'s; None when F.conv1d was not timed."""
        reference = self.reference
        if reference is None or not outcome.ok:
            return None
        return reference.median_s / outcome.median_s

    def is_chosen(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` is the candidate the signature runs."""
        return (outcome.candidate.name == self.choice.strategy
                and tuple(outcome.candidate.params) == tuple(self.choice.params))

    def format(self) -> str:
        """A plain-text table of the candidates, then F.conv1d's time and the verdict."""
        if not self.outcomes:
            return (f"nothing was measured for {self.signature.short()} on {self.device}: "
                    f"the answer comes from the {self.choice.origin.replace('_', ' ')}; "
                    f"measure it with 'autoconv select ... --mode tune' or 'autoconv warm'")
        rows = [("", "candidate", "median", "spread", "samples", "vs F.conv1d", "note")]
        for outcome in self.outcomes:
            speedup = self.speedup(outcome)
            rows.append(("*" if self.is_chosen(outcome) else "", outcome.candidate.label,
                         _ms(outcome.median_s), _ms(outcome.spread_s), str(outcome.samples),
                         "-" if speedup is None else f"{speedup:.2f}x",
                         outcome.note or ("ok" if outcome.ok else "not ok")))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in rows]
        reference = self.reference
        lines.append("F.conv1d: " + (_ms(reference.median_s) if reference is not None
                                     else "not timed for this signature"))
        lines.append("decision: " + (f"provisional: {self.provisional}" if self.provisional
                                     else "final"))
        return "\n".join(lines)


def explain(selector, signature: Signature, device: torch.device,
            choice: Choice) -> Explanation:
    """The explanation of ``choice`` for ``signature`` on ``device`` from ``selector``'s
    database (a :class:`~autoconv.tuning.selector.Selector`): the rows it may choose from, and
    the failed or disqualified ones, with their notes, when its store keeps them."""
    stored: Sequence[Outcome] = selector.stored(signature, device)
    ordered = sorted([*stored, *_failed(selector, signature, device)],
                     key=lambda o: (not o.ok, o.median_s))
    reason = selector.provisional_reason(stored) if stored else None
    return Explanation(selector.key_signature(signature), device, choice, tuple(ordered),
                       reason)


def _failed(selector, signature: Signature, device: torch.device) -> list[Outcome]:
    """The stored failed candidates of ``signature`` (none when the store cannot say)."""
    store = selector.store
    if not isinstance(store, FailureStore):
        return []
    key = selector.key_signature(signature)
    try:
        rows = store.failures(key, device)
    except Exception as error:  # the explanation loses a detail, never the answer
        warnings.warn(f"autoconv: could not read the failed candidates of {key.short()}: "
                      f"{error}", RuntimeWarning, stacklevel=3)
        return []
    return failed_outcomes(rows, selector.strategies)
