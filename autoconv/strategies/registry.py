"""The registry of strategies: every way autoconv knows to compute a conv1d, by name.

Adding a strategy means writing one module with a function of ``F.conv1d``'s signature and
registering it here, nothing else. Registry order is the tie-break order: when two strategies
time within a few percent, the tuner prefers the one registered first (simpler, more accurate).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from autoconv.signature import Signature

ConvFn = Callable[..., torch.Tensor]
ParamGrid = Callable[[Signature], list[dict[str, Any]]]


def no_params(signature: Signature) -> list[dict[str, Any]]:
    """The parameter grid of a strategy that takes no parameters: one empty set."""
    return [{}]


def supports_all(signature: Signature) -> bool:
    """The support test of a strategy that runs every signature ``F.conv1d`` accepts."""
    return True


@dataclass(frozen=True)
class Strategy:
    """A named conv1d implementation.

    Attributes:
        name: registry key, stored in the tuning database.
        run: ``(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
            **params)``, returning exactly what ``F.conv1d`` returns.
        param_grid: the parameter sets worth timing for a signature (``[{}]`` if none).
            Every dict is plain JSON data (ints, floats, strings).
        supports: whether the strategy can run a signature at all (e.g. the FFT strategies
            take real floating dtypes only); the tuner skips it where this is False.
        bind: optional ``params -> callable`` equivalent to ``run`` with those parameters,
            for a strategy with a faster callable for some of them (``direct`` binds ``{}`` to
            ``F.conv1d`` itself); default: ``run`` with the parameters applied.
    """

    name: str
    run: ConvFn
    param_grid: ParamGrid = no_params
    supports: Callable[[Signature], bool] = supports_all
    bind: Callable[[dict[str, Any]], ConvFn] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.run(*args, **kwargs)

    def bound(self, params: dict[str, Any]) -> ConvFn:
        """The callable that runs this strategy with ``params`` (F.conv1d's arguments)."""
        if self.bind is not None:
            return self.bind(params)
        return functools.partial(self.run, **params) if params else self.run


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to the registry (replacing one of the same name) and return it."""
    _REGISTRY[strategy.name] = strategy
    return strategy


def get(name: str) -> Strategy:
    """The strategy registered as ``name``.

    Raises:
        KeyError: no strategy has that name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown conv1d strategy {name!r}; known: {', '.join(_REGISTRY)}") from None


def names() -> list[str]:
    """Names of all registered strategies, in tie-break order."""
    return list(_REGISTRY)


def all_strategies() -> list[Strategy]:
    """All registered strategies, in tie-break order."""
    return list(_REGISTRY.values())
