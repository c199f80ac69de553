"""The swap and latency sections of ``scripts/bench_streaming.py``.

- **Swap**: a stream's chunk time while it crossfades to a new weight
  (``Conv1dStream.set_weight(..., crossfade=N)``) and after the ramp, against the same
  stream never swapped; and the time of the ``set_weight`` call itself (the new weight's
  spectra, computed at the call). Three streams of the tuned choice, timed interleaved, whole
  periods per sample; the crossfading one is given a ramp longer than everything it streams.
- **Latency**: the tuned stream for latency 0 and for larger latencies (the tuner then also
  tries blocks of up to ``chunk + latency`` samples): the mean chunk time over whole periods
  and the slowest chunk of a period (with a latency, the work of a block is done by the chunk
  that completes it, so chunks take uneven times), interleaved.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch
from benchlib import format_seconds, markdown_table

import autoconv
from autoconv.choice import StreamChoice

RATE = 48_000.0


def _weights(taps: int, count: int) -> list[torch.Tensor]:
    torch.manual_seed(taps)
    return [torch.randn(2, 1, taps) / taps ** 0.5 for _ in range(count)]


def _period(stream: autoconv.Conv1dStream) -> int:
    choice = stream.choice
    return choice.strategy_impl.period(stream.signature(1), choice.params_dict)


def _interleaved(runs: dict[str, Callable[[], list[float]]], rounds: int
                 ) -> dict[str, list[list[float]]]:
    """Each run's chunk times, one list per round, rounds in a new shuffled order each."""
    samples: dict[str, list[list[float]]] = {name: [] for name in runs}
    names = list(runs)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            samples[name].append(runs[name]())
    return samples


def _chunks(stream: autoconv.Conv1dStream, x: torch.Tensor, out: torch.Tensor, count: int
            ) -> Callable[[], list[float]]:
    """Stream ``count`` chunks; the seconds of each."""
    def run() -> list[float]:
        times = []
        with torch.inference_mode():
            for _ in range(count):
                start = time.perf_counter()
                stream.stream(x, out=out)
                times.append(time.perf_counter() - start)
        return times
    return run


def _mean(rounds: list[list[float]]) -> float:
    """The median over rounds of the mean chunk of a round."""
    return statistics.median(sum(r) / len(r) for r in rounds)


def _worst(rounds: list[list[float]]) -> float:
    """The median over rounds of the slowest chunk of a round."""
    return statistics.median(max(r) for r in rounds)


def swap(taps: int, chunk: int, repeats: int) -> dict:
    """The swap benchmark of one response length and chunk size."""
    old, new = _weights(taps, 2)
    tuned = autoconv.Conv1dStream(old, groups=2, chunk_size=chunk)
    choice = tuned.prepare(1)
    given = StreamChoice.make(choice.strategy_impl, choice.params_dict, source="fallback")
    streams = {name: autoconv.Conv1dStream(old, groups=2, chunk_size=chunk, choice=given)
               for name in ("plain", "crossfading", "after")}
    for stream in streams.values():
        stream.prepare(1)
    count = max(_period(streams["plain"]), 4)
    x, out = torch.randn(1, 2, chunk), torch.empty(1, 2, chunk)
    for stream in streams.values():
        _chunks(stream, x, out, 2 * count)()
    streams["after"].set_weight(new, crossfade=chunk * count)
    _chunks(streams["after"], x, out, 2 * count)()
    start = time.perf_counter()
    streams["crossfading"].set_weight(new, crossfade=chunk * count * (repeats + 2))
    swap_s = time.perf_counter() - start
    _chunks(streams["crossfading"], x, out, count)()
    times = _interleaved({name: _chunks(s, x, out, count) for name, s in streams.items()},
                         repeats)
    assert streams["crossfading"].crossfade_remaining > 0, "the ramp ended while timed"
    return {"taps": taps, "chunk": chunk, "choice": choice, "swap_s": swap_s,
            **{name: _mean(rounds) for name, rounds in times.items()},
            "worst crossfading": _worst(times["crossfading"]), "worst plain":
            _worst(times["plain"])}


def latency(taps: int, chunk: int, latencies: list[int], repeats: int) -> list[dict]:
    """The tuned stream of each latency, timed interleaved."""
    weight, = _weights(taps, 1)
    streams = {}
    for samples in latencies:
        stream = autoconv.Conv1dStream(weight, groups=2, chunk_size=chunk, latency=samples)
        start = time.perf_counter()
        stream.prepare(1)
        streams[samples] = (stream, time.perf_counter() - start)
    count = max(_period(s) for s, _ in streams.values())
    x, out = torch.randn(1, 2, chunk), torch.empty(1, 2, chunk)
    for stream, _ in streams.values():
        _chunks(stream, x, out, 2 * count)()
    times = _interleaved({samples: _chunks(s, x, out, count)
                          for samples, (s, _) in streams.items()}, repeats)
    return [{"taps": taps, "chunk": chunk, "latency": samples, "choice": stream.choice,
             "tuning_s": tuning_s, "mean": _mean(times[samples]),
             "worst": _worst(times[samples])}
            for samples, (stream, tuning_s) in streams.items()]


def _describe(choice: StreamChoice) -> str:
    params = ", ".join(f"{k}={v}" for k, v in choice.params)
    return f"{choice.strategy}({params})" if params else choice.strategy


def _response(taps: int) -> str:
    return f"{taps / RATE:g} s stereo ({taps // 1000}k taps)"


def swap_section(results: list[dict]) -> list[str]:
    """The swap table."""
    rows = [[_response(r["taps"]), r["chunk"], _describe(r["choice"]),
             format_seconds(r["plain"]), format_seconds(r["crossfading"]),
             f"{r['crossfading'] / r['plain']:.2f}x",
             f"{r['worst crossfading'] / r['worst plain']:.2f}x",
             format_seconds(r["after"]), f"{r['after'] / r['plain']:.2f}x",
             format_seconds(r["swap_s"])] for r in results]
    worst = max((r["crossfading"] / r["plain"] for r in results), default=0.0)
    return ["", "## Swapping the response: set_weight with a crossfade", "",
            ("The tuned stream's choice, three streams of it timed interleaved (whole periods "
             "per sample, medians): never swapped (\"plain\"), during a crossfade (both "
             "responses on the same input transforms), and after a crossfade has ended. "
             "\"worst\" compares the slowest chunk of a period. \"set_weight\" is the call "
             "itself (the new response's spectra and its share of the outputs already "
             "prepared, computed at the call)."), "",
            markdown_table(["response", "chunk", "choice", "plain / chunk", "crossfading",
                            "crossfading / plain", "worst: crossfading / plain", "after",
                            "after / plain", "set_weight"], rows), "",
            (f"- A crossfading chunk costs at most {worst:.2f}x a plain chunk (target 2x: "
             f"{'met' if worst <= 2 else 'NOT met'}), only during the ramp.")]


def latency_section(results: list[dict]) -> list[str]:
    """The latency table."""
    base = {(r["taps"], r["chunk"]): r["mean"] for r in results if r["latency"] == 0}
    rows = []
    for r in results:
        duration = r["chunk"] / RATE
        zero = base.get((r["taps"], r["chunk"]))
        rows.append([_response(r["taps"]), r["chunk"],
                     f"{r['latency']} ({r['latency'] / RATE * 1e3:.1f} ms)",
                     _describe(r["choice"]), format_seconds(r["tuning_s"]),
                     format_seconds(r["mean"]), f"{duration / r['mean']:.1f}",
                     format_seconds(r["worst"]), f"{duration / r['worst']:.1f}",
                     f"{zero / r['mean']:.2f}x" if zero else "-"])
    return ["", "## Latency: the cheapest stream for the latency allowed", "",
            ("Each latency tuned on its own (mode tune: the blocks it allows are candidates), "
             "then timed interleaved: the mean chunk over whole periods and the slowest chunk "
             "of a period (a block's work falls on the chunk that completes it); RTF = chunk "
             "duration / time at 48 kHz."), "",
            markdown_table(["response", "chunk", "latency (samples)", "tuned choice",
                            "tuning", "mean / chunk", "RTF", "slowest chunk", "RTF (slowest)",
                            "mean vs latency 0"], rows)]
