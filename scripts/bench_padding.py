"""Padding first: ``F.conv1d`` with its own padding vs on an input padded beforehand.

oneDNN's JIT convolution kernels accept only a few samples of padding; beyond that a call
falls back to an im2col + GEMM path. ``direct`` with ``pre_pad=1``
(:mod:`autoconv.strategies.direct_conv`) pads with ``F.pad`` first and calls ``F.conv1d``
with no padding. This times both, interleaved, on layers with small and large padding, and
prints a markdown table (the ratio > 1 where padding first is faster).

Usage: python scripts/bench_padding.py [--repeats N] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    time_interleaved,
    warm_up,
)

from autoconv.strategies.direct_conv import padded_first

#: (label, batch, in channels, out channels, length, kernel, padding, groups)
LAYERS = [
    ("depthwise, K=255, 'same'", 1, 512, 512, 8192, 255, 127, 512),
    ("depthwise, K=31, 'same' (Conformer-like)", 4, 256, 256, 4096, 31, 15, 256),
    ("depthwise, K=7, 'same' (padding 3)", 4, 256, 256, 4096, 7, 3, 256),
    ("single channel, K=63, full", 1, 1, 1, 65536, 63, 62, 1),
    ("filter bank 1 -> 32, K=101, 'same'", 8, 1, 32, 16000, 101, 50, 1),
    ("dense 64 -> 64, K=7, full (padding 6)", 4, 64, 64, 4096, 7, 6, 1),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="most samples per call")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    rows = []
    for label, batch, cin, cout, length, kernel, padding, groups in LAYERS:
        x = torch.randn(batch, cin, length)
        w = torch.randn(cout, cin // groups, kernel)
        calls = {"F.conv1d": lambda: F.conv1d(x, w, padding=padding, groups=groups),
                 "padded first": lambda: padded_first(x, w, padding=padding, groups=groups)}
        warmups = {name: warm_up(fn, "cpu", 1.5) for name, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=args.repeats,
                                   budget_s=1.5)
        plain, first = timings["F.conv1d"].median, timings["padded first"].median
        rows.append([label, f"{batch}x{cin}x{length}", format_seconds(plain),
                     format_seconds(first), f"{plain / first:.2f}x"])
    report = "\n".join([
        machine_header("cpu"), "", "# Padding first", "",
        markdown_table(["layer", "input", "F.conv1d", "padded first", "F.conv1d / padded first"],
                       rows)])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
