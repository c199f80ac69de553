"""Chosen strategies prepared off the calling thread, so that no call waits for a compile.

A strategy with a :attr:`~autoconv.strategies.Strategy.preparation` (the fused kernel, which
``torch.compile`` builds for each signature) runs at its measured speed only once prepared
in this process: seconds to tens of seconds the first time (Inductor's start, then the
kernel, or its cached copy). A decision read from the tuning database, or one tuned for
another length of the call's bucket, would make the call that meets it wait that long, where
``F.conv1d`` answers in milliseconds. :class:`BackgroundPreparations` runs the preparation
on a thread of its own instead, on stand-in tensors of the call's kind (zeros: the caller's
tensors are never read from another thread), while ``F.conv1d`` answers the calls; once it
is done, the owner forgets the calls' interim answers and the next call runs the chosen
strategy. A preparation that fails is not tried again in the background: the next call
prepares on the calling thread, whose failure the dispatcher recovers from as before.

On Linux the preparing thread lowers its own scheduling priority first (a nice value is a
thread's own there, and the compiler processes it starts inherit it): on a machine whose
cores are all busy, the calls ``F.conv1d`` answers meanwhile keep the cores, and the
compile takes what is left.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

import torch

from autoconv.choice import Choice
from autoconv.signature import Signature
from autoconv.strategies import FrozenParams

logger = logging.getLogger(__name__)

#: What a preparation is keyed by: the strategy, its parameters and the call's signature.
PreparationKey = tuple[str, FrozenParams, Signature]
#: The nice value a preparing thread adds to its own (19 at most in all: the lowest).
BACKGROUND_NICENESS = 10


def yield_the_cores() -> None:
    """Lower the calling thread's scheduling priority by :data:`BACKGROUND_NICENESS`, on
    Linux, where ``setpriority`` on a thread's id affects that thread alone (elsewhere the
    id could name another process: nothing is done). Lowering is always permitted."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread,
                       min(19, os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS))
    except OSError:  # a sandbox that refuses it: the compile runs at the caller's priority
        pass


def stand_ins(signature: Signature, input: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Zeros shaped like the call's tensors, in the dtype the call runs in (autocast's, when
    it casts), on their device: what a preparation compiles on."""
    dtype = getattr(torch, signature.dtype)

    def like(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else torch.zeros(t.shape, dtype=dtype, device=t.device)

    return like(input), like(weight), like(bias)


class BackgroundPreparations:
    """The preparations under way on background threads, and those that failed.

    Args:
        on_ready: called (from the preparing thread) with a preparation's key once it
            finished, successfully or not: the owner drops the interim answers it gave.
    """

    def __init__(self, on_ready: Callable[[PreparationKey], None]) -> None:
        self.on_ready = on_ready
        self._running: dict[PreparationKey, threading.Thread] = {}
        self._failed: set[PreparationKey] = set()
        self._lock = threading.Lock()

    @staticmethod
    def key(choice: Choice, signature: Signature) -> PreparationKey:
        """The key of ``choice``'s preparation for ``signature``."""
        return choice.strategy, choice.params, signature

    def pending(self, choice: Choice, signature: Signature, input: torch.Tensor,
                weight: torch.Tensor, bias: torch.Tensor | None) -> PreparationKey | None:
        """The key of ``choice``'s preparation for ``signature`` while it is still to be
        done in the background (starting it when it is not under way yet): the call is then
        answered by ``F.conv1d``. None when nothing is to prepare, when it is done, and when
        a background preparation of it failed (the call prepares itself)."""
        strategy = choice.strategy_impl
        if strategy.preparation is None or strategy.is_ready(signature, choice.params_dict):
            return None
        key = self.key(choice, signature)
        with self._lock:
            if key in self._failed:
                return None
            if key in self._running:
                return key
            tensors = stand_ins(signature, input, weight, bias)
            thread = threading.Thread(target=self._prepare, args=(key, choice, tensors),
                                      name=f"autoconv-prepare-{choice.strategy}", daemon=True)
            self._running[key] = thread
        thread.start()
        return key

    def _prepare(self, key: PreparationKey, choice: Choice,
                 tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> None:
        signature = key[2]
        try:
            yield_the_cores()
            choice.strategy_impl.preparation(signature, choice.params_dict, *tensors)
        except Exception as error:  # noqa: BLE001  # the call prepares itself, and recovers
            logger.info("autoconv: preparing %s for %s failed in the background: %s",
                        choice.strategy, signature, error)
            with self._lock:
                self._failed.add(key)
        finally:
            # the owner hears first: once it is no longer under way (join, under_way), the
            # interim answers are gone; a new call meanwhile finds it built, or failed
            self.on_ready(key)
            with self._lock:
                self._running.pop(key, None)

    def under_way(self) -> int:
        """How many preparations are running now."""
        with self._lock:
            return len(self._running)

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the preparations under way (tests; a program that wants them done)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout_s)
