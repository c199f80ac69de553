"""The direct-gradients strategy: a depthwise layer whose gradients are forward convolutions.

On the CPU, oneDNN's depthwise convolutions are fast forward and slow backward: a Conformer's
31-tap depthwise layer (256 channels, 250 frames) ran forward in 0.17 ms on its input padded
first, and its backward took 0.72 ms more. Both gradients of a depthwise, stride-1 layer are
depthwise correlations themselves, which the forward kernels run:

* the input's gradient is the output's gradient, padded by ``dilation * (K - 1)`` less the
  call's padding on each side (cropped where that is negative), correlated with the flipped
  taps (each channel's ``m`` outputs summed into it: a group of ``m`` inputs);
* the taps' gradient correlates the padded input with the output's gradient as a kernel of
  ``L_out`` taps, every batch row's channel a group of its own (``B * C`` groups, the taps
  read every ``dilation``-th lag), summed over the batch afterwards;
* the bias's, the output's gradient summed over batch and time.

There the backward took 0.28 ms (0.15 and 0.13); a whole training step (forward and
backward) on 512 channels of 1000 samples and 15 taps took 3.5 ms, against 7.4 ms on the
input padded first and 7.8 ms through ``F.conv1d``. The forward is ``F.conv1d`` on the input padded first, as
``direct(pre_pad=1)`` computes it (the same sums). Where batch rows are many and long, the
long-kernel correlation of the taps' gradient can be the slower one: the tuner measures.

Offered for depthwise (``groups == in_channels``, any channel multiplier), stride-1 calls
in float32 and float64 that need gradients: without them it is ``direct(pre_pad=1)``. Other
calls get ``F.conv1d``'s answer. Under ``create_graph`` the backward's convolutions are
recorded like any others, so higher derivatives are theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from autoconv import plain
from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.direct_conv import conv_padded_first
from autoconv.strategies.guard import guarded_call, padded_input
from autoconv.strategies.work import Work, convolution_work

#: The dtypes it computes (oneDNN's half-precision depthwise kernels are another matter).
DTYPES = frozenset({"float32", "float64"})


def computes(signature: Signature) -> bool:
    """Whether it computes ``signature`` itself: depthwise, stride 1, float32 or float64."""
    s = signature
    return s.groups == s.in_channels and s.stride == 1 and s.dtype in DTYPES


def supports(signature: Signature) -> bool:
    """Whether it is worth timing: a call it computes that needs gradients (without them
    it is ``direct(pre_pad=1)``, already a candidate)."""
    return computes(signature) and signature.requires_grad


def _input_grad(grad: torch.Tensor, weight: torch.Tensor, s: Signature) -> torch.Tensor:
    """The input's gradient: the output's gradient correlated with the flipped taps."""
    reach = s.dilation * (s.kernel_size - 1)
    padded = F.pad(grad, (reach - s.padding_left, reach - s.padding_right))
    multiplier = s.out_channels // s.in_channels
    flipped = weight.flip(-1).reshape(s.in_channels, multiplier, s.kernel_size)
    return plain.conv1d(padded, flipped, None, 1, 0, s.dilation, s.in_channels)


def _weight_grad(grad: torch.Tensor, x: torch.Tensor, s: Signature) -> torch.Tensor:
    """The taps' gradient: the padded input correlated with the output's gradient, each
    batch row's channel a group."""
    rows = x.shape[0] * s.in_channels
    inputs = padded_input(x, s).reshape(1, rows, -1)
    kernels = grad.reshape(rows * (s.out_channels // s.in_channels), 1, s.output_length)
    lags = plain.conv1d(inputs, kernels, None, s.dilation, 0, 1, rows)
    return lags.view(x.shape[0], s.out_channels, s.kernel_size).sum(0).unsqueeze(1)


class _DirectGrads(torch.autograd.Function):
    """The forward, with both gradients as forward convolutions (see the module
    docstring)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                signature: Signature) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.signature = signature
        return conv_padded_first(x, weight, bias, signature)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        s: Signature = ctx.signature
        wants_x, wants_weight, wants_bias, _ = ctx.needs_input_grad
        grad = grad.contiguous()
        return (_input_grad(grad, weight, s) if wants_x else None,
                _weight_grad(grad, x, s) if wants_weight else None,
                grad.sum((0, 2)) if wants_bias else None, None)


def _direct_grads(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  s: Signature) -> torch.Tensor:
    """A call :func:`computes` takes, recorded for autograd when it needs gradients."""
    x = input.contiguous()
    if s.requires_grad:
        return _DirectGrads.apply(x, weight, bias, s)
    return conv_padded_first(x, weight, bias, s)


def direct_grads(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)`` for a depthwise,
    stride-1 layer, its gradients computed by forward convolutions (see the module
    docstring). Degenerate and refused calls, and calls it does not compute, get
    ``F.conv1d``'s own answer; under autocast the tensors get autocast's casts first.

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    return guarded_call(input, weight, bias, stride, padding, dilation, groups, _direct_grads,
                        computes)


def direct_grads_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """The forward's work: a direct convolution left no padding, after a padded copy of the
    input (the cost model scales a call that needs gradients itself)."""
    s = signature
    copied = s.batch * s.in_channels * s.padded_length if s.padding_left or s.padding_right \
        else 0
    return convolution_work(s, 0, copied)
