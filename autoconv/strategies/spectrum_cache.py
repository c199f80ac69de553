"""SpectrumCache: reuse a weight's FFT across calls while the weight is unchanged.

An inference module calls the same weight thousands of times; transforming it every time costs
a forward FFT of ``C_out * C_in`` kernels. The cache keys a spectrum by the weight tensor's
identity and the transform's layout, and checks the weight's version counter (bumped by every
in-place update, ``optimizer.step()`` included), data pointer, shape and strides on each hit.
It holds the weight only through a weak reference, so a dead weight frees its spectra, and it
keeps at most ``max_entries`` spectra and ``max_bytes`` of them (least recently used are
dropped first; a spectrum larger than ``max_bytes`` alone is computed on every call).

:meth:`SpectrumCache.of_layer` is the cache an ``autoconv.Conv1d`` layer keeps, and the one
the tuner times a layer's FFT candidates with (:attr:`Signature.weight_reused
<autoconv.signature.Signature>`): what was timed is what runs.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

#: Spectra one layer keeps (:meth:`SpectrumCache.of_layer`) ...
LAYER_ENTRIES = 16
#: ... and their bytes at most: a layer's spectrum grows with channels in times channels out
#: times the FFT length, gigabytes for a long signal; one larger is recomputed on every call
#: (and the tuner, timing with the same cache, sees it so).
LAYER_BYTES = 256 * 2**20


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
        max_entries: most spectra kept at once (one per weight, layout and chunk of output
            channels).
        max_bytes: most bytes of spectra kept at once (None: no limit but ``max_entries``).

    Attributes:
        hits: lookups answered from the cache.
        misses: lookups that computed a spectrum (cached or not).
    """

    def __init__(self, max_entries: int = 64, max_bytes: int | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1 or None, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._bytes = 0

    @classmethod
    def of_layer(cls) -> SpectrumCache:
        """The cache of one layer (:data:`LAYER_ENTRIES` spectra, :data:`LAYER_BYTES` bytes):
        its weight in a few layouts (input lengths), or the chunks of one large spectrum."""
        return cls(max_entries=LAYER_ENTRIES, max_bytes=LAYER_BYTES)

    @property
    def nbytes(self) -> int:
        """Bytes of the spectra kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> SpectrumCache:
        # Spectra are derived from live tensors: a copy (of a module, say) starts empty.
        return SpectrumCache(self.max_entries, self.max_bytes)

    def __reduce__(self) -> tuple:
        return SpectrumCache, (self.max_entries, self.max_bytes)

    def clear(self) -> None:
        """Drop every cached spectrum and reset the counters."""
        self._entries.clear()
        self._bytes = 0
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
        size = spectrum.numel() * spectrum.element_size()
        self._drop(key)
        if self.max_bytes is not None and size > self.max_bytes:
            return spectrum  # too large to keep: computed on every call
        self._entries[key] = _Entry(weakref.ref(weight, self._forget_callback(key)), stamp,
                                    spectrum)
        self._bytes += size
        while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes):
            self._drop(next(iter(self._entries)))
        return spectrum

    def _drop(self, key: tuple) -> None:
        """Forget ``key``'s entry, if any."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.spectrum.numel() * entry.spectrum.element_size()

    def _forget_callback(self, key: tuple) -> Callable[[weakref.ReferenceType], None]:
        """A weakref callback that drops ``key`` once its weight dies (if still its entry)."""
        cache_ref = weakref.ref(self)

        def forget(dead: weakref.ReferenceType) -> None:
            cache = cache_ref()
            if cache is not None:
                entry = cache._entries.get(key)
                if entry is not None and entry.ref is dead:
                    cache._drop(key)

        return forget
