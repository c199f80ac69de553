"""How a strategy's call behaves wherever ``F.conv1d`` is called: one guard for them all.

A strategy is handed calls from autocast regions, degenerate and invalid calls, and calls it
does not compute itself. :func:`guarded_call` gives the tensors autocast's casts (the output
then has autocast's dtype, as ``F.conv1d``'s has), validates the call and answers degenerate,
refused and transformed ones with ``F.conv1d`` itself
(:func:`~autoconv.signature.signature_or_answer`), answers those the strategy declines with
``F.conv1d`` too, and runs the strategy's own computation on the rest, with autocast off.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from autoconv import contexts, plain
from autoconv.signature import PaddingArg, Signature, signature_or_answer
from autoconv.strategies.work import HALF_DTYPES

#: ``(input, weight, bias, signature) -> output``: a strategy's own computation, on tensors
#: already cast by autocast, for a validated call it computes; the input always batched,
#: ``(B, C, L)`` (:func:`batched`), the output ``(B, O, L_out)``.
Compute = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Signature], torch.Tensor]


def batched(input: torch.Tensor) -> torch.Tensor:
    """``input`` as a batch: an unbatched ``(C, L)`` call as one row (its signature already
    says ``batch=1``)."""
    return input.unsqueeze(0) if input.dim() == 2 else input


def padded_input(input: torch.Tensor, signature: Signature) -> torch.Tensor:
    """``input`` zero-padded by the call's padding on each side (itself when there is none)."""
    left, right = signature.padding_left, signature.padding_right
    return F.pad(input, (left, right)) if left or right else input


def computes_all(signature: Signature) -> bool:
    """Default for :func:`guarded_call`: every valid, non-degenerate call."""
    return True


def half_in_float32(compute: Compute) -> Compute:
    """``compute`` as it runs a half-precision (float16, bfloat16) call: on the input, weight
    and bias converted to float32 (exactly: every half value is a float32 value), the output
    rounded once to the call's dtype, the sums oneDNN's half kernels form too (they accumulate
    in float32). Gradients come back through the conversions, each in its own tensor's dtype.
    Calls in other dtypes run ``compute`` as it is."""
    def computed(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 signature: Signature) -> torch.Tensor:
        if signature.dtype not in HALF_DTYPES:
            return compute(input, weight, bias, signature)
        b = None if bias is None else bias.float()
        return compute(input.float(), weight.float(), b, signature).to(input.dtype)
    return computed


def guarded_call(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 stride: int | tuple[int], padding: PaddingArg, dilation: int | tuple[int],
                 groups: int, compute: Compute,
                 computes: Callable[[Signature], bool] = computes_all) -> torch.Tensor:
    """``compute(input, weight, bias, signature)`` where the strategy ``computes`` the call,
    ``F.conv1d``'s own answer (or error) everywhere else (see the module docstring).

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    input, weight, bias, autocast_device = contexts.autocast_inputs(input, weight, bias)
    with contexts.autocast_off(autocast_device):
        s = signature_or_answer(input, weight, bias, stride, padding, dilation, groups)
        if isinstance(s, torch.Tensor):  # F.conv1d's answer
            return s
        if not computes(s):
            return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
        out = compute(batched(input), weight, bias, s)
        return out[0] if input.dim() == 2 else out
