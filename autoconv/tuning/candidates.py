"""What the tuner times: candidates, synthetic inputs, and the correctness check.

Tuning never runs on the user's tensors: it builds random inputs of the signature's shape on
the call's device, so that measuring has no side effect and a bucketed signature can be
measured at its representative length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from autoconv import plain
from autoconv.signature import Signature, resolve_padding
from autoconv.strategies import SpectrumCache, Strategy, freeze_params
from autoconv.strategies.streaming import StreamStrategy

#: A conv1d strategy, or a streaming one (candidates of a stream's signature).
AnyStrategy = Strategy | StreamStrategy

#: Largest error, relative to the largest magnitude of the direct output, that a candidate may
#: show before it is disqualified, per dtype.
DEFAULT_TOLERANCE = {"float64": 1e-7, "float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

#: Outputs compared against a windowed direct reference when direct itself is too slow to run.
REFERENCE_WINDOW = 64


@dataclass(frozen=True)
class Candidate:
    """One (strategy, parameters) pair to time for a signature (a streaming strategy for a
    stream's signature)."""

    strategy: AnyStrategy
    params: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def is_plain_conv1d(self) -> bool:
        """Whether this candidate is ``F.conv1d`` exactly as called."""
        return self.strategy.is_plain_conv1d(dict(self.params))

    @property
    def label(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.name}({params})" if params else self.name


def enumerate_candidates(strategies: Iterable[AnyStrategy], signature: Signature
                         ) -> list[Candidate]:
    """Every strategy that supports ``signature``, at every parameter set worth trying for it,
    in registry order."""
    return [Candidate(strategy, freeze_params(params))
            for strategy in strategies if strategy.supports(signature)
            for params in strategy.param_grid(signature)]


@dataclass
class ConvInputs:
    """Random tensors with a signature's shapes, and the call's remaining arguments."""

    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    signature: Signature

    @classmethod
    def random(cls, signature: Signature, device: torch.device, *, bias: bool = True,
               seed: int = 0) -> ConvInputs:
        """Inputs for ``signature`` on ``device``; ``requires_grad`` as the signature says."""
        generator = torch.Generator().manual_seed(seed)
        dtype = getattr(torch, signature.dtype)
        s = signature

        def make(*shape: int, scale: float = 1.0) -> torch.Tensor:
            values = torch.randn(*shape, generator=generator) * scale
            return values.to(device=device, dtype=dtype).requires_grad_(s.requires_grad)

        fan_in = (s.in_channels // s.groups) * s.kernel_size
        return cls(make(s.batch, s.in_channels, s.length),
                   make(s.out_channels, s.in_channels // s.groups, s.kernel_size,
                        scale=fan_in ** -0.5),
                   make(s.out_channels) if bias else None, signature)

    @property
    def _same(self) -> bool:
        """Whether the padding is asymmetric and exactly what ``padding='same'`` gives: the
        one way a call has asymmetric padding, which F.conv1d then handles itself (padding
        the odd sample, then convolving with the smaller side as its own padding)."""
        s = self.signature
        return (s.padding_left != s.padding_right and s.stride == 1
                and resolve_padding("same", s.kernel_size, s.dilation, 1)
                == (s.padding_left, s.padding_right))

    @property
    def args(self) -> tuple[Any, ...]:
        """Positional arguments after input/weight/bias: stride, padding, dilation, groups."""
        s = self.signature
        if self._same:
            return s.stride, "same", s.dilation, s.groups
        padding = s.padding_left if s.padding_left == s.padding_right else 0
        return s.stride, padding, s.dilation, s.groups

    def padded_input(self) -> torch.Tensor:
        """The input, zero-padded first where the padding is asymmetric and not 'same'
        (a signature no call makes, but a stored one may name)."""
        s = self.signature
        if s.padding_left == s.padding_right or self._same:
            return self.input
        return F.pad(self.input, (s.padding_left, s.padding_right))

    def run(self, fn: Callable[..., torch.Tensor]) -> torch.Tensor:
        """``fn(input, weight, bias, stride, padding, dilation, groups)`` on these inputs."""
        return fn(self.padded_input(), self.weight, self.bias, *self.args)

    def leading_as_called(self, window: int) -> tuple[torch.Tensor, int]:
        """``F.conv1d`` exactly as called (the same padding argument: oneDNN takes another,
        much slower path for a long padding than for an input padded beforehand), on the
        shortest prefix of the input whose call gives at least ``window`` of the call's own
        leading outputs.

        Returns:
            (those leading outputs, how many outputs the shortened call computed: its time is
            theirs).
        """
        s = self.signature
        stride, padding, dilation, groups = self.args
        left = s.padding_left if (self._same or padding) else 0
        length = max(1, min(s.length, (window - 1) * stride + s.span - left))
        x = self.padded_input()
        if x is not self.input:  # padded beforehand: the call as made has no padding
            length = min(x.shape[-1], (window - 1) * stride + s.span)
        with torch.no_grad():
            output = plain.conv1d(x[..., :length], self.weight, self.bias, stride, padding,
                                  dilation, groups)
        whole = x is not self.input or length >= s.length
        valid = output.shape[-1] if whole else (left + length - s.span) // stride + 1
        return output[..., :max(0, min(valid, output.shape[-1]))], output.shape[-1]

    def reference(self, *, window: int | None = None) -> torch.Tensor:
        """The direct output, or only its first ``window`` outputs (cheap for huge kernels)."""
        x = self.padded_input()
        stride, padding, dilation, groups = self.args
        with torch.no_grad():
            if window is None or window >= self.signature.output_length:
                return plain.conv1d(x, self.weight, self.bias, stride, padding, dilation, groups)
            left, right = ((self.signature.padding_left, self.signature.padding_right)
                           if self._same else (padding, padding))
            x = F.pad(x, (left, right))
            needed = (window - 1) * stride + self.signature.span
            return plain.conv1d(x[..., :needed], self.weight, self.bias, stride, 0, dilation,
                                groups)


@dataclass(frozen=True)
class Reference:
    """The direct output candidates are checked against, and its largest magnitude.

    Built once per tuning, and compared in the outputs' own precision: converting both outputs
    of a many-channel layer to float64 for every candidate cost a large share of a first
    call's budget.
    """

    output: torch.Tensor
    scale: float

    @classmethod
    def of(cls, output: torch.Tensor) -> Reference:
        output = output.detach()
        return cls(output, _widened(output).abs().max().item() if output.numel() else 0.0)

    def error(self, output: torch.Tensor) -> float:
        """max |output - reference| / max |reference|, over the reference's leading outputs
        (NaN if the output holds a NaN)."""
        output = output[..., : self.output.shape[-1]].detach()
        if output.shape != self.output.shape:
            return math.inf  # not the call's output at all
        if not output.numel():
            return 0.0
        difference = (_widened(output) - _widened(self.output)).abs().max().item()
        return difference / self.scale if self.scale != 0.0 else difference


def _widened(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors in float32 for the check; float32 and float64 as they are."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class CandidateCall:
    """One candidate bound to the tuning inputs, as the timer sees it: calling it runs the
    convolution once (forward, plus backward when the signature needs gradients: the time
    that decides is then forward + backward) and returns the output. For a signature whose
    weight is reused (:attr:`Signature.weight_reused`), a strategy that takes a spectrum
    cache keeps one across its calls, as a layer does, filled by :meth:`prime`.

    Attributes:
        candidate: what it runs (a fake timer in a test tells calls apart by it).
    """

    __slots__ = ("_cache", "_run", "candidate")

    def __init__(self, candidate: Candidate, inputs: ConvInputs) -> None:
        self.candidate = candidate
        self._cache = (SpectrumCache.of_layer() if inputs.signature.weight_reused
                       and candidate.strategy.takes_spectrum_cache else None)
        self._run = _bind(candidate, inputs, self._cache)

    def __call__(self) -> torch.Tensor:
        return self._run()

    def prime(self) -> None:
        """Do the one-time work a layer does once, not on every call (its weight's spectra,
        when it keeps them), so that no timed call, the first included, pays for it; nothing
        for other candidates."""
        if self._cache is not None:
            self._run()


def _bind(candidate: Candidate, inputs: ConvInputs, cache: SpectrumCache | None
          ) -> Callable[[], torch.Tensor]:
    fn = candidate.strategy.run
    params: dict[str, Any] = dict(candidate.params)
    if cache is not None:  # a layer's weight: its spectra kept across calls, as it keeps them
        params["spectrum_cache"] = cache

    def forward() -> torch.Tensor:
        return inputs.run(lambda *a: fn(*a, **params))

    if not inputs.signature.requires_grad:
        def call() -> torch.Tensor:
            with torch.no_grad():
                return forward()
        return call
    leaves = [t for t in (inputs.input, inputs.weight, inputs.bias) if t is not None]

    def call_with_backward() -> torch.Tensor:
        output = forward()
        torch.autograd.grad(output, leaves, torch.ones_like(output))
        return output.detach()

    return call_with_backward
