"""The global switch: every conv1d call in the process through autoconv, no model surgery.

In the spirit of ``torch.backends.cudnn.benchmark = True``::

    autoconv.enable()              # F.conv1d, torch.conv1d and every nn.Conv1d go through autoconv
    autoconv.disable()             # back to torch's own
    with autoconv.enabled():       # for a block; the previous state comes back on exit
        model(x)

It replaces the two names torch's conv1d is reached by, ``torch.nn.functional.conv1d`` (which
``nn.Conv1d.forward`` calls) and ``torch.conv1d``, with :func:`autoconv.conv1d`; no other
operation is touched, so nothing else costs more. Code that bound the function itself before
the switch (``from torch.nn.functional import conv1d`` at import) keeps torch's. autoconv
itself always calls torch's own conv1d (:mod:`autoconv.plain`), so it never calls itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional

from autoconv import plain
from autoconv.runtime import dispatch

#: The modules whose ``conv1d`` attribute the switch replaces.
_OWNERS = (torch, torch.nn.functional)
_lock = threading.Lock()


def is_enabled() -> bool:
    """Whether the switch is on (``F.conv1d`` is autoconv's)."""
    return torch.nn.functional.conv1d is dispatch.conv1d


def _set(on: bool) -> None:
    with _lock:
        for owner in _OWNERS:
            owner.conv1d = dispatch.conv1d if on else plain.conv1d


def enable() -> None:
    """Route every ``F.conv1d``, ``torch.conv1d`` and ``nn.Conv1d`` call through autoconv."""
    _set(True)


def disable() -> None:
    """Give ``F.conv1d`` and ``torch.conv1d`` back to torch."""
    _set(False)


@contextmanager
def enabled(on: bool = True) -> Iterator[None]:
    """The switch set to ``on`` for the block, then back to what it was (blocks nest)."""
    previous = is_enabled()
    _set(on)
    try:
        yield
    finally:
        _set(previous)
