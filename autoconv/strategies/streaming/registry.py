"""The registry of streaming strategies: every way autoconv knows to run a causal convolution
chunk by chunk, by name.

A stream is a causal ``conv1d`` fed a signal in chunks (:class:`~autoconv.signature.Signature`
with a ``chunk_size``): every chunk of ``n <= chunk_size`` samples gives the next ``n`` output
samples at once, with no added latency, or ``latency`` samples late when the stream allows it
(:mod:`.latency`). A :class:`StreamStrategy` entry is what the rest of
autoconv knows about one way of computing it: how to build its stateful engine
(:class:`StreamEngine`), which parameter sets are worth timing, how to check a parameter dict
read from a database, how many chunks make one period of its work (what one timed sample must
cover), and how many floating-point operations a chunk costs (the prior when nothing was
measured). As for conv1d strategies, no code outside ``autoconv/strategies/`` compares their
names with strings, and registry order is the tie-break order (simplest first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autoconv.signature import Signature
from autoconv.strategies.registry import FrozenParams, freeze_params, supports_all
from autoconv.strategies.streaming.latency import BLOCK, delayed_engine, with_latency


class StreamEngine(Protocol):
    """The state and the compute of one stream (one weight, batch size, chunk size).

    Engines are built for full chunks of ``chunk_size`` samples and accept shorter ones at
    any time. They trust their caller (:class:`autoconv.Conv1dStream` validates every chunk)
    and run under ``torch.no_grad``.
    """

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The next ``n`` causal outputs ``(B, C_out, n)`` of ``chunk`` ``(B, C_in, n)``,
        written into ``out`` when given (and returned)."""
        ...

    def reset(self) -> None:
        """Forget every sample seen: the next chunk is the start of a new signal (a crossfade
        under way ends: the new response is the engine's)."""
        ...

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """From the next chunk, compute the response of ``weight`` and ``bias`` (detached,
        the shapes, dtype and device of the engine's own; the bias may come or go), keeping
        the state: the outputs are exactly those of an engine of the new weight fed the
        same signal from its start. Over the first ``crossfade`` samples they are mixed with
        the old response's (:mod:`~autoconv.strategies.streaming.crossfade`: ``ramp``, the
        gains); both are computed on the same state, and the old one is dropped when the
        ramp ends. A crossfade under way ends first, at once (the response it was fading
        in becomes the old one). The new weight's spectra are computed here, with
        everything the ramp needs, so that no later chunk allocates more than before."""
        ...


#: ``(weight, bias, dilation=, groups=, batch=, chunk_size=, **params) -> engine``; the weight
#: and bias are detached tensors the engine may keep.
Builder = Callable[..., StreamEngine]


def no_params(signature: Signature) -> list[dict[str, Any]]:
    """The parameter grid of a streaming strategy without parameters."""
    return [{}]


def one_chunk(signature: Signature, params: Mapping[str, Any]) -> int:
    """The period of a strategy whose every chunk does the same work: one chunk."""
    return 1


@dataclass(frozen=True)
class StreamStrategy:
    """A named streaming strategy and what the rest of autoconv needs to know of it.

    Attributes:
        name: registry key, stored in the tuning database.
        build: makes the engine (see :data:`Builder`).
        param_grid: the parameter sets worth timing for a stream signature.
        supports: whether it can run a signature at all (dtypes, memory).
        check: ``(signature, params) -> None``, raising ``ValueError`` or ``TypeError``
            unless ``params`` is a set it runs correctly, and within reason, for the
            signature (stored data is checked with it). Default: no parameters at all.
        period: chunks after which its work repeats (a partition longer than the chunk
            spreads one partition's work over several chunks): one timed sample covers a
            whole number of periods, so that every candidate is charged its average chunk.
        flops: floating-point operations of one full chunk, roughly: the prior that picks a
            strategy when nothing was measured.
        size_params: parameters that only size the work.
        reference: computes the stream with ``F.conv1d`` itself (the fallback, and what
            mode ``off`` runs).
    """

    name: str
    build: Builder
    flops: Callable[[Signature, Mapping[str, Any]], float]
    param_grid: Callable[[Signature], list[dict[str, Any]]] = no_params
    supports: Callable[[Signature], bool] = supports_all
    check: Callable[[Signature, Mapping[str, Any]], None] | None = None
    period: Callable[[Signature, Mapping[str, Any]], int] = one_chunk
    size_params: frozenset[str] = field(default_factory=frozenset)
    reference: bool = False

    def validate(self, signature: Signature, params: Mapping[str, Any]) -> None:
        """Check ``params`` for ``signature`` (see :attr:`check`).

        Raises:
            ValueError, TypeError: parameters this strategy does not take or cannot run.
        """
        if self.check is not None:
            self.check(signature, params)
        elif params:
            raise ValueError(f"streaming strategy {self.name!r} takes no parameters, not "
                             f"{', '.join(map(repr, sorted(params)))}")

    def is_plain_conv1d(self, params: Mapping[str, Any]) -> bool:
        """Whether this is ``F.conv1d`` itself without parameters (the reference)."""
        return self.reference and not params

    def engine(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
               groups: int, batch: int, chunk_size: int, latency: int = 0,
               **params: Any) -> StreamEngine:
        """The engine of a stream of ``latency`` samples (see :data:`Builder`): :attr:`build`'s
        own without latency, else behind a :class:`~.latency.Delayed`."""
        if not latency and BLOCK not in params:
            return self.build(weight, bias, dilation=dilation, groups=groups, batch=batch,
                              chunk_size=chunk_size, **params)
        return delayed_engine(self.build, weight, bias, dilation=dilation, groups=groups,
                              batch=batch, chunk_size=chunk_size, latency=latency,
                              params=params)

    def kind(self, params: Mapping[str, Any]) -> tuple[str, FrozenParams]:
        """What a candidate of this strategy is, up to its :attr:`size_params`."""
        return self.name, freeze_params({k: v for k, v in params.items()
                                         if k not in self.size_params})


_REGISTRY: dict[str, StreamStrategy] = {}


def register(strategy: StreamStrategy) -> StreamStrategy:
    """Add ``strategy`` to the registry (replacing one of the same name), made aware of a
    stream's latency (:func:`~.latency.with_latency`: every strategy runs streams with
    latency, on the blocks the latency allows), and return the entry registered."""
    entry = _REGISTRY[strategy.name] = with_latency(strategy)
    return entry


def get(name: str) -> StreamStrategy:
    """The streaming strategy registered as ``name``.

    Raises:
        KeyError: no streaming strategy has that name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown streaming strategy {name!r}; known: "
                       f"{', '.join(_REGISTRY)}") from None


def all_stream_strategies() -> list[StreamStrategy]:
    """All registered streaming strategies, in tie-break order."""
    return list(_REGISTRY.values())


def stream_reference() -> StreamStrategy:
    """The registered streaming strategy that runs ``F.conv1d`` itself.

    Raises:
        LookupError: none is registered.
    """
    for strategy in _REGISTRY.values():
        if strategy.reference:
            return strategy
    raise LookupError("no reference streaming strategy is registered")
