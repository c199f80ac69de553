"""The process-wide predictor: lazy fitting from the database, refits, the local model cache,
fallbacks to the cost model, and the selector's use of it (fake timers, no wall clock)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from autoconv.prediction import model_cache, service
from autoconv.prediction.predictor import LearnedPredictor
from autoconv.prediction.service import MIN_CONFIDENT_SIGNATURES, DevicePredictor
from autoconv.settings import Settings
from autoconv.storage.store import TuningStore
from autoconv.strategies import all_strategies
from autoconv.tuning.candidates import enumerate_candidates
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.selector import Selector
from tests.prediction.fakes import ManualClock, random_signatures, record_synthetic

CPU = torch.device("cpu")
SIGNATURES = random_signatures(45, seed=3)
UNSEEN = random_signatures(5, seed=4)


class NoTimer:
    """A timer that fails the test if anything is timed."""

    def __call__(self, candidates, **kwargs):
        raise AssertionError("mode predict must never time anything")


class FakeCost:
    def predict(self, signature, strategy, params, device):
        return 1.0 if strategy.reference else 2.0


@pytest.fixture
def store(tmp_path: Path):
    opened = TuningStore(f"sqlite:///{tmp_path / 'tuning.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """Counts real fits (cache hits do not fit)."""
    calls: list[int] = []
    original = LearnedPredictor.fit.__func__

    def counting(cls, samples, **kwargs):
        calls.append(len(list(samples)))
        return original(cls, samples, **kwargs)

    monkeypatch.setattr(LearnedPredictor, "fit", classmethod(counting))
    return calls


def predictor(store, tmp_path, clock=None, **kwargs) -> DevicePredictor:
    return DevicePredictor(store, cache_dir=tmp_path / "models", clock=clock or ManualClock(),
                           min_signatures=30, min_confident_signatures=30, **kwargs)


def candidates(s):
    return enumerate_candidates(all_strategies(), s)


def rows_of(signatures) -> int:
    """Measurements :func:`record_synthetic` stores for ``signatures``: one per candidate."""
    return sum(len(candidates(s)) for s in signatures)


def test_nothing_is_read_or_fitted_before_the_first_prediction(store, tmp_path, fits,
                                                               monkeypatch) -> None:
    record_synthetic(store, SIGNATURES)
    reads: list[int] = []
    original = service.load_samples

    def counting(*args, **kwargs):
        samples = original(*args, **kwargs)
        reads.append(len(samples))
        return samples

    monkeypatch.setattr(service, "load_samples", counting)
    lazy = predictor(store, tmp_path)
    assert fits == [] and lazy.fits == 0 and reads == []
    assert lazy.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU).choice.source == "predicted"
    lazy.decide(UNSEEN[1], candidates(UNSEEN[1]), CPU)
    # read once, fitted once on every stored row, reused for the second signature
    assert reads == [rows_of(SIGNATURES)] and fits == [rows_of(SIGNATURES)] and lazy.fits == 1


def test_too_little_data_means_no_model(store, tmp_path, fits) -> None:
    record_synthetic(store, SIGNATURES[:10])
    assert predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU) is None
    assert fits == []


def test_refits_when_enough_new_measurements_arrive(store, tmp_path, fits) -> None:
    record_synthetic(store, SIGNATURES[:35])
    clock = ManualClock()
    lazy = predictor(store, tmp_path, clock, recheck_s=10.0)
    lazy.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    record_synthetic(store, SIGNATURES[35:])
    lazy.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 1  # not rechecked before recheck_s
    clock.now = 11.0
    lazy.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert fits == [rows_of(SIGNATURES[:35]), rows_of(SIGNATURES)]  # refitted on all rows
    clock.now = 22.0
    lazy.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 2  # nothing new: no refit


def test_a_new_process_reuses_the_cached_model_for_the_same_data(store, tmp_path,
                                                                 fits) -> None:
    record_synthetic(store, SIGNATURES)
    first = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    again = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 1 and again.choice == first.choice
    record_synthetic(store, random_signatures(10, seed=9))
    predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 2  # other data, other key: refitted


def test_a_damaged_cache_file_warns_and_refits(store, tmp_path, fits) -> None:
    record_synthetic(store, SIGNATURES)
    first = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    (cached,) = (tmp_path / "models").iterdir()
    cached.write_bytes(b"not a model")
    with pytest.warns(RuntimeWarning, match="ignoring the cached predictor"):
        decision = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    # refitted on the same data (a fit is deterministic): the same prediction
    assert len(fits) == 2 and decision == first


def test_an_incompatible_cached_model_is_not_used(store, tmp_path, fits, monkeypatch) -> None:
    record_synthetic(store, SIGNATURES)
    first = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    monkeypatch.setattr(model_cache, "FEATURES_VERSION", 999)  # as if the schema changed
    again = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 2 and again == first  # refitted, not loaded; the same data


def test_selector_without_a_model_falls_back_to_the_cost_model(store, tmp_path) -> None:
    selector = Selector(timer=NoTimer(), store=store, cost_model=FakeCost(),
                        predictor=predictor(store, tmp_path),
                        settings=Settings(mode="predict", bucket_lengths=False))
    choice = selector.choose(UNSEEN[0], CPU)
    assert (choice.source, choice.strategy, choice.median_s) == ("cost_model", "direct", 1.0)


def test_a_failing_predictor_warns_and_falls_back(store, tmp_path, monkeypatch) -> None:
    record_synthetic(store, SIGNATURES)
    broken = predictor(store, tmp_path)
    monkeypatch.setattr(LearnedPredictor, "decide", lambda *a: 1 / 0)
    with pytest.warns(RuntimeWarning, match="the predictor failed, using the cost model: "
                                            "division by zero"):
        assert broken.decide(UNSEEN[0], candidates(UNSEEN[0]), CPU) is None


def test_mode_predict_never_times_anything(store, tmp_path) -> None:
    record_synthetic(store, SIGNATURES)
    selector = Selector(timer=NoTimer(), store=store, cost_model=FakeCost(),
                        predictor=predictor(store, tmp_path),
                        settings=Settings(mode="predict", bucket_lengths=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sources = {selector.choose(s, CPU).source for s in UNSEEN}
    assert sources == {"predicted"}


def test_devices_of_the_same_kind_count_at_a_lower_weight(store) -> None:
    from autoconv.prediction.training_data import load_samples
    from autoconv.storage.store import measurement_record, signature_record

    here = store.device(CPU)
    sibling = here.model_copy(update={"torch_threads": here.torch_threads + 7})
    stranger = here.model_copy(update={"cpu_model": "another CPU"})
    s = SIGNATURES[0]
    (candidate, *_) = candidates(s)
    for device, seconds in ((here, 1.0), (sibling, 2.0), (stranger, 3.0)):
        outcome = Outcome(candidate, seconds, samples=5)
        store.db.record(device, measurement_record(signature_record(s), outcome))
    weights = {x.seconds: x.weight for x in load_samples(store.db, here, same_kind_weight=0.25)}
    assert weights == {1.0: 1.0, 2.0: 0.25}
    assert [x.seconds for x in load_samples(store.db, here)] == [1.0]


def test_measurements_taken_on_a_busy_machine_are_not_learned_from(store) -> None:
    from autoconv.prediction.training_data import load_samples
    from autoconv.storage.store import measurement_record, signature_record
    from tuning_db.records import CONTENDED_NOTE

    here = store.device(CPU)
    (quiet, busy) = SIGNATURES[:2]
    for s, note in ((quiet, None), (busy, f"{CONTENDED_NOTE} 8 of 8 samples disturbed")):
        outcome = Outcome(candidates(s)[0], 1.0, samples=8, note=note)
        store.db.record(here, measurement_record(signature_record(s), outcome))
    assert [x.signature for x in load_samples(store.db, here)] == [quiet]


def test_only_candidates_still_offered_are_learned_from() -> None:
    from autoconv.prediction.predictor import Sample
    from autoconv.prediction.training_data import offered
    from autoconv.signature import Signature

    s = Signature(4, 8, 8, 4000, 2, 2, 0, 0, 1, 1, "float32", "cpu")  # one tap per phase
    current = [Sample(s, c.name, dict(c.params), 1e-3) for c in candidates(s)]
    dropped_block = Sample(s, "overlap_add", {"block_size": 4}, 1e-3)  # under MIN_BLOCK
    unknown = Sample(s, "winograd", {}, 1e-3)
    assert offered([*current, dropped_block, unknown]) == current


def _tamper_depth(path: Path, depth: int) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["depth"] = np.int64(depth)
    with path.open("wb") as file:
        np.savez(file, **arrays)


def _zip_bomb(path: Path) -> None:
    """A few hundred kilobytes that expand to 300 MiB of zeros."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("feature.npy", "w", force_zip64=True) as member:
        for _ in range(300):
            member.write(bytes(2**20))


@pytest.mark.parametrize("tampering", ["huge depth", "zip bomb", "fifo"])
def test_a_tampered_cache_file_is_refused_before_it_costs_time_or_memory(
        store, tmp_path, fits, tampering: str) -> None:
    import os

    record_synthetic(store, SIGNATURES)
    first = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    (cached,) = (tmp_path / "models").iterdir()
    if tampering == "huge depth":  # the tree walk would loop 10**12 times
        _tamper_depth(cached, 10**12)
    elif tampering == "zip bomb":
        cached.unlink()
        _zip_bomb(cached)
    else:  # reading it would block forever
        cached.unlink()
        os.mkfifo(cached)
    with pytest.warns(RuntimeWarning, match="ignoring"):
        decision = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 2 and decision == first


def test_a_device_of_the_same_kind_informs_predictions_but_never_makes_them_confident(
        store, tmp_path) -> None:
    from autoconv.storage.store import measurement_record, signature_record
    from tests.prediction.fakes import synthetic_seconds

    local_store = TuningStore(f"sqlite:///{tmp_path / 'local.sqlite3'}")
    record_synthetic(local_store, SIGNATURES)  # the control: the same data measured here
    sibling = store.device(CPU).model_copy(update={"torch_version": "another torch"})
    for s in SIGNATURES:  # measured by a device of the same kind only
        store.db.record_many(sibling, [
            measurement_record(signature_record(s), Outcome(
                c, synthetic_seconds(s, c.name, dict(c.params)), samples=5))
            for c in candidates(s)])
    here = DevicePredictor(local_store, cache_dir=tmp_path / "local-models",
                           clock=ManualClock(), min_signatures=30, min_confident_signatures=30)
    there = predictor(store, tmp_path)
    confident_here = [s for s in SIGNATURES
                      if here.decide(s, candidates(s), CPU).confident]
    assert len(confident_here) > 10
    for s in confident_here:
        decision = there.decide(s, candidates(s), CPU)
        assert decision is not None and not decision.confident  # predict mode may use it
        assert decision.distance == np.inf  # no signature of this device to be near
        mine = here.decide(s, candidates(s), CPU).choice  # the same data: the same pick
        assert (decision.choice.strategy, decision.choice.params) == (mine.strategy,
                                                                      mine.params)
    local_store.close()


def test_tune_mode_skips_measuring_only_once_the_device_has_plenty_of_its_own_data(
        store, tmp_path) -> None:
    record_synthetic(store, SIGNATURES)  # 45 signatures: enough to fit, not to trust
    default = DevicePredictor(store, cache_dir=tmp_path / "models", clock=ManualClock())
    few = predictor(store, tmp_path)  # trusted from 30 on
    decisions = [(default.decide(s, candidates(s), CPU), few.decide(s, candidates(s), CPU))
                 for s in SIGNATURES]
    assert sum(f.confident for _, f in decisions) > 10
    assert not any(d.confident for d, _ in decisions)
    # predict mode still gets the model's pick
    assert all(d.choice == f.choice for d, f in decisions)
    assert default.min_confident_signatures == MIN_CONFIDENT_SIGNATURES >= 1000


def test_a_cached_model_of_other_columns_is_not_used(store, tmp_path, fits, monkeypatch) -> None:
    from autoconv.prediction import features

    record_synthetic(store, SIGNATURES)
    first = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    # as if a term were added to the strategies' Work and FEATURES_VERSION forgotten
    monkeypatch.setattr(features, "CANDIDATE_COLUMNS",
                        (*features.CANDIDATE_COLUMNS, "work_future_term"))
    again = predictor(store, tmp_path).decide(UNSEEN[0], candidates(UNSEEN[0]), CPU)
    assert len(fits) == 2 and again == first  # refitted (a column of zeros changes nothing)
