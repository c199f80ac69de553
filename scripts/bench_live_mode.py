"""Mode ``live`` on real models: no stall on the first pass, measured answers soon after.

For the zoo's vocoder (HiFi-GAN V1) and speech encoder (wav2vec2 base), patched, inference
(``torch.no_grad``), each on fresh databases, in one process:

1. **plain**: the unpatched model's forward (interleaved with the others in step 4);
2. **live**: mode ``live``, a fresh database: the first forward pass (answered at once), then
   ``--passes`` - 1 more, each timed (exploration rides on them);
3. **tune**: mode ``tune``, another fresh database: the first forward pass (which measures
   every signature before it returns), timed;
4. **judge**: the steady forward pass on each database (mode ``predict``: what each database
   has decided, nothing measured), interleaved with the plain model's.

Targets (issue 28): the live first pass within 1.25x of the plain forward; after the passes,
live's steady forward within 5% of tune's; exploration's extra time over the passes under
10% of their plain time (each live pass is timed beside a plain one, as the machine drifts:
the mean of live over plain for passes 2 on, less the steady live over plain ratio).

Usage: python scripts/bench_live_mode.py [--passes N] [--repeats N] [--only NAME ...] [--out F]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from benchlib import format_seconds, machine_header, markdown_table, publish, warm_up

import autoconv
from autoconv.catalogue import zoo
from autoconv.runtime import dispatcher

MODELS = ("hifigan_v1", "wav2vec2_base")


def fresh_db() -> str:
    return f"sqlite:///{tempfile.mkdtemp()}/tuning.sqlite3"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def on_database(db_url: str | None) -> contextlib.AbstractContextManager:
    """What ``db_url`` has decided, nothing measured (mode predict); None: no change."""
    if db_url is None:
        return contextlib.nullcontext()
    return autoconv.settings.override(db_url=db_url, mode="predict", recheck_every=0)


def bench(name: str, passes: int, repeats: int) -> dict[str, object]:
    torch.manual_seed(0)
    plain = zoo.FACTORIES[name]().eval()
    torch.manual_seed(0)
    model = autoconv.patch(zoo.FACTORIES[name]().eval())
    x = torch.randn(zoo.EXAMPLE_INPUTS[name])
    live_db, tune_db = fresh_db(), fresh_db()
    with torch.no_grad():
        warm_up(lambda: plain(x), "cpu", 5.0)
        plain_first = statistics.median(timed(lambda: plain(x)) for _ in range(3))
        with autoconv.settings.override(db_url=live_db, mode="live"):
            dispatcher.reset()
            live, beside = [], []
            for _ in range(passes):  # each live pass beside a plain one: the machine drifts
                live.append(timed(lambda: model(x)))
                beside.append(timed(lambda: plain(x)))
            settled = sum(c.origin in ("measured", "database")
                          for c in dispatcher.selector.remembered().values())
            signatures = len(dispatcher.selector.remembered())
        with autoconv.settings.override(db_url=tune_db, mode="tune"):
            dispatcher.reset()
            tune_first = timed(lambda: model(x))
        dispatcher.reset()
        runs = {"plain": (plain, None), "live": (model, live_db), "tune": (model, tune_db)}
        times: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(repeats):
            for key, (net, db_url) in runs.items():
                with on_database(db_url):
                    net(x)  # after a database switch: the decisions looked up again
                    times[key].append(timed(lambda: net(x)))  # noqa: B023
    medians = {key: statistics.median(values) for key, values in times.items()}
    live_steady = medians["live"]
    # the passes after the first over the plain pass beside each, less what a steady live
    # pass costs over a plain one: exploration's share
    ratios = [t / p for t, p in zip(live[1:], beside[1:])]
    extra = (statistics.mean(ratios) - live_steady / medians["plain"]) * (passes - 1)
    return {"name": name, "signatures": signatures, "settled": settled,
            "plain_first": plain_first, "live_first": live[0], "tune_first": tune_first,
            "plain": medians["plain"], "live": live_steady, "tune": medians["tune"],
            "extra": extra, "passes": passes,
            "live_passes": [t / p for t, p in zip(live, beside)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=50, help="live forward passes")
    parser.add_argument("--repeats", type=int, default=9, help="judge: samples per model")
    parser.add_argument("--only", nargs="+", choices=MODELS, metavar="NAME")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    load = os.getloadavg()
    results = [bench(name, args.passes, args.repeats) for name in args.only or MODELS]
    rows = []
    for r in results:
        plain = r["plain"]
        rows.append([
            r["name"], f"{r['settled']}/{r['signatures']}", format_seconds(plain),
            f"{format_seconds(r['live_first'])} ({r['live_first'] / plain:.2f}x)",
            f"{format_seconds(r['tune_first'])} ({r['tune_first'] / plain:.1f}x)",
            format_seconds(r["live"]), format_seconds(r["tune"]),
            f"{r['live'] / r['tune']:.3f}",
            f"{r['extra'] / (r['passes'] - 1):+.1%}"])
    trace = [[r["name"], " ".join(f"{ratio:.2f}" for ratio in r["live_passes"])]
             for r in results]
    report = "\n".join([
        machine_header("cpu"),
        f"- load average (1, 5, 15 min) before: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
        (f"- {args.passes} live passes, judge: {args.repeats} interleaved samples, "
         "inference (no_grad), fresh databases"), "",
        "# Mode live against mode tune (one process)", "",
        markdown_table(["model", "decided on live calls", "plain forward",
                        "live: first pass", "tune: first pass", "live: steady after",
                        "tune: steady", "live / tune", "exploration extra / plain"], rows),
        "", ("Targets: live first pass <= 1.25x plain; live / tune steady <= 1.05; "
             "exploration extra <= 10% of the plain time of the passes it rode on."), "",
        "# Each live pass over the plain pass timed beside it", "",
        markdown_table(["model", "pass 1, 2, ..."], trace)])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
