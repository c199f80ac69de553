"""The fused shift-and-add strategy: a depthwise convolution as one kernel generated for its
signature by ``torch.compile`` (Inductor: C++ on the CPU, Triton on a GPU).

:mod:`~autoconv.strategies.shift_add_conv` sums a depthwise layer tap by tap, one pass over
the output per tap; ``F.conv1d``'s depthwise kernels are slow on dilated layers and on
backward. Here the same sums are written for one signature as a few slices and products
(:func:`fused_body`) and handed to Inductor, which fuses them into one loop nest that reads
each input sample and writes each output sample once. The output is cut into the stretch
where every tap falls inside the input, written with plain loads, and the few samples at
either end whose taps reach into the padding, written from padded copies of their windows
(padded loads inside the main loop cost masks on every tap: 2-4x slower). Measured here
(``benchmarks/layers-cpu.md``, run D3: forward, interleaved medians, a 2-core AVX-512 Xeon):
Conv-TasNet's dilated K=3 layer 4.9 ms against 23.3 ms for ``F.conv1d`` and 12.7 ms tap by
tap; Mamba's K=4 layer 1.4 against 3.5 ms; ConvNeXt's K=7 1.2 against 2.1 ms.

Compiling costs seconds: 5-30 s the first time in a process (Inductor's own start), then 1
to 15 s per kernel, or a fraction of a second when Inductor's on-disk cache already holds it
(another process compiled it). A kernel is compiled once per signature and process: the
tuner charges the compile to its budget, and skips the candidate when the compile is not
expected to fit (:data:`PREPARATION`; the default 2 s budget never fits one); the
dispatcher compiles a chosen kernel for the call's own signature on a background thread,
``F.conv1d`` answering the calls until it is built (:mod:`autoconv.runtime.preparing`).
Where no compiler is available (no C++ compiler on the CPU, no Triton on a GPU) the strategy
supports nothing and the tuner never offers it; where Dynamo cannot run, compiling raises
and the tuner records the candidate as failed.

Gradients: a call that records autograd runs the kernel's training graph (AOTAutograd
derives and Inductor compiles its backward), inside :class:`_Compiled`, whose backward runs
that graph's backward; under ``create_graph`` it forms ``F.conv1d``'s own differentiable
gradients instead, so higher derivatives are ``F.conv1d``'s too. The training graph always
takes a bias and asks for every gradient, so one compile serves every call of the
signature. Half-precision calls are summed in float32 inside the kernel and rounded once,
as ``F.conv1d``'s half kernels sum.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import shutil
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from autoconv.signature import PaddingArg, Signature
from autoconv.strategies.direct_conv import conv_padded_first
from autoconv.strategies.guard import batched, guarded_call
from autoconv.strategies.shift_add_conv import is_depthwise, tap_ranges
from autoconv.strategies.work import HALF_DTYPES, Work

#: The longest kernel offered: the body is unrolled tap by tap (three times: the stretch
#: inside the input and both ends), and the compile time grows with it (17 s at K=31).
MAX_TAPS = 32
#: The dtypes it computes (half precision summed in float32).
DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})
#: Compiled kernels kept per process (least recently used dropped beyond it).
KERNEL_CACHE_SIZE = 128
#: What one call of a compiled graph costs before its kernel runs (Dynamo's guards,
#: AOTAutograd's wrapper), in operator calls: 70-100 us here, against about 6 us a call.
CALL_OVERHEAD_CALLS = 15


def computes(signature: Signature) -> bool:
    """Whether the body computes ``signature`` (a depthwise layer of up to :data:`MAX_TAPS`
    taps, in a floating dtype)."""
    return (is_depthwise(signature) and signature.dtype in DTYPES
            and signature.kernel_size <= MAX_TAPS and signature.chunk_size is None)


@functools.cache
def compiler_available(device_type: str) -> bool:
    """Whether ``torch.compile`` has a compiler for ``device_type`` here: a C++ compiler on
    the path (CPU) or Triton installed (CUDA). Checked without importing Dynamo (a second
    on every process's first depthwise tuning); where Dynamo itself cannot run (a Python it
    does not support), compiling raises, and the tuner records the candidate as failed."""
    if device_type == "cpu":
        return any(shutil.which(name) for name in ("g++", "c++", "clang++"))
    if device_type == "cuda":
        from torch.utils._triton import has_triton  # imports Triton: only asked on a GPU
        return has_triton()
    return False


def supports(signature: Signature) -> bool:
    """Depthwise layers it computes, on a device with a compiler (see the module docstring)."""
    return computes(signature) and compiler_available(torch.device(signature.device).type)


@dataclass(frozen=True)
class Part:
    """A stretch of outputs ``[first, first + count)`` and the input window they read:
    samples ``[start, stop)`` of the input, padded with ``pad_left`` and ``pad_right`` zeros
    (both 0 inside the input)."""

    first: int
    count: int
    start: int
    stop: int
    pad_left: int
    pad_right: int


def parts(s: Signature) -> list[Part]:
    """The outputs cut where the taps' reach changes: the stretch that every tap reads inside
    the input (from the first output the first tap reaches to the last the last tap
    reaches: :func:`~autoconv.strategies.shift_add_conv.tap_ranges`), and the outputs before
    and after it (none when empty)."""
    span = (s.kernel_size - 1) * s.dilation
    reach = {r.tap: r for r in tap_ranges(s)}
    head, tail = reach.get(0), reach.get(s.kernel_size - 1)
    if head is not None and tail is not None and head.first < tail.first + tail.count:
        inner = (head.first, tail.first + tail.count)
    else:  # no output has every tap inside the input: one padded stretch
        inner = (s.output_length, s.output_length)
    cuts = [(0, inner[0]), inner, (inner[1], s.output_length)]
    result = []
    for first, end in cuts:
        if end <= first:
            continue
        low = first * s.stride - s.padding_left  # the first sample the stretch reads
        high = (end - 1) * s.stride - s.padding_left + span + 1  # one past its last
        if high <= 0 or low >= s.length:  # every tap on padding
            result.append(Part(first, end - first, 0, 0, high - low, 0))
        else:
            start, stop = max(low, 0), min(high, s.length)
            result.append(Part(first, end - first, start, stop, start - low, high - stop))
    return result


def fused_body(s: Signature) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                         torch.Tensor]:
    """The computation for ``s`` as plain tensor operations, for Inductor to fuse: ``(x,
    weight, bias)`` with ``x`` ``(B, C, L)`` contiguous, ``weight`` ``(C * m, 1, K)`` and
    ``bias`` ``(C * m,)`` give ``F.conv1d``'s output ``(B, C * m, L_out)`` (see the module
    docstring). It also runs as it is, uncompiled (the tests' way to check it quickly)."""
    cuts = parts(s)
    m, taps, stride, dilation = s.out_channels // s.in_channels, s.kernel_size, s.stride, s.dilation
    half = s.dtype in HALF_DTYPES

    def body(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if half:
            x, weight, bias = x.float(), weight.float(), bias.float()
        # (B, C * m, L), each channel's input seen m times (an index for Inductor, a copy
        # uncompiled): 4-D forms with a dimension of size 1 or m led Inductor to lay the
        # output out time-major and transpose it after, 2-6x slower
        batch, channels, length = x.shape
        xs = x if m == 1 else x.unsqueeze(2).expand(-1, -1, m, -1).reshape(
            batch, channels * m, length)
        w, b = weight.reshape(channels * m, taps), bias.reshape(channels * m, 1)
        pieces = []
        for part in cuts:
            window = xs[..., part.start:part.stop]
            if part.pad_left or part.pad_right:
                window = F.pad(window, (part.pad_left, part.pad_right))
            total = b
            for k in range(taps):
                first = k * dilation
                tap = window[..., first:first + stride * (part.count - 1) + 1:stride]
                total = total + tap * w[..., k:k + 1]
            pieces.append(total.to(dtype))
        return torch.cat(pieces, -1) if len(pieces) > 1 else pieces[0]

    return body


def inductor_compile(body: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``body`` compiled by ``torch.compile`` for its one signature: static shapes, one
    graph. Each body gets a code object of its own, numbered in its name: Dynamo keeps its
    compiled graphs, and its recompile limit (8), per code object, so one signature's
    graphs never count against another's (20 signatures compiled in one process all ran
    compiled here), and Dynamo's logs tell the kernels apart."""
    name = f"{body.__name__}_{next(_BODY_NUMBERS)}"
    own = types.FunctionType(body.__code__.replace(co_name=name, co_qualname=name),
                             body.__globals__, name, body.__defaults__, body.__closure__)
    return torch.compile(own, dynamic=False, fullgraph=True)


#: Numbers the compiled bodies' code objects apart (:func:`inductor_compile`).
_BODY_NUMBERS = itertools.count()


#: How bodies are compiled: :func:`inductor_compile`; the tests run them uncompiled.
compile_kernel: Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]] = \
    inductor_compile


class Kernel:
    """One signature's compiled body and whether its graphs are built yet (the first call
    of each, inference and training, compiles it)."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.run = compile_kernel(fused_body(signature))
        self.built: set[bool] = set()  # True: the training graph, False: inference
        self.lock = threading.Lock()

    def inputs(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The tensors as every graph of the kernel takes them: contiguous, a bias always
        (zeros when the call has none)."""
        if bias is None:
            bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
        return x.contiguous(), weight.contiguous(), bias

    def build(self, training: bool, x: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor) -> None:
        """Compile the graph for ``training`` (forward and backward) on these tensors'
        kind, once; seconds the first time (see the module docstring)."""
        with self.lock:
            if training in self.built:
                return
            with _compile_settings():
                if training:
                    leaves = [t.detach().requires_grad_() for t in (x, weight, bias)]
                    with torch.enable_grad():
                        out = self.run(*leaves)
                        torch.autograd.grad(out, leaves, torch.ones_like(out))
                else:
                    with torch.no_grad():
                        self.run(x, weight, bias)
            self.built.add(training)


@contextlib.contextmanager
def _compile_settings() -> Iterator[None]:
    """Inductor and AOTAutograd set for these kernels while they compile: in this process,
    without starting a pool of worker processes in the caller's program; and no buffer of
    the backward donated (reused in place), which would refuse a second backward through
    the same graph (``retain_graph``, which :class:`_Compiled` needs)."""
    import torch._inductor.config as inductor_config  # heavy: imported when first used

    with inductor_config.patch(compile_threads=1), _no_donated_buffers():
        yield


def _no_donated_buffers() -> Any:
    """AOTAutograd's ``donated_buffer`` off: read when a graph compiles, and again when its
    backward runs (a graph compiled with it off records no donated buffers, which a
    backward with it on takes for "some")."""
    import torch._functorch.config as functorch_config  # heavy: imported when first used

    return functorch_config.patch(donated_buffer=False)


class KernelCache:
    """The compiled kernels of this process, by signature, the least recently used dropped
    beyond :data:`KERNEL_CACHE_SIZE`; and how long compiling took (the tuner's estimate)."""

    #: Seconds assumed for a compile before one was measured in this process (Inductor's
    #: start-up included: 5-30 s the first time here, 1-15 s per kernel after).
    FIRST_ESTIMATE_S = 10.0

    def __init__(self) -> None:
        self._kernels: OrderedDict[Signature, Kernel] = OrderedDict()
        self._lock = threading.Lock()
        self.compile_seconds: list[float] = []

    def kernel(self, signature: Signature) -> Kernel:
        """The kernel of ``signature`` (made, not yet built, on a miss)."""
        with self._lock:
            kernel = self._kernels.get(signature)
            if kernel is None:
                kernel = self._kernels[signature] = Kernel(signature)
                while len(self._kernels) > KERNEL_CACHE_SIZE:
                    self._kernels.popitem(last=False)
            else:
                self._kernels.move_to_end(signature)
            return kernel

    def is_built(self, signature: Signature) -> bool:
        """Whether the graph ``signature`` needs (training or not) is compiled already."""
        kernel = self._kernels.get(signature)
        return kernel is not None and signature.requires_grad in kernel.built

    def estimate_s(self, signature: Signature) -> float:
        """Seconds compiling ``signature``'s graph is expected to take: 0 when built, else
        the median of this process's compiles so far (doubled for a training graph)."""
        if self.is_built(signature):
            return 0.0
        done = sorted(self.compile_seconds)
        typical = done[len(done) // 2] if done else self.FIRST_ESTIMATE_S
        return typical * (2 if signature.requires_grad else 1)

    def build(self, signature: Signature, x: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor | None) -> Kernel:
        """The kernel of ``signature`` with the graph it needs compiled (timed on a miss)."""
        kernel = self.kernel(signature)
        training = signature.requires_grad
        if training not in kernel.built:
            started = time.perf_counter()
            kernel.build(training, *kernel.inputs(x, weight, bias))
            self.compile_seconds.append((time.perf_counter() - started)
                                        / (2 if training else 1))
        return kernel


KERNELS = KernelCache()


class _Compiled(torch.autograd.Function):
    """The training graph's forward, and its backward (or ``F.conv1d``'s differentiable one
    under ``create_graph``): see the module docstring."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                kernel: Kernel) -> torch.Tensor:
        leaves = [t.detach().requires_grad_() for t in kernel.inputs(x, weight, bias)]
        with torch.enable_grad():
            out = kernel.run(*leaves)
        ctx.graph = (out, leaves)
        ctx.signature = kernel.signature
        ctx.save_for_backward(x, weight, bias)
        return out.detach()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        wants = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # create_graph: F.conv1d's differentiable gradients
            grads = _reference_gradients(ctx.saved_tensors, ctx.signature, grad, wants)
        else:
            out, leaves = ctx.graph
            with _no_donated_buffers():  # read again when the backward runs
                grads = torch.autograd.grad(out, leaves, grad, retain_graph=True)
        return (*(g if want else None for g, want in zip(grads, wants)), None)


def _reference_gradients(saved: tuple[torch.Tensor, ...], s: Signature, grad: torch.Tensor,
                         wants: tuple[bool, ...]) -> list[torch.Tensor | None]:
    """``F.conv1d``'s gradients of the saved tensors, recorded (for higher derivatives)."""
    x, weight, bias = saved
    out = conv_padded_first(x, weight, bias, s)
    wanted = [t for t, want in zip((x, weight, bias), wants) if want]
    found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
    return [next(found) if want else None for want in wants]


def fused_shift_add(input: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None = None, stride: int | tuple[int] = 1,
                    padding: PaddingArg = 0, dilation: int | tuple[int] = 1,
                    groups: int = 1) -> torch.Tensor:
    """``F.conv1d(input, weight, bias, stride, padding, dilation, groups)`` for a depthwise
    layer, by a kernel compiled for its signature (see the module docstring). Degenerate and
    refused calls, and calls it does not compute, get ``F.conv1d``'s own answer; under
    autocast the tensors get autocast's casts first, as ``F.conv1d``'s do.

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments; whatever
            compiling raises where the compiler fails (the dispatcher then answers with
            ``F.conv1d``).
    """
    return guarded_call(input, weight, bias, stride, padding, dilation, groups, _fused,
                        supports)


def _fused(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           s: Signature) -> torch.Tensor:
    """The compiled kernel's answer to a call :func:`supports` takes."""
    kernel = KERNELS.build(s, input, weight, bias)
    if s.requires_grad:
        return _Compiled.apply(input, weight, bias, kernel)
    with torch.no_grad():  # the graph built (with grad on and no leaf needing it, the same)
        return kernel.run(*kernel.inputs(input, weight, bias))


def fused_shift_add_work(signature: Signature, params: Mapping[str, Any]) -> Work:
    """One pass: the input read and the output written once, after the compiled graph's
    call overhead (:data:`CALL_OVERHEAD_CALLS`)."""
    s = signature
    return Work.of(calls=CALL_OVERHEAD_CALLS,
                   elements=s.batch * s.in_channels * s.length
                   + s.batch * s.out_channels * s.output_length)


@dataclass(frozen=True)
class Compilation:
    """The strategy's preparation, as the tuner sees it (:attr:`Strategy.preparation`):
    how long compiling a signature's kernel is expected to take, and compiling it on the
    tuner's inputs."""

    def estimate_s(self, signature: Signature, params: Mapping[str, Any]) -> float:
        """Expected seconds (0 once built in this process)."""
        return KERNELS.estimate_s(signature)

    def __call__(self, signature: Signature, params: Mapping[str, Any], input: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Compile the graph ``signature`` needs, on these tensors (read, never recorded:
        :meth:`Kernel.build` works on detached copies or without grad)."""
        KERNELS.build(signature, batched(input), weight, bias)


PREPARATION = Compilation()
