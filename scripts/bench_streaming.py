"""Streaming: per-chunk time and real-time factor of ``autoconv.Conv1dStream``, tuned, against
stateful direct ``F.conv1d`` and a full FFT of history plus chunk, on real-time workloads.

Workloads: 2-channel reverbs (depthwise, ``groups=2``: one impulse response per channel) of
48,000 and 96,000 taps (1 and 2 s at 48 kHz) at chunks of 64, 256 and 1,024 samples; stereo
halls set up the same way, of 144,000 and 480,000 taps (3 and 10 s at 48 kHz) at chunks of
32, 64 and 256 samples, where uniform partitioning (its best partition) and non-uniform
partitioning (its best schedule) are also reported apart, against the tuned choice; a
streaming speech recogniser's depthwise causal convolution (256 channels, K=31, conformer
style) at chunks of 40 frames; a causal vocoder layer (512 -> 512 channels, K=7) at chunks of
32 frames. Each stream is tuned first (``autoconv`` in mode ``tune`` on a private SQLite
database, default budget), then timed, in one process, interleaved with:

- ``stateful direct``: the stream forced onto ``F.conv1d`` on history plus chunk;
- ``full FFT``: the last ``dilation * (K - 1)`` samples plus the chunk through autoconv's
  ``fft`` strategy each chunk (the weight's spectrum cached);
- every other candidate of the stream's signature (each partition length, and stateful
  direct time-major): "best" is the fastest of everything timed besides the tuned stream
  itself.

Every sample streams whole periods of a candidate (a partition of ``k`` chunks does its
products spread over ``k`` chunks) and is charged per chunk; figures are medians. The
real-time factor is the chunk's duration over its time: 48,000 samples/s for the reverbs,
100 frames/s (a 10 ms hop) for the speech layer, 187.5 frames/s (a 256-sample hop at 48 kHz)
for the vocoder layer.

Two more sections (``scripts/stream_swap_latency.py``): a swap benchmark (the chunk time
during and after a crossfade to a new weight, against a plain chunk: a 10 s stereo response
at chunks of 64 and 256) and a latency row (the tuned stream for latency 0, 256 and 1,024
samples: a 10 s stereo response at chunk 64). ``--quick`` runs each on a 1 s response at
chunk 256.

Usage: python scripts/bench_streaming.py [--quick] [--only TEXT ...] [--threads N]
       [--repeats N] [--cell-budget S] [--budget S] [--parts chunks swap latency]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import stream_swap_latency
import torch
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    time_interleaved,
    warm_up,
)

import autoconv
from autoconv.choice import StreamChoice
from autoconv.strategies import SpectrumCache, fft
from autoconv.strategies.streaming import all_stream_strategies, get
from autoconv.tuning.candidates import enumerate_candidates


@dataclass(frozen=True)
class Workload:
    """One stream: weight ``(out, in / groups, K)``, chunk, and the rate for the RTF."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    groups: int
    chunk: int
    rate: float
    short_kernel: bool
    hall: bool = False


def workloads(quick: bool, only: list[str] | None = None) -> list[Workload]:
    reverbs = [Workload(f"reverb {taps // 1000}k taps, chunk {chunk}", 2, 2, taps, 2, chunk,
                        48_000.0, False)
               for taps in (48_000, 96_000) for chunk in (64, 256, 1024)]
    halls = [Workload(f"hall {seconds} s stereo ({taps // 1000}k taps), chunk {chunk}", 2, 2,
                      taps, 2, chunk, 48_000.0, False, hall=True)
             for seconds, taps in ((3, 144_000), (10, 480_000)) for chunk in (32, 64, 256)]
    neural = [Workload("ASR depthwise 256ch K=31, chunk 40", 256, 256, 31, 256, 40, 100.0,
                       True),
              Workload("vocoder 512->512 K=7, chunk 32", 512, 512, 7, 1, 32, 187.5, True)]
    if only:
        return [w for w in reverbs + halls + neural if any(part in w.name for part in only)]
    if quick:
        return [reverbs[1], halls[2], *neural]
    return reverbs + halls + neural


class FullFFT:
    """History plus chunk through autoconv's ``fft`` strategy, every chunk."""

    def __init__(self, weight: torch.Tensor, groups: int, chunk: int) -> None:
        self.weight, self.groups = weight, groups
        self.history = weight.shape[-1] - 1
        self.buffer = weight.new_zeros(1, weight.shape[1] * groups, self.history + chunk)
        self.cache = SpectrumCache(max_entries=1)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        n, history, buffer = x.shape[-1], self.history, self.buffer
        buffer[..., history:].copy_(x)
        y = fft(buffer, self.weight, None, 1, 0, 1, self.groups, spectrum_cache=self.cache)
        buffer[..., :history].copy_(buffer[..., n:n + history].clone())
        return y


def periodic(step, chunk: torch.Tensor, period: int):
    """A callable streaming ``period`` chunks (one sample covers whole periods)."""
    def call():
        for _ in range(period):
            step(chunk)
    return call


def bench(workload: Workload, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    w = torch.randn(workload.out_channels, workload.in_channels // workload.groups,
                    workload.kernel) / workload.kernel ** 0.5
    chunk = torch.randn(1, workload.in_channels, workload.chunk)
    out = torch.empty(1, workload.out_channels, workload.chunk)
    tuned = autoconv.Conv1dStream(w, groups=workload.groups, chunk_size=workload.chunk)
    start = time.perf_counter()
    choice = tuned.prepare(1)
    tuning_s = time.perf_counter() - start
    signature = tuned.signature(1)
    calls, periods, labels, families = {}, {}, {}, {}
    for candidate in enumerate_candidates(all_stream_strategies(), signature):
        forced = autoconv.Conv1dStream(w, groups=workload.groups, chunk_size=workload.chunk,
                                       choice=StreamChoice.make(candidate.strategy,
                                                                dict(candidate.params),
                                                                source="fallback"))
        period = candidate.strategy.period(signature, dict(candidate.params))
        plain = candidate.strategy.is_plain_conv1d(dict(candidate.params))
        label = "stateful direct" if plain else candidate.label
        labels[(candidate.name, candidate.params)] = label
        families.setdefault(candidate.strategy, []).append(label)
        calls[label] = periodic(lambda x, s=forced: s.stream(x, out=out), chunk, period)
        periods[label] = period
    full = FullFFT(w, workload.groups, workload.chunk)
    calls["full FFT"], periods["full FFT"] = periodic(full.step, chunk, 1), 1
    own = choice.strategy_impl.period(signature, choice.params_dict)
    calls["tuned"] = periodic(lambda x: tuned.stream(x, out=out), chunk, own)
    periods["tuned"] = own
    with torch.no_grad():
        warmups = {label: warm_up(call, "cpu", args.cell_budget) for label, call in
                   calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=args.repeats,
                                   budget_s=args.cell_budget)
    per_chunk = {label: timing.median / periods[label] for label, timing in timings.items()}
    others = {label: t for label, t in per_chunk.items() if label != "tuned"}
    best = min(others, key=others.__getitem__)
    # the best of each partitioned strategy (None when it offered no candidate)
    family_best = {name: min(families.get(get(name), []), key=per_chunk.__getitem__,
                             default=None) for name in ("partitioned", "nonuniform")}
    return {"workload": workload, "choice": choice, "tuning_s": tuning_s,
            "per_chunk": per_chunk, "best": best, "uniform": family_best["partitioned"],
            "nonuniform": family_best["nonuniform"],
            "picked": labels[(choice.strategy, choice.params)]}


def describe(choice: StreamChoice) -> str:
    params = ", ".join(f"{k}={v}" for k, v in choice.params)
    return f"{choice.strategy}({params})" if params else choice.strategy


def describe_load(loads: dict[str, tuple[float, float, float]]) -> str:
    """The load averages (1, 5 and 15 minutes) at the start and the end of the run."""
    parts = [f"{when} {', '.join(f'{value:.2f}' for value in load)}"
             for when, load in loads.items()]
    return (f"- Load average (1, 5, 15 min): {'; '.join(parts)} ({os.cpu_count()} logical "
            "cores; a load near or above the cores means the figures are disturbed)")


def hall_table(results: list[dict]) -> list[str]:
    """Long responses: uniform partitioning (its best partition) and non-uniform
    partitioning (its best schedule) apart, against the tuned choice."""
    halls = [r for r in results if r["workload"].hall]
    if not halls:
        return []
    rows = []
    for r in halls:
        w, t = r["workload"], r["per_chunk"]
        duration = w.chunk / w.rate
        uniform, nonuniform = r["uniform"], r["nonuniform"]
        cells = [w.name, describe(r["choice"]), format_seconds(t["tuned"]),
                 f"{duration / t['tuned']:.1f}"]
        for label in (uniform, nonuniform):
            cells += ([f"{label}: {format_seconds(t[label])}", f"{duration / t[label]:.1f}"]
                      if label else ["-", "-"])
        cells += [f"{t[uniform] / t[nonuniform]:.2f}x" if uniform and nonuniform else "-",
                  f"{t[uniform] / t['tuned']:.2f}x" if uniform else "-"]
        rows.append(cells)
    lines = ["", "## Long responses: uniform and non-uniform partitioning", "",
             ("Stereo halls (depthwise, groups=2) at 48 kHz. \"uniform\" is the fastest "
              "partition of uniformly partitioned overlap-save, \"non-uniform\" the fastest "
              "schedule of non-uniform partitioning (each timed as a candidate, interleaved "
              "with the rest); RTF = chunk duration / chunk time."), "",
             markdown_table(["workload", "tuned choice", "tuned / chunk", "RTF",
                             "best uniform", "RTF", "best non-uniform", "RTF",
                             "uniform / non-uniform", "uniform / tuned"], rows), ""]
    target = [r for r in halls if r["workload"].kernel == 480_000 and r["workload"].chunk == 64
              and r["uniform"]]
    for r in target:
        gain = r["per_chunk"][r["uniform"]] / r["per_chunk"]["tuned"]
        lines.append(f"- 10 s stereo at chunk 64: the tuned stream is {gain:.2f}x faster per "
                     f"chunk than the best uniform partition (target 2x: "
                     f"{'met' if gain >= 2 else 'NOT met'}).")
    return lines


#: (taps, chunk) of the swap benchmark, full and quick.
SWAPS = {False: [(480_000, 64), (480_000, 256)], True: [(48_000, 256)]}
#: (taps, chunk, latencies) of the latency rows, full and quick.
LATENCIES = {False: (480_000, 64, [0, 256, 1024]), True: (48_000, 256, [0, 256, 1024])}


def report(results: list[dict], args: argparse.Namespace,
           loads: dict[str, tuple[float, float, float]], swaps: list[dict],
           latencies: list[dict]) -> str:
    lines = [machine_header("cpu"), describe_load(loads), "", "# Streaming benchmark"]
    if results:
        lines += chunk_section(results, args)
    if swaps:
        lines += stream_swap_latency.swap_section(swaps)
    if latencies:
        lines += stream_swap_latency.latency_section(latencies)
    return "\n".join(lines)


def chunk_section(results: list[dict], args: argparse.Namespace) -> list[str]:
    """The chunk times of every workload, and the long responses' table."""
    rows = []
    for r in results:
        w, t = r["workload"], r["per_chunk"]
        duration = w.chunk / w.rate
        rows.append([
            w.name, describe(r["choice"]), format_seconds(r["tuning_s"]),
            format_seconds(t["tuned"]), f"{duration / t['tuned']:.1f}",
            format_seconds(t["stateful direct"]), f"{t['stateful direct'] / t['tuned']:.1f}x",
            format_seconds(t["full FFT"]), f"{t['full FFT'] / t['tuned']:.1f}x",
            f"{r['best']}: {format_seconds(t[r['best']])}",
            f"{t[r['picked']] / t[r['best']]:.2f}", f"{t['tuned'] / t[r['best']]:.2f}"])
    lines = [
        "",
        (f"Per-chunk medians (interleaved, up to {args.repeats} samples of whole periods per "
        f"candidate, {args.cell_budget:g} s each); RTF = chunk duration / chunk time "
        "(48 kHz for the reverbs, 100 frames/s for the ASR layer, 187.5 frames/s for the "
        "vocoder layer). Reverbs are depthwise (groups=2, one impulse response per channel). "
        "\"tuning\" is the tuned stream's first decision (mode tune, default budget, an empty "
        "database). \"best other\" is the fastest of everything else timed (every candidate "
        "partition, stateful direct, full FFT); \"pick / best\" is the time of the candidate "
        "the tuner picked (timed as one of the others) over it, the regret of the decision; "
        "\"tuned / best\" is the tuned stream's own time over it (the same work timed twice: "
        "its difference from \"pick / best\" is the noise of the measurement)."), "",
        markdown_table(["workload", "tuned choice", "tuning", "tuned / chunk", "RTF",
                        "stateful direct", "direct / tuned", "full FFT", "FFT / tuned",
                        "best other", "pick / best", "tuned / best"], rows), ""]
    reverb = [r for r in results if not r["workload"].short_kernel
              and not r["workload"].hall and r["workload"].chunk == 256]
    short = [r for r in results if r["workload"].short_kernel]
    if reverb:
        worst = min(r["per_chunk"]["stateful direct"] / r["per_chunk"]["tuned"] for r in reverb)
        lines.append(f"- Reverbs at chunk 256: tuned >= {worst:.1f}x faster than stateful "
                     f"direct (target 10x: {'met' if worst >= 10 else 'NOT met'}).")
    if short:
        picked = max(r["per_chunk"][r["picked"]] / r["per_chunk"][r["best"]] for r in short)
        worst = max(r["per_chunk"]["tuned"] / r["per_chunk"][r["best"]] for r in short)
        lines.append(f"- Short kernels: the tuner's pick at most {picked:.2f}x the best "
                     f"candidate, the tuned stream at most {worst:.2f}x (target 1.1x: "
                     f"{'met' if max(picked, worst) <= 1.1 else 'NOT met'}).")
    return lines + hall_table(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one reverb (48k taps, chunk 256), one hall (3 s, chunk 256) "
                             "and the two neural layers")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="only the workloads whose name contains one of these")
    parser.add_argument("--repeats", type=int, default=15, help="most samples per candidate")
    parser.add_argument("--cell-budget", type=float, default=1.0,
                        help="timing budget per candidate per workload, seconds")
    parser.add_argument("--budget", type=float, default=None,
                        help="tuning budget per stream, seconds (default: autoconv's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's; on a machine shared with other "
                             "jobs, 1 keeps small calls from waiting for a busy core)")
    parser.add_argument("--parts", nargs="+", choices=("chunks", "swap", "latency"),
                        default=["chunks", "swap", "latency"],
                        help="which sections to run (default: all)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    overrides = {} if args.budget is None else {"budget_s": args.budget}
    loads = {"at the start": os.getloadavg()}
    print(describe_load(loads), file=sys.stderr, flush=True)
    results, swaps, latencies = [], [], []
    with tempfile.TemporaryDirectory() as folder, autoconv.settings.override(
            db_url=f"sqlite:///{Path(folder) / 'streams.sqlite3'}", mode="tune", **overrides):
        for workload in workloads(args.quick, args.only) if "chunks" in args.parts else []:
            print(f"... {workload.name}", file=sys.stderr, flush=True)
            results.append(bench(workload, args))
            times = sorted(results[-1]["per_chunk"].items(), key=lambda item: item[1])
            print("    " + ", ".join(f"{label} {format_seconds(t)}" for label, t in times),
                  file=sys.stderr, flush=True)
        for taps, chunk in SWAPS[args.quick] if "swap" in args.parts else []:
            print(f"... swap, {taps // 1000}k taps, chunk {chunk}", file=sys.stderr, flush=True)
            swaps.append(stream_swap_latency.swap(taps, chunk, args.repeats))
        if "latency" in args.parts:
            taps, chunk, allowed = LATENCIES[args.quick]
            print(f"... latency, {taps // 1000}k taps, chunk {chunk}", file=sys.stderr,
                  flush=True)
            latencies = stream_swap_latency.latency(taps, chunk, allowed, args.repeats)
        from autoconv.runtime.dispatch import dispatcher

        dispatcher.reset()  # close the private database before its folder goes
    loads["at the end"] = os.getloadavg()
    publish(report(results, args, loads, swaps, latencies), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
