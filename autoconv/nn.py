"""``autoconv.Conv1d`` and ``autoconv.patch``: the module-level drop-ins.

``Conv1d`` is a ``torch.nn.Conv1d`` (same constructor, same parameters, interchangeable
``state_dict``) whose forward runs the strategy autoconv chose for each call signature, and
which keeps its weight's spectrum between calls while the weight is unchanged (FFT strategies,
inference); ``Conv1d.stream(chunk_size)`` makes a causal stream of it
(:mod:`autoconv.streaming`). ``patch(model)`` turns every ``nn.Conv1d`` inside a model into
one, in place (parametrized ones included); ``unpatch(model)`` turns them back.
"""

from __future__ import annotations

import copy
import copyreg
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _single
from torch.nn.utils import parametrize

from autoconv import plain
from autoconv.functional import conv1d_cached
from autoconv.strategies import SpectrumCache
from autoconv.streaming import Conv1dStream, stream_of_module

#: Spectra kept per module: one weight, a few FFT layouts (e.g. several input lengths).
_SPECTRA_PER_MODULE = 4


class Conv1d(nn.Conv1d):
    """A ``torch.nn.Conv1d`` that runs the fastest correct strategy for each input shape.

    Takes exactly ``nn.Conv1d``'s arguments and supports every padding mode (zeros, reflect,
    replicate, circular). Its ``state_dict`` loads into ``nn.Conv1d`` and back.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)

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
                       bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: Any = 0
        else:
            padding = self.padding
        return conv1d_cached(input, weight, bias, self.stride, padding, self.dilation,
                             self.groups, self._spectrum_cache)

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

    def __getstate__(self) -> dict[str, Any]:
        # Spectra are derived data tied to live tensors: never pickled or deep-copied.
        state = dict(self.__dict__)
        state.pop("_spectrum_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickled (``torch.save`` of a whole model) as the ``nn.Conv1d`` it stands in for: the
        # file loads where autoconv is not installed; ``autoconv.patch`` after loading makes it
        # an autoconv layer again. A subclass of ours keeps its own class.
        if type(self) is not Conv1d:
            return super().__reduce_ex__(protocol)
        # copyreg's reconstructor (what pickle's protocols 0 and 1 use): object.__new__ of
        # nn.Conv1d, then nn.Module.__setstate__ with our state (the spectra left out)
        return copyreg._reconstructor, (nn.Conv1d, object, None), self.__getstate__()

    def __deepcopy__(self, memo: dict[int, Any]) -> Conv1d:
        # A copy in the same process stays an autoconv layer (pickling above does not).
        replica = type(self).__new__(type(self))
        memo[id(self)] = replica
        state = {k: v for k, v in self.__dict__.items() if k != "_spectrum_cache"}
        replica.__dict__ = copy.deepcopy(state, memo)
        replica._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)
        return replica

    def __copy__(self) -> Conv1d:
        replica = type(self).__new__(type(self))
        replica.__dict__ = dict(self.__dict__)
        replica._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)
        return replica

    @classmethod
    def convert(cls, conv: nn.Conv1d) -> Conv1d:
        """Turn an ``nn.Conv1d`` into an autoconv ``Conv1d`` in place and return it.

        The module keeps its identity, parameters (the same ``Parameter`` objects, so an
        optimizer that holds them is unaffected), buffers, hooks, training mode and
        ``state_dict`` keys. A parametrized convolution (``torch.nn.utils.parametrizations.
        weight_norm``, ``spectral_norm`` or any ``torch.nn.utils.parametrize`` one) stays
        parametrized: its weight is computed by its parametrizations on every call, as
        before. The older ``torch.nn.utils.weight_norm`` keeps working too (it is a hook on
        a plain ``nn.Conv1d``). :func:`revert` undoes the conversion.

        Raises:
            TypeError: ``conv`` is a subclass of ``nn.Conv1d`` of another kind (its own
                ``forward`` may do something else).
        """
        if isinstance(conv, cls):
            return conv
        conv.__class__ = _on_top_of(conv, nn.Conv1d, cls)
        conv._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)
        return conv  # type: ignore[return-value]


def _on_top_of(module: nn.Module, old: type[nn.Module], new: type[nn.Module]) -> type:
    """``module``'s class with ``old`` replaced by ``new``: ``new`` itself for an instance of
    exactly ``old``, and for a parametrized one (torch makes its class a subclass holding the
    parametrized properties), a copy of that subclass on top of ``new``.

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
    conv.__dict__.pop("_spectrum_cache", None)
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
