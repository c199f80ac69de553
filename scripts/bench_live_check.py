"""A wrong stored decision, corrected on live calls (issue 26).

The tuning database is given a decision a disturbed measurement could have left: for each
workload below, a slow candidate stored as 2x faster than ``F.conv1d``. Then real calls run in
mode ``predict`` (nothing is measured up front) with the default ``recheck_every``, and the
script reports after how many calls, and how many seconds of calls, the live re-check
corrected the decision, what it corrected it to, and the time per call before and after
(medians of interleaved rounds, ``F.conv1d`` alongside).

With ``--training`` the same, for calls that record gradients: every call is a training
step of the layer (forward, then backward of the output's sum), the wrong decision is
stored for the training signature at half ``F.conv1d``'s step, and the times are steps.

Usage: python scripts/bench_live_check.py [--training] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import machine_header, markdown_table, publish

import autoconv
import tuning_db
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from autoconv.storage.store import device_record, signature_record
from autoconv.tuning.timing import settle_allocator

#: (name, input shape, weight shape, conv kwargs, the wrong winner and its parameters)
WORKLOADS = [
    ("wav2vec2 first layer 4x1x16000, K=10 s5", (4, 1, 16000), (512, 1, 10), {"stride": 5},
     "overlap_add", {"block_size": 32}),
    ("ECG 32x12x5000 -> 64, K=15", (32, 12, 5000), (64, 12, 15), {}, "fft", {}),
    ("TCN 4x256x8000, K=3 d64 depthwise", (4, 256, 8000), (256, 1, 3),
     {"dilation": 64, "groups": 256}, "fft", {}),
]


def median_call_s(fn, repeats: int = 15) -> float:
    """Median seconds of ``repeats`` calls, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def store_wrong(url: str, signature: Signature, strategy: str, params: dict,
                direct_s: float) -> None:
    """The wrong decision: ``strategy`` stored at half F.conv1d's time, both 9 samples."""
    with tuning_db.connect(url) as db:
        db.record_many(device_record(torch.device("cpu")), [
            tuning_db.MeasurementRecord(signature=signature_record(signature), strategy=name,
                                        params=p, median_s=s, samples=9,
                                        autoconv_version="bench")
            for name, p, s in ((strategy, params, direct_s / 2), ("direct", {}, direct_s))])


def stepped(conv, training: bool):
    """A call of ``conv`` as the benchmark makes it: the forward alone, or with
    ``training`` a training step (forward, then backward of the output's sum)."""
    if not training:
        return conv

    def step() -> None:
        conv().sum().backward()
    return step


def run_workload(name: str, xs: tuple, ws: tuple, kwargs: dict, strategy: str,
                 params: dict, training: bool = False) -> list[str]:
    """One workload's row: the wrong decision stored, then real calls until it is corrected."""
    x = torch.randn(*xs, requires_grad=training)
    w = torch.randn(*ws, requires_grad=training)
    url = f"sqlite:///{tempfile.mkdtemp()}/live.sqlite3"
    mode = torch.enable_grad() if training else torch.no_grad()
    with mode, autoconv.settings.override(db_url=url, mode="predict"):
        dispatcher.reset()
        direct_s = median_call_s(stepped(lambda: F.conv1d(x, w, **kwargs), training))
        signature = Signature.of(x, w, None, kwargs.get("stride", 1), 0,
                                 kwargs.get("dilation", 1), kwargs.get("groups", 1))
        store_wrong(url, dispatcher.selector.key_signature(signature), strategy, params,
                    direct_s)
        dispatcher.reset()
        before = autoconv.select(x, w, **kwargs)
        call_args = (None, kwargs.get("stride", 1), 0, kwargs.get("dilation", 1),
                     kwargs.get("groups", 1))
        wrong_s = median_call_s(stepped(lambda: before.run(x, w, *call_args), training),
                                repeats=5)
        call = stepped(lambda: autoconv.conv1d(x, w, **kwargs), training)
        calls, start = 0, time.perf_counter()
        while autoconv.select(x, w, **kwargs).origin != "corrected" and calls < 5000:
            call()
            calls += 1
        spent = time.perf_counter() - start
        after = autoconv.select(x, w, **kwargs)
        after_s = median_call_s(call)
        direct_again = median_call_s(stepped(lambda: F.conv1d(x, w, **kwargs), training))
    dispatcher.reset()
    return [name, f"{before.strategy} {before.params_dict}", f"{wrong_s * 1e3:.3g}",
            f"{direct_s * 1e3:.3g}", str(calls), f"{spent:.2f}",
            f"{after.strategy} {after.params_dict} ({after.origin})", f"{after_s * 1e3:.3g}",
            f"{direct_again * 1e3:.3g}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--training", action="store_true",
                        help="calls that record gradients, timed as training steps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settle_allocator()  # as a long-running program's allocator is (and tuning makes it)
    rows = [run_workload(*workload, training=args.training) for workload in WORKLOADS]
    what = "training steps (forward and backward)" if args.training else "calls (forward)"
    report = "\n".join([
        "# A wrong stored decision, corrected on live calls", "",
        *machine_header("cpu").splitlines(),
        (f"- recheck_every {autoconv.settings.recheck_every} (the default), mode predict; "
         f"every time below is of {what}"), "",
        markdown_table(["workload", "stored (wrong)", "its ms", "F.conv1d ms",
                        "calls to correct", "seconds of calls", "corrected to", "ms after",
                        "F.conv1d ms after"], rows)])
    publish(report, args.out)


if __name__ == "__main__":
    main()
