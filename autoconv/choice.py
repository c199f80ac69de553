"""Choice: which strategy (and parameters) a signature runs, and where that answer came from;
StreamChoice: the same for a stream's signature."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import torch

from autoconv.strategies import FrozenParams, Strategy, freeze_params, reference
from autoconv.strategies import get as get_strategy
from autoconv.strategies.streaming import StreamEngine, StreamStrategy
from autoconv.strategies.streaming import get as get_stream_strategy

#: Where a choice came from. "memory" is reported by lookups that hit the in-process cache;
#: the entry itself remembers its ``origin`` (one of the others). "corrected": decided again
#: on the timings of live calls (:mod:`autoconv.tuning.live_check`).
Source = Literal["memory", "database", "measured", "corrected", "predicted", "cost_model", "off",
                 "fallback"]


class _Answer:
    """What :class:`Choice` and :class:`StreamChoice` share: frozen parameters, and the copy
    a later in-memory lookup returns."""

    strategy: str
    params: FrozenParams
    origin: Source
    median_s: float | None
    strategy_impl: Any

    @property
    def params_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict."""
        return dict(self.params)

    def remembered(self) -> Self:
        """This choice as returned by a later in-memory lookup (source ``"memory"``)."""
        return type(self)(self.strategy, self.params, "memory", self.origin,  # type: ignore
                          self.median_s, self.strategy_impl)


@dataclass(frozen=True)
class Choice(_Answer):
    """The strategy a signature runs.

    Attributes:
        strategy: registry name (``"direct"``, ``"fft"``, ``"overlap_add"``).
        params: the strategy's keyword parameters, frozen (see :attr:`params_dict`).
        source: where this answer came from for the lookup that returned it.
        origin: where the answer was first obtained (equals ``source`` except for "memory").
        median_s: the measured (or predicted) time of one call, when known.
    """

    strategy: str
    params: FrozenParams = ()
    source: Source = "measured"
    origin: Source = "measured"
    median_s: float | None = None
    strategy_impl: Strategy | None = field(default=None, repr=False, compare=False)
    run: Callable[..., torch.Tensor] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        impl = self.strategy_impl or get_strategy(self.strategy)
        object.__setattr__(self, "strategy_impl", impl)
        object.__setattr__(self, "run", impl.bound(dict(self.params)))

    @classmethod
    def make(cls, strategy: str | Strategy, params: Mapping[str, Any] | None = None, *,
             source: Source, median_s: float | None = None) -> Choice:
        """Build a choice from a strategy (or its registered name) and a plain parameter dict.

        Raises:
            KeyError: ``strategy`` is a name that no registered strategy has.
        """
        impl = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
        return cls(impl.name, freeze_params(params or {}), source, source, median_s, impl)


#: ``F.conv1d`` itself, as mode ``off`` answers.
PLAIN_CONV1D = Choice.make(reference(), source="off")


@dataclass(frozen=True)
class StreamChoice(_Answer):
    """The streaming strategy a stream signature runs (see :mod:`autoconv.streaming`).

    Attributes:
        strategy: registry name of the streaming strategy.
        params: its parameters, frozen (see :attr:`params_dict`).
        source: where this answer came from for the lookup that returned it.
        origin: where the answer was first obtained.
        median_s: the measured time of one full chunk, when known (a partition longer than
            the chunk: averaged over its chunks).
    """

    strategy: str
    params: FrozenParams = ()
    source: Source = "measured"
    origin: Source = "measured"
    median_s: float | None = None
    strategy_impl: StreamStrategy | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.strategy_impl is None:
            object.__setattr__(self, "strategy_impl", get_stream_strategy(self.strategy))

    @classmethod
    def make(cls, strategy: StreamStrategy, params: Mapping[str, Any] | None = None, *,
             source: Source, median_s: float | None = None) -> StreamChoice:
        """Build a choice from a streaming strategy and a plain parameter dict."""
        return cls(strategy.name, freeze_params(params or {}), source, source, median_s,
                   strategy)

    def build(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
              groups: int, batch: int, chunk_size: int, latency: int = 0) -> StreamEngine:
        """The engine of this choice for a stream of ``weight`` (detached), ``latency``
        samples late."""
        return self.strategy_impl.engine(  # type: ignore[union-attr]
            weight, bias, dilation=dilation, groups=groups, batch=batch,
            chunk_size=chunk_size, latency=latency, **self.params_dict)
