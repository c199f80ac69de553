"""Length buckets: bounded, covering, and idempotent."""

from __future__ import annotations

import pytest

from autoconv.buckets import bucket_length


@pytest.mark.parametrize("ratio,min_length", [(1.25, 256), (1.1, 100), (2.0, 1), (1.5, 7)])
def test_buckets_round_up_to_a_fixed_point(ratio: float, min_length: int) -> None:
    for length in range(1, 20000, 7):
        edge = bucket_length(length, ratio=ratio, min_length=min_length)
        assert edge >= length
        assert edge <= max(min_length, length * ratio) + 1
        assert bucket_length(edge, ratio=ratio, min_length=min_length) == edge


def test_every_length_of_thirty_seconds_of_audio_needs_sixteen_buckets() -> None:
    edges = {bucket_length(n, ratio=1.25, min_length=256) for n in range(16000, 480001)}
    assert len(edges) == 16


def test_short_lengths_are_exact() -> None:
    assert [bucket_length(n, ratio=1.25, min_length=256) for n in (1, 64, 256)] == [1, 64, 256]
