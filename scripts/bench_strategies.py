#!/usr/bin/env python
"""Benchmark every registered autoconv strategy against F.conv1d and peer FFT-conv packages.

For each workload of the suite (``autoconv.workloads``) it times ``F.conv1d``, every registered
strategy at each of its parameter sets (reporting each strategy at its best), and the peers
(fft-conv-pytorch, torch-fftconv, julius, ``scipy.signal.oaconvolve``; install them with
``pip install -c constraints.txt -e '.[bench]'``), in interleaved rounds, and prints markdown
tables of medians, ratios, relative errors against float64 ``F.conv1d`` and peak memory, then
the issue's targets with PASS/MISS. See ``benchlib`` for how time and memory are measured.

Usage::

    python scripts/bench_strategies.py [--quick | --only NAME ...] [--repeats 7]
        [--budget 1.0] [--device cpu|cuda] [--out benchmarks/strategies-cpu.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from bench_accuracy import reference
from bench_peers import PEERS
from bench_results import (DIRECT, WRONG_TOLERANCE, Cell, WorkloadResult,
                           accuracy_memory_table, format_params, times_table)
from bench_targets import targets_table
from benchlib import (limit_address_space, machine_header, markdown_table, time_interleaved,
                      warm_up)

from autoconv import strategies, workloads
from autoconv.workloads import Workload

Call = Callable[[], torch.Tensor]

#: A first call slower than this many cell budgets is the candidate's only run.
SLOW_FACTOR = 3.0


def _direct_is_f_conv1d(sig: Any) -> bool:
    """``direct`` with no parameters is ``F.conv1d``: its column is F.conv1d's, timed once."""
    return DIRECT in strategies.names() and strategies.get(DIRECT).param_grid(sig) == [{}]


def _candidates(workload: Workload, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None
                ) -> tuple[dict[str, Call], dict[str, tuple[str, dict[str, Any]]], dict[str, str]]:
    """(name -> call, name -> (strategy, params), strategy -> reason it has no candidate)."""
    sig = workload.signature(str(x.device))
    kwargs = workload.conv_kwargs()
    calls: dict[str, Call] = {"F.conv1d": partial(F.conv1d, x, w, b, **kwargs)}
    owners: dict[str, tuple[str, dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    for strategy in strategies.all_strategies():
        if strategy.name == DIRECT and _direct_is_f_conv1d(sig):
            continue
        if not getattr(strategy, "supports", lambda _: True)(sig):
            skipped[strategy.name] = "n/a: unsupported"
            continue
        try:
            grid = strategy.param_grid(sig)
        except (NotImplementedError, ValueError, RuntimeError) as error:
            skipped[strategy.name] = f"n/a: {error}"
            continue
        if not grid:
            skipped[strategy.name] = "n/a: no parameters for this shape"
        for params in grid:
            name = f"{strategy.name}[{format_params(params)}]"
            calls[name] = partial(strategy.run, x, w, b, **kwargs, **params)
            owners[name] = (strategy.name, params)
    return calls, owners, skipped


def _failure(error: Exception) -> str:
    """Short status for a candidate that raised."""
    text = str(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate" in text \
            or "out of memory" in text.lower():
        return "failed: out of memory (over --memory-limit)"
    return f"failed: {type(error).__name__}: {text.splitlines()[0][:80] if text else ''}"


def run_workload(workload: Workload, device: str, repeats: int, budget_s: float,
                 reference_budget_s: float) -> WorkloadResult:
    """Warm up, check and time every implementation on ``workload``."""
    x, w, b = workload.tensors(device)
    sig = workload.signature(device)
    ref = reference(x, w, b, sig, reference_budget_s)
    calls, owners, skipped = _candidates(workload, x, w, b)
    peer_cells: dict[str, Cell] = {}
    for peer in PEERS:
        prepared = peer.prepare(x, w, b, sig)
        if isinstance(prepared, str):
            peer_cells[peer.name] = Cell(peer.name, status=prepared)
        else:
            calls[peer.name] = prepared
    cells = {name: Cell(owners.get(name, (name, {}))[0], params=owners.get(name, ("", None))[1])
             for name in calls}
    warmups = {}
    for name, call in list(calls.items()):
        cell = cells[name]
        try:
            warm = warm_up(call, device, SLOW_FACTOR * budget_s)
            cell.error = ref.error(warm.output)
        except Exception as error:  # a failing candidate is reported, never fatal
            cell.status = _failure(error)
            del calls[name]
            continue
        if cell.error > WRONG_TOLERANCE:
            cell.status = f"wrong (err {cell.error:.1e})"
            del calls[name]
            continue
        warmups[name] = warm
        del warm
    for name, timing in time_interleaved(calls, warmups, device=device, repeats=repeats,
                                         budget_s=budget_s).items():
        cells[name].median_s = timing.median
        cells[name].samples = len(timing.samples)
        cells[name].peak_bytes = timing.peak_bytes

    result = WorkloadResult(workload, cells.pop("F.conv1d"), reference_complete=ref.complete)
    if DIRECT in strategies.names() and all(o[0] != DIRECT for o in owners.values()):
        result.strategies[DIRECT] = Cell(DIRECT, result.direct.status, result.direct.median_s,
                                         result.direct.samples, result.direct.error,
                                         result.direct.peak_bytes, {})
    errors = []
    for name, cell in cells.items():
        if name in owners:
            strategy_name = owners[name][0]
            if strategy_name != DIRECT and cell.error is not None:
                errors.append(cell.error)
            best = result.strategies.get(strategy_name)
            if best is None or (cell.ok and (not best.ok or cell.median_s < best.median_s)):
                result.strategies[strategy_name] = cell
        else:
            result.peers[name] = cell
    for name, reason in skipped.items():
        result.strategies.setdefault(name, Cell(name, status=reason))
    result.peers.update(peer_cells)
    result.max_strategy_error = max(errors, default=None)
    return result


def render(results: list[WorkloadResult], device: str, args: argparse.Namespace,
           elapsed_s: float) -> str:
    """The whole report: machine header, the two tables and the targets."""
    names = strategies.names()
    peers = [p.name for p in PEERS]
    targets = markdown_table(["target", "measured", "verdict", "note"], targets_table(results))
    return "\n\n".join([
        "# autoconv strategies vs F.conv1d and peer FFT convolutions",
        machine_header(device) + f"\n- device: {device}; repeats: {args.repeats}, budget per "
        f"cell: {args.budget:g} s; strategies: {', '.join(names)}; total time {elapsed_s:.0f} s",
        "## Median time per call (each strategy at its best parameters)",
        times_table(results, names, peers),
        "(1 sample): a slow call, timed once, after one warm-up call unless the first call "
        f"took over {SLOW_FACTOR:g}x the per-cell budget. n/a: the peer cannot compute "
        "this call. wrong: the result disagrees with F.conv1d by more than "
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
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for workload in workloads.SUITE:
            print(f"{workload.name:24s} {workload.summary():44s} {workload.source}")
        return 0
    try:
        selected = workloads.select(args.only, args.quick)
    except KeyError as error:
        print(f"bench_strategies: error: {error.args[0]}", file=sys.stderr)
        return 2
    if args.device == "cpu" and args.memory_limit > 0:
        limit_address_space(int(args.memory_limit * 2**30))
    start = time.perf_counter()
    results = []
    for workload in selected:
        print(f"[{time.perf_counter() - start:6.1f} s] {workload.name}", file=sys.stderr,
              flush=True)
        results.append(run_workload(workload, args.device, args.repeats, args.budget,
                                    args.reference_budget))
    report = render(results, args.device, args, time.perf_counter() - start)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
