"""The checks of ``Conv1dStream``'s arguments: each refused with the exception and message
``F.conv1d`` or the stdlib would give, naming the argument."""

from __future__ import annotations

import math
from typing import Any

import torch


def rate(value: Any) -> float | None:
    """A sample rate: None, or a positive finite number of samples per second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Conv1dStream(): sample_rate must be a number of samples per "
                        f"second, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Conv1dStream(): sample_rate must be positive and finite, got "
                         f"{value}")
    return float(value)


def positive_int(value: Any, name: str) -> int:
    """An int of at least 1 (a one-element tuple or list of one: a module's ``(d,)``)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Conv1dStream(): {name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"Conv1dStream(): {name} must be at least 1, got {value}")
    return value


def check_bias(bias: torch.Tensor | None, weight: torch.Tensor, where: str) -> None:
    """None, or ``(C_out,)`` of the weight's dtype and device."""
    out_channels = weight.shape[0]
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (out_channels,)
                             or bias.dtype != weight.dtype or bias.device != weight.device):
        got = (f"{list(bias.shape)} ({bias.dtype}, {bias.device})"
               if isinstance(bias, torch.Tensor) else type(bias).__name__)
        raise ValueError(f"{where}: bias must be ({out_channels},) of the weight's dtype and "
                         f"device ({weight.dtype}, {weight.device}), got {got}")


def copied(weight: torch.Tensor, bias: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Detached copies, ordinary tensors even under ``torch.inference_mode``."""
    with torch.no_grad(), torch.inference_mode(False):
        return (weight.detach().clone(memory_format=torch.contiguous_format),
                None if bias is None else bias.detach().clone())


def count(value: Any, name: str, where: str) -> int:
    """A number of samples, 0 or more.

    Raises:
        ValueError: not an int, or negative.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {name} must be an int >= 0 (samples), got {value!r}")
    return value
