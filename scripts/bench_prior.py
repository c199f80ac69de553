"""Predict mode without data: how far the cost model may be trusted to leave ``F.conv1d``.

With an empty database, mode ``predict`` answers from the cost model alone. For every workload
of the suite, in one process: the cost model's predicted seconds for each candidate, then every
candidate timed interleaved (``F.conv1d`` included). For each *gain threshold* G, the pick is
the cost model's fastest candidate if its predicted gain over ``F.conv1d`` (predicted seconds
of ``F.conv1d`` / of the pick) is at least G, else ``F.conv1d``; its measured speed-up over
``F.conv1d`` is reported (minimum, geometric mean, and on long-kernel workloads against the
tune-mode best). The selector's ``prior_gain`` setting is chosen from this table: the smallest
G whose minimum speed-up is at least 0.9, with room above the largest predicted gain of a
pick that proved slower than ``F.conv1d`` (issue 14). The last table is the setting's own
answer: what predict mode picks now.

Usage: python scripts/bench_prior.py [--quick] [--only NAME ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys

import torch
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    suite_arguments,
    time_candidates,
)

from autoconv.catalogue import suite as catalogue_suite
from autoconv.catalogue.workload import Workload
from autoconv.offline.report import geometric_mean
from autoconv.settings import settings
from autoconv.strategies import all_strategies
from autoconv.tuning.candidates import enumerate_candidates
from autoconv.tuning.cost_model import default_cost_model
from autoconv.tuning.selector import Selector

THRESHOLDS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return suite_arguments(__doc__.split("\n\n")[0], cell_budget_s=0.5).parse_args(argv)


def bench_workload(workload: Workload, args: argparse.Namespace) -> dict:
    signature = workload.signature()
    cpu = torch.device("cpu")
    candidates = enumerate_candidates(all_strategies(), signature)
    predicted = {c: default_cost_model.predict(signature, c.strategy, dict(c.params), cpu)
                 for c in candidates}
    # what the selector would time in tune mode: the same pruning
    kept = {c for c, _ in Selector(cost_model=default_cost_model).prune(signature, candidates,
                                                                          cpu)}
    measured = time_candidates(workload, args.repeats, args.cell_budget)
    reference = next(c for c in candidates if c.is_plain_conv1d)
    with settings.override(mode="predict", persist=False):  # what the selector answers now
        answer = Selector(cost_model=default_cost_model).choose(signature, cpu)
    chosen = next(c for c in candidates if (c.name, c.params) == (answer.strategy,
                                                                  answer.params))
    return {"workload": workload, "predicted": predicted, "measured": measured,
            "reference": reference, "tuned_best": min(measured[c] for c in kept),
            "predict_mode": chosen}


def pick(result: dict, threshold: float):
    predicted, reference = result["predicted"], result["reference"]
    known = {c: t for c, t in predicted.items() if t is not None}
    best = min(known, key=known.__getitem__)
    if predicted[reference] is not None and predicted[reference] / known[best] >= threshold:
        return best
    return reference


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = catalogue_suite.select(args.only, quick=args.quick)
    results = []
    with torch.no_grad(), settings.override(bucket_lengths=False):
        for workload in suite:
            print(f"... {workload.name}", file=sys.stderr, flush=True)
            results.append(bench_workload(workload, args))

    lines = [machine_header("cpu"), "", "# Predict mode without data: the cost model's prior",
             "", "Speed-up = F.conv1d's measured time / the pick's measured time.", ""]
    rows = []
    for r in results:
        reference = r["reference"]
        best = pick(r, 1.0)
        gain = r["predicted"][reference] / r["predicted"][best]
        rows.append([r["workload"].name, best.label, f"{gain:.2f}x",
                     f"{r['measured'][reference] / r['measured'][best]:.2f}x",
                     format_seconds(r["measured"][reference]),
                     f"{r['measured'][reference] / r['tuned_best']:.2f}x"])
    lines.append(markdown_table(
        ["workload", "cost model's pick", "predicted gain", "measured speed-up",
         "F.conv1d", "tune mode's best speed-up"], rows))
    summary = []
    long_kernels = [r for r in results if "long_kernel" in r["workload"].tags]
    for threshold in THRESHOLDS:
        speedups = [r["measured"][r["reference"]] / r["measured"][pick(r, threshold)]
                    for r in results]
        kept = [(r["measured"][r["reference"]] / r["measured"][pick(r, threshold)])
                / (r["measured"][r["reference"]] / r["tuned_best"]) for r in long_kernels]
        summary.append([f"{threshold:g}", f"{min(speedups):.2f}x",
                        f"{geometric_mean(speedups):.2f}x",
                        f"{geometric_mean(kept):.2f}" if kept else "-"])
    lines += ["", "## By gain threshold", "", markdown_table(
        ["leave F.conv1d when predicted gain >=", "speed-up, minimum",
         "speed-up, geometric mean", "long kernels: share of tune mode's speed-up (geo. mean)"],
        summary)]
    actual = [r["measured"][r["reference"]] / r["measured"][r["predict_mode"]]
              for r in results]
    lines += ["", f"## Predict mode now (prior_gain = {settings.prior_gain:g})", "",
              markdown_table(["speed-up over F.conv1d, minimum", "geometric mean"],
                             [[f"{min(actual):.2f}x", f"{geometric_mean(actual):.2f}x"]])]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
