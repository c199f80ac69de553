"""A new process's first calls of a signature whose stored decision must first compile.

One process tunes Conv-TasNet's dilated depthwise layer (4x512x4000, K=3, dilation 32) with
a budget that lets the fused kernel compile, into a fresh database. Then fresh processes,
alternately with the dispatcher's background preparation on and off, call
``autoconv.conv1d`` in a tight loop (mode ``predict``: the stored decision, never a
measurement) until the kernel answers, and report the first call, the slowest, the median
of the calls between the first and the kernel's (answered by ``F.conv1d`` while the kernel
compiles in the background; none on the call's thread) and the seconds until a call ran the kernel (the first call begun once the kernel was built
and no preparation was under way, so that the dispatcher runs it). Inductor's on-disk
cache is whatever ``TORCHINDUCTOR_CACHE_DIR`` says (warm after the tuning process).

Usage: python scripts/bench_first_calls.py [--runs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import format_seconds, machine_header, markdown_table, publish

SHAPE, WEIGHT = (4, 512, 4000), (512, 1, 3)
ARGS = {"padding": 32, "dilation": 32, "groups": 512}
#: The longest a process loops before it reports (a compile starved by the loop included).
LIMIT_S = 60.0


def tune(db_url: str) -> None:
    import torch

    import autoconv

    x, w = torch.randn(SHAPE), torch.randn(WEIGHT)
    with autoconv.settings.override(db_url=db_url, budget_s=120, mode="tune"), torch.no_grad():
        print(autoconv.explain(x, w, None, 1, ARGS["padding"], ARGS["dilation"],
                               ARGS["groups"]).format(), file=sys.stderr)


def first_calls(db_url: str, background: bool) -> None:
    """Loop the call; print (first, slowest, interim median or nan, until the kernel) in s."""
    import torch

    import autoconv
    from autoconv.runtime.dispatch import dispatcher
    from autoconv.signature import call_signature
    from autoconv.strategies.fused_shift_add_conv import KERNELS

    dispatcher.prepare_in_background = background
    x, w = torch.randn(SHAPE), torch.randn(WEIGHT)
    with autoconv.settings.override(db_url=db_url, mode="predict"), torch.no_grad():
        signature = call_signature(x, w, None, 1, ARGS["padding"], ARGS["dilation"],
                                   ARGS["groups"])
        start, times = time.perf_counter(), []
        while time.perf_counter() - start < LIMIT_S:
            kernel_runs = KERNELS.is_built(signature) and not dispatcher.preparations.under_way()
            began = time.perf_counter()
            autoconv.conv1d(x, w, None, **ARGS)
            times.append(time.perf_counter() - began)
            if kernel_runs:
                break
        interim = statistics.median(times[1:-1]) if len(times) > 2 else math.nan
        print(times[0], max(times), interim, time.perf_counter() - start)


def run(db_url: str, background: bool) -> list[float]:
    code = (f"import bench_first_calls as b; b.first_calls({db_url!r}, {background})")
    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": path})
    return [float(v) for v in out.stdout.split()[-4:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="processes each way")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    db_url = f"sqlite:///{tempfile.mkdtemp()}/tuning.sqlite3"
    tune(db_url)
    rows = []
    for _ in range(args.runs):
        for background in (False, True):
            first, slowest, interim, until = run(db_url, background)
            rows.append(["background" if background else "on the call's thread",
                         format_seconds(first), format_seconds(slowest),
                         format_seconds(interim), format_seconds(until)])
    publish("\n".join([
        machine_header("cpu"), "", "# First calls of a stored decision that compiles", "",
        markdown_table(["preparation", "first call", "slowest call",
                        "interim calls (median)", "until the kernel answers"], rows)]),
        args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
