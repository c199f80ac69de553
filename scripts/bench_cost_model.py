"""How far the cost model's prices are from measured times, strategy by strategy.

The cost model (``autoconv.tuning.cost_model``) prunes the tuner's candidates and answers the
cold start. Its error on one kind of work shows here before it shows as a bad pick: for each
candidate measured in the given databases (the held-out real layers of
``scripts/bench_real_layers.py --measure``, say: every candidate of 260 layers of published
architectures, several runs), the ratio of the measured time to the predicted one, grouped
by strategy and by the signature's class (dense: 16 or more input channels per group;
depthwise; narrow: the rest). A ratio above 1 is an optimistic price. Each candidate is taken
at its fastest time in any of the databases (``fastest_of_runs``, as the held-out benchmark
judges). The model is calibrated in this process, as ``calibrate()`` does in any process
(run it alone: a busy machine's constants price everything higher).

Usage: python scripts/bench_cost_model.py --db sqlite:////tmp/ac/r1.sqlite3 [URL ...]
           [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
from benchlib import machine_header, markdown_table, publish

import tuning_db
from autoconv.prediction.evaluation import fastest_of_runs
from autoconv.prediction.predictor import Sample
from autoconv.prediction.training_data import load_samples
from autoconv.signature import Signature
from autoconv.storage.store import device_record
from autoconv.strategies import get
from autoconv.tuning.cost_model import DENSE_CHANNELS, CalibratedCostModel, calibrate

CPU = torch.device("cpu")


def signature_class(s: Signature) -> str:
    """dense, depthwise or narrow: the classes whose direct rates the model tells apart."""
    per_group = s.in_channels // s.groups
    if per_group >= DENSE_CHANNELS:
        return "dense"
    return "depthwise" if per_group == 1 and s.groups > 1 else "narrow"


def ratios(samples: Sequence[Sample], model: CalibratedCostModel
           ) -> dict[tuple[str, str], list[float]]:
    """Measured over predicted seconds, by (strategy, signature class)."""
    table: dict[tuple[str, str], list[float]] = defaultdict(list)
    for sample in samples:
        predicted = model.predict(sample.signature, get(sample.strategy), dict(sample.params),
                                  CPU)
        if predicted and sample.seconds > 0:
            table[(sample.strategy, signature_class(sample.signature))].append(
                sample.seconds / predicted)
    return table


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report_rows(table: dict[tuple[str, str], list[float]]) -> list[list[str]]:
    rows = []
    for (strategy, kind), values in sorted(table.items()):
        logs = [math.log(v) for v in values]
        spread = math.exp(statistics.pstdev(logs)) if len(logs) > 1 else 1.0
        rows.append([strategy, kind, str(len(values)), f"{math.exp(statistics.mean(logs)):.2f}",
                     f"{spread:.2f}", f"{quantile(values, 0.1):.2f}",
                     f"{quantile(values, 0.9):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"])
    return rows


def samples_of(url: str) -> list[Sample]:
    with tuning_db.connect(url) as db:
        return load_samples(db, device_record(CPU))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, nargs="+",
                        help="databases of measurements (one per run of the same layers)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    samples = fastest_of_runs([samples_of(url) for url in args.db])
    constants = calibrate(CPU)
    model = CalibratedCostModel({"cpu": constants})
    table = ratios(samples, model)
    every = [v for values in table.values() for v in values]
    lines = ["# The cost model's prices against measured times", "", machine_header("cpu"),
             (f"- {len(samples)} measured candidates of {len({s.signature for s in samples})} "
              f"signatures, from {len(args.db)} database(s), each at its fastest"),
             f"- constants calibrated in this run: {constants}", "",
             ("Measured over predicted seconds (above 1: the price is optimistic); spread: the "
              "geometric standard deviation; p10 and p90: the 10th and 90th percentiles."), "",
             markdown_table(["strategy", "class", "n", "geomean", "spread", "p10", "p90",
                             "min", "max"], report_rows(table)), "",
             (f"All candidates: geometric mean "
              f"{math.exp(statistics.mean(math.log(v) for v in every)):.2f}, "
              f"{sum(1 / 3 <= v <= 3 for v in every) / len(every):.1%} within 3x.")]
    publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
