"""Decisions taken on a busy machine, judged on a quiet one (issue 26).

Users tune on machines whose cores are busy with data loaders and other jobs; what autoconv
measures there becomes a stored, shared decision. For the built-in suite
(``autoconv.catalogue.suite``) and a sample of the held-out real layers
(``autoconv.catalogue.held_out``), in one process:

1. **busy**: each signature is tuned (mode ``tune``, ``--budget`` seconds, a fresh database)
   while ``--hogs`` other processes spin on the CPU (``benchlib.HOG``), keeping the cores busy;
2. **quiet**: the same, into another fresh database, with the hogs stopped;
3. **judge**, quiet: every candidate the cost model does not rule out (and F.conv1d and both
   picks, always) is timed interleaved, each called directly as tuning calls it
   (forward and backward for a signature that needs gradients).

Each pick's regret is its time over the fastest candidate's; "slower than F.conv1d" counts
picks more than 5% slower than ``F.conv1d`` as called. Targets (issue 26), busy: geometric-mean
regret <= 1.10, worst <= 1.5, no pick slower than F.conv1d beyond 5%.

Usage: python scripts/bench_busy_machine.py [--real N] [--quick] [--budget S] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from benchlib import (
    machine_header,
    markdown_table,
    publish,
    start_hogs,
    time_interleaved,
    warm_up,
)

import autoconv
from autoconv.catalogue.held_out import real_layers
from autoconv.catalogue.suite import SUITE
from autoconv.choice import Choice
from autoconv.offline.report import geometric_mean
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.strategies import reference as reference_strategy
from autoconv.tuning.candidates import Candidate, CandidateCall, ConvInputs, enumerate_candidates
from autoconv.tuning.contention import MachineLoad

CPU = torch.device("cpu")
#: A pick this much slower than F.conv1d counts as slower (beyond the noise of the judge).
NOISE = 1.05


@dataclass(frozen=True)
class Decision:
    """What tuning decided for one signature, and how long deciding took."""

    candidate: Candidate
    provisional: str | None
    seconds: float


@contextmanager
def hogs(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU for as long as the block runs."""
    procs = start_hogs(count)
    time.sleep(0.5)
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
        time.sleep(0.5)


def tune_all(signatures: Sequence[Signature], db_url: str, budget_s: float,
             progress: Callable[[str], None]) -> dict[Signature, Decision]:
    """Each signature tuned once into ``db_url`` (a fresh database), as a first call would."""
    decisions = {}
    with autoconv.settings.override(db_url=db_url, mode="tune", budget_s=budget_s,
                                    recheck_every=0):
        dispatcher.reset()
        selector = dispatcher.selector
        for signature in signatures:
            start = time.perf_counter()
            choice: Choice = autoconv.select(signature, device=CPU)
            took = time.perf_counter() - start
            reason = selector.provisional_reason(selector.stored(signature, CPU))
            decisions[signature] = Decision(
                Candidate(choice.strategy_impl, choice.params), reason, took)
            progress(f"  {signature.short()}: {choice.strategy} {choice.params_dict} "
                     f"({took:.2f} s){' provisional' if reason else ''}")
        dispatcher.reset()
    return decisions


def judge(signature: Signature, must: Sequence[Candidate], repeats: int, cell_s: float
          ) -> dict[Candidate, float]:
    """Median seconds of the candidates worth timing for ``signature``, on a quiet machine."""
    selector = dispatcher.selector
    candidates = enumerate_candidates(all_strategies(), signature)
    kept = [c for c, _ in selector.prune(signature, candidates, CPU)]
    for candidate in must:
        if candidate not in kept:
            kept.append(candidate)
    inputs = ConvInputs.random(signature, CPU)
    calls = {c: CandidateCall(c, inputs) for c in kept}
    warmups = {c: warm_up(fn, "cpu", cell_s) for c, fn in calls.items()}
    timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=cell_s)
    return {c: t.median for c, t in timings.items()}


def signatures_of(args: argparse.Namespace) -> list[tuple[str, Signature]]:
    """The suite's signatures (its quick subset with ``--quick``) and every
    ``len(real) / --real``-th held-out real layer."""
    suite = [(w.name, w.signature()) for w in SUITE if w.quick or not args.quick]
    real = real_layers()
    step = max(1, len(real) // args.real) if args.real else len(real) + 1
    sampled = [(f"{r.architecture}/{r.layer}", r.signature) for r in real[::step]][:args.real]
    return suite + sampled


def summary(name: str, picks: dict[Signature, Decision], times: dict[Signature, dict],
            reference: Candidate) -> list[str]:
    regrets, slower, provisional = [], 0, 0
    for signature, decision in picks.items():
        judged = times[signature]
        fastest = min(judged.values())
        picked = judged[decision.candidate]
        regrets.append(picked / fastest)
        slower += reference in judged and picked > NOISE * judged[reference]
        provisional += decision.provisional is not None
    return [name, f"{geometric_mean(regrets):.3f}", f"{max(regrets):.2f}",
            f"{sum(r <= 1.05 for r in regrets) / len(regrets):.0%}", str(slower),
            str(provisional),
            f"{statistics.median(d.seconds for d in picks.values()):.2f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=int, default=30, help="real layers sampled (0: none)")
    parser.add_argument("--quick", action="store_true", help="the suite's quick subset")
    parser.add_argument("--budget", type=float, default=2.0, help="tuning budget_s")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2,
                        help="busy processes beside the busy tuning")
    parser.add_argument("--repeats", type=int, default=9, help="judge: most samples")
    parser.add_argument("--cell-budget", type=float, default=0.3,
                        help="judge: seconds per candidate per signature")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    named = signatures_of(args)
    suite_count = sum(1 for w in SUITE if w.quick or not args.quick)
    signatures = [s for _, s in named]
    header = machine_header("cpu")
    folder = Path(tempfile.mkdtemp(prefix="bench_busy_"))
    load = MachineLoad()
    progress(f"busy tuning of {len(signatures)} signatures beside {args.hogs} hogs")
    with hogs(args.hogs):
        busy_excess = load.excess()
        busy = tune_all(signatures, f"sqlite:///{folder / 'busy.sqlite3'}", args.budget,
                        progress)
    progress("quiet tuning")
    quiet_excess = load.excess()
    quiet = tune_all(signatures, f"sqlite:///{folder / 'quiet.sqlite3'}", args.budget,
                     progress)
    progress("judging on the quiet machine")
    reference = Candidate(reference_strategy(), ())
    times = {}
    with autoconv.settings.override(persist=False, mode="predict"):
        for name, signature in named:
            times[signature] = judge(signature, [reference, busy[signature].candidate,
                                                 quiet[signature].candidate],
                                     args.repeats, args.cell_budget)
            progress(f"  {name}: fastest {min(times[signature].values()) * 1e3:.3g} ms")

    rows = [summary(f"busy ({args.hogs} hogs, excess {busy_excess})", busy, times, reference),
            summary(f"quiet (excess {quiet_excess})", quiet, times, reference)]
    def regret(picks: dict[Signature, Decision], signature: Signature) -> float:
        return times[signature][picks[signature].candidate] / min(times[signature].values())

    # the 10 worst busy picks, then the quiet picks worse than any of those
    worst = sorted(named, key=lambda ns: -regret(busy, ns[1]))[:10]
    floor = min(regret(busy, s) for _, s in worst)
    worst += [ns for ns in sorted(named, key=lambda ns: -regret(quiet, ns[1]))
              if ns not in worst and regret(quiet, ns[1]) > floor][:5]
    worst_rows = []
    for name, signature in worst:
        judged = times[signature]
        fastest = min(judged.values())

        def cell(decision: Decision, judged=judged, fastest=fastest) -> str:
            return (f"{decision.candidate.label} {judged[decision.candidate] / fastest:.2f}"
                    f"{' (prov.)' if decision.provisional else ''}")

        direct = judged.get(reference)
        worst_rows.append([name, cell(busy[signature]), cell(quiet[signature]),
                           "-" if direct is None else f"{direct / fastest:.2f}",
                           f"{fastest * 1e3:.3g}"])
    report = "\n".join([
        "# Decisions tuned on a busy machine, judged on a quiet one", "",
        *header.splitlines(),
        (f"- {len(signatures)} signatures ({suite_count} of the suite, the rest real layers), "
         f"tuning budget {args.budget} s, "
         f"judge: {args.repeats} samples / {args.cell_budget} s per candidate"), "",
        markdown_table(["tuned", "geomean regret", "worst", "within 5%",
                        "slower than F.conv1d (>5%)", "provisional", "median tuning s"], rows),
        "", ("Worst busy picks, then quiet picks worse than those (regret against the "
             "fastest candidate, judged quiet):"), "",
        markdown_table(["signature", "busy pick", "quiet pick", "F.conv1d", "fastest ms"],
                       worst_rows),
    ])
    publish(report, args.out)
    if any(math.isnan(v) for t in times.values() for v in t.values()):
        sys.exit("some judged time is NaN")


if __name__ == "__main__":
    main()
