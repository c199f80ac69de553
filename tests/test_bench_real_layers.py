"""The real-layer benchmark's bookkeeping (scripts/bench_real_layers.py), on synthetic
measurements (the held-out table itself: tests/catalogue/test_architectures.py)."""

from __future__ import annotations

import bench_real_layers

from autoconv.prediction.evaluation import evaluate_held_out
from autoconv.prediction.grid import training_grid
from autoconv.prediction.predictor import Sample
from tests.prediction.fakes import random_signatures, synthetic_samples


def test_no_real_layer_is_in_the_training_grid() -> None:
    keyed = bench_real_layers.keyed_layers()
    assert not set(keyed) & set(training_grid(2000))


def test_beats_compares_figures_in_their_direction() -> None:
    assert bench_real_layers.beats(1.02, 1.10, lower_is_better=True)
    assert not bench_real_layers.beats(1.10, 1.02, lower_is_better=True)
    assert bench_real_layers.beats(0.90, 0.80, lower_is_better=False)
    assert bench_real_layers.beats(1.0, 1.0, lower_is_better=False)  # both ideal
    assert not bench_real_layers.beats(1.2, 1.2, lower_is_better=True)


def test_the_report_sections_add_up_on_synthetic_measurements(monkeypatch) -> None:
    grid = synthetic_samples(random_signatures(300, seed=1), seed=1)
    real_signatures = random_signatures(40, seed=2)
    real = synthetic_samples(real_signatures, seed=2)
    keyed = {s: bench_real_layers.RealLayer(f"arch{i % 4}", f"layer{i}", s)
             for i, s in enumerate(real_signatures)}
    held = evaluate_held_out(grid + real, [set(real_signatures)])
    assert held.signatures == 40 and held.overall["learned"].count == 40
    table = bench_real_layers.targets_table(held)
    assert "geomean regret <= 1.05" in table and "better than the cost model" in table
    text = bench_real_layers.per_architecture(grid, real, keyed)
    assert "| arch0 | 10 |" in text and "**Worst picks**" in text
    monkeypatch.setattr(bench_real_layers, "CURVE_SIZES", (100, 200))
    curve = bench_real_layers.selection_curve(grid, real)
    assert curve.count("\n") == 3  # header, rule, two sizes


def test_the_noise_table_scores_every_run_on_every_other() -> None:
    grid = synthetic_samples(random_signatures(200, seed=1), seed=1)
    real_signatures = random_signatures(20, seed=2)
    first = synthetic_samples(real_signatures, seed=2)
    second = [Sample(s.signature, s.strategy, s.params, s.seconds * 1.5) for s in first]
    table = bench_real_layers.noise_table(grid, [first, second])
    assert "| run 1 on run 2 | 20 | 1.000 | 1.00 |" in table  # the same order, slower
    assert "| run 2 on run 1 | 20 | 1.000 | 1.00 |" in table
    assert table.count("learned, judged on run") == 2


def test_the_grid_noise_table_trains_on_each_grid_measurement() -> None:
    first = synthetic_samples(random_signatures(200, seed=1), seed=1)
    # the same grid measured upside down: a model trained on it picks the slowest candidates
    second = [Sample(s.signature, s.strategy, s.params, 1.0 / s.seconds) for s in first]
    real = synthetic_samples(random_signatures(20, seed=2), seed=2)
    rows = bench_real_layers.grid_noise_table([first, second], real).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| learned, trained on grid measurement 1", "| learned, trained on grid measurement 2"]
    geomeans = [float(row.split(" | ")[2]) for row in rows]
    assert geomeans[0] < 1.1 < geomeans[1]  # each row trained on its own grid


def test_worst_picks_show_what_each_run_measured() -> None:
    grid = synthetic_samples(random_signatures(200, seed=1), seed=1)
    real_signatures = random_signatures(20, seed=2)
    first = synthetic_samples(real_signatures, seed=2)
    second = [Sample(s.signature, s.strategy, s.params, s.seconds * 2) for s in first[1:]]
    assert (bench_real_layers.times_by_run([first, second], first[1])
            == f"{first[1].seconds * 1e3:.3g} / {first[1].seconds * 2e3:.3g}")
    assert bench_real_layers.times_by_run([first, second], first[0]).endswith(" / -")
    keyed = {s: bench_real_layers.RealLayer("arch", f"layer{i}", s)
             for i, s in enumerate(real_signatures)}
    text = bench_real_layers.per_architecture(grid, first, keyed, [first, second])
    assert "| picked, ms in each run | best, ms in each run |" in text
    plain = bench_real_layers.per_architecture(grid, first, keyed)
    assert "ms in each run" not in plain
