"""``autoconv.conv1d``, ``autoconv.select`` and ``autoconv.explain``: the functional drop-in
for ``F.conv1d``, and what it chooses.

Thin on purpose: outside ``torch.compile`` a call goes to the process-wide dispatch
(:mod:`autoconv.runtime.dispatch`: a key, one dict lookup, the strategy); while
``torch.compile`` traces, it becomes one custom op (:mod:`autoconv.runtime.custom_op`).
"""

from __future__ import annotations

import torch

from autoconv.choice import Choice
from autoconv.runtime import dispatch
from autoconv.signature import PaddingArg, Signature, call_signature
from autoconv.tuning.explanation import Explanation
from autoconv.tuning.explanation import explain as explain_choice

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


def explain(input: torch.Tensor | Signature, weight: torch.Tensor | None = None,
            bias: torch.Tensor | None = None, stride: int | tuple[int] = 1,
            padding: PaddingArg = 0, dilation: int | tuple[int] = 1, groups: int = 1, *,
            device: torch.device | str | None = None) -> Explanation:
    """:func:`select`, with the evidence: every candidate measured for the call's signature
    (median, spread, samples, speed-up over ``F.conv1d`` when it was timed), and whether the
    decision is provisional and why. ``print(autoconv.explain(x, w).format())`` shows it.

    Arguments as for :func:`select` (in mode ``tune`` an unseen signature is measured first).

    Returns:
        An :class:`~autoconv.tuning.explanation.Explanation`.
    """
    choice = select(input, weight, bias, stride, padding, dilation, groups, device=device)
    if isinstance(input, Signature):
        signature = input
        target = torch.device(device if device is not None else signature.device)
    else:
        signature = call_signature(input, weight, bias, stride, padding, dilation, groups)
        target = input.device
    return explain_choice(dispatch.dispatcher.selector, signature, target, choice)
