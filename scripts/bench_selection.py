"""How well does autoconv choose? Selection regret, speed-up, dispatch overhead, tuning cost.

For every workload of the suite (``autoconv.catalogue.suite``), in one process and into a fresh
tuning database:

* the first ``autoconv.conv1d`` call tunes the signature: its wall time is the tuning cost,
  reported against the per-signature budget and as a multiple of the winner's time;
* then, interleaved: the tuned ``autoconv.conv1d``, ``F.conv1d``, and every candidate
  (strategy at each parameter set) called directly. Regret = autoconv / fastest candidate;
  speed-up = F.conv1d / autoconv;
* ``autoconv.Conv1d`` with the same weights, called the same way (under ``no_grad``): the
  module reuses the weight's spectrum between calls, which is what inference gets;
* dispatch overhead on a tiny call (B=1, C=1, L=64, K=16): autoconv.conv1d / F.conv1d.

Targets (issue 4): regret geometric mean <= 1.05 and worst <= 1.25; speed-up minimum >= 0.95;
tiny-call overhead <= 1.3; no signature spends more than its budget tuning.

Usage: python scripts/bench_selection.py [--quick] [--only NAME ...] [--budget S] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from benchlib import (
    candidate_calls,
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    suite_arguments,
    time_interleaved,
    warm_up,
)

import autoconv
from autoconv.catalogue import suite as catalogue_suite
from autoconv.catalogue.workload import Workload
from autoconv.offline.report import geometric_mean
from autoconv.runtime.dispatch import dispatcher


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return suite_arguments(__doc__.split("\n\n")[0], cell_budget_s=1.5).parse_args(argv)


def bench_workload(workload: Workload, args: argparse.Namespace) -> dict:
    x, w, b = workload.tensors()
    kwargs = workload.conv_kwargs()
    start = time.perf_counter()
    autoconv.conv1d(x, w, b, **kwargs)
    tuning_s = time.perf_counter() - start
    choice = autoconv.select(x, w, b, **kwargs)

    module = inference_module(workload, w, b)
    module(x)  # the module shares the call's decision; its first call caches the spectrum
    calls = {"autoconv": lambda: autoconv.conv1d(x, w, b, **kwargs),
             "F.conv1d": lambda: F.conv1d(x, w, b, **kwargs),
             "autoconv.Conv1d": lambda: module(x)}
    calls.update({c.label: call for c, call in candidate_calls(workload, x, w, b).items()})
    warmups = {name: warm_up(fn, "cpu", args.cell_budget) for name, fn in calls.items()}
    timings = time_interleaved(calls, warmups, device="cpu", repeats=args.repeats,
                               budget_s=args.cell_budget)
    medians = {name: timing.median for name, timing in timings.items()}
    fastest_name = min((n for n in medians if n not in ("autoconv", "F.conv1d",
                                                         "autoconv.Conv1d")),
                       key=medians.__getitem__)
    ours = medians["autoconv"]
    return {"workload": workload.name, "choice": choice, "tuning_s": tuning_s,
            "autoconv_s": ours, "direct_s": medians["F.conv1d"], "fastest": fastest_name,
            "fastest_s": medians[fastest_name], "regret": ours / medians[fastest_name],
            "speedup": medians["F.conv1d"] / ours, "module_s": medians["autoconv.Conv1d"]}


def inference_module(workload: Workload, w: torch.Tensor,
                     b: torch.Tensor | None) -> autoconv.Conv1d:
    """``autoconv.Conv1d`` holding the workload's weights: called under ``no_grad`` it reuses
    the weight's spectrum between calls (what a model gets at inference)."""
    out_channels, in_per_group, kernel = workload.weight_shape
    module = autoconv.Conv1d(in_per_group * workload.groups, out_channels, kernel,
                             stride=workload.stride, padding=workload.padding,
                             dilation=workload.dilation, groups=workload.groups,
                             bias=b is not None, dtype=w.dtype)
    module.weight.data.copy_(w)
    if b is not None:
        module.bias.data.copy_(b)
    return module.eval()


def dispatch_overhead(repeats: int = 41) -> tuple[float, float, float]:
    """Median times of F.conv1d and autoconv.conv1d on a tiny call, and their ratio."""
    x, w = torch.randn(1, 1, 64), torch.randn(1, 1, 16)
    autoconv.conv1d(x, w)  # tune it
    inner = 2000
    ours, theirs = [], []
    pair = [(lambda: F.conv1d(x, w), theirs), (lambda: autoconv.conv1d(x, w), ours)]
    for repeat in range(repeats):
        for fn, samples in pair if repeat % 2 else reversed(pair):  # neither always first
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - start) / inner)
    theirs_s, ours_s = statistics.median(theirs), statistics.median(ours)
    return theirs_s, ours_s, ours_s / theirs_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = catalogue_suite.select(args.only, quick=args.quick)
    lines = [machine_header("cpu"), "", "# Selection benchmark", ""]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), autoconv.settings.override(
            db_url=f"sqlite:///{tmp}/tuning.sqlite3", budget_s=args.budget, mode="tune"):
        results = []
        for workload in suite:
            print(f"... {workload.name}", file=sys.stderr, flush=True)
            results.append(bench_workload(workload, args))
        direct_s, ours_s, overhead = dispatch_overhead()
        dispatcher.reset()

    rows = [[r["workload"], f"{r['choice'].strategy} {r['choice'].params_dict or ''}".strip(),
             format_seconds(r["autoconv_s"]), format_seconds(r["direct_s"]),
             f"{r['fastest']}", format_seconds(r["fastest_s"]), f"{r['regret']:.3f}",
             f"{r['speedup']:.2f}x", format_seconds(r["module_s"]),
             f"{r['direct_s'] / r['module_s']:.2f}x", format_seconds(r["tuning_s"]),
             f"{r['tuning_s'] / r['autoconv_s']:.0f}"] for r in results]
    lines.append(markdown_table(
        ["workload", "chosen", "autoconv", "F.conv1d", "fastest candidate", "its time",
         "regret", "speed-up", "Conv1d, spectrum cached", "its speed-up",
         "tuning (1st call)", "tuning / winner"], rows))
    regrets = [r["regret"] for r in results]
    speedups = [r["speedup"] for r in results]
    worst_tuning = max(r["tuning_s"] for r in results)
    summary = [
        ("regret, geometric mean", f"{geometric_mean(regrets):.3f}", "<= 1.05",
         geometric_mean(regrets) <= 1.05),
        ("regret, worst", f"{max(regrets):.3f}", "<= 1.25", max(regrets) <= 1.25),
        ("speed-up over F.conv1d, geometric mean", f"{geometric_mean(speedups):.2f}x", "report",
         None),
        ("speed-up over F.conv1d, minimum", f"{min(speedups):.3f}x", ">= 0.95",
         min(speedups) >= 0.95),
        ("tiny call (1x1x64, K=16): autoconv / F.conv1d",
         f"{overhead:.2f} ({format_seconds(ours_s)} vs {format_seconds(direct_s)})", "<= 1.3",
         overhead <= 1.3),
        ("longest first call (tuning)", format_seconds(worst_tuning),
         f"<= budget {args.budget:g} s", worst_tuning <= args.budget),
    ]
    lines += ["", "## Targets", "", markdown_table(
        ["figure", "measured", "target", "status"],
        [[name, value, target, "-" if ok is None else ("PASS" if ok else "MISS")]
         for name, value, target, ok in summary])]
    report = "\n".join(lines)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
