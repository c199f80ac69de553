"""What the selector needs from its collaborators, as protocols: the tuning database, the
cost model and the learned predictor. Each is injected, so the selector is tested with fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

from autoconv.choice import Choice
from autoconv.signature import Signature
from autoconv.strategies import Strategy
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.outcome import Outcome
from tuning_db import MeasurementRecord


class ChoiceStore(Protocol):
    """The tuning database as the tuner sees it (see :mod:`autoconv.storage.store`)."""

    def candidates(self, signature: Signature, device: torch.device
                   ) -> Sequence[MeasurementRecord]:
        """This device's ok measurements of ``signature`` (the selector picks among them with
        the same tie rule as when it measured)."""
        ...

    def record(self, signature: Signature, device: torch.device,
               outcomes: Sequence[Outcome]) -> bool | None:
        """Store one tuning run's outcomes; False when they were not kept (a failing
        database is the store's to report: :class:`~autoconv.storage.guarded.GuardedStore`
        never raises)."""
        ...


@runtime_checkable
class LeaseStore(ChoiceStore, Protocol):
    """A store with leases: processes sharing it never measure one signature at once (the
    selectors tune under the lease when their store has one)."""

    def lease(self, signature: Signature, device: torch.device
              ) -> AbstractContextManager[bool]:
        """Take the lease of measuring ``signature`` on ``device`` if free (never waits):
        yields whether it was granted; granted when taking it fails."""
        ...


@runtime_checkable
class FailureStore(Protocol):
    """A store that also returns the failed candidates of a signature (what an explanation
    shows; the selector never needs them)."""

    def failures(self, signature: Signature, device: torch.device
                 ) -> Sequence[MeasurementRecord]:
        """This device's failed or disqualified measurements of ``signature``."""
        ...


class CostModel(Protocol):
    """Predicts seconds for a candidate (``None`` when it cannot say)."""

    def predict(self, signature: Signature, strategy: Strategy, params: dict[str, Any],
                device: torch.device) -> float | None: ...


class Prediction(Protocol):
    """A prediction and whether it may be used without measuring."""

    choice: Choice
    confident: bool


class Predictor(Protocol):
    """The learned model: a choice without measuring, and whether it is sure of it
    (see :mod:`autoconv.prediction.service`). ``None`` when it has no answer (no model yet)."""

    def decide(self, signature: Signature, candidates: Sequence[Candidate],
               device: torch.device) -> Prediction | None: ...
