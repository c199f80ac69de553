"""A failing tuning database costs one operation, one warning, and a rest; then it is back."""

from __future__ import annotations

import pytest
import torch

from autoconv.signature import Signature
from autoconv.storage.guarded import GuardedStore

CPU = torch.device("cpu")
SIG = Signature(1, 2, 2, 100, 3, 1, 0, 0, 1, 1, "float32", "cpu", False)


class FlakyStore:
    """A store that fails while ``down`` is set, and counts what reaches it."""

    where = "postgresql://user:***@db.example/autoconv"

    def __init__(self) -> None:
        self.down = True
        self.calls = 0
        self.recorded: list = []

    def candidates(self, signature, device):
        self.calls += 1
        if self.down:
            raise ConnectionError("server closed the connection unexpectedly")
        return ["a row"]

    def record(self, signature, device, outcomes) -> None:
        self.calls += 1
        if self.down:
            raise TimeoutError("statement timeout")
        self.recorded.append(outcomes)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_lookup_warns_once_then_rests_then_tries_again() -> None:
    store, clock = FlakyStore(), Clock()
    guarded = GuardedStore(store, retry_s=30.0, clock=clock)
    with pytest.warns(RuntimeWarning, match=r"tuning database postgresql://user:\*\*\*@db"
                                            r"\.example/autoconv: could not read the "
                                            r"measurements of 1x2x100 K=3 -> 2 .*"
                                            r"ConnectionError.*again in 30 s"):
        assert guarded.candidates(SIG, CPU) == []
    assert store.calls == 1 and not guarded.available
    clock.now += 29.0
    assert guarded.candidates(SIG, CPU) == [] and store.calls == 1  # resting: not tried
    clock.now += 1.0
    store.down = False
    assert guarded.candidates(SIG, CPU) == ["a row"] and store.calls == 2  # back by itself


def test_a_failed_write_says_what_was_lost_and_later_writes_go_through() -> None:
    store, clock = FlakyStore(), Clock()
    guarded = GuardedStore(store, retry_s=5.0, clock=clock)
    with pytest.warns(RuntimeWarning, match=r"could not store 3 measurements of 1x2x100 K=3 "
                                            r"-> 2 \(float32, cpu\) \(kept in memory only\)"):
        guarded.record(SIG, CPU, ["a", "b", "c"])
    clock.now += 5.0
    store.down = False
    guarded.record(SIG, CPU, ["d"])
    assert store.recorded == [["d"]]
