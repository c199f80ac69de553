"""Real architectures through autoconv: converted layers, parity, first-call tuning cost and
forward time before and after; and what the global switch costs a model without conv1d.

For each model of ``autoconv.catalogue.zoo`` (published configurations, random weights) at its
example input (about a second of audio): the model is patched (the Mamba mixer, which calls
``F.conv1d`` itself, runs under ``autoconv.enable()``), its first forward pass tunes every
signature into a fresh database (or ``--db``), and then plain and autoconv forward passes
(inference, ``torch.no_grad``) are timed interleaved. Last, a transformer encoder layer (no
conv1d at all) is timed with the switch off and on.

Usage: python scripts/bench_models.py [--repeats N] [--only NAME ...] [--db URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    time_interleaved,
    warm_up,
)
from torch import nn

import autoconv
from autoconv.catalogue import zoo
from autoconv.runtime import dispatcher

#: Models that reach their convolutions only through F.conv1d: timed under the switch.
SWITCHED = {"mamba_130m_mixer"}


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def bench_model(name: str, repeats: int) -> list[str]:
    torch.manual_seed(0)
    reference = zoo.FACTORIES[name]().eval()
    torch.manual_seed(0)
    model = autoconv.patch(zoo.FACTORIES[name]().eval())
    converted = sum(isinstance(m, autoconv.Conv1d) for m in model.modules())
    x = torch.randn(zoo.EXAMPLE_INPUTS[name])

    def ours() -> torch.Tensor:
        with autoconv.enabled(name in SWITCHED):
            return model(x)

    with torch.no_grad():
        started = time.perf_counter()
        first = ours()  # tunes every signature the model makes
        tuning_s = time.perf_counter() - started
        error = _relative_error(first, reference(x))
        calls = {"plain": lambda: reference(x), "autoconv": ours}
        warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=5.0)
    plain, tuned = timings["plain"].median, timings["autoconv"].median
    chosen = sorted({c.strategy for c in dispatcher.selector.remembered().values()})
    return [name, str(converted), f"{error:.1e}", f"{tuning_s:.1f} s", format_seconds(plain),
            format_seconds(tuned), f"{plain / tuned:.2f}x", ", ".join(chosen)]


def bench_switch(repeats: int) -> list[str]:
    """A transformer encoder layer (no conv1d): forward with the switch off and on."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True).eval()
    x = torch.randn(4, 256, 512)

    def on() -> torch.Tensor:
        with autoconv.enabled():
            return layer(x)

    with torch.no_grad():
        calls = {"off": lambda: layer(x), "on": on}
        warmups = {key: warm_up(fn, "cpu", 5.0) for key, fn in calls.items()}
        timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats, budget_s=5.0)
    off, enabled = timings["off"].median, timings["on"].median
    return ["transformer encoder layer 4x256x512", format_seconds(off), format_seconds(enabled),
            f"{enabled / off:.3f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="most samples per call")
    parser.add_argument("--only", nargs="+", choices=list(zoo.FACTORIES), metavar="NAME")
    parser.add_argument("--db", help="tuning database (default: a fresh one)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    db = args.db or f"sqlite:///{tempfile.mkdtemp()}/tuning.sqlite3"
    rows = []
    with autoconv.settings.override(db_url=db, mode="tune"):
        for name in args.only or zoo.FACTORIES:
            rows.append(bench_model(name, args.repeats))
            dispatcher.reset()
        switch = bench_switch(args.repeats)
    report = "\n".join([
        machine_header("cpu"), f"- load average before: {load:.2f}", "",
        "# Real architectures through autoconv (inference, one run)", "",
        markdown_table(["model", "conv1d converted", "max error / max |output|",
                        "first call (tuning)", "plain", "autoconv", "speed-up",
                        "strategies run"], rows), "",
        "# The global switch on a model without conv1d", "",
        markdown_table(["workload", "switch off", "switch on", "on / off"], [switch])])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
