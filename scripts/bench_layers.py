"""Per-layer speed on ordinary layers: autoconv's pick against F.conv1d and the machine's floor.

For each ordinary layer of the catalogue (``autoconv.catalogue.ordinary``: strided front ends,
depthwise and dense short-kernel convs of speech, audio and sequence models), in one process:

* the first ``autoconv.conv1d`` call tunes the layer into a fresh temporary database (budget
  ``--budget``), and ``autoconv.select`` says what it picked;
* then, timed interleaved, medians reported: the tuned ``autoconv.conv1d``, ``F.conv1d`` as
  called, and every registered candidate (``autoconv.tuning.candidates.enumerate_candidates``:
  each strategy at each of its parameter sets), each strategy reported at its best;
* the layer's **floor**: the larger of its multiply-adds at the machine's matrix-multiply rate
  and its compulsory bytes (input + weight + output, at the dtype's size) at the machine's
  copy bandwidth, both measured at the start in this process (a large float32 ``torch.mm``,
  multiply-adds per second; a large ``Tensor.copy_``, bytes read + written per second); and
  the fastest candidate's distance from it (its time / the floor).

At the end: the geometric-mean speed-up of the pick over ``F.conv1d``, its minimum, and the
geometric-mean distances from the floor. A candidate that raises is reported, never fatal.

With ``--training`` every call is a training step's share of the layer: the forward on
tensors that need gradients, then the gradients of the input, weight and bias for a fixed
output gradient (``torch.autograd.grad``: nothing accumulates between calls); autoconv tunes
the layer's signature with gradients, as a training loop's first step does. The floor is
then three times the multiply-adds (the forward, the input's gradient, the weight's) and
twice the compulsory bytes (the forward's, and the backward's reads and writes of as many).

With ``--dtype bfloat16`` (or ``float16``) every layer runs in that dtype, as under CPU
autocast; its floor stays the float32 matrix-multiply rate (the fastest way this machine has
to do the multiply-adds) and the compulsory bytes at the dtype's size.

Usage: python scripts/bench_layers.py [--quick | --only NAME ...] [--budget S] [--repeats N]
    [--cell-budget S] [--dtype NAME] [--training] [--list] [--out benchmarks/layers-cpu.md]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import (
    candidate_calls,
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    time_interleaved,
    warm_up,
)

import autoconv
from autoconv.catalogue import ordinary
from autoconv.catalogue.workload import Workload
from autoconv.offline.report import geometric_mean
from autoconv.runtime.dispatch import dispatcher
from autoconv.strategies import names as strategy_names

AUTOCONV, F_CONV1D = "autoconv", "F.conv1d"
#: The probes of the machine's rates: a float32 matrix multiply of this side, a copy of this
#: many float32 elements (full run, --quick).
MM_SIDE = {False: 2048, True: 512}
COPY_ELEMENTS = {False: 1 << 26, True: 1 << 22}
#: A pick slower than F.conv1d by more than this is counted as slower (noise aside).
NOISE = 1.05
#: A training step's share of a layer against its forward: multiply-adds (forward, input's
#: gradient, weight's gradient) and compulsory bytes (forward, backward).
TRAINING_MACS, TRAINING_BYTES = 3, 2


@dataclass(frozen=True)
class Rates:
    """The machine's measured matrix-multiply rate and copy bandwidth."""

    macs_per_s: float
    bytes_per_s: float
    mm_side: int
    copy_bytes: int

    def floor(self, workload: Workload, training: bool = False) -> tuple[float, str]:
        """The layer's floor in seconds (a training step's share of it with ``training``),
        and which bound sets it (``compute`` or ``memory``)."""
        macs, tensor_bytes = workload.macs, workload.signature().tensor_bytes
        if training:
            macs, tensor_bytes = TRAINING_MACS * macs, TRAINING_BYTES * tensor_bytes
        compute = macs / self.macs_per_s
        memory = tensor_bytes / self.bytes_per_s
        return (compute, "compute") if compute >= memory else (memory, "memory")

    def describe(self) -> str:
        return (f"- matrix-multiply rate: {self.macs_per_s / 1e9:.1f} G multiply-adds/s (float32 "
                f"torch.mm, {self.mm_side}x{self.mm_side}); copy bandwidth: "
                f"{self.bytes_per_s / 1e9:.1f} GB/s read + written (Tensor.copy_ of "
                f"{self.copy_bytes / 2**20:.0f} MiB)")


def measure_rates(quick: bool, repeats: int) -> Rates:
    """Time a large ``torch.mm`` and a large ``copy_``, interleaved, medians."""
    side, elements = MM_SIDE[quick], COPY_ELEMENTS[quick]
    a, b, product = torch.randn(side, side), torch.randn(side, side), torch.empty(side, side)
    source, target = torch.randn(elements), torch.empty(elements)
    calls = {"mm": lambda: torch.mm(a, b, out=product), "copy": lambda: target.copy_(source)}
    warmups = {name: warm_up(fn, "cpu", 10.0) for name, fn in calls.items()}
    timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=10.0,
                               min_sample_s=0.02)
    return Rates(side**3 / timings["mm"].median, 2 * source.nbytes / timings["copy"].median,
                 side, source.nbytes)


@dataclass
class LayerResult:
    """Everything measured on one layer."""

    workload: Workload
    pick: str
    medians: dict[str, float]
    best: dict[str, float] = field(default_factory=dict)  # strategy -> its best median
    failed: dict[str, str] = field(default_factory=dict)  # candidate label -> why
    floor_s: float = math.nan
    bound: str = ""

    @property
    def speedup(self) -> float:
        return self.medians[F_CONV1D] / self.medians[AUTOCONV]

    @property
    def fastest_s(self) -> float:
        """The fastest candidate's median (F.conv1d as called included)."""
        return min([self.medians[F_CONV1D], *self.best.values()])


def _warm_all(calls: dict, cell_budget: float) -> tuple[dict, dict[str, str]]:
    warmups, failed = {}, {}
    for key, fn in list(calls.items()):
        try:
            warmups[key] = warm_up(fn, "cpu", cell_budget)
        except Exception as error:  # noqa: BLE001  # a failing candidate is reported
            failed[getattr(key, "label", key)] = f"{type(error).__name__}: {error}"[:100]
            del calls[key]
    return warmups, failed


def _training_steps(calls: dict, leaves: list[torch.Tensor], grad: torch.Tensor) -> dict:
    """Each call as its forward and the gradients of ``leaves`` for ``grad``."""
    return {key: (lambda fn=fn: torch.autograd.grad(fn(), leaves, grad))
            for key, fn in calls.items()}


def bench_layer(workload: Workload, args: argparse.Namespace, rates: Rates) -> LayerResult:
    x, w, b = workload.tensors()
    leaves = [t.requires_grad_(args.training) for t in (x, w, b) if t is not None]
    kwargs = workload.conv_kwargs()
    out = autoconv.conv1d(x, w, b, **kwargs)  # tunes it into the fresh database
    dispatcher.preparations.join()  # a kernel compiling for the call's own length: F.conv1d
    # answers until it is built (autoconv.runtime.preparing); what is timed is the pick
    choice = autoconv.select(x, w, b, **kwargs)
    candidates = candidate_calls(workload, x, w, b)
    calls: dict[object, Callable[[], torch.Tensor]] = {
        AUTOCONV: lambda: autoconv.conv1d(x, w, b, **kwargs),
        F_CONV1D: lambda: F.conv1d(x, w, b, **kwargs), **candidates}
    if args.training:
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out)
        calls = _training_steps(calls, leaves, grad)
    warmups, failed = _warm_all(calls, args.cell_budget)
    timings = time_interleaved(calls, warmups, device="cpu", repeats=args.repeats,
                               budget_s=args.cell_budget)
    medians = {key: timing.median for key, timing in timings.items()}
    params = ",".join(f"{k}={v}" for k, v in choice.params)
    result = LayerResult(workload, f"{choice.strategy}({params})" if params else choice.strategy,
                         {AUTOCONV: medians[AUTOCONV], F_CONV1D: medians[F_CONV1D]},
                         failed=failed)
    for candidate in candidates:
        if candidate in medians:
            best = result.best.get(candidate.name, math.inf)
            result.best[candidate.name] = min(best, medians[candidate])
    result.floor_s, result.bound = rates.floor(workload, args.training)
    return result


def layers_table(results: list[LayerResult]) -> str:
    names = strategy_names()
    headers = ["layer", "shape", F_CONV1D, *[f"best {n}" for n in names], "pick", "pick time",
               "speed-up", "floor", "bound", "fastest / floor"]
    rows = [[r.workload.name, r.workload.summary(), format_seconds(r.medians[F_CONV1D]),
             *[format_seconds(r.best.get(n)) for n in names], r.pick,
             format_seconds(r.medians[AUTOCONV]), f"{r.speedup:.2f}x", format_seconds(r.floor_s),
             r.bound, f"{r.fastest_s / r.floor_s:.2f}"] for r in results]
    return markdown_table(headers, rows)


def summary_table(results: list[LayerResult]) -> str:
    speedups = [r.speedup for r in results]
    worst = min(results, key=lambda r: r.speedup)
    slower = [r.workload.name for r in results if r.speedup < 1 / NOISE]
    rows = [
        ["speed-up of the pick over F.conv1d, geometric mean", f"{geometric_mean(speedups):.2f}x"],
        ["speed-up of the pick over F.conv1d, minimum", (f"{worst.speedup:.2f}x "
                                                        f"({worst.workload.name})")],
        [f"layers where the pick is slower than F.conv1d by over {NOISE - 1:.0%}",
         f"{len(slower)}" + (f" ({', '.join(slower)})" if slower else "")],
        ["F.conv1d / floor, geometric mean",
         f"{geometric_mean([r.medians[F_CONV1D] / r.floor_s for r in results]):.2f}"],
        ["pick / floor, geometric mean",
         f"{geometric_mean([r.medians[AUTOCONV] / r.floor_s for r in results]):.2f}"],
        ["fastest candidate / floor, geometric mean",
         f"{geometric_mean([r.fastest_s / r.floor_s for r in results]):.2f}"],
    ]
    return markdown_table(["figure", "measured"], rows)


def render(results: list[LayerResult], rates: Rates, args: argparse.Namespace,
           load_start: float | None, elapsed_s: float) -> str:
    failures = [f"- {r.workload.name}: {label}: {why}" for r in results
                for label, why in r.failed.items()]
    return "\n".join([
        "# Ordinary layers: autoconv's pick, F.conv1d and the machine's floor"
        + (" (a training step: forward and gradients)" if args.training else ""), "",
        machine_header("cpu"),
        (f"- 1-min load average at start: {load_start:.2f}; " if load_start is not None
         else "- ") + f"dtype {args.dtype}; "
        f"tuning budget {args.budget:g} s per layer, at most {args.repeats} "
        f"samples and {args.cell_budget:g} s per candidate; total time {elapsed_s:.0f} s",
        rates.describe(), "",
        "## Median time per call", "", layers_table(results), "",
        ("Each strategy at its best parameters (`-`: it does not support the layer). pick: "
        "what autoconv chose after tuning into a fresh database; speed-up: F.conv1d / pick. "
        "floor: max(multiply-adds / matrix-multiply rate, (input + weight + output) bytes / "
        "copy bandwidth)" + (f", times {TRAINING_MACS} and {TRAINING_BYTES} for a training "
                             "step" if args.training else "") + "; bound: which of the two "
        "sets it."), "",
        "## Summary", "", summary_table(results),
        *(["", "## Candidates that failed", "", *failures] if failures else []),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--quick", action="store_true",
                        help="the quick layers, and smaller probes of the machine's rates")
    choice.add_argument("--only", nargs="+", metavar="NAME", help="only these layers")
    parser.add_argument("--list", action="store_true", help="list the layers and exit")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="tuning budget per layer, seconds (autoconv's budget_s)")
    parser.add_argument("--repeats", type=int, default=15, help="most samples per candidate")
    parser.add_argument("--cell-budget", type=float, default=1.0,
                        help="timing budget per candidate per layer, seconds")
    parser.add_argument("--dtype", default="float32",
                        choices=["float32", "float64", "bfloat16", "float16"],
                        help="the layers' dtype (default: each layer's own, float32)")
    parser.add_argument("--training", action="store_true",
                        help="time a training step's share of each layer: the forward and "
                             "its gradients (see the module docstring)")
    parser.add_argument("--out", type=Path, help="also write the report to this file "
                                                 "(e.g. benchmarks/layers-cpu.md)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for workload in ordinary.ORDINARY:
            print(f"{workload.name:22s} {workload.summary():40s} {workload.source}")
        return 0
    try:
        layers = ordinary.select(args.only, quick=args.quick)
    except KeyError as error:
        print(f"bench_layers: error: {error.args[0]}", file=sys.stderr)
        return 2
    if args.dtype != "float32":
        layers = [dataclasses.replace(layer, dtype=args.dtype) for layer in layers]
    start = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rates = measure_rates(args.quick, repeats=min(args.repeats, 7))
    print(rates.describe(), file=sys.stderr, flush=True)
    results = []
    grad_mode = contextlib.nullcontext() if args.training else torch.no_grad()
    with tempfile.TemporaryDirectory() as tmp, grad_mode, autoconv.settings.override(
            db_url=f"sqlite:///{tmp}/tuning.sqlite3", budget_s=args.budget, mode="tune"):
        for workload in layers:
            print(f"[{time.perf_counter() - start:6.1f} s] {workload.name}", file=sys.stderr,
                  flush=True)
            results.append(bench_layer(workload, args, rates))
        dispatcher.reset()
    publish(render(results, rates, args, load_start, time.perf_counter() - start), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
