"""Stored rows are data to check: a row no strategy here can run is ignored, as if absent."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.tuning import stored
from autoconv.tuning.selector import Selector
from autoconv.tuning.stored import stored_outcomes
from autoconv.tuning.timing import Timing

CPU = torch.device("cpu")
SIG = Signature(2, 4, 4, 3000, 65, 1, 32, 32, 1, 1, "float32", "cpu", False)


def row(strategy: str, params: dict, median_s: float = 1e-3) -> SimpleNamespace:
    return SimpleNamespace(strategy=strategy, params=params, median_s=median_s, spread_s=0.0,
                           samples=5, error=None)


HOSTILE = {
    "block shorter than the kernel": row("overlap_add", {"block_size": 1}),
    "block as a string": row("overlap_add", {"block_size": "64"}),
    "block of 2**27 (4 GB of spectra)": row("overlap_add", {"block_size": 2**27}),
    "a parameter fft does not take": row("fft", {"evil": 1}),
    "pre_pad of 7": row("direct", {"pre_pad": 7}),
    "pre_pad as a bool": row("direct", {"pre_pad": True}),
}


@pytest.fixture(autouse=True)
def warnings_not_yet_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored, "_warned", set())  # one warning per signature and process


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_row_its_strategy_refuses_is_ignored_with_a_warning(name: str) -> None:
    good = row("direct", {}, median_s=5e-3)
    with pytest.warns(RuntimeWarning, match="ignoring 1 stored measurement"):
        outcomes = stored_outcomes(SIG, [HOSTILE[name], good], all_strategies())
    assert [(o.candidate.name, dict(o.candidate.params)) for o in outcomes] == [("direct", {})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stored_outcomes(SIG, [HOSTILE[name], good], all_strategies())  # said once already


def test_rows_of_unknown_strategies_are_skipped_silently_and_valid_ones_kept(recwarn) -> None:
    rows = [row("winograd", {}), row("overlap_add", {"block_size": 256}), row("fft", {})]
    outcomes = stored_outcomes(SIG, rows, all_strategies())
    assert [o.candidate.name for o in outcomes] == ["overlap_add", "fft"]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


class Store:
    def __init__(self, rows) -> None:
        self.rows = rows

    def candidates(self, signature, device):
        return self.rows

    def record(self, signature, device, outcomes) -> None:
        pass


class Timer:
    def __init__(self) -> None:
        self.timed: list[str] = []

    def __call__(self, calls, *, device, deadline, max_samples, min_samples=1, **_):
        self.timed += [call.candidate.name for call in calls]
        return [Timing(1e-3, 0.0, 3) for _ in calls]


def test_a_signature_whose_stored_rows_are_all_invalid_is_decided_as_if_unknown() -> None:
    timer = Timer()
    # a clock that stands still: the budget never runs out, however busy the machine
    selector = Selector(store=Store([HOSTILE["block of 2**27 (4 GB of spectra)"]]), timer=timer,
                        clock=lambda: 0.0, settings=Settings(bucket_lengths=False, budget_s=0.5))
    small = Signature(1, 1, 1, 300, 5, 1, 0, 0, 1, 1, "float32", "cpu", False)
    with pytest.warns(RuntimeWarning, match="ignoring 1 stored measurement"):
        choice = selector.choose(small, CPU)
    assert choice.source == "measured" and timer.timed  # measured, not the stored row
