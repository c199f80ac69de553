"""Helpers for the strategy tests: random conv1d calls, the reference and the tolerance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from autoconv.signature import Signature
from autoconv.strategies import all_strategies

STRATEGIES = all_strategies()
#: Relative tolerance (to the output's largest magnitude) per compute dtype.
RTOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}


@dataclass
class Call:
    """One conv1d call: tensors and arguments, ready for ``F.conv1d`` or a strategy."""

    x: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor | None
    stride: Any
    padding: Any
    dilation: Any
    groups: int

    @property
    def args(self) -> tuple:
        return (self.x, self.w, self.b, self.stride, self.padding, self.dilation, self.groups)

    def signature(self) -> Signature:
        return Signature.of(*self.args)


def make_call(batch: int | None, groups: int, cin: int, cout: int, length: int, kernel: int,
              stride: int = 1, padding: Any = 0, dilation: int = 1, bias: bool = True,
              dtype: torch.dtype = torch.float64, device: str = "cpu", seed: int = 0) -> Call:
    """Random tensors for a conv1d with ``cin``/``cout`` channels per group."""
    gen = torch.Generator().manual_seed(seed)
    shape = (groups * cin, length) if batch is None else (batch, groups * cin, length)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    w = torch.randn(groups * cout, cin, kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(groups * cout, generator=gen, dtype=torch.float64) if bias else None
    w = w.to(dtype=dtype, device=device)
    b = b.to(dtype=dtype, device=device) if bias else None
    return Call(x, w, b, stride, padding, dilation, groups)


@st.composite
def conv_calls(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> Call:
    """Hypothesis strategy: a valid conv1d call, covering every argument form F.conv1d takes."""
    groups = draw(st.sampled_from([1, 1, 2, 3, 4]))
    depthwise = groups > 1 and draw(st.booleans())
    cin = 1 if depthwise else draw(st.integers(1, 4))
    cout = draw(st.integers(1, 3)) if depthwise else draw(st.integers(1, 4))
    kernel = draw(st.integers(1, 12))
    dilation = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 4))
    choices = ["int", "tuple", "valid"] + (["same"] if stride == 1 else [])
    kind = draw(st.sampled_from(choices))
    pad = draw(st.integers(0, 6))
    padding = {"int": pad, "tuple": (pad,), "valid": "valid", "same": "same"}[kind]
    span = dilation * (kernel - 1) + 1
    total_pad = 2 * pad if kind in ("int", "tuple") else (span - 1 if kind == "same" else 0)
    length = draw(st.integers(max(1, span - total_pad), span + 60))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    dilation_arg = draw(st.sampled_from([dilation, (dilation,)]))
    return make_call(batch, groups, cin, cout, length, kernel, stride, padding, dilation_arg,
                     bias=draw(st.booleans()), dtype=dtype, seed=draw(st.integers(0, 2**16)))


def magnitude(call: Call) -> float:
    """The largest output any placement of the call's inputs could give: max|x| times the
    largest sum of |w| over one output channel, plus max|b|.

    Rounding errors of an FFT convolution scale with this, not with each output's own value:
    every output mixes the whole signal, so an output where ``F.conv1d`` gives exactly 0 (all
    its taps on padding) comes back as ~1e-16 x this, which is no error at float64 precision.
    """
    if call.x.numel() == 0 or call.w.numel() == 0:
        return 0.0
    weight = call.w.double().abs().sum(dim=(1, 2)).max().item()
    bias = call.b.double().abs().max().item() if call.b is not None else 0.0
    return call.x.double().abs().max().item() * weight + bias


def assert_close(out: torch.Tensor, ref: torch.Tensor, rtol: float,
                 call: Call | None = None) -> None:
    """Same shape and dtype; max abs error within ``rtol`` of the reference's largest value
    (or, given the ``call``, of its :func:`magnitude`, when that is larger)."""
    assert out.shape == ref.shape
    assert out.dtype == ref.dtype
    scale = max(ref.abs().max().item(), magnitude(call) if call is not None else 0.0, 1e-30)
    err = (out.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} x {scale:.3g}"


def reference(call: Call) -> torch.Tensor:
    """``F.conv1d`` on the call (the truth every strategy matches)."""
    with warnings.catch_warnings():  # its note that 'same' with an even kernel copies
        warnings.simplefilter("ignore", UserWarning)
        return F.conv1d(*call.args)
