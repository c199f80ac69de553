"""SpectrumCache: reuse a weight's FFT across calls while the weight is unchanged.

An inference module calls the same weight thousands of times; transforming it every time costs
a forward FFT of ``C_out * C_in`` kernels. The cache keys a spectrum by the weight tensor's
identity and the transform's layout, and checks the weight's version counter (bumped by every
in-place update, ``optimizer.step()`` included), data pointer, shape and strides on each hit.
It holds the weight only through a weak reference, so a dead weight frees its spectra, and it
keeps at most ``max_entries`` spectra (least recently used are dropped first).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch


@dataclass(slots=True)
class _Entry:
    ref: weakref.ReferenceType
    stamp: tuple
    spectrum: torch.Tensor


class SpectrumCache:
    """A bounded cache of weight spectra, keyed by weight identity and transform layout.

    Pass one to the FFT strategies as ``spectrum_cache=``. It is used only where autograd does
    not need gradients through the weight (``torch.no_grad()``, ``torch.inference_mode()``, or a
    weight with ``requires_grad=False``); otherwise the spectrum is recomputed in the graph.
    Weights that are inference tensors have no version counter and are never cached.

    Args:
        max_entries: most spectra kept at once (one per weight and layout).

    Attributes:
        hits: lookups answered from the cache.
        misses: lookups that computed a spectrum (cached or not).
    """

    def __init__(self, max_entries: int = 64) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> SpectrumCache:
        # Spectra are derived from live tensors: a copy (of a module, say) starts empty.
        return SpectrumCache(self.max_entries)

    def __reduce__(self) -> tuple:
        return SpectrumCache, (self.max_entries,)

    def clear(self) -> None:
        """Drop every cached spectrum and reset the counters."""
        self._entries.clear()
        self.hits = self.misses = 0

    @staticmethod
    def usable(weight: torch.Tensor) -> bool:
        """Whether a spectrum of ``weight`` may come from the cache in the current autograd mode."""
        if torch.is_grad_enabled() and weight.requires_grad:
            return False
        return not weight.is_inference()

    def get(self, weight: torch.Tensor, layout: Hashable,
            compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The spectrum of ``weight`` in ``layout``: cached if still valid, else ``compute()``.

        Args:
            weight: the weight tensor the spectrum is derived from.
            layout: everything besides the weight that the spectrum depends on (FFT length,
                stride, dilation, groups, compute dtype, memory layout), hashable.
            compute: builds the spectrum; called on a miss.
        """
        if not self.usable(weight):
            self.misses += 1
            return compute()
        key = (id(weight), torch.is_inference_mode_enabled(), layout)
        stamp = (weight._version, weight.data_ptr(), tuple(weight.shape), weight.stride(),
                 weight.dtype, weight.device)
        entry = self._entries.get(key)
        if entry is not None and entry.ref() is weight and entry.stamp == stamp:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.spectrum
        self.misses += 1
        with torch.no_grad():
            spectrum = compute()
        self._entries[key] = _Entry(weakref.ref(weight, self._forget_callback(key)), stamp,
                                    spectrum)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return spectrum

    def _forget_callback(self, key: tuple) -> Callable[[weakref.ReferenceType], None]:
        """A weakref callback that drops ``key`` once its weight dies (if still its entry)."""
        cache_ref = weakref.ref(self)

        def forget(dead: weakref.ReferenceType) -> None:
            cache = cache_ref()
            if cache is not None:
                entry = cache._entries.get(key)
                if entry is not None and entry.ref is dead:
                    del cache._entries[key]

        return forget
