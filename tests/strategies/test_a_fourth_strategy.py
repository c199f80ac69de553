"""Adding a strategy takes one module and one registration, whatever kind of work it does:
two toys are parity-tested, tuned, pruned, featurized and drawn with no other file touched.
One is of a kind autoconv knows (:mod:`tests.strategies.toy_strategy`: an FFT plan at a
power-of-two length); the other of a new kind (:mod:`tests.strategies.toy_matmul_strategy`:
neither an FFT nor a direct convolution, but an unfold and a matrix multiply, whose work is
matrix-multiply multiply-adds and bytes moved).

The parity, gradient and error tests are the ones every registered strategy runs, imported
here and pointed at each toy by this module's ``strategy`` fixture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tuning_db
from autoconv.offline.report import make_report
from autoconv.prediction.features import FeatureSpace
from autoconv.prediction.predictor import LearnedPredictor
from autoconv.runtime.dispatch import dispatcher
from autoconv.settings import Settings, settings
from autoconv.signature import Signature
from autoconv.storage.store import device_record
from autoconv.strategies import Strategy, all_strategies, get, register, unregister
from autoconv.tuning.candidates import enumerate_candidates
from autoconv.tuning.cost_model import CalibratedCostModel, CostConstants
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import Timing
from tests.prediction.fakes import random_signatures, synthetic_samples

from .test_errors import test_same_exception_type_as_conv1d  # noqa: F401  (run for the toy)
from .test_gradients import (  # noqa: F401  (run for the toy)
    test_float32_gradients_match_direct,
    test_gradcheck_float64,
)
from .test_parity import TestParity  # noqa: F401  (run for the toy)
from .toy_matmul_strategy import UNFOLD
from .toy_strategy import TOY

CPU = torch.device("cpu")
#: A long kernel (FFT territory), a short one (F.conv1d's) and a dense layer (a matrix
#: multiply's).
LONG = Signature(1, 1, 1, 9000, 4095, 1, 0, 0, 1, 1, "float32", "cpu", False)
SHORT = Signature(1, 1, 1, 4096, 2, 1, 0, 0, 1, 1, "float32", "cpu", False)
DENSE = Signature(4, 64, 64, 1000, 3, 1, 0, 0, 1, 1, "float32", "cpu", False)
#: Each toy's signature where it is hopeless, and one where it is worth timing.
HOPELESS_AND_PROMISING = {TOY.name: (SHORT, LONG), UNFOLD.name: (LONG, DENSE)}
CONSTANTS = CostConstants(direct_mac_s=3e-11, narrow_mac_s=1e-9, depthwise_mac_s=2e-10,
                          fft_unit_s=1e-10, complex_mac_s=1e-10, elementwise_s=4e-10,
                          call_s=1e-5, matmul_mac_s=2e-11, copy_byte_s=1e-10)


@pytest.fixture(scope="module", params=[TOY, UNFOLD], ids=[TOY.name, UNFOLD.name])
def strategy(request: pytest.FixtureRequest) -> Strategy:
    """The strategy the imported parity, gradient and error tests run: each toy."""
    return request.param


@pytest.fixture
def registered(strategy: Strategy) -> Iterator[Strategy]:
    """The toy in the registry for one test (the one line a real strategy would add)."""
    register(strategy)
    yield strategy
    unregister(strategy.name)


class ToyFastest:
    """A fake timer under which the toy is ten times faster than anything else."""

    def __init__(self, toy: Strategy) -> None:
        self.toy = toy
        self.timed: list[str] = []

    def __call__(self, calls, *, device, deadline, max_samples, min_samples=1, **_):
        names = [call.candidate.name for call in calls]
        self.timed += names
        return [Timing(1e-4 if name == self.toy.name else 1e-3, 0.0, 5) for name in names]


def test_the_tuner_times_the_toy_and_runs_it_when_it_wins(registered) -> None:
    timer = ToyFastest(registered)
    selector = Selector(timer=timer, settings=Settings(bucket_lengths=False))
    signature = Signature(2, 3, 4, 300, 9, 1, 4, 4, 1, 1, "float32", "cpu", False)
    choice = selector.choose(signature, CPU)
    assert registered.name in timer.timed
    assert (choice.strategy, choice.source) == (registered.name, "measured")
    x, w = torch.randn(2, 3, 300), torch.randn(4, 3, 9)
    torch.testing.assert_close(choice.run(x, w, None, 1, 4, 1, 1), F.conv1d(x, w, None, 1, 4),
                               atol=1e-4, rtol=1e-4)


def test_the_cost_model_prunes_the_toy_where_it_is_hopeless_and_keeps_it_where_not(
        registered) -> None:
    selector = Selector(cost_model=CalibratedCostModel({"cpu": CONSTANTS}),
                        settings=Settings(bucket_lengths=False, prune_factor=2.0))

    def kept(signature: Signature) -> set[str]:
        candidates = enumerate_candidates(all_strategies(), signature)
        return {candidate.label for candidate, _ in selector.prune(signature, candidates, CPU)}

    hopeless, promising = HOPELESS_AND_PROMISING[registered.name]
    assert registered.name not in kept(hopeless) and "direct" in kept(hopeless)
    # where it is worth timing, of the direct candidates F.conv1d as called is kept: the
    # reference every measured decision times (a probe decides whether it runs in full)
    assert registered.name in kept(promising) and "direct" in kept(promising)


def test_the_features_describe_the_toy_by_its_own_work(registered) -> None:
    space = FeatureSpace(tuple(strategy.name for strategy in all_strategies()))
    toy_row, fft_row = space.rows(LONG, [(registered.name, {}), ("fft", {})])
    columns = space.columns
    assert toy_row[columns.index(f"is_{registered.name}")] == 1.0
    assert fft_row[columns.index(f"is_{registered.name}")] == 0.0
    work = registered.work(LONG, {})
    # every term and trait of its Work in the column of that name, and nothing else
    for name, count in work.values:
        assert toy_row[columns.index(f"work_{name}")] == math.log2(1 + count)
    unreported = [c for c in columns if c.startswith("work_") and c[5:] not in dict(work.values)]
    assert not toy_row[[columns.index(c) for c in unreported]].any()
    assert toy_row[columns.index("log_work")] == math.log2(work.total)
    assert (toy_row != fft_row).any()
    # and the learned model takes it in like any other strategy
    model = LearnedPredictor.fit(synthetic_samples(random_signatures(40)))
    assert registered.name in model.space.strategies
    candidates = [(c.name, dict(c.params)) for c in enumerate_candidates(all_strategies(), LONG)]
    seconds = model.predict_seconds(LONG, candidates)
    assert np.all(np.isfinite(seconds)) and len(seconds) == len(candidates)


def _pixels_near(path: Path, colour: str, alpha: float = 1.0) -> int:
    """How many pixels of a PNG have ``colour`` (drawn at ``alpha`` over white)."""
    import matplotlib.pyplot as plt

    image = plt.imread(path)[..., :3]
    rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    expected = alpha * rgb + (1 - alpha)
    return int(np.sum(np.all(np.abs(image - expected) < 0.02, axis=-1)))


def test_the_report_draws_and_counts_the_toy(registered, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("AUTOCONV_MODEL_DIR", str(tmp_path / "models"))
    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    rows = []
    for index in range(30):  # the toy beats F.conv1d from 128 taps on: 12 of 30
        kernel = 2 ** (1 + index % 12)
        signature = tuning_db.SignatureRecord(
            batch=4, in_channels=1, out_channels=1, length=8192 + index, kernel_size=kernel,
            stride=1, padding_left=0, padding_right=0, dilation=1, groups=1, dtype="float32",
            device="cpu")
        for name, seconds in (("direct", 1e-6 * kernel), (registered.name, 1e-4)):
            rows.append(tuning_db.MeasurementRecord(signature=signature, strategy=name,
                                                    median_s=seconds, samples=5,
                                                    autoconv_version="test"))
    with tuning_db.connect(url) as db:
        db.record_many(device_record(CPU), rows)
    try:
        with settings.override(db_url=url):
            winners_map, speedup, summary = make_report(tmp_path / "report", "cpu", (1,))
    finally:
        dispatcher.reset()
    assert f"| {registered.name} | 12 | 40% |" in summary.read_text()
    assert _pixels_near(winners_map, registered.colour) > 100
    assert _pixels_near(speedup, registered.colour, alpha=0.8) > 10  # points, legend marker
    assert _pixels_near(speedup, get("fft").colour, alpha=0.8) == 0  # fft never won here
    assert get(registered.name) is registered
