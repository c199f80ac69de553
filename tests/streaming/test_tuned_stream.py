"""A stream tuned by the process's stream selector, on a real tuning database: measured
once, stored under the stream's signature, read back by the next process."""

from __future__ import annotations

import pytest
import torch

import autoconv
from autoconv.runtime.dispatch import dispatcher

from .helpers import assert_close, causal, stream_all


@pytest.mark.usefixtures("fresh_autoconv")
def test_a_stream_is_measured_once_stored_apart_and_read_back() -> None:
    torch.manual_seed(0)
    w, b = torch.randn(2, 1, 200) / 14, torch.randn(2)
    x = torch.randn(1, 2, 256)
    stream = autoconv.Conv1dStream(w, b, groups=2, chunk_size=32)
    assert_close(stream_all(stream, x, seed=0), causal(x, w, b, 1, 2))
    assert stream.choice is not None and stream.choice.source == "measured"
    db = dispatcher.selector.store.db
    rows = [m for _, m in db.measurements(streams=True)]
    assert {m.signature.chunk_size for m in rows} == {32}
    assert {m.strategy for m in rows} >= {stream.choice.strategy}
    assert rows[0].signature.key.endswith("|c32")
    assert list(db.measurements()) == []  # a predictor or a report never sees them
    dispatcher.reset()  # as a new process would
    again = autoconv.Conv1dStream(w, b, groups=2, chunk_size=32)
    assert again.prepare(1).source == "database"
    assert (again.choice.strategy, again.choice.params) == (stream.choice.strategy,
                                                            stream.choice.params)


@pytest.mark.usefixtures("fresh_autoconv")
def test_predict_mode_decides_without_measuring() -> None:
    with autoconv.settings.override(mode="predict"):
        stream = autoconv.Conv1dStream(torch.randn(2, 1, 48_000), groups=2, chunk_size=256)
        assert (stream.prepare(1).strategy, stream.choice.source) == ("partitioned",
                                                                      "cost_model")
    assert list(dispatcher.selector.store.db.measurements(streams=None)) == []
