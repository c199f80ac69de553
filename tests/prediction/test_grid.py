"""The training grid, its budgeted runner, and the predictor's commands (train, evaluate)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from autoconv.choice import Choice
from autoconv.cli import main
from autoconv.offline.progress import ProgressLine
from autoconv.offline.warm import warm
from autoconv.prediction.grid import affordable, training_grid
from autoconv.runtime.dispatch import dispatcher
from autoconv.storage.store import TuningStore
from tests.cli.helpers import assert_warm_measures_then_resumes
from tests.prediction.fakes import ManualClock, random_signatures, record_synthetic

CPU = torch.device("cpu")


def test_the_grid_is_deterministic_distinct_valid_and_affordable() -> None:
    grid = training_grid(150)
    assert grid == training_grid(150) and len(set(grid)) == 150
    assert training_grid(150, seed=1) != grid
    for s in grid:
        assert s.padded_length >= s.span and s.output_length >= 1 and affordable(s)
        assert s.in_channels % s.groups == 0 and s.out_channels % s.groups == 0
        if s.padding_left != s.padding_right:
            assert s.stride == 1  # 'same' padding exists only without stride


def test_a_larger_grid_continues_the_smaller_one() -> None:
    # so that raising --grid-size on a measured database only measures the new signatures
    assert training_grid(200)[:120] == training_grid(120)


def test_the_grid_covers_every_axis() -> None:
    grid = training_grid(600)
    assert {1, 2, 3, 4, 5, 8} <= {s.stride for s in grid}
    assert {1, 2, 4} <= {s.dilation for s in grid} and max(s.dilation for s in grid) >= 64
    assert any(s.is_depthwise for s in grid) and any(1 < s.groups < s.in_channels for s in grid)
    assert any(s.in_channels == 1 == s.out_channels for s in grid)
    assert any(s.in_channels == 1 and s.out_channels >= 64 for s in grid)  # filter banks
    assert any(s.is_depthwise and s.kernel_size >= s.length // 4 for s in grid)  # long convs
    assert any(s.is_depthwise and s.out_channels == 2 * s.in_channels for s in grid)
    assert any(s.requires_grad for s in grid) and not all(s.requires_grad for s in grid)
    lengths = [s.length for s in grid]
    assert min(lengths) < 128 and max(lengths) > 100_000
    assert max(s.kernel_size for s in grid) > 8192 and min(s.kernel_size for s in grid) == 1
    paddings = {"valid": 0, "same": 0, "full": 0}
    for s in grid:
        span = s.span
        if s.padding_left == s.padding_right == 0:
            paddings["valid"] += 1  # causal layers too: the caller pads first
        elif s.padding_left == s.padding_right == span - 1:
            paddings["full"] += 1
        else:  # as F.conv1d's 'same' pads: the odd sample on the right
            assert (s.padding_left, s.padding_right) == ((span - 1) // 2, span // 2)
            paddings["same"] += 1
    assert all(count >= 30 for count in paddings.values()), paddings


def test_the_grid_covers_dilated_depthwise_stacks_and_padded_mid_kernels() -> None:
    # where a grid without them left real layers far from any measurement: Conv-TasNet's and
    # TCNs' depthwise blocks dilated by powers of two, and padded K=12-32 dense layers at
    # training batch sizes (ECG and time-series ResNets)
    grid = training_grid(1000)
    dilated = {s.dilation for s in grid if s.is_depthwise and s.kernel_size <= 87}
    assert {2, 4, 8, 16, 32, 64, 128} <= dilated
    assert sum(1 for s in grid if s.groups == 1 and 12 <= s.kernel_size <= 32
               and s.batch >= 8 and s.padding_left + s.padding_right > 0) >= 20


def test_batch_one_dense_layers_take_every_tenth_place_without_moving_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # held out, the model picked the unfolded multiply on batch-1 layers of 32-128 channels
    # where F.conv1d ran up to 2x faster: the grid had almost none of them
    from autoconv.prediction import grid as module

    grid = training_grid(300)
    added = grid[module.SUPPLEMENT_EVERY - 1::module.SUPPLEMENT_EVERY]
    assert len(added) == 30
    assert all(s.batch <= 2 and s.groups == 1 and 16 <= s.in_channels <= 256 for s in added)
    monkeypatch.setattr(module, "SUPPLEMENT_EVERY", 10 ** 9)  # the grid as it was before
    before = training_grid(270)
    assert [s for s in grid if s not in set(added)] == before  # measured rows all still in it


def test_grid_signatures_are_distinct_length_buckets() -> None:
    from autoconv.buckets import decision_key
    from autoconv.settings import Settings

    grid = training_grid(400)
    assert [decision_key(s, Settings()) for s in grid] == grid  # each its own bucket


def test_the_independent_half_draws_each_axis_on_its_own() -> None:
    import numpy as np

    from autoconv.prediction.grid import FAMILIES

    draw = FAMILIES["independent"][0]
    rng = np.random.default_rng(0)
    drawn = [s for s in (draw(rng) for _ in range(3000)) if s is not None]
    dense = [s for s in drawn if s.groups == 1]
    # channels in and out are independent: their log-correlation is near zero
    cin = np.log2([s.in_channels for s in dense])
    cout = np.log2([s.out_channels for s in dense])
    assert abs(np.corrcoef(cin, cout)[0, 1]) < 0.1
    # every octave of length is about equally likely (log-uniform 16 .. 256k: 14 octaves)
    octaves = np.histogram(np.log2([s.length for s in drawn]), bins=14, range=(4, 18))[0]
    assert octaves.min() > 0.6 * octaves.mean()


class FakeSelector:
    unsaved = 0  # every measurement is kept

    def __init__(self, clock, seconds_each: float) -> None:
        self.clock, self.seconds_each, self.seen = clock, seconds_each, []

    def choose(self, signature, device):
        self.seen.append(signature)
        self.clock.now += self.seconds_each
        origin = "database" if len(self.seen) % 2 else "measured"
        return Choice.make("direct", source=origin)


def test_warming_the_grid_stops_at_the_total_budget_and_reports_progress() -> None:
    clock, grid = ManualClock(), training_grid(20)
    selector = FakeSelector(clock, seconds_each=1.0)
    seen = []
    report = warm(grid, CPU, total_budget_s=5.5, selector=selector, clock=clock,
                  progress=lambda done, measured: seen.append((done, measured)))
    assert len(report.visited) == 6 and not report.complete and selector.seen == grid[:6]
    assert seen[-1] == (6, 3) and report.measured == 3


def test_progress_line_shows_counts_and_eta() -> None:
    stream = io.StringIO()
    bar = ProgressLine(50, budget_s=100.0, stream=stream)
    bar.update(25, 10)
    bar.update(26, 10)
    bar.close()
    text = stream.getvalue()
    assert "25/50 (10 measured)" in text and "ETA" in text and "26/50" not in text


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AUTOCONV_MODEL_DIR", str(tmp_path / "models"))
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    dispatcher.reset()


def fill(db_url: str, count: int) -> None:
    store = TuningStore(db_url)
    record_synthetic(store, random_signatures(count, seed=5))
    store.close()


@pytest.mark.usefixtures("steady_machine")
def test_warm_grid_measures_and_resumes(db_url: str, capsys) -> None:
    assert_warm_measures_then_resumes(
        ["warm", "--grid", "--grid-size", "2", "--budget", "0.05", "--db", db_url], 2, capsys)


def test_warm_needs_exactly_one_of_suite_and_grid(db_url: str, capsys) -> None:
    assert main(["warm", "--db", db_url]) == 2
    assert "exactly one of --suite, --grid, --shapes, --model and --wanted" in capsys.readouterr().err


def test_train_and_evaluate_report(db_url: str, capsys, tmp_path: Path) -> None:
    assert main(["train", "--db", db_url]) == 2
    assert "autoconv warm --grid" in capsys.readouterr().err
    fill(db_url, 14)  # fitting would work, but the selector never uses a model this small
    assert main(["train", "--db", db_url]) == 2
    error = capsys.readouterr().err.strip()
    assert "measurements of 14 signatures" in error and "needs 30" in error
    fill(db_url, 40)
    assert main(["train", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "fitted on" in out and "40 signatures" in out and "cached at" in out
    report = tmp_path / "report.md"
    assert main(["evaluate", "--db", db_url, "--folds", "4", "--markdown", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| learned | 40 |" in out and "| cost_model | 40 |" in out and "| F.conv1d |" in out
    assert report.read_text().startswith("40 held-out signatures")


@pytest.mark.usefixtures("steady_machine")
def test_warm_grid_adaptive_measures_and_resumes(db_url: str, capsys) -> None:
    assert_warm_measures_then_resumes(["warm", "--grid", "--adaptive", "--grid-size", "3",
                                       "--budget", "0.05", "--db", db_url], 3, capsys)


@pytest.mark.parametrize(("args", "expected"), [
    (["--suite", "--adaptive"], "--adaptive chooses among the grid's signatures: use --grid"),
    (["--grid", "--adaptive", "--shard", "1/2"], "cannot be combined with --shard"),
    (["--grid", "--adaptive", "--refresh"], "cannot be combined with --refresh")])
def test_warm_adaptive_refuses_what_it_cannot_do(db_url: str, capsys, args: list[str],
                                                expected: str) -> None:
    assert main(["warm", *args, "--db", db_url]) == 2
    assert expected in capsys.readouterr().err
