"""The PyTorch contexts a conv1d call can run in, and what ``F.conv1d`` does in each.

* **Autocast.** ``conv1d`` is on autocast's lower-precision list: inside ``torch.autocast``
  its floating inputs (but float64) on the autocast device are cast to the autocast dtype
  (float16 on CUDA, bfloat16 on CPU by default) and it returns that dtype. A strategy that is
  not ``F.conv1d`` itself does the same casts (:func:`autocast_inputs`) and then runs with
  autocast off (:func:`autocast_off`), so that its own FFTs and products keep the precision
  they were written for.
* **torch.func transforms** (vmap, grad, jacrev, jvp...). Nothing may be measured inside one,
  and only ``F.conv1d`` is known to support them all: autoconv answers with ``F.conv1d``
  there (:func:`in_transform`).
* **Tracing** (``torch.jit.trace``): nothing may be measured either, or the measuring would be
  traced (:func:`is_tracing`).
* **Deterministic algorithms** on CUDA: the FFT strategies' kernels are not all known to be
  deterministic there, so ``F.conv1d`` answers (:func:`wants_plain`).
* **Saved-tensor hooks** (non-reentrant activation checkpointing, ``save_on_cpu``): the hooks
  see every tensor autograd saves on their thread. What autoconv runs only to learn
  something (tuning a call, a live sample) runs under identity hooks of its own
  (:func:`own_saved_tensors`), so the caller's never see it: checkpointing counts and
  matches the tensors a forward saves, and recomputes the forward in backward. Checkpointing
  stops that recomputation by raising from its hook inside the strategy; that exception is
  its own control flow and passes through (:func:`is_control_flow`), never taken for the
  strategy's failure.

The checks use a few of torch's private functions (the ones torch itself uses for the same
questions); they are looked up once, here, so that a torch that renames one breaks one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.utils.checkpoint

_peek_transform = torch._C._functorch.peek_interpreter_stack
_tracing_state = torch._C._get_tracing_state
#: Whether any autocast (any device type) is on: the one check on the hot path.
any_autocast = torch._C._is_any_autocast_enabled


def in_transform() -> bool:
    """Whether a torch.func transform (vmap, grad, jvp, ...) is active."""
    return _peek_transform() is not None


def is_tracing() -> bool:
    """Whether ``torch.jit.trace`` is recording."""
    return _tracing_state() is not None


def may_measure(device: torch.device) -> bool:
    """Whether anything may be timed (or run just to learn something) now: not while a CUDA
    graph is captured, ``torch.compile`` or ``torch.jit.trace`` traces, or a torch.func
    transform is active."""
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return False
    return not (torch.compiler.is_compiling() or is_tracing() or in_transform())


def saved_tensor_hooks_active() -> bool:
    """Whether saved-tensor hooks are active on this thread (checkpointing, offloading)."""
    return bool(torch._C._autograd._top_saved_tensors_default_hooks(True))


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@contextmanager
def own_saved_tensors() -> Iterator[None]:
    """The block's saved tensors kept as they are, out of sight of the caller's saved-tensor
    hooks (identity hooks pushed on top of theirs; nothing when none are active)."""
    if not saved_tensor_hooks_active():
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(_same, _same):
        yield


#: Exceptions that other code raises through a strategy as its control flow (activation
#: checkpointing ends a recomputation so): they are not the strategy's failure.
_CONTROL_FLOW: tuple[type[BaseException], ...] = tuple(
    kind for kind in (getattr(torch.utils.checkpoint, "_StopRecomputationError", None),)
    if kind is not None)


def is_control_flow(error: BaseException) -> bool:
    """Whether ``error`` is another component's control flow (:data:`_CONTROL_FLOW`), to
    pass through untouched."""
    return isinstance(error, _CONTROL_FLOW)


def wants_plain(input: torch.Tensor) -> bool:
    """Whether only ``F.conv1d`` itself may answer a call on ``input`` here: inside a
    torch.func transform, or on CUDA with deterministic algorithms requested."""
    return in_transform() or (input.is_cuda and torch.are_deterministic_algorithms_enabled())


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``F.conv1d`` computes in under the current autocast on ``device_type``
    (None when autocast is off there)."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cast_dtype(tensor: torch.Tensor, dtype: torch.dtype, device_type: str) -> torch.dtype:
    """The dtype autocast (to ``dtype`` on ``device_type``) gives ``tensor``: ``dtype`` for a
    floating tensor on that device, float64 excepted; its own dtype otherwise."""
    if (tensor.is_floating_point() and tensor.dtype != torch.float64
            and tensor.device.type == device_type):
        return dtype
    return tensor.dtype


def _cast(tensor: torch.Tensor | None, dtype: torch.dtype, device_type: str
          ) -> torch.Tensor | None:
    """Autocast's cast of one argument."""
    if tensor is None:
        return None
    return tensor.to(cast_dtype(tensor, dtype, device_type))


def autocast_inputs(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, str | None]:
    """The tensors as autocast hands them to ``F.conv1d``, and the device type whose autocast
    to switch off while they are convolved (None, and the tensors unchanged, when autocast is
    off for the input's device)."""
    device_type = input.device.type
    dtype = autocast_dtype(device_type)
    if dtype is None:
        return input, weight, bias, None
    return (_cast(input, dtype, device_type), _cast(weight, dtype, device_type),
            _cast(bias, dtype, device_type), device_type)


@contextmanager
def autocast_off(device_type: str | None) -> Iterator[None]:
    """Autocast switched off on ``device_type`` for the block (nothing when None)."""
    if device_type is None:
        yield
        return
    with torch.autocast(device_type, enabled=False):
        yield
