"""What a selector remembers: one decision per (signature, device), each decided once.

:class:`DecisionMemory` is shared by the selector of conv1d calls
(:class:`~autoconv.tuning.selector.Selector`) and that of streams
(:class:`~autoconv.tuning.stream_selector.StreamSelector`): the in-process memory, a lock per
key so that concurrent first calls decide a signature once, the decision's log line, and the
rule of which answers are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch

from autoconv.contexts import may_measure
from autoconv.settings import Settings
from autoconv.signature import Signature

Decision = TypeVar("Decision")
Key = tuple[Signature, torch.device]


class DecisionMemory(Generic[Decision]):
    """The memory and per-key locks of a selector (see the module docstring).

    A subclass has ``settings`` and implements ``_lookup_or_decide(signature, device,
    measurable)``.
    """

    settings: Settings

    def __init__(self) -> None:
        self._memory: dict[Key, Decision] = {}
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def remembered(self) -> dict[Key, Decision]:
        """What this selector remembers: (signature, device) -> its choice."""
        return dict(self._memory)

    def _lock_for(self, key: Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _lookup_or_decide(self, signature: Signature, device: torch.device,
                          measurable: bool) -> Decision:
        raise NotImplementedError

    def _recall_or_decide(self, signature: Signature, device: torch.device, *,
                          settled: tuple[str, ...], timed: Callable[[Any], str],
                          log: logging.Logger) -> Decision:
        """The remembered decision for (signature, device), else a new one, decided under the
        key's lock and logged; kept unless, in mode tune, it is an answer given only because
        nothing could be measured (its source not in ``settled``): a later call decides
        again. The decision is logged at INFO on ``log`` with its time as ``timed`` says."""
        key = (signature, device)
        remembered = self._memory.get(key)
        if remembered is not None:
            return remembered.remembered()  # type: ignore[attr-defined]
        with self._lock_for(key):
            remembered = self._memory.get(key)
            if remembered is not None:
                return remembered.remembered()  # type: ignore[attr-defined]
            mode = self.settings.mode
            measurable = (mode == "tune" and may_measure(device)
                          and signature.tensor_bytes <= self.settings.max_tune_bytes)
            started = time.perf_counter()
            choice: Any = self._lookup_or_decide(signature, device, measurable)
            if log.isEnabledFor(logging.INFO):
                params = f" {choice.params_dict}" if choice.params else ""
                log.info("%s on %s: %s%s, %s, from %s (decided in %.3f s)",
                            signature.short(), device, choice.strategy, params, timed(choice),
                            choice.source, time.perf_counter() - started)
            if ((measurable and choice.source in settled) or mode != "tune"
                    or choice.source == "database"):
                self._memory[key] = choice
            return choice
