"""Pre-warming: tune a list of signatures ahead of time, so that later calls find answers.

Each signature goes through a *measuring* selector (database first, then timing; never the
learned predictor, whose confident answers would otherwise stand in for measurements), so a
signature already in the database costs a lookup (unless its decision is provisional and
measuring it now can settle it, see :mod:`autoconv.offline.revisit`, or ``refresh`` asks to
measure everything again), and every finished signature is stored in its own transaction: an
interrupted or budget-limited run keeps what it finished and resumes where it stopped when
run again. What the database fails to take is kept for a bundle
(:mod:`autoconv.offline.unsaved`). A signature that cannot be measured here (its tensors
over ``settings.max_tune_bytes``, or sizes the database cannot hold) is skipped, and the
report says why (:func:`skip_reason`).

Sharding: ``shard(signatures, index, count)`` keeps the signatures whose stable hash falls in
shard ``index`` of ``count``. N machines of one kind, pointed at one shared database, each warm
their own shard: the shards are disjoint, their union is the whole list, and the split depends
neither on the order of the list nor on the process.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from autoconv.buckets import decision_key
from autoconv.offline.revisit import Revisit
from autoconv.offline.revisit import is_provisional as _is_provisional
from autoconv.offline.unsaved import KeepingStore, Kept
from autoconv.settings import Settings, settings
from autoconv.signature import Signature
from autoconv.storage.cost_cache import persistent_cost_model
from autoconv.storage.store import UnstorableSignature, open_default_store, signature_record
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import Clock, Timer, measure_interleaved

#: Called after each signature with (signatures done, how many of them were measured now).
Progress = Callable[[int, int], None]


def is_provisional(outcomes: Sequence[Outcome]) -> bool:
    """Whether a stored decision is provisional: its winner was timed fewer than
    :data:`~tuning_db.records.SETTLED_SAMPLES` times (a first call's answer within its
    budget), only estimated, or on a busy machine
    (:func:`~autoconv.tuning.outcome.provisional_reason`). Warming measures it again when
    that can settle it (:class:`~autoconv.offline.revisit.Revisit`)."""
    return _is_provisional(outcomes, settings.tie_margin)


def measuring_selector(refresh: bool = False, *, timer: Timer = measure_interleaved,
                       clock: Clock = time.perf_counter,
                       load: MachineLoad | QuietMachine | None = None) -> Selector:
    """A selector on the configured database that measures what it does not know, and what
    it knows only provisionally when measuring now can settle it (everything, with
    ``refresh``); its store keeps what the database fails to take
    (:class:`~autoconv.offline.unsaved.KeepingStore`).

    ``timer``, ``clock`` and ``load`` are the :class:`~autoconv.tuning.selector.Selector`'s
    (injectable for tests: fakes make a warm's decisions independent of the machine's speed
    and load)."""
    load = load if load is not None else MachineLoad()
    store = open_default_store(settings)
    return Selector(store=None if store is None else KeepingStore(store, settings.db_retry_s),
                    cost_model=persistent_cost_model,
                    revisit=Revisit(settings, load, refresh), timer=timer, clock=clock,
                    load=load)


def skip_reason(signature: Signature, settings: Settings = settings) -> str | None:
    """Why warming cannot measure ``signature`` (None: it can): its tensors would take more
    than ``settings.max_tune_bytes``, or a size of its decision key is more than the tuning
    database stores."""
    size = signature.tensor_bytes
    if size > settings.max_tune_bytes:
        return (f"its tensors take {_bytes(size)}, over settings.max_tune_bytes = "
                f"{_bytes(settings.max_tune_bytes)} (AUTOCONV_MAX_TUNE_BYTES)")
    try:
        signature_record(decision_key(signature, settings))
    except UnstorableSignature as error:
        return f"the tuning database cannot store it: {error}"
    return None


def _bytes(count: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"


@dataclass
class WarmReport:
    """What a warm run did."""

    total: int
    #: (signature, strategy chosen, where the answer came from) for each visited signature
    visited: list[tuple[Signature, str, str]] = field(default_factory=list)
    measured: int = 0
    #: of the measured signatures, those the database knew (provisionally, or ``refresh``)
    remeasured: int = 0
    #: measured signatures whose measurements could not be stored
    unsaved: int = 0
    #: their measurements, kept for a bundle (:func:`autoconv.offline.unsaved.write_bundle`)
    kept: list[Kept] = field(default_factory=list)
    #: (signature, why) for each signature that could not be measured (:func:`skip_reason`)
    skipped: list[tuple[Signature, str]] = field(default_factory=list)
    #: signatures found in the database before the run, and so never visited (an adaptive
    #: run resuming)
    already: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """Whether every signature was visited or skipped (none left for a later run)."""
        return len(self.visited) + self.already + len(self.skipped) == self.total


def shard_of(signature: Signature, count: int) -> int:
    """The shard (0-based, of ``count``) a signature belongs to: a stable hash of its fields."""
    text = "|".join(f"{key}={value}" for key, value in sorted(signature.as_dict().items()))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % count


def shard(signatures: Iterable[Signature], index: int, count: int) -> list[Signature]:
    """The signatures of shard ``index`` (0-based) of ``count``.

    Raises:
        ValueError: ``count < 1`` or ``index`` outside ``0 .. count-1``.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index + 1}/{count} does not exist (shards are 1..{count})")
    return [s for s in signatures if shard_of(s, count) == index]


def unique(signatures: Iterable[Signature]) -> list[Signature]:
    """The signatures without repeats, in first-seen order."""
    return list(dict.fromkeys(signatures))


def warm(signatures: Iterable[Signature], device: torch.device | str = "cpu", *,
         total_budget_s: float | None = None, selector: Selector | None = None,
         progress: Progress | None = None, refresh: bool = False,
         clock: Callable[[], float] = time.perf_counter) -> WarmReport:
    """Tune every signature in order (repeats once; those the database knows are looked up,
    those :func:`skip_reason` refuses are skipped).

    Args:
        signatures: what to tune.
        device: where to measure.
        total_budget_s: no new signature is started after this many seconds (each signature
            is itself bounded by ``settings.budget_s``).
        selector: default :func:`measuring_selector` (on the configured database).
        refresh: measure every signature again, even those the database knows (with the
            default selector; provisional decisions are always measured again).
        progress: called with (visited, measured) after each signature.
        clock: the wall clock (injectable for tests).

    Returns:
        A :class:`WarmReport`. On Ctrl-C the report so far comes back with
        ``interrupted=True``; every signature finished before it is stored (or kept, when
        the database failed).
    """
    target = torch.device(device)
    chosen = selector or measuring_selector(refresh)
    unsaved_before = chosen.unsaved
    kept = getattr(getattr(chosen, "store", None), "kept", [])
    kept_before = len(kept)
    revisit = getattr(chosen, "revisit", None)
    todo = unique(signatures)
    report = WarmReport(len(todo))
    start = clock()
    try:
        for signature in todo:
            if total_budget_s is not None and clock() - start >= total_budget_s:
                break
            try:
                why = skip_reason(signature, getattr(chosen, "settings", settings))
                if why is None:
                    revisited = getattr(revisit, "count", 0)
                    choice = chosen.choose(signature, target)
                    report.visited.append((signature, choice.strategy, choice.origin))
                    measured = choice.origin == "measured"
                    report.measured += measured
                    report.remeasured += measured and getattr(revisit, "count", 0) > revisited
                else:
                    report.skipped.append((signature, why))
                if progress is not None:
                    progress(len(report.visited) + len(report.skipped), report.measured)
            except KeyboardInterrupt:
                report.interrupted = True
                break
    finally:
        if selector is None and chosen.store is not None:
            chosen.store.close()  # the store this call opened
    report.unsaved = chosen.unsaved - unsaved_before
    report.kept = kept[kept_before:]
    report.seconds = clock() - start
    return report


def warm_adaptive(pool: Sequence[Signature], total: int, device: torch.device | str = "cpu",
                  *, total_budget_s: float | None = None, progress: Progress | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> WarmReport:
    """Measure ``total`` signatures of ``pool``, chosen where the predictor is least sure
    (:func:`autoconv.prediction.adaptive.adaptive_rounds`): a seed in pool order, then rounds
    of the signatures whose predicted ranking has the smallest margin under a model refitted
    on the configured database. Resumable like :func:`warm`.

    Args:
        pool: the candidates (a larger draw of the grid), in the grid's order.
        total_budget_s: no new signature is started after this many seconds.
        progress: called with (visited, measured) after each signature, counted over the
            whole run.
    """
    import tuning_db
    from autoconv.prediction.adaptive import adaptive_rounds
    from autoconv.prediction.training_data import load_samples
    from autoconv.storage.store import device_record

    target = torch.device(device)
    record = device_record(target)

    def samples():
        with tuning_db.connect(settings.db_url) as db:
            return load_samples(db, record)

    total = min(total, len(pool))
    known = len({s.signature for s in samples()} & set(pool))
    report = WarmReport(total, already=min(known, total))
    selector = measuring_selector()
    start = clock()

    def spent() -> bool:
        return report.interrupted or (total_budget_s is not None
                                      and clock() - start >= total_budget_s)

    def measure(batch: list[Signature]) -> None:
        left = None if total_budget_s is None else total_budget_s - (clock() - start)
        offset = (report.already + len(report.visited) + len(report.skipped),
                  report.measured)
        part = warm(batch, target, total_budget_s=left, selector=selector, clock=clock,
                    progress=None if progress is None else (
                        lambda done, measured: progress(offset[0] + done,
                                                        offset[1] + measured)))
        report.visited += part.visited
        report.measured += part.measured
        report.remeasured += part.remeasured
        report.unsaved += part.unsaved
        report.kept += part.kept
        report.skipped += part.skipped
        report.interrupted = part.interrupted

    try:
        adaptive_rounds(pool, total, measure, samples, should_stop=spent)
    finally:
        if selector.store is not None:
            selector.store.close()
    report.seconds = clock() - start
    return report
