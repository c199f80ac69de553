"""The ``upcast`` strategy: a half-precision call computed by ``F.conv1d`` in float32.

On a CPU without native half-precision convolution kernels (AVX2 machines: no AVX-512 BF16
or AMX), oneDNN runs ``F.conv1d`` in bfloat16 or float16 on a slow path, 10 to 40 times
slower than the same convolution in float32 on dense layers, 3 to 9 times on depthwise ones
(``scripts/bench_layers.py --dtype bfloat16``, ``benchmarks/layers-bf16-cpu.md``). That is what
every conv1d runs under ``torch.autocast("cpu")``. Here the input, weight and bias are
converted to float32 (exactly: every half value is a float32 value), ``F.conv1d`` runs in
float32 (optionally on the input padded first, as ``direct(pre_pad=1)``), and the output is
rounded once to the call's dtype. oneDNN's half kernels accumulate in float32 too, so the
result is the same sums rounded the same way, within float32 rounding of the order.

Gradients flow through the conversions: the input's and weight's gradients come back in
their own dtype, as ``F.conv1d``'s do. Offered for float16 and bfloat16 calls only; a call in
another dtype gets ``F.conv1d``'s answer. On a CPU or GPU with fast half kernels it simply
loses the measurement (two conversions and twice the memory traffic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.direct_conv import bind_direct, direct_param_grid, direct_work
from autoconv.strategies.guard import guarded_call, half_in_float32
from autoconv.strategies.registry import check_int, check_names
from autoconv.strategies.work import HALF_DTYPES, Work, conversion_elements


def supports(signature: Signature) -> bool:
    """Half-precision calls only (in float32 or float64 it would be ``direct`` itself)."""
    return signature.dtype in HALF_DTYPES


def upcast(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | tuple[int] = 1, padding: PaddingArg = 0,
           dilation: int | tuple[int] = 1, groups: int = 1, *, pre_pad: int = 0
           ) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)`` computed in
    float32 and rounded to the call's dtype (with ``pre_pad=1``, on the input padded first).
    Under autocast the tensors get autocast's casts first, as ``F.conv1d``'s do; calls in
    other dtypes, degenerate and refused calls get ``F.conv1d``'s own answer.

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    def direct(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
               s: Signature) -> torch.Tensor:
        return bind_direct({"pre_pad": pre_pad})(x, w, b, stride, padding, dilation, groups)

    return guarded_call(input, weight, bias, stride, padding, dilation, groups,
                        half_in_float32(direct), supports)


def upcast_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """``direct``'s work in float32 with the same parameters, plus the conversions: the
    input, weight and output each read once and written once in the other precision."""
    direct = direct_work(dataclasses.replace(signature, dtype="float32"), params)
    return Work.of(**{**dict(direct.values), "calls": direct["calls"] + 3,
                      "elements": direct["elements"] + conversion_elements(signature)})


def check_upcast_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """Only ``pre_pad``, 0 or 1, as ``direct``.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, {"pre_pad"}, "upcast")
    check_int(params, "pre_pad", 0, 1)


#: The parameter sets worth timing: ``direct``'s (padding first when the call pads).
upcast_param_grid = direct_param_grid
