"""A stream that cannot keep up with its sample rate says so once, with the measured figures;
a predicted time, or a stream without a sample rate, says nothing."""

from __future__ import annotations

import warnings

import pytest
import torch

import autoconv
from autoconv.choice import StreamChoice
from autoconv.strategies.streaming import get

WEIGHT = torch.randn(2, 1, 64)


def stream_with(seconds: float | None, source: str = "measured", **kwargs):
    choice = StreamChoice.make(get("stateful_direct"), {}, source=source, median_s=seconds)
    return autoconv.Conv1dStream(WEIGHT, groups=2, chunk_size=256, choice=choice, **kwargs)


def test_a_stream_slower_than_real_time_warns_once_with_its_figures() -> None:
    # 256 samples at 48 kHz: a 5.33 ms budget; measured at 14.5 ms a chunk
    stream = stream_with(14.5e-3, sample_rate=48_000)
    with pytest.warns(RuntimeWarning) as caught:
        stream(torch.randn(1, 2, 256))
    (warning,) = caught
    text = str(warning.message)
    assert "cannot keep up with 48000 Hz" in text and "14.5 ms" in text and "5.33 ms" in text
    assert "2.72x real time" in text and "torch.set_num_threads(1)" in text
    assert stream.real_time_factor == pytest.approx(14.5e-3 / (256 / 48_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream(torch.randn(1, 2, 256))
        stream.reset()
        stream.prepare(1)  # once per stream


@pytest.mark.parametrize("seconds,source,rate", [
    (1e-3, "measured", 48_000),      # within its 5.33 ms budget
    (14.5e-3, "cost_model", 48_000),  # predicted, not measured
    (14.5e-3, "measured", None),     # no sample rate to keep up with
    (None, "fallback", 48_000),      # no time at all
])
def test_no_warning_within_budget_for_a_prediction_or_without_a_sample_rate(
        seconds, source, rate) -> None:
    stream = stream_with(seconds, source, sample_rate=rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream(torch.randn(1, 2, 256))
    if source != "measured" or rate is None:
        assert stream.real_time_factor is None
    else:
        assert stream.real_time_factor < 1


@pytest.mark.parametrize("rate,error", [(0, ValueError), (-1.0, ValueError),
                                        (float("inf"), ValueError), ("48k", TypeError),
                                        (True, TypeError)])
def test_a_bad_sample_rate_is_refused(rate, error) -> None:
    with pytest.raises(error, match="sample_rate"):
        stream_with(1e-3, sample_rate=rate)


def test_a_layers_stream_takes_the_sample_rate() -> None:
    layer = autoconv.Conv1d(2, 2, 64, groups=2)
    with autoconv.settings.override(mode="off"):
        stream = layer.stream(256, sample_rate=16_000)
    assert stream.sample_rate == 16_000.0
