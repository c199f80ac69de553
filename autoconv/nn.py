"""``autoconv.Conv1d`` and ``autoconv.patch``: the module-level drop-ins.

``Conv1d`` is a ``torch.nn.Conv1d`` (same constructor, same parameters, interchangeable
``state_dict``) whose forward runs the strategy autoconv chose for each call signature, and
which keeps its weight's spectrum between calls while the weight is unchanged (FFT strategies,
inference). ``patch(model)`` turns every plain ``nn.Conv1d`` inside a model into one, in place.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoconv.functional import conv1d_cached
from autoconv.strategies import SpectrumCache

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
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: Any = 0
        else:
            padding = self.padding
        return conv1d_cached(input, weight, bias, self.stride, padding, self.dilation,
                             self.groups, self._spectrum_cache)

    def __getstate__(self) -> dict[str, Any]:
        # Spectra are derived data tied to live tensors: never pickled or deep-copied.
        state = dict(self.__dict__)
        state.pop("_spectrum_cache", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)

    @classmethod
    def convert(cls, conv: nn.Conv1d) -> Conv1d:
        """Turn a plain ``nn.Conv1d`` into an autoconv ``Conv1d`` in place and return it.

        The module keeps its identity, parameters (the same ``Parameter`` objects, so an
        optimizer that holds them is unaffected), buffers, hooks and training mode.

        Raises:
            TypeError: ``conv`` is not exactly ``nn.Conv1d`` (a subclass may override forward).
        """
        if type(conv) is cls:
            return conv
        if type(conv) is not nn.Conv1d:
            raise TypeError(f"can only convert torch.nn.Conv1d, not {type(conv).__name__}")
        conv.__class__ = cls
        conv._spectrum_cache = SpectrumCache(max_entries=_SPECTRA_PER_MODULE)
        return conv  # type: ignore[return-value]


def patch(module: nn.Module) -> nn.Module:
    """Make every plain ``nn.Conv1d`` in ``module`` (itself included) an autoconv ``Conv1d``.

    Works in place and returns ``module``. Parameters are shared, not copied; subclasses of
    ``nn.Conv1d`` (which may override ``forward``) are left alone.
    """
    for submodule in module.modules():
        if type(submodule) is nn.Conv1d:
            Conv1d.convert(submodule)
    return module
