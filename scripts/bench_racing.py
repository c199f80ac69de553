"""Racing: what dropping clearly slower candidates early saves, and what it costs in regret.

For every workload of the suite, in one process, two selectors without a database tune the
signature in turn (which goes first alternates between workloads): one racing (the default:
candidates clearly slower than the best are dropped during warm-up and timing, timing stops
once one is left or those left are tied) and one with ``race=False`` (every candidate that
fits the budget warmed up and timed to the deadline or ``max_samples``, the behaviour before
racing). Their tuning wall time is
the first-call cost. Then every candidate is timed, interleaved, and each selector's pick is
scored by its regret: its time over the fastest candidate's.

Usage: python scripts/bench_racing.py [--quick] [--only NAME ...] [--budget S] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    suite_arguments,
    time_candidates,
)

import autoconv
from autoconv.catalogue import suite as catalogue_suite
from autoconv.catalogue.workload import Workload
from autoconv.offline.report import geometric_mean
from autoconv.tuning.cost_model import default_cost_model
from autoconv.tuning.selector import Selector

VARIANTS = {"racing": True, "no racing": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return suite_arguments(__doc__.split("\n\n")[0], cell_budget_s=1.0).parse_args(argv)


def bench_workload(index: int, workload: Workload,
                   args: argparse.Namespace) -> dict:
    signature = workload.signature()
    cpu = torch.device("cpu")
    order = list(VARIANTS) if index % 2 == 0 else list(reversed(VARIANTS))
    picks, costs = {}, {}
    for name in order:
        with autoconv.settings.override(race=VARIANTS[name]):
            selector = Selector(cost_model=default_cost_model, settings=autoconv.settings)
            start = time.perf_counter()
            picks[name] = selector.choose(signature, cpu)
            costs[name] = time.perf_counter() - start
    medians = {(c.name, c.params): seconds for c, seconds in
               time_candidates(workload, args.repeats, args.cell_budget).items()}
    fastest = min(medians.values())
    result = {"workload": workload.name}
    for name, pick in picks.items():
        result[name] = (pick, costs[name], medians[(pick.strategy, pick.params)] / fastest)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = catalogue_suite.select(args.only, quick=args.quick)
    lines = [machine_header("cpu"), "", "# Racing benchmark", "",
             (f"Tuning budget {args.budget:g} s per signature; first-call cost = the "
              "selector's tuning wall time; regret = the pick's time / the fastest "
              "candidate's."),
             ""]
    results = []
    with torch.no_grad(), autoconv.settings.override(budget_s=args.budget, mode="tune",
                                                     persist=False, bucket_lengths=False):
        for index, workload in enumerate(suite):
            print(f"... {workload.name}", file=sys.stderr, flush=True)
            results.append(bench_workload(index, workload, args))

    def describe(pick) -> str:
        return f"{pick.strategy} {pick.params_dict or ''}".strip()

    rows = [[r["workload"], describe(r["no racing"][0]), format_seconds(r["no racing"][1]),
             f"{r['no racing'][2]:.3f}", describe(r["racing"][0]),
             format_seconds(r["racing"][1]), f"{r['racing'][2]:.3f}",
             f"{r['no racing'][1] / r['racing'][1]:.2f}x"] for r in results]
    lines.append(markdown_table(
        ["workload", "no racing: pick", "first call", "regret", "racing: pick", "first call",
         "regret", "first call saved"], rows))
    summary = []
    for name in ("no racing", "racing"):
        regrets = [r[name][2] for r in results]
        costs = [r[name][1] for r in results]
        summary.append([name, f"{geometric_mean(regrets):.3f}", f"{max(regrets):.3f}",
                        format_seconds(sum(costs)), format_seconds(max(costs))])
    lines += ["", "## Summary", "", markdown_table(
        ["timer", "regret, geometric mean", "regret, worst", "first calls, total",
         "first call, longest"], summary)]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
