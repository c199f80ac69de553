"""Measuring under the tuning database's lease: processes sharing a database never measure
one signature at the same time. Both selectors (conv1d calls and streams) tune through
:func:`tune_under_lease`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from autoconv.signature import Signature

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Seconds between two looks at the database while another process measures a signature.
LEASE_POLL_S = 0.05


def tune_under_lease(store: Any, signature: Signature, device: torch.device, budget_s: float,
                     *, tune: Callable[[], _T], from_database: Callable[[], _T | None],
                     fallback: Callable[[], _T]) -> _T:
    """``tune()`` under the store's lease. While another process holds it, wait (up to
    ``budget_s``) for its measurements to appear and answer ``from_database()``; if they do
    not, answer ``fallback()`` (without measuring, this once).

    Args:
        from_database: the decision the stored measurements give, None while there are none.
    """
    waited_until = time.monotonic() + budget_s
    waited = False
    while True:
        # the store grants the lease when taking it fails (GuardedStore.lease): a lease
        # only saves duplicate work, it never stops a call
        with store.lease(signature, device) as granted:
            if granted:
                stored = from_database() if waited else None
                if stored is not None:  # the holder finished between two looks
                    return stored
                return tune()
        if not waited:
            logger.info("%s: another process is measuring it; waiting for its answer",
                        signature.short())
        if time.monotonic() >= waited_until:
            return fallback()
        time.sleep(LEASE_POLL_S)
        waited = True
        stored = from_database()
        if stored is not None:
            return stored
