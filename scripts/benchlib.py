"""Shared helpers for the benchmark scripts: machine header, warm-up, interleaved timing with
medians, peak-memory measurement and markdown tables.

Timing: every candidate is warmed up, then timed in interleaved rounds, each in a new shuffled
order (``autoconv.tuning.timing.round_orders``), so that slow drifts of a shared machine and the
calls' neighbours hit all candidates alike; each sample times ``inner``
back-to-back calls (enough to last ``min_sample_s``) and the reported figure is the median of
the samples. A per-cell time budget caps the samples: a call that takes longer than the budget
is sampled once, and one slower than a "slow" threshold (a few budgets) is not repeated at all:
its warm-up call is the sample.

Peak memory, CPU: torch has no CPU allocator statistics, so :class:`PeakMemory` reads the
kernel's high-water mark of resident memory. It resets the mark to the current resident size
(``echo 5 > /proc/self/clear_refs``), runs the call and reports ``VmHWM - VmRSS(before)``
from ``/proc/self/status``: the extra physical memory the call touched over what was already
there (inputs included in the baseline; the returned output counts). So that freed buffers go
back to the kernel and new ones show up in the resident size, glibc is told to serve every
allocation of 64 KiB or more with its own ``mmap`` while measuring (``mallopt``); outside a
measurement the thresholds are set to glibc's steady state for large buffers (32 MiB). Buffers
that are allocated but never written do not count (they use no memory). Linux and glibc only;
elsewhere the figure is ``None``. CUDA: ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus the memory allocated before the call.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from autoconv.storage.fingerprint import fingerprint_fields
from autoconv.tuning.timing import round_orders

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MEASURE_MMAP_THRESHOLD = 64 * 1024
_STEADY_MMAP_THRESHOLD = 32 * 1024 * 1024


def machine_header(device: str) -> str:
    """Markdown lines describing the machine and the software the numbers were measured with."""
    cores = os.cpu_count()
    fields = fingerprint_fields(torch.device("cpu"))
    onednn = fields["onednn_version"]
    lines = [
        f"- CPU: {fields['cpu_model']} ({cores} logical cores, torch threads: "
        f"{fields['torch_threads']})",
        f"- torch {torch.__version__}, MKL: {torch.backends.mkl.is_available()}, "
        f"oneDNN: {torch.backends.mkldnn.is_available()}" + (f" (v{onednn})" if onednn else ""),
        f"- Python {platform.python_version()}, {platform.system()} {platform.release()}",
    ]
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        lines.append(f"- load average (1, 5, 15 min) when this header was written: {load} "
                     "(other jobs sharing the CPU)")
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        lines.append(f"- GPU: {torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda}, "
                     f"cuDNN {torch.backends.cudnn.version()}")
    return "\n".join(lines)


def synchronize(device: str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class _Glibc:
    """``mallopt`` / ``malloc_trim`` through ctypes, when the C library is glibc."""

    def __init__(self) -> None:
        self.lib: Any = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                self.lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            except OSError:
                self.lib = None

    def thresholds(self, mmap_threshold: int) -> None:
        if self.lib is not None:
            self.lib.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
            self.lib.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold)

    def trim(self) -> None:
        if self.lib is not None:
            self.lib.malloc_trim(0)


_GLIBC = _Glibc()


def _proc_status_kib(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise OSError(f"{field_name} not in /proc/self/status")


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def limit_address_space(extra_bytes: int) -> bool:
    """Make allocations fail (``RuntimeError``) once the process maps ``extra_bytes`` more.

    A safety net for benchmarks on a shared machine: an implementation that would need tens of
    GiB for one call (a dense weight spectrum, say) fails fast instead of swapping or being
    killed with everything else. Returns False where ``RLIMIT_AS`` is unavailable.
    """
    try:
        import resource

        current = _proc_status_kib("VmSize") * 1024
        resource.setrlimit(resource.RLIMIT_AS, (current + extra_bytes, resource.RLIM_INFINITY))
        return True
    except (ImportError, OSError, ValueError):
        return False


def steady_allocator() -> None:
    """Set glibc's allocation thresholds to their long-running steady state (for timing)."""
    _GLIBC.thresholds(_STEADY_MMAP_THRESHOLD)


class PeakMemory:
    """Context manager measuring the extra peak memory of the code it wraps.

    ``extra_bytes`` is set on exit: bytes over what was in use on entry, or ``None`` where the
    platform gives no way to measure (see the module docstring for the method).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.extra_bytes: int | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _GLIBC.thresholds(_MEASURE_MMAP_THRESHOLD)
        _GLIBC.trim()
        self._base = _proc_status_kib("VmRSS") * 1024 if _reset_high_water_mark() else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.extra_bytes = torch.cuda.max_memory_allocated(self.device) - (self._base or 0)
            return
        if self._base is not None:
            self.extra_bytes = max(0, _proc_status_kib("VmHWM") * 1024 - self._base)
        steady_allocator()


@dataclass
class Timing:
    """Timing of one candidate: per-call seconds of each sample, and its peak memory."""

    samples: list[float] = field(default_factory=list)
    inner: int = 1
    peak_bytes: int | None = None

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.samples) if self.samples else math.nan


@dataclass
class WarmUp:
    """Result of :func:`warm_up`: the call's last output and a first timing."""

    output: Any
    timing: Timing
    seconds: float


def _time_calls(fn: Callable[[], Any], calls: int, device: str) -> tuple[float, Any]:
    """Seconds per call of ``calls`` back-to-back calls, and the last call's result."""
    result = None
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(calls):
            result = fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0 / calls, result
    start_s = time.perf_counter()
    for _ in range(calls):
        result = fn()
    return (time.perf_counter() - start_s) / calls, result


def warm_up(fn: Callable[[], Any], device: str, slow_s: float) -> WarmUp:
    """Call ``fn`` once (twice unless it is slow) under :class:`PeakMemory`.

    A first call slower than ``slow_s`` is not repeated: its timing becomes the candidate's
    only sample (so a call of many seconds runs once). Otherwise a second call gives the time
    estimate and the peak memory, the first having paid the one-time costs (plan caches, lazy
    library loading), which can be seconds on a loaded machine.
    """
    timing = Timing()
    with PeakMemory(device) as memory:
        seconds, output = _time_calls(fn, 1, device)
    timing.peak_bytes = memory.extra_bytes
    if seconds >= slow_s:
        timing.samples.append(seconds)
        return WarmUp(output, timing, seconds)
    del output
    with PeakMemory(device) as memory:
        seconds, output = _time_calls(fn, 1, device)
    timing.peak_bytes = memory.extra_bytes
    return WarmUp(output, timing, seconds)


def time_interleaved(candidates: Mapping[str, Callable[[], Any]],
                     warmups: Mapping[str, WarmUp], *, device: str, repeats: int,
                     budget_s: float, min_sample_s: float = 0.005) -> dict[str, Timing]:
    """Median-ready timings of ``candidates``, sampled in interleaved rounds, each in a new
    shuffled order (``autoconv.tuning.timing.round_orders``).

    Each sample is preceded by one untimed call of the same candidate. The first call after
    another candidate is slower (wav2vec2's first layer, a 26 MB output, took 9-17 ms
    against 6 ms in steady state). Not for page faults: on this project's VM a buffer
    written again after other memory was written, with no page fault, takes several passes
    to reach its steady speed (``autoconv.tuning.timing.settled``). Candidates differ in how
    many calls a sample runs, so without it a sample of one call carried that cost whole and
    one of two calls half of it:
    ``F.conv1d`` timed through autoconv (one call per sample) read 2x slower than
    ``F.conv1d`` called directly (two).
    Every sample now times the candidate in its own steady state, as a model's loop runs a
    layer.

    Args:
        candidates: name -> zero-argument callable, already warmed up.
        warmups: name -> its :func:`warm_up` result (time estimate, memory, maybe a sample).
        device: ``"cpu"`` or a CUDA device (timed with CUDA events).
        repeats: the most samples per candidate.
        budget_s: time budget per candidate: fewer samples for slow calls, at least one.
        min_sample_s: each sample runs enough back-to-back calls to last about this long.

    Returns:
        name -> :class:`Timing` (the warm-up's peak memory is carried over).
    """
    steady_allocator()
    timings: dict[str, Timing] = {}
    wanted: dict[str, int] = {}
    for name in candidates:
        warm = warmups[name]
        timing = Timing(samples=list(warm.timing.samples), peak_bytes=warm.timing.peak_bytes)
        timings[name] = timing
        if timing.samples:  # slower than the budget: the warm-up call was the sample
            wanted[name] = len(timing.samples)
            continue
        estimate = max(warm.seconds, 1e-7)
        timing.inner = max(1, math.ceil(min_sample_s / estimate))
        wanted[name] = max(1, min(repeats, int(budget_s / (estimate * timing.inner))))
    names = list(candidates)
    rounds = max(wanted.values(), default=0)
    for order in islice(round_orders(len(names)), rounds):  # a new shuffled order each round
        for name in (names[i] for i in order):
            fn, timing = candidates[name], timings[name]
            if len(timing.samples) < wanted[name]:
                _time_calls(fn, 1, device)  # untimed: see the docstring
                seconds, _ = _time_calls(fn, timing.inner, device)
                timing.samples.append(seconds)
    return timings


def format_seconds(seconds: float | None) -> str:
    """Human duration: ``12.3 us``, ``4.56 ms``, ``1.23 s``."""
    if seconds is None or math.isnan(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale or unit == "us":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def format_bytes(count: int | None) -> str:
    """Human size in binary units: ``0 B``, ``512 KiB``, ``1.5 GiB``."""
    if count is None:
        return "n/a"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table (cells are converted with ``str``; ``|`` is escaped)."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def candidate_calls(workload: Any, x: torch.Tensor, w: torch.Tensor,
                    b: torch.Tensor | None) -> dict[Any, Callable[[], torch.Tensor]]:
    """Every candidate autoconv offers for ``workload`` (an
    ``autoconv.catalogue.workload.Workload``; each registered strategy at each of its
    parameter sets, ``autoconv.tuning.candidates.Candidate`` keys), as a call on these
    tensors (with gradients where they require them and grad mode is on). A strategy's
    one-time preparation (compiling its kernel) is done here, before any call is timed, as
    the tuner does it before its warm-up."""
    from autoconv.signature import Signature
    from autoconv.strategies import all_strategies
    from autoconv.tuning.candidates import enumerate_candidates

    kwargs = workload.conv_kwargs()
    signature = Signature.of(x, w, b, **kwargs)  # the workload's, with these tensors' grad
    candidates = enumerate_candidates(all_strategies(), signature)
    for c in candidates:
        if c.strategy.preparation is not None:
            c.strategy.preparation(signature, dict(c.params), x, w, b)
    return {c: (lambda run=c.strategy.run, params=dict(c.params):
                run(x, w, b, **kwargs, **params))
            for c in candidates}


def time_candidates(workload: Any, repeats: int, budget_s: float) -> dict[Any, float]:
    """Median seconds of every candidate autoconv offers for ``workload`` (an
    ``autoconv.catalogue.workload.Workload``), each called directly, timed interleaved."""
    calls = candidate_calls(workload, *workload.tensors())
    warmups = {c: warm_up(fn, "cpu", budget_s) for c, fn in calls.items()}
    timings = time_interleaved(calls, warmups, device="cpu", repeats=repeats,
                               budget_s=budget_s)
    return {c: timing.median for c, timing in timings.items()}


def suite_arguments(description: str, cell_budget_s: float) -> argparse.ArgumentParser:
    """The options of a benchmark over the suite (``autoconv.catalogue.suite``): which
    workloads, the tuning budget, how long each candidate is timed, where the report goes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the quick subset of the suite")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these workloads")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="tuning budget per signature, seconds (autoconv's budget_s)")
    parser.add_argument("--repeats", type=int, default=15, help="most samples per candidate")
    parser.add_argument("--cell-budget", type=float, default=cell_budget_s,
                        help="timing budget per candidate per workload, seconds")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser


def model_arguments(description: str, models: Sequence[str], repeats: int, budget_s: float
                    ) -> argparse.ArgumentParser:
    """The options of a benchmark over whole models (``autoconv.catalogue.zoo``): which
    models, how many rounds and seconds of timing each, the tuning database, where the report
    goes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats, help="most rounds")
    parser.add_argument("--budget", type=float, default=budget_s,
                        help=f"seconds of timing per model and mode (default {budget_s:g})")
    parser.add_argument("--only", nargs="+", choices=list(models), metavar="NAME")
    parser.add_argument("--db", help="tuning database (default: a fresh one)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser


#: A process that spins on a CPU core until its parent is gone (a benchmark killed midway
#: leaves no spinning process behind).
HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


def start_hogs(count: int) -> list:
    """``count`` processes keeping a core busy each (:data:`HOG`); kill them when done."""
    import subprocess
    import sys

    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]


def publish(report: str, out: Path | None) -> None:
    """Print ``report`` and, given a path, also write it there (folders created)."""
    print(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.rstrip("\n") + "\n", encoding="utf-8")
