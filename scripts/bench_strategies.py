#!/usr/bin/env python
"""Benchmark every registered autoconv strategy against F.conv1d and peer FFT-conv packages.

For each workload of the suite (``autoconv.catalogue.suite``) it times ``F.conv1d``, every
registered strategy at each of its parameter sets (reporting each strategy at its best), and the
peers (fft-conv-pytorch, torch-fftconv, julius, ``scipy.signal.oaconvolve``; install them with
``pip install -c constraints.txt -e '.[bench]'``), in interleaved rounds, and prints markdown
tables of medians, ratios, relative errors against float64 ``F.conv1d`` and peak memory, then
the issue's targets with PASS/MISS. See ``benchlib`` for how time and memory are measured.

Usage::

    python scripts/bench_strategies.py [--quick | --only NAME ...] [--repeats 7]
        [--budget 1.0] [--device cpu|cuda] [--out benchmarks/strategies-cpu.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import bench_candidates
import torch
from bench_accuracy import reference
from bench_candidates import F_CONV1D, estimate, probe_input
from bench_peers import PEERS
from bench_results import (
    DIRECT,
    WRONG_TOLERANCE,
    Cell,
    WorkloadResult,
    accuracy_memory_table,
    times_table,
)
from bench_targets import targets_table
from benchlib import (
    WarmUp,
    format_seconds,
    limit_address_space,
    machine_header,
    markdown_table,
    publish,
    synchronize,
    time_interleaved,
    warm_up,
)

from autoconv import strategies
from autoconv.catalogue import suite
from autoconv.catalogue.workload import Workload

Call = Callable[[], torch.Tensor]

#: A first call slower than this many cell budgets is the candidate's only run.
SLOW_FACTOR = 3.0
#: Parameter sets whose warm-up took over this many times their strategy's best are not timed.
PRUNE_FACTOR = 1.5
#: A first call this many times slower than F.conv1d (and over the budget) is not repeated.
HOPELESS_FACTOR = 10.0


def _failure(error: Exception) -> str:
    """Short status for a candidate that raised."""
    text = str(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate" in text \
            or "out of memory" in text.lower():
        return "failed: out of memory (over --memory-limit)"
    return f"failed: {type(error).__name__}: {text.splitlines()[0][:80] if text else ''}"


def _warm_all(calls: dict[str, Call], cells: dict[str, Cell], ref: Any, device: str,
              budget_s: float, estimates: dict[str, float]) -> dict[str, WarmUp]:
    """Warm up and check every call (F.conv1d first); failing or wrong ones are dropped.

    A first call over ``SLOW_FACTOR`` budgets, or over the budget and ``HOPELESS_FACTOR`` times
    F.conv1d's, is not repeated: it is the candidate's one sample. A candidate whose probe
    estimate is over both is not run at all.
    """
    warmups: dict[str, WarmUp] = {}
    for name, call in list(calls.items()):
        cell = cells[name]
        slow_s = SLOW_FACTOR * budget_s
        if F_CONV1D in warmups:
            hopeless_s = HOPELESS_FACTOR * warmups[F_CONV1D].seconds
            if estimates.get(name, 0.0) > max(slow_s, hopeless_s):
                cell.status = (f"skipped: ~{format_seconds(estimates[name])} est., over "
                               f"{HOPELESS_FACTOR:g}x F.conv1d")
                del calls[name]
                continue
            slow_s = min(slow_s, max(budget_s, hopeless_s))
        try:
            warm = warm_up(call, device, slow_s)
            cell.error = ref.error(warm.output)
        except Exception as error:  # a failing candidate is reported, never fatal
            cell.status = _failure(error)
            del calls[name]
            continue
        finally:
            synchronize(device)
        warm.output = None  # keep only one output alive at a time
        if cell.error > WRONG_TOLERANCE:
            cell.status = f"wrong (err {cell.error:.1e})"
            del calls[name]
            continue
        warmups[name] = warm
    return warmups


def _probe_estimates(workload: Workload, x: torch.Tensor, w: torch.Tensor,
                     b: torch.Tensor | None, device: str) -> dict[str, float]:
    """Estimated seconds per full call of each candidate, from a reduced problem."""
    probe = probe_input(x, workload.signature(device))
    if probe is None:
        return {}
    small, scale = probe
    estimates = {}
    for name, call in bench_candidates.build(small, w, b, workload.conv_kwargs()).calls.items():
        if name != F_CONV1D:
            try:
                seconds = estimate(call, scale, device)
            except Exception:  # the full warm-up reports failures
                continue
            if seconds is not None:
                estimates[name] = seconds
    return estimates


def _prune(calls: dict[str, Call], cells: dict[str, Cell], warmups: dict[str, WarmUp],
           owners: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Drop parameter sets whose warm-up was over PRUNE_FACTOR x their strategy's best one."""
    best: dict[str, float] = {}
    for name in calls:
        if name in owners:
            strategy = owners[name][0]
            best[strategy] = min(best.get(strategy, float("inf")), warmups[name].seconds)
    for name in list(calls):
        if name in owners and warmups[name].seconds > PRUNE_FACTOR * best[owners[name][0]]:
            cells[name].status = "pruned"
            del calls[name]


def _assemble(workload: Workload, cells: dict[str, Cell],
              owners: dict[str, tuple[str, dict[str, Any]]], skipped: dict[str, str],
              complete: bool) -> WorkloadResult:
    """Group the cells: F.conv1d, each strategy at its fastest parameters, the peers."""
    result = WorkloadResult(workload, cells.pop(F_CONV1D), reference_complete=complete)
    if DIRECT in strategies.names():  # F.conv1d's cell, unless padding first was faster
        direct = result.direct
        result.strategies[DIRECT] = Cell(DIRECT, direct.status, direct.median_s, direct.samples,
                                         direct.error, direct.peak_bytes, {})
    errors = []
    for name, cell in cells.items():
        if name not in owners:
            result.peers[name] = cell
            continue
        strategy_name = owners[name][0]
        if strategy_name != DIRECT and cell.error is not None:
            errors.append(cell.error)
        best = result.strategies.get(strategy_name)
        if best is None or (cell.ok and (not best.ok or cell.median_s < best.median_s)):
            result.strategies[strategy_name] = cell
    for name, reason in skipped.items():
        result.strategies.setdefault(name, Cell(name, status=reason))
    result.max_strategy_error = max(errors, default=None)
    return result


def run_workload(workload: Workload, device: str, repeats: int, budget_s: float,
                 reference_budget_s: float) -> WorkloadResult:
    """Warm up, check and time every implementation on ``workload``."""
    x, w, b = workload.tensors(device)
    ref = reference(x, w, b, workload.signature(device), reference_budget_s)
    found = bench_candidates.build(x, w, b, workload.conv_kwargs())
    calls, owners = found.calls, found.owners
    cells = {name: Cell(owners[name][0], params=owners[name][1]) if name in owners
             else Cell(name) for name in calls}
    estimates = _probe_estimates(workload, x, w, b, device)
    warmups = _warm_all(calls, cells, ref, device, budget_s, estimates)
    _prune(calls, cells, warmups, owners)
    for name, timing in time_interleaved(calls, warmups, device=device, repeats=repeats,
                                         budget_s=budget_s).items():
        cells[name].median_s = timing.median
        cells[name].samples = len(timing.samples)
        cells[name].peak_bytes = timing.peak_bytes
    unavailable = {n: r for n, r in found.unavailable.items() if n not in strategies.names()}
    cells.update({name: Cell(name, status=reason) for name, reason in unavailable.items()})
    skipped = {n: r for n, r in found.unavailable.items() if n in strategies.names()}
    return _assemble(workload, cells, owners, skipped, ref.complete)


def render(results: list[WorkloadResult], device: str, args: argparse.Namespace,
           elapsed_s: float) -> str:
    """The whole report: machine header, the two tables and the targets."""
    names = strategies.names()
    peers = [p.name for p in PEERS]
    targets = markdown_table(["target", "measured", "verdict", "note"], targets_table(results))
    return "\n\n".join([
        "# autoconv strategies vs F.conv1d and peer FFT convolutions",
        machine_header(device) + f"\n- device: {device}; repeats: {args.repeats}, budget per "
        f"cell: {args.budget:g} s; strategies: {', '.join(names)}; total time {elapsed_s:.0f} s"
        + (f"; 1-min load average at start: {args.load_start:.2f}"
           if getattr(args, "load_start", None) is not None else ""),
        "## Median time per call (each strategy at its best parameters)",
        times_table(results, names, peers),
        "(1 sample): a slow call, timed once, after one warm-up call unless the first call "
        f"took over {SLOW_FACTOR:g}x the per-cell budget, or over the budget and "
        f"{HOPELESS_FACTOR:g}x F.conv1d's first call (then that call is the sample). n/a: the "
        "peer cannot compute this call. wrong: the result disagrees with F.conv1d by more than "
        f"{WRONG_TOLERANCE:g} of its max.",
        "## Relative error vs float64 F.conv1d, and peak extra memory",
        accuracy_memory_table(results, names, peers),
        "Error: max |out - ref| / max |ref| with ref = float64 F.conv1d (* = measured on a "
        "sample of the output, the float64 reference being too slow in full). Memory: peak "
        "physical memory over the inputs during one call, output included.",
        "## Targets", targets,
    ]) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--quick", action="store_true", help="the quick subset of the suite")
    choice.add_argument("--only", nargs="+", metavar="NAME", help="these workloads only")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--repeats", type=int, default=7, help="most samples per cell")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="time budget per cell in seconds (fewer samples for slow calls)")
    parser.add_argument("--reference-budget", type=float, default=2.0,
                        help="seconds for the float64 reference (sampled beyond that)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--memory-limit", type=float, default=4.0, metavar="GIB",
                        help="CPU: calls needing more than this many GiB fail instead of "
                             "exhausting the machine (0: no limit)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for workload in suite.SUITE:
            print(f"{workload.name:24s} {workload.summary():44s} {workload.source}")
        return 0
    try:
        selected = suite.select(args.only, args.quick)
    except KeyError as error:
        print(f"bench_strategies: error: {error.args[0]}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu" and args.memory_limit > 0:
        limit_address_space(int(args.memory_limit * 2**30))
    start = time.perf_counter()
    args.load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results = []
    for workload in selected:
        print(f"[{time.perf_counter() - start:6.1f} s] {workload.name}", file=sys.stderr,
              flush=True)
        results.append(run_workload(workload, args.device, args.repeats, args.budget,
                                    args.reference_budget))
    report = render(results, args.device, args, time.perf_counter() - start)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
