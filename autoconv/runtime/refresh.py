"""Answers given without a measurement: noted for a fleet's tuning worker, and replaced by
measured ones when they appear.

A process that may not measure (mode ``predict``, or in mode ``live`` a call exploration does
not cover: gradients, CUDA, autocast) answers an unseen signature from a prediction or the
safe prior. :class:`Refresher` notes those signatures, with the calls seen, in the tuning
database's ``wanted`` table, where ``autoconv warm --wanted`` on a machine of the same
fingerprint finds and measures them; and it looks each of them up again, so that a measured
answer, once stored, replaces the unmeasured one in this process.

All of it happens off the hot path: a call pays a counter and a comparison
(:class:`CallCounter`, in the hot-path entry's watch slot, one note every
:data:`COUNT_EVERY` calls), and a background thread writes the notes and looks the
signatures up every ``refresh_s`` (setting ``AUTOCONV_REFRESH_S``; the first time after
:data:`FIRST_REFRESH_S`), never a database query per call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import torch

from autoconv.signature import Signature
from autoconv.storage.guarded import GuardedStore
from autoconv.tuning.live_check import LiveCheck
from autoconv.tuning.selector import Selector

logger = logging.getLogger(__name__)

Key = tuple[Signature, torch.device]
#: A counted call key's calls are noted once in this many calls (and on its first).
COUNT_EVERY = 256
#: The background thread's first refresh comes this soon (a short-lived process notes too).
FIRST_REFRESH_S = 1.0


class CallCounter:
    """The hot-path watch of a call answered without a measurement: counts its calls for the
    wanted notes, and passes them on to the live re-check it wraps, if any (which then runs
    on the calls it would have run on alone).

    Args:
        note: called with the calls seen since the last note.
        inner: the live re-check of the same answer, or None.
    """

    def __init__(self, note: Callable[[int], None], inner: LiveCheck | None = None) -> None:
        self.note = note
        self.inner = inner
        #: calls left until the next note (decremented on the hot path)
        self.countdown = 1
        self._interval = 1

    def sampled(self, run: Callable[..., torch.Tensor], input: torch.Tensor,
                weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                groups) -> torch.Tensor:
        """The call that ran the countdown out: note the calls, and run the call (through
        the live re-check when its own countdown has run out too)."""
        seen = self._interval
        self.note(seen)
        inner = self.inner
        if inner is not None:
            inner.countdown -= seen
            if inner.countdown <= 0:
                output = inner.sampled(run, input, weight, bias, stride, padding, dilation,
                                       groups)
            else:
                output = run(input, weight, bias, stride, padding, dilation, groups)
            due = inner.countdown
        else:
            output = run(input, weight, bias, stride, padding, dilation, groups)
            due = COUNT_EVERY
        self._interval = self.countdown = max(1, min(COUNT_EVERY, due))
        return output


class Refresher:
    """The unmeasured answers of one process (see the module docstring).

    Args:
        selector: the process's selector (its store is a :class:`GuardedStore`, or None).
        forget_calls: drops the hot-path entries of a (signature, device), so that its next
            call looks its decision up again.
        every_s: seconds between refreshes in the background; 0: no background thread
            (:meth:`refresh` is called by whoever wants it: tests).
    """

    def __init__(self, selector: Selector, forget_calls: Callable[[Signature, torch.device],
                                                                   None],
                 every_s: float) -> None:
        self.selector = selector
        self.forget_calls = forget_calls
        self.every_s = every_s
        self._pending: dict[Key, int] = {}
        self._unmeasured: set[Key] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def noted(self, signature: Signature, device: torch.device, calls: int) -> None:
        """``calls`` more calls of ``signature`` answered without a measurement."""
        key = (signature, device)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + calls
            self._unmeasured.add(key)
            start = self._thread is None and self.every_s > 0
            if start:
                self._thread = threading.Thread(target=self._run, name="autoconv-refresh",
                                                daemon=True)
        if start:
            self._thread.start()

    def waiting(self) -> set[Key]:
        """The (signature, device) pairs answered without a measurement, not yet replaced."""
        with self._lock:
            return set(self._unmeasured)

    def refresh(self) -> int:
        """Write the pending notes, and replace every unmeasured answer that has a measured
        one in the database now; returns how many were replaced."""
        with self._lock:
            pending, self._pending = self._pending, {}
            waiting = list(self._unmeasured)
        store = self.selector.store
        if isinstance(store, GuardedStore) and pending:
            store.want({key: count for key, count in pending.items()})
        replaced = 0
        for signature, device in waiting:
            if not any(outcome.ok for outcome in self.selector.stored(signature, device)):
                continue
            self.selector.forget(signature, device)
            self.forget_calls(signature, device)
            with self._lock:
                self._unmeasured.discard((signature, device))
            replaced += 1
            logger.info("autoconv: %s: a measured answer is stored now; switching to it",
                        signature.short())
        return replaced

    def stop(self) -> None:
        """Stop the background thread (pending notes are dropped)."""
        self._stop.set()

    def _run(self) -> None:
        wait = min(FIRST_REFRESH_S, self.every_s)
        while not self._stop.wait(wait):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the thread must outlive any one failure
                logger.debug("autoconv: refresh failed", exc_info=True)
            wait = self.every_s
