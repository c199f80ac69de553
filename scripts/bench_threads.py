"""When is one torch thread the better setting? Calls and streams at 1 thread and at all
threads, on a quiet CPU and beside busy processes (issue 26).

For each workload, in one process, interleaved: ``F.conv1d`` (and, for streams, one chunk of
an ``autoconv.Conv1dStream`` with the strategy it is given) at ``torch.set_num_threads(1)``
and at every core, first quiet, then beside ``--hogs`` processes spinning on the CPU. Medians
of ``--repeats`` samples (each at least 5 ms of back-to-back calls); ratio = 1 thread / all
threads (below 1: one thread is faster).

Usage: python scripts/bench_threads.py [--hogs N] [--repeats N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import machine_header, markdown_table, publish, start_hogs

import autoconv
from autoconv.choice import StreamChoice
from autoconv.signature import Signature
from autoconv.strategies.streaming import StreamStrategy, all_stream_strategies

Call = Callable[[], object]


def calls() -> dict[str, Call]:
    """The workloads: small calls, a conformer's depthwise layer, a large call, streams."""
    def conv(b: int, c: int, length: int, o: int, k: int, groups: int = 1) -> Call:
        x, w = torch.randn(b, c, length), torch.randn(o, c // groups, k)
        return lambda: F.conv1d(x, w, padding=k // 2, groups=groups)

    def stream(channels: int, taps: int, chunk: int, strategy: StreamStrategy) -> Call:
        signature = Signature(1, channels, channels, chunk, taps, 1, taps - 1, 0, 1, channels,
                              "float32", "cpu", chunk_size=chunk)
        params = strategy.param_grid(signature)[0]
        choice = StreamChoice.make(strategy, params, source="measured")
        s = autoconv.Conv1dStream(torch.randn(channels, 1, taps), groups=channels,
                                  chunk_size=chunk, choice=choice)
        x = torch.randn(1, channels, chunk)
        return lambda: s(x)

    workloads = {
        "tiny 1x64x256 K=3": conv(1, 64, 256, 64, 3),
        "depthwise 1x256x400 K=31 (conformer, batch 1)": conv(1, 256, 400, 256, 31, 256),
        "depthwise 8x256x400 K=31 (conformer, batch 8)": conv(8, 256, 400, 256, 31, 256),
        "dense 8x512x1000 K=3": conv(8, 512, 1000, 512, 3),
    }
    for strategy in all_stream_strategies():
        name = f"stream 2ch K=4096 chunk 256, {strategy.name}"
        workloads[name] = stream(2, 4096, 256, strategy)
    return workloads


def sample(fn: Call, min_s: float = 0.005) -> float:
    """Seconds per call: back-to-back calls lasting at least ``min_s``."""
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        took = time.perf_counter() - start
        if took >= min_s:
            return took / count


def measure(workloads: dict[str, Call], threads: list[int], repeats: int
            ) -> dict[tuple[str, int], float]:
    """Medians per (workload, thread count), interleaved over rounds."""
    samples: dict[tuple[str, int], list[float]] = {}
    for fn in workloads.values():
        fn()
    for _ in range(repeats):
        for count in threads:
            torch.set_num_threads(count)
            for name, fn in workloads.items():
                fn()
                samples.setdefault((name, count), []).append(sample(fn))
    torch.set_num_threads(max(threads))
    return {key: statistics.median(values) for key, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hogs", type=int, default=1, help="busy processes in the busy run")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    cores = torch.get_num_threads()
    threads = [1, cores]
    workloads = calls()
    header = machine_header("cpu")
    quiet = measure(workloads, threads, args.repeats)
    hogs = start_hogs(args.hogs)
    try:
        time.sleep(0.5)
        busy = measure(workloads, threads, args.repeats)
    finally:
        for proc in hogs:
            proc.kill()
            proc.wait()
    rows = []
    for name in workloads:
        row = [name]
        for run in (quiet, busy):
            one, all_ = run[(name, 1)], run[(name, cores)]
            row += [f"{one * 1e3:.3g}", f"{all_ * 1e3:.3g}", f"{one / all_:.2f}"]
        rows.append(row)
    report = "\n".join([
        "# One torch thread or all of them", "", *header.splitlines(),
        (f"- medians of {args.repeats} samples; busy: beside {args.hogs} spinning "
         f"process(es) on {os.cpu_count()} cores"), "",
        markdown_table(["workload", "quiet 1 thread ms", f"quiet {cores} threads ms",
                        "ratio", "busy 1 thread ms", f"busy {cores} threads ms", "ratio"],
                       rows)])
    publish(report, args.out)


if __name__ == "__main__":
    main()
