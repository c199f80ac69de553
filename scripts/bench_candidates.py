"""What the strategies benchmark runs on one workload: F.conv1d, every registered strategy at
each of its parameter sets, and the peers; plus a cheap cost probe on a reduced problem.

The probe runs a candidate twice (the faster call counts) on the first batch row and about an
eighth of the output, and scales its time by the size ratio. A candidate whose estimate is
hopeless (see ``bench_strategies``) is reported as skipped instead of spending a minute on one
call that would only say "much slower than F.conv1d".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from bench_peers import PEERS
from bench_results import DIRECT, format_params

from autoconv import strategies
from autoconv.signature import Signature

Call = Callable[[], torch.Tensor]
F_CONV1D = "F.conv1d"
#: The probe computes about 1/PROBE_FRACTION of the first batch row's output.
PROBE_FRACTION = 8
#: ... but at least this many outputs (or all of them).
MIN_OUTPUTS = 256
#: Probes quicker than this are not extrapolated.
MIN_PROBE_S = 0.05


@dataclass
class Candidates:
    """Callables by name (F.conv1d first), and what could not be built."""

    calls: dict[str, Call] = field(default_factory=dict)
    #: candidate name -> (strategy name, params), for strategy candidates only
    owners: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    #: strategy or peer name -> why it has no candidate ("n/a: ...", "not installed")
    unavailable: dict[str, str] = field(default_factory=dict)


def build(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
          kwargs: dict[str, Any]) -> Candidates:
    """Every implementation of ``F.conv1d(x, w, b, **kwargs)`` the benchmark compares."""
    sig = Signature.of(x, w, b, **kwargs)
    found = Candidates(calls={F_CONV1D: partial(F.conv1d, x, w, b, **kwargs)})
    for strategy in strategies.all_strategies():
        if not getattr(strategy, "supports", lambda _: True)(sig):
            found.unavailable[strategy.name] = "n/a: unsupported"
            continue
        try:
            grid = strategy.param_grid(sig)
        except (NotImplementedError, ValueError, RuntimeError) as error:
            found.unavailable[strategy.name] = f"n/a: {error}"
            continue
        if not grid:
            found.unavailable[strategy.name] = "n/a: no parameters for this shape"
        for params in grid:
            if strategy.name == DIRECT and not params:
                continue  # ``direct`` with no parameters is F.conv1d: timed once, as F.conv1d
            name = f"{strategy.name}[{format_params(params)}]"
            found.calls[name] = partial(strategy.run, x, w, b, **kwargs, **params)
            found.owners[name] = (strategy.name, params)
    for peer in PEERS:
        prepared = peer.prepare(x, w, b, sig)
        if isinstance(prepared, str):
            found.unavailable[peer.name] = prepared
        else:
            found.calls[peer.name] = prepared
    return found


def probe_input(x: torch.Tensor, sig: Signature) -> tuple[torch.Tensor, float] | None:
    """(reduced input, full size / probe size), or None when the problem is already small.

    The reduced input is the first batch row, cut to the samples about
    ``1/PROBE_FRACTION`` of the output (at least ``MIN_OUTPUTS``) needs, with the call's own
    padding.
    """
    outputs = max(-(-sig.output_length // PROBE_FRACTION), min(sig.output_length, MIN_OUTPUTS))
    pads = sig.padding_left + sig.padding_right
    length = (outputs - 1) * sig.stride + sig.span - pads
    length = min(sig.length, max(length, 1, sig.span - pads))
    probe_outputs = (length + pads - sig.span) // sig.stride + 1
    scale = sig.batch * sig.output_length / probe_outputs
    if scale < 4:
        return None
    return x[:1, :, :length].contiguous(), scale


def estimate(call: Call, scale: float, device: str) -> float | None:
    """Seconds one full call would take: the faster of two probe calls scaled linearly, or
    None when the probe is too quick (under ``MIN_PROBE_S``) for fixed per-call costs and
    scheduling hiccups not to dominate the extrapolation."""
    seconds = float("inf")
    for _ in range(2):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        call()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        seconds = min(seconds, time.perf_counter() - start)
    return seconds * scale if seconds >= MIN_PROBE_S else None
