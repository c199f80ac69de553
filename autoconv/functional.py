"""``autoconv.conv1d``: a drop-in for ``F.conv1d`` that runs the fastest strategy.

The hot path is tiny: build a key from the call (shapes, arguments, dtype, device, whether
gradients are needed), look it up in a dict, run the remembered strategy. Everything else
(signature, database, measuring) happens once per key, in :func:`_resolve`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F

from autoconv.choice import Choice
from autoconv.prediction.service import DevicePredictor
from autoconv.runtime.custom_op import compiled_conv1d
from autoconv.settings import settings
from autoconv.signature import PaddingArg, Signature
from autoconv.storage.store import open_default_store
from autoconv.strategies import SpectrumCache
from autoconv.tuning.cost_model import default_cost_model
from autoconv.tuning.selector import Selector

Runner = Callable[..., torch.Tensor]

_selector: Selector | None = None
_selector_lock = threading.Lock()
#: call key -> (runner without cache, runner taking spectrum_cache or None)
_fast: dict[tuple, tuple[Runner, Runner | None]] = {}
_FAST_LIMIT = 100_000


def get_selector() -> Selector:
    """The process-wide selector (created on first use, with the default database)."""
    global _selector
    if _selector is None:
        with _selector_lock:
            if _selector is None:
                store = open_default_store(settings)
                _selector = Selector(store=store, cost_model=default_cost_model,
                                     predictor=DevicePredictor(store))
    return _selector


def reset() -> None:
    """Forget every in-memory decision and reopen the database on next use.

    Called automatically when a setting changes, so that e.g. a new ``db_url`` or mode takes
    effect on the next call.
    """
    global _selector
    with _selector_lock:
        _fast.clear()
        store = _selector.store if _selector is not None else None
        _selector = None
    if store is not None:
        store.close()


def _resolve(key: tuple | None, input: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None, stride, padding, dilation, groups
             ) -> tuple[Runner, Runner | None]:
    signature = Signature.of(input, weight, bias, stride, padding, dilation, groups)
    choice = get_selector().choose(signature, input.device)
    entry = (choice.run, choice.run if choice.strategy_impl.takes_spectrum_cache else None)
    if key is not None:
        if len(_fast) >= _FAST_LIMIT:
            _fast.clear()
        _fast[key] = entry
    return entry


def _runners(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             stride, padding, dilation, groups) -> tuple[Runner, Runner | None]:
    """The hot path: build the call's key, one dict lookup (resolving on a miss)."""
    key = (input.shape, weight.shape, stride, padding, dilation, groups, input.dtype,
           input.device, torch.is_grad_enabled() and (
               input.requires_grad or weight.requires_grad
               or (bias is not None and bias.requires_grad)))
    try:
        return _fast[key]
    except KeyError:
        return _resolve(key, input, weight, bias, stride, padding, dilation, groups)
    except TypeError:  # an unhashable argument (a list as padding): resolve every time
        return _resolve(None, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | tuple[int] = 1, padding: PaddingArg = 0,
           dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """Apply a 1-D convolution exactly as ``torch.nn.functional.conv1d`` does, faster.

    The first call with a new signature (shapes, stride, padding, dilation, groups, dtype,
    device, whether gradients are needed) looks the answer up in the tuning database, or, in
    mode ``tune``, measures the candidate strategies once; later calls run the winner directly.
    Under ``torch.compile`` the call is one custom op in the graph (no graph break): it runs
    the tuned strategy when the compiled graph runs (:mod:`autoconv.runtime.custom_op`).

    Args:
        input, weight, bias, stride, padding, dilation, groups: as for ``F.conv1d``.

    Returns:
        The same tensor ``F.conv1d`` returns (within floating-point tolerance).

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    if torch.compiler.is_compiling():
        return compiled_conv1d(input, weight, bias, stride, padding, dilation, groups)
    if settings.mode == "off":
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
    run = _runners(input, weight, bias, stride, padding, dilation, groups)[0]
    if bias is None and stride == 1 and padding == 0 and dilation == 1 and groups == 1:
        # torch parses two arguments faster than seven: 6.89 us for this branch and the
        # two-argument call vs 7.37 us for the seven-argument call (1x1x64, K=16, median)
        return run(input, weight)
    return run(input, weight, bias, stride, padding, dilation, groups)


def conv1d_cached(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride: int | tuple[int], padding: PaddingArg, dilation: int | tuple[int],
                  groups: int, spectrum_cache: SpectrumCache) -> torch.Tensor:
    """:func:`conv1d` that lets FFT strategies reuse the weight's spectrum from a cache."""
    if torch.compiler.is_compiling():  # the op runs without the cache
        return compiled_conv1d(input, weight, bias, stride, padding, dilation, groups)
    if settings.mode == "off":
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
    run, run_cached = _runners(input, weight, bias, stride, padding, dilation, groups)
    if run_cached is not None:
        return run_cached(input, weight, bias, stride, padding, dilation, groups,
                          spectrum_cache=spectrum_cache)
    return run(input, weight, bias, stride, padding, dilation, groups)


def select(input: torch.Tensor | Signature, weight: torch.Tensor | None = None,
           bias: torch.Tensor | None = None, stride: int | tuple[int] = 1,
           padding: PaddingArg = 0, dilation: int | tuple[int] = 1, groups: int = 1, *,
           device: torch.device | str | None = None) -> Choice:
    """Which strategy (and parameters) a call would run, and where that answer came from.

    Call it with ``conv1d``'s arguments, or with a :class:`Signature` (and ``device``, by
    default the signature's device type). In mode ``tune`` an unseen signature is measured,
    exactly as the call would do; ``Choice.source`` then says "measured", and a later
    ``select`` says "memory" (``Choice.origin`` keeps "measured").

    Returns:
        The :class:`~autoconv.choice.Choice`: ``strategy``, ``params_dict``, ``source``,
        ``origin`` ("database", "measured", "predicted", "cost_model", "off", "fallback").
    """
    if isinstance(input, Signature):
        signature = input
        target = torch.device(device if device is not None else signature.device)
    else:
        if weight is None:
            raise TypeError("select() needs a weight tensor (or a Signature)")
        signature = Signature.of(input, weight, bias, stride, padding, dilation, groups)
        target = input.device
    return get_selector().choose(signature, target)


settings.on_change(reset)
