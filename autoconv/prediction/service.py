"""The process-wide predictor: fitted lazily from the tuning database, for this device.

Nothing happens at import or construction. The first time the selector asks for a prediction on
a device (a signature missing from memory and from the database), the device's ok measurements
are read, and a model is loaded from the local cache (:mod:`autoconv.prediction.model_cache`) if
one was fitted on exactly that data, else fitted and cached. Later requests reuse it; at most
every ``recheck_s`` seconds a request counts this device's ok measurements and refits when their
number changed by ``refit_fraction`` (or ``refit_rows``), so tuning in this process or another
improves the model. Only that count is watched: new rows of a device of the same kind, or a row
re-measured in place, wait for the next refit (or a new process) to be learned. All of this is
on the selector's slow path: a call whose signature is already remembered never reaches it.

With too little data (fewer than ``min_signatures`` measured signatures), or if anything goes
wrong, it answers None and the selector falls back to the cost model. Measurements of devices
of the same kind count at a lower weight and never make a prediction confident on their own:
a prediction lets tune mode skip measuring only once this device has
``min_confident_signatures`` signatures of its own (:data:`MIN_CONFIDENT_SIGNATURES`), and
only near them (:meth:`LearnedPredictor.distance`).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from autoconv.prediction import model_cache
from autoconv.prediction.predictor import Decision, LearnedPredictor, Sample
from autoconv.prediction.training_data import (
    SAME_KIND_WEIGHT,
    data_key,
    is_local,
    load_samples,
    signatures_of,
)
from autoconv.signature import Signature
from autoconv.storage.fingerprint import device_key
from autoconv.storage.guarded import GuardedStore
from autoconv.storage.store import TuningStore
from autoconv.tuning.candidates import Candidate

#: Fewest measured signatures worth fitting a model on.
MIN_SIGNATURES = 30
#: Fewest signatures measured on this very device before a prediction lets tune mode skip
#: measuring. The model's held-out figures (``benchmarks/real-layers-cpu.md``: 1.04 regret,
#: worst pick 1.76x) are those of one fitted on ``autoconv warm --grid``'s 2,000; fitted on
#: the suite's 56 (its 28 layers, functional and as layers), a confident prediction picked
#: FFT for EnCodec's 32 -> 64 channel K=4 layer at 44x ``F.conv1d``'s time. Below this, tune
#: mode measures, and predict mode still uses the model.
MIN_CONFIDENT_SIGNATURES = 1000


@dataclass(frozen=True)
class _Entry:
    predictor: LearnedPredictor | None
    rows: int
    checked_at: float
    #: signatures measured on this very device among those fitted on
    local_signatures: int = 0


def fit_or_load(samples: Sequence[Sample], device_id: str, *, cache_dir: Path | None = None,
                use_cache: bool = True) -> LearnedPredictor:
    """The model for ``samples``: from the cache when fitted on the same data, else fitted
    (and cached)."""
    key = data_key(samples)
    path = model_cache.path_for(device_id, cache_dir)
    if use_cache:
        cached = model_cache.load(path, key)
        if cached is not None:
            return cached
    predictor = LearnedPredictor.fit(samples)
    if use_cache:
        model_cache.save(predictor, path, key)
    return predictor


class DevicePredictor:
    """Predicts from a model of this device's measurements in ``store`` (see module doc).

    Args:
        store: the tuning database (None: never predicts).
        min_signatures: fewest measured signatures to fit on.
        min_confident_signatures: fewest signatures measured on this device before a
            prediction may be confident (tune mode then skips measuring).
        recheck_s: least seconds between two looks at the database for new measurements.
        refit_fraction, refit_rows: refit when the number of rows changed by this fraction
            of the rows fitted on, or by this many rows, whichever is larger.
        same_kind_weight: weight of measurements from devices of the same kind (0: none).
        cache_dir: where fitted models are cached (None: the user cache dir).
        use_cache: False never reads or writes the cache.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, store: TuningStore | GuardedStore | None, *,
                 min_signatures: int = MIN_SIGNATURES,
                 min_confident_signatures: int = MIN_CONFIDENT_SIGNATURES,
                 recheck_s: float = 60.0, refit_fraction: float = 0.1, refit_rows: int = 20,
                 same_kind_weight: float = SAME_KIND_WEIGHT, cache_dir: Path | None = None,
                 use_cache: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.min_signatures = min_signatures
        self.min_confident_signatures = min_confident_signatures
        self.recheck_s = recheck_s
        self.refit_fraction = refit_fraction
        self.refit_rows = refit_rows
        self.same_kind_weight = same_kind_weight
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.clock = clock
        self.fits = 0  # how many models this object fitted or loaded (for tests and reports)
        self._entries: dict[tuple[str, int | None, int], _Entry] = {}
        self._lock = threading.Lock()

    def model(self, device: torch.device) -> LearnedPredictor | None:
        """The current model for ``device`` (loading, fitting or refitting it if due)."""
        key = device_key(device)
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.checked_at < self.recheck_s:
            return entry.predictor
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.clock() - entry.checked_at >= self.recheck_s:
                entry = self._entries[key] = self._refresh(device, entry)
        return entry.predictor

    def _refresh(self, device: torch.device, entry: _Entry | None) -> _Entry:
        if self.store is None:
            return _Entry(None, 0, self.clock())
        if not self.store.available:  # the database failed a moment ago: not now, no warning
            return entry or _Entry(None, 0, -math.inf)
        if getattr(self.store, "unborn", False):  # not created yet: nothing to learn from
            return _Entry(None, 0, self.clock())
        record = self.store.device(device)
        # Counting this device's rows is one indexed query; the rows are read only to refit.
        rows = self.store.db.count(record.device_id)
        if entry is not None:
            if entry.predictor is None and rows == entry.rows:
                return _Entry(None, rows, self.clock())
            threshold = max(self.refit_rows, self.refit_fraction * entry.rows)
            if entry.predictor is not None and abs(rows - entry.rows) < threshold:
                return _Entry(entry.predictor, entry.rows, self.clock(),
                              entry.local_signatures)
        samples = load_samples(self.store.db, record, same_kind_weight=self.same_kind_weight)
        if len(signatures_of(samples)) < self.min_signatures:
            return _Entry(None, rows, self.clock())
        predictor = fit_or_load(samples, record.device_id, cache_dir=self.cache_dir,
                                use_cache=self.use_cache)
        self.fits += 1
        local = len(signatures_of([s for s in samples if is_local(s)]))
        return _Entry(predictor, rows, self.clock(), local)

    def decide(self, signature: Signature, candidates: Sequence[Candidate],
               device: torch.device) -> Decision | None:
        """The prediction and its confidence, or None (no model: use the cost model)."""
        try:
            model = self.model(device)
            if model is None:
                return None
            decision = model.decide(signature, candidates, device)
            local = self._entries[device_key(device)].local_signatures
            if (decision is not None and decision.confident
                    and local < max(self.min_signatures, self.min_confident_signatures)):
                # fitted on little of this device's own data: it informs predict mode, but
                # tune mode measures until this device has plenty of its own
                decision = replace(decision, confident=False)
            return decision
        except Exception as error:  # a broken model or database must not break the call
            warnings.warn(f"autoconv: the predictor failed, using the cost model: {error}",
                          RuntimeWarning, stacklevel=2)
            self._entries[device_key(device)] = _Entry(None, 0, self.clock())
            return None
