"""``autoconv.conv1d`` and ``autoconv.select``: the functional drop-in for ``F.conv1d``.

Thin on purpose: outside ``torch.compile`` a call goes to the process-wide dispatch
(:mod:`autoconv.runtime.dispatch`: a key, one dict lookup, the strategy); while
``torch.compile`` traces, it becomes one custom op (:mod:`autoconv.runtime.custom_op`).
"""

from __future__ import annotations

import torch

from autoconv.choice import Choice
from autoconv.runtime import dispatch
from autoconv.signature import PaddingArg, Signature, call_signature

#: ``F.conv1d``'s drop-in (defined with the dispatch it runs, so a call is one Python frame).
conv1d = dispatch.conv1d
#: :func:`conv1d` reusing an FFT weight spectrum from a cache (``autoconv.Conv1d``'s forward).
conv1d_cached = dispatch.conv1d_cached


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
        signature = call_signature(input, weight, bias, stride, padding, dilation, groups)
        target = input.device
    return dispatch.dispatcher.choose(signature, target)
