"""The tuning database as the selector should see it: a failure costs one operation.

A lookup that fails returns nothing (the signature is decided as if it were unknown); a write
that fails loses that one tuning run's rows, and the warning says which. After a failure the
database is left alone for ``retry_s`` seconds, so a server that is down costs the program one
timeout, not one per call, and then it is tried again: storage comes back by itself. One
warning per failure, naming the database (password masked), the device and the signature.
A signature outside what the database stores (a length over 32 bits) is the call's doing,
not the database's: it is looked up as unknown and not stored, and the database neither
rests nor is blamed.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from autoconv.signature import Signature
from autoconv.storage.store import TuningStore, UnstorableSignature
from autoconv.tuning.outcome import Outcome
from tuning_db import MeasurementRecord, TuningDBError

logger = logging.getLogger(__name__)


class DatabaseResting(TuningDBError):
    """The database is not tried: it failed a moment ago."""


class GuardedStore:
    """A :class:`~autoconv.storage.store.TuningStore` whose failures are per operation.

    Args:
        store: the store to guard.
        retry_s: seconds the database is left alone after a failure.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, store: TuningStore, retry_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.retry_s = retry_s
        self.clock = clock
        self._resting_until = -float("inf")
        self._lock = threading.Lock()
        self._causes: set[tuple[str, str]] = set()  # failures already warned about

    @property
    def db(self) -> Any:
        """The open database.

        Raises:
            DatabaseResting: the database is left alone after a failure (no wait at all).
            TuningDBError: what opening it raises.
        """
        if not self.available:
            raise DatabaseResting(f"{self.store.where} is left alone after a failure")
        return self.store.db

    def device(self, device: torch.device) -> Any:
        """The fingerprint record of ``device``."""
        return self.store.device(device)

    @property
    def unborn(self) -> bool:
        """Whether the database does not exist yet (:attr:`TuningStore.unborn`)."""
        return self.store.unborn

    @property
    def available(self) -> bool:
        """Whether the database may be tried now (not resting after a failure)."""
        return self.clock() >= self._resting_until

    def candidates(self, signature: Signature, device: torch.device
                   ) -> Sequence[MeasurementRecord]:
        """This device's valid measurements of ``signature``; none when the lookup fails."""
        if not self.available:
            return []
        try:
            return self.store.candidates(signature, device)
        except Exception as error:  # a broken database must not break the user's model
            self._failed(f"could not read the measurements of {signature.short()}", error)
            return []

    def failures(self, signature: Signature, device: torch.device
                 ) -> Sequence[MeasurementRecord]:
        """This device's failed measurements of ``signature``; none when the lookup fails."""
        if not self.available:
            return []
        try:
            return self.store.failures(signature, device)
        except Exception as error:  # only an explanation asks: it loses a detail, no more
            self._failed(f"could not read the failed measurements of {signature.short()}",
                         error)
            return []

    #: What becomes of the outcomes a write loses (for the warning).
    unsaved_outcomes = "kept in memory only"

    def record(self, signature: Signature, device: torch.device,
               outcomes: Sequence[Outcome]) -> bool:
        """Store one tuning run's outcomes; on failure (or while resting) they are kept in
        memory only and the answer is False. A signature the database cannot hold
        (:class:`~autoconv.storage.store.UnstorableSignature`) is not a failure of the
        database: it is logged, and the database does not rest."""
        if not self.available:
            return False
        try:
            self.store.record(signature, device, outcomes)
        except UnstorableSignature as error:
            logger.info("autoconv: %s is not stored (%s)", signature.short(), error)
            return False
        except Exception as error:
            self._failed(f"could not store {len(outcomes)} measurements of "
                         f"{signature.short()} ({self.unsaved_outcomes})", error)
            return False
        return True

    @contextmanager
    def lease(self, signature: Signature, device: torch.device) -> Iterator[bool]:
        """The store's lease (:meth:`TuningStore.lease`); granted without asking while the
        database rests or when taking it fails (a lease only avoids duplicate work: it must
        never stop a call)."""
        if not self.available:
            yield True
            return
        try:
            held = self.store.lease(signature, device)
            granted = held.__enter__()
        except Exception as error:
            self._failed(f"could not take the lease of {signature.short()}", error)
            yield True
            return
        try:
            yield granted
        finally:
            try:
                held.__exit__(None, None, None)
            except Exception as error:
                self._failed(f"could not release the lease of {signature.short()}", error)

    def want(self, calls: dict[tuple[Signature, torch.device], int]) -> bool:
        """Note signatures answered without a measurement (:meth:`TuningStore.want`);
        whether they were noted (a failure is one warning, and the database rests)."""
        if not self.available or not calls:
            return False
        try:
            self.store.want(calls)
        except Exception as error:
            self._failed(f"could not note {len(calls)} signature(s) answered without a "
                         "measurement", error)
            return False
        return True

    def close(self) -> None:
        self.store.close()

    def _failed(self, what: str, error: Exception) -> None:
        """Rest, and say what was lost: a warning the first time a cause (the error's type
        and message) is seen, the ``autoconv`` log after that (one warning per cause)."""
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        cause = (type(error).__name__, message)
        with self._lock:
            self._resting_until = self.clock() + self.retry_s
            first = cause not in self._causes
            self._causes.add(cause)
        text = (f"autoconv: tuning database {self.store.where}: {what}: "
                f"{type(error).__name__}: {message}; trying it again in {self.retry_s:g} s")
        if first:
            warnings.warn(text, RuntimeWarning, stacklevel=4)
        else:
            logger.info("%s", text)
