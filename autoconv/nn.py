"""``autoconv.Conv1d`` and ``autoconv.patch``: the module-level drop-ins.

``Conv1d`` is a ``torch.nn.Conv1d`` (same constructor, same parameters, interchangeable
``state_dict``) whose forward runs the strategy autoconv chose for each call signature, and
which keeps its weight's spectrum between calls while the weight is unchanged (FFT strategies,
inference); ``Conv1d.stream(chunk_size)`` makes a causal stream of it
(:mod:`autoconv.streaming`). ``patch(model)`` turns every ``nn.Conv1d`` inside a model into
one, in place (parametrized ones included); ``unpatch(model)`` turns them back.

A parametrized layer (``torch.nn.utils.parametrizations.weight_norm``, as wav2vec2's
positional convolution has) computes its weight anew from its originals on every call, as in
torch, with one exception: in inference, when every parametrization on the weight is known to
be a pure function of its inputs, the weight computed on an earlier call is reused while the
originals are unchanged (see :class:`Conv1d`), so that neither the parametrization nor the
weight's spectrum is recomputed on every call.
"""

from __future__ import annotations

import copy
import copyreg
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module
from torch.nn.modules.utils import _single
from torch.nn.utils import parametrizations, parametrize

from autoconv import contexts, plain
from autoconv.functional import conv1d_cached
from autoconv.strategies import SpectrumCache
from autoconv.streaming import Conv1dStream, stream_of_module

#: Parametrizations whose result is a pure function of their inputs (nothing updated in
#: place, nothing random), by exact class: torch's weight norm always, its spectral norm only
#: in eval mode (in training mode its forward runs a power iteration that updates its ``_u``
#: and ``_v`` buffers in place). Looked up by name, so that a torch without one only reuses
#: less.
_PURE_PARAMETRIZATIONS: tuple[type, ...] = tuple(
    kind for kind in (getattr(parametrizations, "_WeightNorm", None),) if kind is not None)
_PURE_IN_EVAL: tuple[type, ...] = tuple(
    kind for kind in (getattr(parametrizations, "_SpectralNorm", None),) if kind is not None)


class _ReusedWeight:
    """The weight a layer's pure parametrizations last computed, and the stamp of what it was
    computed from: ``entry`` is ``(stamp, references, weight)`` or None. One attribute, so a
    thread reads an entry whole. Derived data tied to live tensors: a copy, deep copy or
    pickle of it starts empty."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[tuple, tuple, torch.Tensor] | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _ReusedWeight:
        return _ReusedWeight()

    def __copy__(self) -> _ReusedWeight:
        return _ReusedWeight()

    def __reduce__(self) -> tuple:
        return _ReusedWeight, ()


#: The attributes a module holds that are derived from its live tensors: never pickled,
#: copied or deep-copied (each copy starts with empty ones), dropped by :func:`revert`.
_DERIVED = ("_spectrum_cache", "_reused_weight")


def _pure_stamp(stack: nn.Module) -> tuple[tuple, tuple] | None:
    """``(stamp, references)`` of a ``ParametrizationList`` whose result may be reused now:
    the stamp names every module, parameter and buffer it computes from (identity, version,
    data pointer, shape, strides, dtype, device, training flags, inference mode), the
    references are those objects (the caller keeps weak references to them, so that an
    identity is never taken for a dead object's). None where its result may not be reused:
    a parametrization not known to be pure, a hook that would see the call, a tensor that
    needs a gradient now or keeps no version counter (an inference tensor)."""
    if (type(stack) is not parametrize.ParametrizationList or stack._forward_hooks
            or stack._forward_pre_hooks):
        return None
    grad = torch.is_grad_enabled()
    parts: list[Any] = [torch.is_inference_mode_enabled(), id(stack), stack.training]
    objects: list[Any] = [stack]
    modules = tuple(stack._modules.values())
    if not modules:
        return None
    for module in modules:
        kind = type(module)
        if not (kind in _PURE_PARAMETRIZATIONS
                or (kind in _PURE_IN_EVAL and not module.training)):
            return None
        if module._forward_hooks or module._forward_pre_hooks or module._modules:
            return None
        parts.append((id(module), module.training))
        objects.append(module)
    for module in (stack, *modules):
        for tensor in (*module._parameters.values(), *module._buffers.values()):
            if tensor is None:
                continue
            if tensor.is_inference() or (grad and tensor.requires_grad):
                return None
            try:
                parts.append((id(tensor), tensor._version, tensor.data_ptr(), tensor.shape,
                              tensor.stride(), tensor.dtype, tensor.device))
            except RuntimeError:  # a tensor without storage or version (a subclass, say)
                return None
            objects.append(tensor)
    return tuple(parts), tuple(objects)


def _may_reuse_now() -> bool:
    """Whether a parametrized weight may be reused in this context at all, outside
    ``torch.compile`` and ``torch.export`` (checked first): not while ``torch.jit.trace``
    records (the trace must compute the weight), a torch.func transform is active, torch's
    own ``parametrize.cached()`` is (its cache answers), or a global module hook would see
    the parametrizations' calls."""
    return not (contexts.is_tracing() or contexts.in_transform() or parametrize._cache_enabled
                or _module._global_forward_hooks or _module._global_forward_pre_hooks)


class Conv1d(nn.Conv1d):
    """A ``torch.nn.Conv1d`` that runs the fastest correct strategy for each input shape.

    Takes exactly ``nn.Conv1d``'s arguments and supports every padding mode (zeros, reflect,
    replicate, circular). Its ``state_dict`` loads into ``nn.Conv1d`` and back.

    Its weight's spectrum (FFT strategies) is kept between calls that need no gradient
    through the weight, while the weight is unchanged. A weight parametrized
    (``torch.nn.utils.parametrize``) is computed by its parametrizations on every call, as in
    ``nn.Conv1d``, except where that is known to give the last call's values again: in
    inference (``torch.no_grad()``, ``torch.inference_mode()``, or no parameter or buffer of
    the parametrizations requiring a gradient), when every parametrization on ``weight`` is
    torch's weight norm (``torch.nn.utils.parametrizations.weight_norm``) or its spectral norm
    in eval mode (``spectral_norm``; in training mode its power iteration updates its vectors
    on every call), no forward hook (the module's own or a global one) would see them run,
    and no ``torch.compile``, ``torch.export``, ``torch.jit.trace``, torch.func transform or
    ``parametrize.cached()`` is active. There the weight computed on an earlier call is
    reused while every original, buffer and parametrization it was computed from is the same
    object, unchanged (same version counter, data pointer, shape, strides, dtype and device:
    an in-place update, ``load_state_dict``, ``.to()`` or a new ``Parameter`` all recompute
    it), in the same training and inference modes. The layer then holds that one
    weight-sized tensor (besides the spectra), computed outside autograd; it is not part of
    the ``state_dict``, is never pickled or copied, and is dropped by the next call (outside
    ``torch.compile``) that cannot reuse it. Any other parametrization (a user's own, say)
    is computed on every call.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._start_derived()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # what nn.Conv1d.forward does (TorchScript compiles this branch alone)
            return self._conv_forward(input, self.weight, self.bias)
        return self._eager_forward(input)

    @torch.jit.unused
    def _eager_forward(self, input: torch.Tensor) -> torch.Tensor:
        weight, reused = self._weight_for_call()
        return self._tuned_forward(input, weight, self.bias, reused)

    @torch.jit.unused
    def _weight_for_call(self) -> tuple[torch.Tensor, bool]:
        """The weight this call convolves with (``self.weight``, or the same tensor reused
        from an earlier call: see the class docstring), and whether it is the layer's stable
        weight: its own ``Parameter``, or a parametrized weight reused (what the dispatcher
        is told as ``weight_reused``)."""
        own = self._parameters.get("weight")
        holder = self._reused_weight
        if own is not None:  # not parametrized (nn.Module.__getattr__ finds it there)
            if holder.entry is not None:  # parametrizations removed since: let it go
                holder.entry = None
            return own, True
        if torch.compiler.is_compiling():
            # the graph computes the weight, as nn.Conv1d's does (and no side effect here)
            return self.weight, False
        stacks = self._modules.get("parametrizations")
        stack = None if stacks is None else stacks._modules.get("weight")
        stamped = None if stack is None or not _may_reuse_now() else _pure_stamp(stack)
        if stamped is None:  # not parametrized on weight (the old weight_norm hook, say),
            holder.entry = None  # or its weight may not be reused now
            return self.weight, False
        stamp, objects = stamped
        entry = holder.entry
        if (entry is not None and entry[0] == stamp
                and all(ref() is obj for ref, obj in zip(entry[1], objects))):
            return entry[2], True
        holder.entry = None  # the stale weight is freed before the new one is computed
        weight = self._compute_weight()
        holder.entry = (stamp, tuple(weakref.ref(obj) for obj in objects), weight)
        return weight, True

    @torch.jit.unused
    def _compute_weight(self) -> torch.Tensor:
        """``self.weight``, outside autograd and, under ``torch.inference_mode()``, as a
        normal tensor (computed from normal tensors: the same values), which keeps a version
        counter so that its spectrum may be cached too."""
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False), torch.no_grad():
                return self.weight
        with torch.no_grad():
            return self.weight

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript compiles this branch alone: a scripted model runs F.conv1d, as a
            # scripted nn.Conv1d does (autoconv's dispatch is Python, not TorchScript).
            if self.padding_mode != "zeros":
                return plain.conv1d(F.pad(input, self._reversed_padding_repeated_twice,
                                          mode=self.padding_mode),
                                    weight, bias, self.stride, _single(0), self.dilation,
                                    self.groups)
            return plain.conv1d(input, weight, bias, self.stride, self.padding, self.dilation,
                                self.groups)
        return self._tuned_forward(input, weight, bias)

    @torch.jit.unused
    def _tuned_forward(self, input: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor | None,
                       weight_reused: bool | None = None) -> torch.Tensor:
        # ``weight_reused`` None (``_conv_forward``, which a subclass may call with a weight
        # of its own): reused only if it is the layer's own Parameter
        if weight_reused is None:
            weight_reused = weight is self._parameters.get("weight")
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: Any = 0
        else:
            padding = self.padding
        return conv1d_cached(input, weight, bias, self.stride, padding, self.dilation,
                             self.groups, self._spectrum_cache, weight_reused=weight_reused)

    def stream(self, chunk_size: int, *, sample_rate: float | None = None) -> Conv1dStream:
        """A stream of this layer: its causal convolution fed chunk by chunk, exact, with no
        added latency (:class:`autoconv.Conv1dStream`, tuned per chunk size).

        Streams a layer with ``padding=0`` (the stream equals the layer on the signal
        left-padded with ``dilation * (kernel_size - 1)`` zeros) or ``padding=dilation *
        (kernel_size - 1)`` (the stream is the first ``n`` outputs of the layer on ``n``
        samples), stride 1 and zero padding mode; the weight and bias are copied now.
        ``sample_rate`` (Hz) makes the stream warn when it cannot keep up
        (:class:`autoconv.Conv1dStream`).

        Raises:
            ValueError: a stride other than 1, another padding mode, or a padding that would
                need look-ahead ('same', for one): the message says why and what streams.
        """
        return stream_of_module(self, chunk_size, sample_rate=sample_rate)

    def _start_derived(self) -> None:
        """Empty :data:`_DERIVED` attributes: the layer's spectra (a few layouts of one
        weight: the cache the tuner times a layer's FFT candidates with) and reused weight."""
        self._spectrum_cache = SpectrumCache.of_layer()
        self._reused_weight = _ReusedWeight()

    def __getstate__(self) -> dict[str, Any]:
        # Spectra and a reused weight are derived data tied to live tensors: never pickled
        # or deep-copied.
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._start_derived()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickled (``torch.save`` of a whole model) as the ``nn.Conv1d`` it stands in for: the
        # file loads where autoconv is not installed; ``autoconv.patch`` after loading makes it
        # an autoconv layer again. A subclass of ours keeps its own class.
        if type(self) is not Conv1d:
            return super().__reduce_ex__(protocol)
        # copyreg's reconstructor (what pickle's protocols 0 and 1 use): object.__new__ of
        # nn.Conv1d, then nn.Module.__setstate__ with our state (derived data left out)
        return copyreg._reconstructor, (nn.Conv1d, object, None), self.__getstate__()

    def __deepcopy__(self, memo: dict[int, Any]) -> Conv1d:
        # A copy in the same process stays an autoconv layer (pickling above does not).
        replica = type(self).__new__(type(self))
        memo[id(self)] = replica
        state = {k: v for k, v in self.__dict__.items() if k not in _DERIVED}
        replica.__dict__ = copy.deepcopy(state, memo)
        replica._start_derived()
        return replica

    def __copy__(self) -> Conv1d:
        replica = type(self).__new__(type(self))
        replica.__dict__ = dict(self.__dict__)
        replica._start_derived()
        return replica

    def _replicate_for_data_parallel(self) -> Conv1d:
        # nn.DataParallel's replicas (one per device and forward) get derived data of their
        # own, not this layer's
        replica = super()._replicate_for_data_parallel()
        replica._start_derived()
        return replica

    @classmethod
    def convert(cls, conv: nn.Conv1d) -> Conv1d:
        """Turn an ``nn.Conv1d`` into an autoconv ``Conv1d`` in place and return it.

        The module keeps its identity, parameters (the same ``Parameter`` objects, so an
        optimizer that holds them is unaffected), buffers, hooks, training mode and
        ``state_dict`` keys. A parametrized convolution (``torch.nn.utils.parametrizations.
        weight_norm``, ``spectral_norm`` or any ``torch.nn.utils.parametrize`` one) stays
        parametrized: its weight is computed by its parametrizations on every call, as
        before, except in inference with parametrizations known to be pure (weight norm,
        spectral norm in eval mode), where the weight of an earlier call is reused while
        what it was computed from is unchanged (see :class:`Conv1d`). The older
        ``torch.nn.utils.weight_norm`` keeps working too (it is a hook on a plain
        ``nn.Conv1d``: its weight is recomputed on every call). :func:`revert` undoes the
        conversion.

        Raises:
            TypeError: ``conv`` is a subclass of ``nn.Conv1d`` of another kind (its own
                ``forward`` may do something else).
        """
        if isinstance(conv, cls):
            return conv
        conv.__class__ = _on_top_of(conv, nn.Conv1d, cls)
        conv._start_derived()  # type: ignore[attr-defined]
        return conv  # type: ignore[return-value]


def _on_top_of(module: nn.Module, old: type[nn.Module], new: type[nn.Module]) -> type:
    """``module``'s class with ``old`` replaced by ``new``: ``new`` itself for an instance of
    exactly ``old``, and for a parametrized one (torch makes its class a subclass holding the
    parametrized properties), a copy of that subclass on top of ``new`` (whose ``forward``
    it inherits: torch's subclass defines none).

    Raises:
        TypeError: ``module`` is of any other class.
    """
    kind = type(module)
    if kind is old:
        return new
    if parametrize.is_parametrized(module) and kind.__bases__ == (old,):
        namespace = {k: v for k, v in vars(kind).items() if k not in ("__dict__", "__weakref__")}
        return type(kind.__name__, (new,), namespace)
    raise TypeError(f"can only convert {old.__module__}.{old.__name__} (parametrized or "
                    f"not), not {kind.__module__}.{kind.__name__}")


def revert(conv: Conv1d) -> nn.Conv1d:
    """Turn an autoconv ``Conv1d`` back into the ``nn.Conv1d`` it was, in place, and return
    it (a parametrized one stays parametrized).

    Raises:
        TypeError: ``conv`` is not an autoconv ``Conv1d``.
    """
    conv.__class__ = _on_top_of(conv, Conv1d, nn.Conv1d)
    for name in _DERIVED:
        conv.__dict__.pop(name, None)
    return conv  # type: ignore[return-value]


def _convertible(module: nn.Module) -> bool:
    kind = type(module)
    return kind is nn.Conv1d or (parametrize.is_parametrized(module)
                                 and kind.__bases__ == (nn.Conv1d,))


def patch(module: nn.Module) -> nn.Module:
    """Make every ``nn.Conv1d`` in ``module`` (itself included), parametrized or not, an
    autoconv ``Conv1d`` (see :meth:`Conv1d.convert`).

    Works in place and returns ``module``. Parameters are shared, not copied; subclasses of
    ``nn.Conv1d`` (which may override ``forward``) are left alone. :func:`unpatch` undoes it.
    """
    for submodule in module.modules():
        if _convertible(submodule):
            Conv1d.convert(submodule)
    return module


def unpatch(module: nn.Module) -> nn.Module:
    """Turn every autoconv ``Conv1d`` in ``module`` back into an ``nn.Conv1d``, in place."""
    for submodule in module.modules():
        if isinstance(submodule, Conv1d):
            revert(submodule)
    return module
