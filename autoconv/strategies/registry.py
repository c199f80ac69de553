"""The registry of strategies: every way autoconv knows to compute a conv1d, by name.

A :class:`Strategy` entry is everything the rest of autoconv knows about a strategy: how to
run it, which parameter sets are worth timing, what work a call does (named counts the cost
model prices and the predictor's features describe: :mod:`autoconv.strategies.work`), which
parameters only size that work, how to check
a parameter dict read from a database, whether it reuses a cached weight spectrum, and its
colour on charts. Outside ``autoconv/strategies/`` no code compares a strategy's or a
parameter's name with a string, so adding a strategy means one module with a function of
``F.conv1d``'s signature and one :func:`register` call, nothing else.

Registry order is the tie-break order: when two strategies time within a few percent, the
tuner prefers the one registered first (simpler, more accurate).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from autoconv.signature import Signature
from autoconv.strategies.work import Work, convolution_work

ConvFn = Callable[..., torch.Tensor]
ParamGrid = Callable[[Signature], list[dict[str, Any]]]
FrozenParams = tuple[tuple[str, Any], ...]


def freeze_params(params: Mapping[str, Any]) -> FrozenParams:
    """A hashable, order-independent form of a parameter dict."""
    return tuple(sorted(params.items()))


def no_params(signature: Signature) -> list[dict[str, Any]]:
    """The parameter grid of a strategy that takes no parameters: one empty set."""
    return [{}]


def supports_all(signature: Signature) -> bool:
    """The support test of a strategy that runs every signature ``F.conv1d`` accepts."""
    return True


def check_names(params: Mapping[str, Any], allowed: frozenset[str] | set[str], strategy: str
                ) -> None:
    """Raise ``ValueError`` unless every key of ``params`` is in ``allowed``."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"strategy {strategy!r} has no parameter {', '.join(map(repr, unknown))}"
                         f" (its parameters: {known})")


def check_int(params: Mapping[str, Any], name: str, low: int, high: int) -> None:
    """Raise unless ``params[name]`` (when present) is an int in ``[low, high]``.

    Raises:
        TypeError: not an int (a bool, a float or a string is refused).
        ValueError: out of range.
    """
    if name not in params:
        return
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high} for this signature")


def accepts_nothing(name: str) -> Callable[[Signature, Mapping[str, Any]], None]:
    """The parameter check of a strategy without parameters: the dict must be empty."""
    def check(signature: Signature, params: Mapping[str, Any]) -> None:
        check_names(params, frozenset(), name)
    return check


def time_domain_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The work of ``F.conv1d`` as called: a direct convolution with the call's padding.

    ``F.conv1d`` pads only symmetrically itself: asymmetric padding (``'same'`` with an even
    total) is a copy of the input padded on one side, then the smaller side as its own."""
    left, right = signature.padding_left, signature.padding_right
    if left == right:
        return convolution_work(signature, left)
    return convolution_work(signature, min(left, right),
                            signature.batch * signature.in_channels * signature.padded_length)


class Preparation(Protocol):
    """One-time work a strategy does before it runs a signature at full speed (compiling a
    kernel for it), which the tuner charges to its budget but not to the candidate's time."""

    def estimate_s(self, signature: Signature, params: Mapping[str, Any]) -> float:
        """Seconds the preparation is expected to take (0 when done already)."""

    def __call__(self, signature: Signature, params: Mapping[str, Any], input: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Prepare the strategy for ``signature`` on tensors of the call's kind."""


@dataclass(frozen=True)
class Strategy:
    """A named conv1d implementation and what the rest of autoconv needs to know of it.

    Attributes:
        name: registry key, stored in the tuning database.
        run: ``(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
            **params)``, returning exactly what ``F.conv1d`` returns. It starts with
            :func:`~autoconv.signature.signature_or_answer`, which hands degenerate calls and
            calls ``F.conv1d`` refuses to ``F.conv1d`` itself.
        param_grid: the parameter sets worth timing for a signature (``[{}]`` if none).
            Every dict is plain JSON data (ints, floats, strings).
        supports: whether the strategy can run a signature at all (e.g. the FFT strategies
            take real floating dtypes only); the tuner skips it where this is False.
        bind: optional ``params -> callable`` equivalent to ``run`` with those parameters,
            for a strategy with a faster callable for some of them (``direct`` binds ``{}`` to
            ``F.conv1d`` itself); default: ``run`` with the parameters applied.
        work: ``(signature, params) -> Work``: what one call computes, as named counts of
            generic terms (:class:`~autoconv.strategies.work.Work`: direct multiply-adds,
            FFT butterflies, matrix-multiply multiply-adds, bytes moved, ...), which the cost
            model prices and the predictor describes without knowing the strategy's kind
            (default: ``F.conv1d`` with the call's padding). Raises ``ValueError`` or
            ``TypeError`` for parameters it cannot run.
        check: ``(signature, params) -> None``, raising ``ValueError`` or ``TypeError`` unless
            ``params`` is a parameter set the strategy runs correctly, and within reason, for
            ``signature`` (stored data is checked with it before it is trusted). Default: no
            parameters at all.
        size_params: the parameters that only size the work (a block length), not its kind:
            candidates that differ only in them are close rivals.
        preparation: one-time work before ``run`` is at full speed on a signature
            (:class:`Preparation`: compiling a kernel), which the tuner does, within its
            budget, before the candidate's first call; ``run`` prepares itself when it was
            not done. None: nothing to prepare.
        takes_spectrum_cache: ``run`` accepts ``spectrum_cache=`` (a
            :class:`~autoconv.strategies.spectrum_cache.SpectrumCache`).
        reference: ``run`` is ``F.conv1d`` itself without parameters, and computes its very
            sums with any: its output is the reference other candidates are checked against,
            and it is the fallback when nothing else is known.
        colour: its colour on charts.
    """

    name: str
    run: ConvFn
    param_grid: ParamGrid = no_params
    supports: Callable[[Signature], bool] = supports_all
    bind: Callable[[dict[str, Any]], ConvFn] | None = None
    work: Callable[[Signature, Mapping[str, Any]], Work] = time_domain_work
    check: Callable[[Signature, Mapping[str, Any]], None] | None = None
    size_params: frozenset[str] = field(default_factory=frozenset)
    preparation: Preparation | None = None
    takes_spectrum_cache: bool = False
    reference: bool = False
    colour: str = "#999999"

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.run(*args, **kwargs)

    def bound(self, params: Mapping[str, Any]) -> ConvFn:
        """The callable that runs this strategy with ``params`` (F.conv1d's arguments)."""
        params = dict(params)
        if self.bind is not None:
            return self.bind(params)
        return functools.partial(self.run, **params) if params else self.run

    def validate(self, signature: Signature, params: Mapping[str, Any]) -> None:
        """Check ``params`` for ``signature`` (see :attr:`check`).

        Raises:
            ValueError, TypeError: parameters this strategy does not take or cannot run.
        """
        (self.check or accepts_nothing(self.name))(signature, params)

    def is_ready(self, signature: Signature, params: Mapping[str, Any]) -> bool:
        """Whether a call with ``params`` on ``signature`` runs without a pending
        preparation (nothing to prepare, or prepared already in this process): what may
        answer or be explored on a live call, which must not wait for a compile."""
        return self.preparation is None or self.preparation.estimate_s(signature, params) == 0

    def is_plain_conv1d(self, params: Mapping[str, Any]) -> bool:
        """Whether this strategy with ``params`` is ``F.conv1d`` exactly as called."""
        return self.reference and not params

    def kind(self, params: Mapping[str, Any]) -> tuple[str, FrozenParams]:
        """What a candidate of this strategy is, up to its :attr:`size_params`."""
        return self.name, freeze_params({k: v for k, v in params.items()
                                         if k not in self.size_params})



_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to the registry (replacing one of the same name) and return it."""
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> Strategy:
    """Remove the strategy called ``name`` from the registry and return it.

    Raises:
        KeyError: no strategy has that name.
    """
    strategy = get(name)
    del _REGISTRY[name]
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


def reference() -> Strategy:
    """The registered strategy that is ``F.conv1d`` itself (:attr:`Strategy.reference`).

    Raises:
        LookupError: none is registered.
    """
    for strategy in _REGISTRY.values():
        if strategy.reference:
            return strategy
    raise LookupError("no reference strategy (F.conv1d itself) is registered")


def is_plain_conv1d(name: str, params: Mapping[str, Any]) -> bool:
    """Whether the candidate ``name`` with ``params`` is ``F.conv1d`` exactly as called: the
    reference strategy without parameters (False for a name not registered)."""
    strategy = _REGISTRY.get(name)
    return strategy is not None and strategy.is_plain_conv1d(params)
