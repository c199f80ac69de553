"""Training data for the predictor: the tuning database's measurements for one device.

Only measurements that ran correctly (``ok``) on a quiet machine are learned from: one taken
while other work competed for the cores (``contended``, :mod:`autoconv.tuning.contention`)
says more about the neighbours than about the candidate, and a model trained on them would
spread the disturbance to signatures never measured. Rows of this device's
fingerprint count fully; rows of devices *of the same kind* (same CPU model and GPU, but e.g.
another torch version or thread count) can be added with a lower weight, so a machine after an
upgrade starts from its old timings instead of from nothing. Rows of other kinds of device
never mix in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from autoconv.prediction.predictor import Sample
from autoconv.signature import Signature
from autoconv.strategies import all_strategies, freeze_params
from autoconv.tuning.candidates import enumerate_candidates
from tuning_db import DeviceRecord, MeasurementRecord, TuningDB
from tuning_db.records import params_key

#: Weight of a measurement taken on a device of the same kind (1.0 for this device).
SAME_KIND_WEIGHT = 0.25
#: Changes when the same samples would give a different model (a cached one is then refit).
_FIT_RULES = b"confidence near local signatures only\n"


def same_kind(a: DeviceRecord, b: DeviceRecord) -> bool:
    """Whether two fingerprints describe the same hardware (software may differ)."""
    return (a.cpu_model, a.cpu_cores, a.gpu_name) == (b.cpu_model, b.cpu_cores, b.gpu_name)


def sample_of(measurement: MeasurementRecord, weight: float = 1.0) -> Sample:
    """One ok measurement as a training sample."""
    signature = Signature(**measurement.signature.model_dump())
    return Sample(signature, measurement.strategy, dict(measurement.params),
                  measurement.median_s, weight)


def offered(samples: Iterable[Sample]) -> list[Sample]:
    """The samples of candidates the registered strategies still offer for their signature.

    A measurement of a parameter set that an older version offered (a block size since
    dropped from the grid) or of a strategy not registered here is never a choice now: the
    model neither learns from it nor, in cross-validation, may pick it.
    """
    strategies = all_strategies()
    keys: dict[Signature, set[tuple[str, tuple]]] = {}
    kept = []
    for sample in samples:
        if sample.signature not in keys:
            keys[sample.signature] = {(c.name, c.params) for c in
                                      enumerate_candidates(strategies, sample.signature)}
        if (sample.strategy, freeze_params(dict(sample.params))) in keys[sample.signature]:
            kept.append(sample)
    return kept


def load_samples(db: TuningDB, device: DeviceRecord, *,
                 same_kind_weight: float = 0.0) -> list[Sample]:
    """The ok measurements of ``device`` taken on a quiet machine (and, when
    ``same_kind_weight > 0``, of devices of the same kind, at that weight) of candidates
    still offered (:func:`offered`), as training samples."""
    weights = {device.device_id: 1.0}
    if same_kind_weight > 0:
        for other in db.devices():
            if other.device_id != device.device_id and same_kind(other, device):
                weights[other.device_id] = same_kind_weight
    samples = []
    for device_id, weight in weights.items():
        samples.extend(sample_of(m, weight) for _, m in db.measurements(device_id)
                       if m.ok and not m.contended)
    return offered(samples)


def data_key(samples: Iterable[Sample]) -> str:
    """A hash of exactly what a model is fitted on (order-independent).

    Two sets of samples with the same key give the same model, so a cached model is reused
    only for the data it was fitted on.
    """
    lines = sorted(f"{s.signature}|{s.strategy}|{params_key(dict(s.params))}|"
                   f"{s.seconds!r}|{s.weight!r}" for s in samples)
    digest = hashlib.sha256(_FIT_RULES)
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:24]


def is_local(sample: Sample) -> bool:
    """Whether ``sample`` was measured on this device's own fingerprint (full weight)."""
    return sample.weight >= 1.0


def signatures_of(samples: Sequence[Sample]) -> list[Signature]:
    """The distinct signatures of ``samples``, in first-seen order."""
    return list(dict.fromkeys(s.signature for s in samples))
