"""The direct strategy: ``F.conv1d`` (oneDNN on CPU, cuDNN on CUDA), optionally on an input
padded beforehand.

With no parameters ``direct`` runs ``torch.nn.functional.conv1d`` itself, not a wrapper around
it: the reference every other strategy matches, and, when it wins, what a tuned call runs with
no extra Python frame (:func:`bind_direct`).

With ``pre_pad=1`` it pads the input with zeros first (``F.pad``) and calls ``F.conv1d`` with
no padding: the same sums in the same order. On CPU this can be many times faster, because
oneDNN's JIT convolution kernels accept only a few samples of padding (a handful, on the
oneDNN builds seen so far); a call with more padding, such as "same" padding of any kernel
longer than about 9 taps, falls back to an im2col + GEMM path, many times slower on
depthwise and single-channel layers (``scripts/bench_padding.py``; figures in
``benchmarks/padding-cpu.md``). Where the padding is small, padding first only adds a copy
and loses, so the tuner measures both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from autoconv import plain
from autoconv.signature import PaddingArg, Signature, signature_or_answer
from autoconv.strategies.guard import padded_input
from autoconv.strategies.registry import check_int, check_names, time_domain_work
from autoconv.strategies.work import Work, convolution_work


def padded_first(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d`` on the input zero-padded beforehand (then with no padding of its own).

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    signature = signature_or_answer(input, weight, bias, stride, padding, dilation, groups)
    if isinstance(signature, torch.Tensor):  # F.conv1d's answer: degenerate or refused
        return signature
    return conv_padded_first(input, weight, bias, signature)


def conv_padded_first(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      signature: Signature) -> torch.Tensor:
    """``F.conv1d`` of a validated call (``signature``) on its input padded beforehand."""
    s = signature
    return plain.conv1d(padded_input(input, s), weight, bias, s.stride, 0, s.dilation, s.groups)


def direct(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | tuple[int] = 1, padding: PaddingArg = 0,
           dilation: int | tuple[int] = 1, groups: int = 1, *, pre_pad: int = 0
           ) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)``; with
    ``pre_pad=1``, computed on the input padded beforehand (see the module docstring)."""
    return bind_direct({"pre_pad": pre_pad})(input, weight, bias, stride, padding, dilation,
                                             groups)


def bind_direct(params: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """The callable for ``direct`` with ``params``: ``F.conv1d`` itself when not padding
    first."""
    return padded_first if params.get("pre_pad") else plain.conv1d


def direct_param_grid(signature: Signature) -> list[dict[str, Any]]:
    """``F.conv1d`` as called, and, when the call pads, padding first."""
    if signature.padding_left or signature.padding_right:
        return [{}, {"pre_pad": 1}]
    return [{}]


def direct_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """``F.conv1d``'s work; padding first leaves it no padding and copies the input once."""
    if params.get("pre_pad"):
        return convolution_work(signature, 0, signature.batch * signature.in_channels
                                * signature.padded_length)
    return time_domain_work(signature, params)


def check_direct_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """Only ``pre_pad``, 0 or 1.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, {"pre_pad"}, "direct")
    check_int(params, "pre_pad", 0, 1)
