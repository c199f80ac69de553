"""Test helper: run a function in several threads released at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(fn: Callable[[], T], count: int = 4) -> list[T]:
    """Call ``fn`` in ``count`` threads that start together; return their results."""
    barrier = threading.Barrier(count)
    results: list[T] = []

    def worker() -> None:
        barrier.wait()
        results.append(fn())

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
