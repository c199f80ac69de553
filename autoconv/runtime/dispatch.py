"""The process-wide dispatch: which strategy each call runs, remembered per call key.

One :class:`Dispatcher` (:data:`dispatcher`) holds all of it: the selector (created on first
use, on the configured database), the hot-path dict from a call's key to the strategy it
runs, and the selector of streams (``autoconv.Conv1dStream``), on the same database. The hot
path is tiny: build a key from the call (shapes, arguments, dtype, device, whether gradients
are needed), one dict lookup, run the remembered strategy. Everything else (signature,
database, measuring) happens once per key, on a miss.

:meth:`Dispatcher.reset` forgets it all; it runs whenever a setting of ``autoconv.settings``
changes, so that e.g. a new ``db_url`` or mode takes effect on the next call.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import warnings
from collections.abc import Callable, Sequence

import torch

from autoconv import contexts, plain
from autoconv.choice import Choice
from autoconv.contexts import any_autocast
from autoconv.prediction.service import DevicePredictor
from autoconv.runtime.preparing import BackgroundPreparations, PreparationKey
from autoconv.runtime.refresh import CallCounter, Refresher
from autoconv.settings import Settings, settings, warn_about_environment
from autoconv.signature import PaddingArg, Signature, _single, call_signature, resolve_padding
from autoconv.storage.cost_cache import persistent_cost_model
from autoconv.storage.guarded import GuardedStore
from autoconv.storage.store import open_default_store
from autoconv.strategies import SpectrumCache
from autoconv.strategies import reference as reference_strategy
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.exploration import Exploration
from autoconv.tuning.live_check import LiveCheck
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.selector import Selector
from autoconv.tuning.stream_selector import StreamSelector
from autoconv.tuning.trial import OutputCheck

Runner = Callable[..., torch.Tensor]
#: A call's key -> (its runner, the same runner if it takes ``spectrum_cache=`` and the call's
#: weight is reused (:attr:`Signature.weight_reused`), else None, what watches its decision on
#: live calls, else None: the live re-check, in mode ``live`` the exploration, or for an
#: answer given without a measurement the call counter of :mod:`autoconv.runtime.refresh`).
Runners = tuple[Runner, Runner | None, LiveCheck | Exploration | CallCounter | None]


def default_selector(settings: Settings) -> Selector:
    """The selector a process uses: the configured database (unless persistence is off), the
    calibrated cost model and the predictor fitted on this device's measurements."""
    warn_about_environment()
    store = open_default_store(settings)
    guarded = None if store is None else GuardedStore(store, settings.db_retry_s)
    return Selector(store=guarded, cost_model=persistent_cost_model,
                    predictor=DevicePredictor(guarded), settings=settings)


class Dispatcher:
    """The selector and the hot-path dict of one process (see the module docstring).

    Args:
        settings: what the selector obeys.
        make_selector: builds the selector on first use (and again after :meth:`reset`).
        fast_limit: most call keys remembered; the dict is cleared when it is full.
    """

    def __init__(self, settings: Settings,
                 make_selector: Callable[[Settings], Selector] = default_selector,
                 fast_limit: int = 100_000) -> None:
        self.settings = settings
        self.make_selector = make_selector
        self.fast_limit = fast_limit
        self._selector: Selector | None = None
        self._stream_selector: StreamSelector | None = None
        self._lock = threading.Lock()
        self._fast: dict[tuple, Runners] = {}
        #: mode live: the explorations under way, by (call signature, device)
        self._explorations: dict[tuple[Signature, torch.device], Exploration] = {}
        #: answers given without a measurement: noted, and replaced once measured
        self._refresher: Refresher | None = None
        #: whether the refresher runs in a background thread (tests call refresh() instead)
        self.refresh_in_background = True
        self._keys_of: dict[tuple[Signature, torch.device], set[tuple]] = {}
        #: the clock and load the live re-checks time with (tests inject fakes)
        self.live_clock: Callable[[], float] = time.perf_counter
        self.live_load: MachineLoad | QuietMachine | None = None
        #: whether a chosen strategy is prepared (compiled) on a background thread while
        #: F.conv1d answers (:mod:`.preparing`), or on the call's own thread
        self.prepare_in_background = True
        self.preparations = BackgroundPreparations(self._prepared)
        #: the call keys F.conv1d answers while a preparation runs, by preparation
        self._interim: dict[PreparationKey, set[tuple]] = {}
        #: the runners of calls with gradients made under saved-tensor hooks, kept as first
        #: given (see :meth:`runners`)
        self._checkpointed: dict[tuple, Runners] = {}

    @property
    def selector(self) -> Selector:
        """The selector (created on first use)."""
        selector = self._selector
        if selector is None:
            with self._lock:
                if self._selector is None:
                    self._selector = self.make_selector(self.settings)
                selector = self._selector
        return selector

    @property
    def stream_selector(self) -> StreamSelector:
        """The selector of streams (:mod:`autoconv.streaming`), on the selector's store
        (created on first use)."""
        selector = self._stream_selector
        if selector is None:
            store = self.selector.store
            with self._lock:
                if self._stream_selector is None:
                    self._stream_selector = StreamSelector(store=store, settings=self.settings)
                selector = self._stream_selector
        return selector

    def reset(self) -> None:
        """Forget every in-memory decision and close the database (reopened on next use)."""
        with self._lock:
            self._fast.clear()
            self._explorations.clear()
            self._keys_of.clear()
            self._interim.clear()
            self._checkpointed.clear()
            self.preparations = BackgroundPreparations(self._prepared)  # failures forgotten
            if self._refresher is not None:
                self._refresher.stop()
            self._refresher = None
            store = self._selector.store if self._selector is not None else None
            self._selector = None
            self._stream_selector = None
        if store is not None:
            store.close()

    def recover(self, error: Exception, input: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, stride, padding, dilation, groups,
                weight_reused: bool = False) -> torch.Tensor:
        """A remembered strategy raised ``error`` on this call: ``F.conv1d`` answers it (with
        its own exception, if it refuses the call too), and where ``F.conv1d`` succeeds the
        strategy was at fault: it is discarded for the call's signature (never chosen again
        in this process) and the next call decides anew. The caller never sees ``error``.
        ``weight_reused``: as the call's :meth:`runners` was told.
        """
        result = plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
        with self._lock:
            self._fast.clear()  # rare: every key is looked up again once
        try:
            signature = call_signature(input, weight, bias, stride, padding, dilation, groups)
        except (RuntimeError, TypeError, ValueError):
            return result
        if weight_reused and _reusable(weight, signature.requires_grad, contexts.any_autocast()):
            signature = _as_reused(signature)
        discarded = self.selector.discard(signature, input.device)
        if discarded is not None:
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            warnings.warn(f"autoconv: {discarded.strategy} {discarded.params_dict} raised "
                          f"{type(error).__name__}: {message[:200]} on {signature}; F.conv1d "
                          f"answered, and the signature is decided again without it",
                          RuntimeWarning, stacklevel=3)
        return result

    def choose(self, signature: Signature, device: torch.device) -> Choice:
        """The selector's choice for ``signature`` on ``device`` (tuned, when it must be,
        with autocast off: the signature already says the dtype the call runs in)."""
        with (contexts.autocast_off(device.type if contexts.any_autocast() else None),
              contexts.own_saved_tensors()):
            return self.selector.choose(signature, device)

    def runners(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride, padding, dilation, groups, weight_reused: bool = False) -> Runners:
        """The hot path: build the call's key, one dict lookup (resolving on a miss).

        ``weight_reused``: the caller passes the same weight tensor, unchanged, on every
        call (an ``autoconv.Conv1d`` layer's own weight). Where the call needs no gradient,
        runs without autocast (which would cast the weight anew) and the weight is not an
        inference tensor (which no spectrum cache keeps), the call is decided as such a
        call (:attr:`Signature.weight_reused`), under a key of its own."""
        key = (input.shape, weight.shape, stride, padding, dilation, groups, input.dtype,
               input.device, torch.is_grad_enabled() and (
                   input.requires_grad or weight.requires_grad
                   or (bias is not None and bias.requires_grad)), any_autocast())
        reused = weight_reused and _reusable(weight, key[-2], key[-1])
        if reused:
            key = (_REUSED_WEIGHT, *key)
        try:
            entry = self._fast[key]
        except KeyError:
            entry = self._resolve(key, input, weight, bias, stride, padding, dilation, groups,
                                  reused)
        except TypeError:  # an unhashable argument (a list as padding): resolve every time
            return self._resolve(None, input, weight, bias, stride, padding, dilation, groups,
                                 reused)
        if key[-2] and contexts.saved_tensor_hooks_active():
            return self._pinned(key, entry)
        return entry

    def _pinned(self, key: tuple, entry: Runners) -> Runners:
        """A call with gradients under saved-tensor hooks runs the runner its key first got
        there, whatever the key's entry became since. Activation checkpointing recomputes
        the forward in backward and matches the tensors it saves with the first pass's: a
        decision that changed in between (a kernel that finished compiling while
        ``F.conv1d`` answered, a decision corrected on live calls) would save other tensors
        and fail the backward. Such calls keep their first answer for the process's life
        (or until :meth:`reset`), even when a faster one comes later."""
        pinned = self._checkpointed.get(key)
        if pinned is not None:
            return pinned
        with self._lock:
            pinned = self._checkpointed.get(key)
            if pinned is None:
                if len(self._checkpointed) >= self.fast_limit:
                    self._checkpointed.clear()
                pinned = self._checkpointed[key] = entry
        return pinned

    def _resolve(self, key: tuple | None, input: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor | None, stride, padding, dilation, groups,
                 reused: bool) -> Runners:
        if contexts.in_transform() or contexts.is_tracing():
            # Nothing may be measured, and F.conv1d works in every transform and traces as
            # itself. Not remembered: the same call outside the transform is tuned as usual.
            return _PLAIN
        try:
            signature = call_signature(input, weight, bias, stride, padding, dilation, groups)
        except (RuntimeError, TypeError, ValueError, IndexError):
            # F.conv1d answers a call autoconv refuses: with its own error, or with its
            # result where it accepts more. Not remembered: the next call is checked again.
            return _PLAIN
        if reused:
            signature = _as_reused(signature)
        choice = self.choose(signature, input.device)
        if self._preparing(key, choice, signature, input, weight, bias):
            return _PLAIN
        _prepare(choice, signature, input, weight, bias)
        watch = (self._exploration(key, signature, choice, input.device)
                 or self._live_check(key, signature, choice, input.device))
        if not isinstance(watch, Exploration) and self._wanted(key, signature, choice):
            watch = self._counted(key, signature, input.device, watch)
        # a layer's spectrum cache serves only the calls decided with it: those whose weight
        # is reused (the FFT then takes a coarser length, as the tuner timed it)
        kept = signature.weight_reused and choice.strategy_impl.takes_spectrum_cache
        entry = (choice.run, choice.run if kept else None, watch)
        # in mode tune, an answer given because nothing could be measured just now (another
        # thread compiling, a CUDA graph captured) is not kept: a later call tunes the key
        unsettled = self.settings.mode == "tune" and not contexts.may_measure(input.device)
        if key is not None and not unsettled:
            if len(self._fast) >= self.fast_limit:
                self._fast.clear()
            self._fast[key] = entry
        return entry

    def _preparing(self, key: tuple | None, choice: Choice, signature: Signature,
                   input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                   ) -> bool:
        """Whether ``F.conv1d`` answers the call while ``choice`` is prepared for its
        signature on a background thread (:mod:`.preparing`); the answer is remembered for
        the call's key until the preparation ends. Not where nothing may run besides the
        call (a CUDA graph being captured: ``contexts.may_measure``)."""
        if not self.prepare_in_background or not contexts.may_measure(input.device):
            return False
        # under the lock: a preparation that ends at once must find the key to release
        with self._lock:
            preparation = self.preparations.pending(choice, signature, input, weight, bias)
            if preparation is None:
                return False
            if key is not None:
                self._interim.setdefault(preparation, set()).add(key)
                if len(self._fast) >= self.fast_limit:
                    self._fast.clear()
                self._fast[key] = _PLAIN
        return True

    def _prepared(self, preparation: PreparationKey) -> None:
        """A background preparation ended: its calls look their strategy up again."""
        with self._lock:
            for key in self._interim.pop(preparation, ()):
                if self._fast.get(key) is _PLAIN:
                    del self._fast[key]

    def _wanted(self, key: tuple | None, signature: Signature, choice: Choice) -> bool:
        """Whether a call answered by ``choice`` is noted for a tuning worker: answered
        without a measurement where this process will not measure it (mode predict, or
        mode live on a call exploration does not cover), with a database to note it in."""
        return (key is not None and self.settings.refresh_s > 0 and not signature.is_degenerate
                and self.settings.mode in ("predict", "live")
                and choice.origin in ("predicted", "cost_model", "fallback")
                and self.selector.store is not None)

    def _counted(self, key: tuple, signature: Signature, device: torch.device,
                 watch: LiveCheck | None) -> CallCounter:
        """The call's watch, counting its calls for the refresher (:mod:`.refresh`)."""
        refresher = self.refresher
        stored_as = self.selector.key_signature(signature)  # what a worker measures
        with self._lock:
            self._keys_of.setdefault((stored_as, device), set()).add(key)
        return CallCounter(functools.partial(refresher.noted, stored_as, device), watch)

    @property
    def refresher(self) -> Refresher:
        """Notes and refreshes the answers given without a measurement (created on first
        use, on the selector; no background thread when ``refresh_in_background`` is off)."""
        refresher = self._refresher
        if refresher is None:
            selector = self.selector
            with self._lock:
                if self._refresher is None:
                    self._refresher = Refresher(
                        selector, self._forget_calls,
                        self.settings.refresh_s if self.refresh_in_background else 0.0)
                refresher = self._refresher
        return refresher

    def _forget_calls(self, signature: Signature, device: torch.device) -> None:
        """Drop the hot-path entries of the calls noted under (signature, device)."""
        with self._lock:
            for key in self._keys_of.pop((signature, device), ()):
                self._fast.pop(key, None)

    def _exploration(self, key: tuple | None, signature: Signature, choice: Choice,
                     device: torch.device) -> Exploration | None:
        """Mode ``live``: the exploration of a signature answered without a measurement
        (:mod:`autoconv.tuning.exploration`), for a remembered CPU call without gradients
        (under autocast too: the arms and the check's ``F.conv1d`` get autocast's casts, and
        the signature has autocast's dtype); None otherwise (a degenerate call, which every
        strategy answers with ``F.conv1d``, has nothing to explore)."""
        if (self.settings.mode != "live" or key is None or key[-2]
                or device.type != "cpu" or signature.is_degenerate
                or choice.origin in ("measured", "database", "corrected")):
            return None
        answer = Candidate(choice.strategy_impl, choice.params)
        known = self._explorations.get((signature, device))
        if known is not None and not known.finished and known.answer.candidate == answer:
            return known  # the hot-path dict was cleared: carry on where it was
        selector = self.selector
        arms = [(candidate, predicted, _arm(signature, candidate,
                                            choice.run if candidate == answer else None))
                for candidate, predicted in selector.explorable(signature, device, answer)]
        if len(arms) < 2:
            return None

        def settle(outcomes: Sequence[Outcome]) -> None:
            if outcomes:
                selector.adopt(signature, device, outcomes)
            with self._lock:
                self._explorations.pop((signature, device), None)
                # the calls it explored on look their decision up again; no others
                for stale in [k for k, entry in self._fast.items() if entry[2] is exploration]:
                    del self._fast[stale]

        exploration = Exploration(signature, answer, arms, settle=settle,
                           overhead=self.settings.explore_overhead,
                           call_factor=self.settings.explore_call_factor,
                           tolerance=OutputCheck.tolerance_for(signature,
                                                               self.settings.tolerance),
                           clock=self.live_clock, load=self.live_load)
        with self._lock:
            self._explorations[(signature, device)] = exploration
        return exploration

    def _live_check(self, key: tuple | None, signature: Signature, choice: Choice,
                    device: torch.device) -> LiveCheck | None:
        """The live re-check of a decision (:mod:`autoconv.tuning.live_check`), for a
        remembered CPU call without autocast (with gradients or without) decided for another
        strategy than ``F.conv1d`` as called; None otherwise (nothing to watch: F.conv1d is
        the bar)."""
        every = self.settings.recheck_every
        if (not every or key is None or key[-1] or device.type != "cpu"
                or signature.is_degenerate
                or choice.strategy_impl.is_plain_conv1d(choice.params_dict)):
            return None
        selector = self.selector
        reference = Candidate(reference_strategy(), ())
        stored = {o.candidate: o for o in selector.stored(signature, device) if o.ok}
        reference_s = stored[reference].median_s if reference in stored else None

        def correct(live: Sequence[Outcome]) -> None:
            selector.correct(signature, device, live)
            with self._lock:
                self._fast.clear()  # rare: every key is looked up again once

        # a predicted time is no bar to hold a winner to: only a measured one
        measured = choice.origin in ("measured", "database", "corrected")
        return LiveCheck(signature, Candidate(choice.strategy_impl, choice.params), reference,
                         stored_s=choice.median_s if measured else None,
                         reference_s=reference_s,
                         every=every, correct=correct, clock=self.live_clock,
                         load=self.live_load)


def _arm(signature: Signature, candidate: Candidate, run: Runner | None) -> Runner:
    """What explores ``candidate`` on live calls (``run``, else its strategy's runner): on a
    layer's calls (:attr:`Signature.weight_reused`) a strategy that takes a spectrum cache
    keeps one of its own, as the tuner times it and the layer would run it."""
    run = run or candidate.strategy.bound(dict(candidate.params))
    if signature.weight_reused and candidate.strategy.takes_spectrum_cache:
        return functools.partial(run, spectrum_cache=SpectrumCache.of_layer())
    return run


def _prepare(choice: Choice, signature: Signature, input: torch.Tensor, weight: torch.Tensor,
             bias: torch.Tensor | None) -> None:
    """The chosen strategy's one-time preparation for this call's own signature (compiling
    its kernel: tuning prepared the length bucket's), done before a live check times a call:
    a first call that compiled would count seconds against the decision. (Usually done in
    the background already: :meth:`Dispatcher._preparing`; here on the call's thread, when
    that is off or failed, and a no-op once prepared.) Left to the call
    itself under autocast (the tensors are not yet cast) or where nothing may run to learn
    (``contexts.may_measure``); a preparation that raises is left to the call too, whose
    failure the dispatcher recovers from."""
    preparation = choice.strategy_impl.preparation
    if (preparation is None or contexts.any_autocast()
            or not contexts.may_measure(input.device)):
        return
    try:
        preparation(signature, choice.params_dict, input, weight, bias)
    except Exception:  # noqa: BLE001  # the call raises it again, and is recovered
        return


def _reusable(weight: torch.Tensor, needs_grad: bool, autocast: bool) -> bool:
    """Whether a call whose caller says its weight is reused may be decided as such (see
    :meth:`Dispatcher.runners`): no gradient, no autocast (which casts the weight anew), not
    an inference tensor (which no spectrum cache keeps)."""
    return not (needs_grad or autocast or weight.is_inference())


def _as_reused(signature: Signature) -> Signature:
    """``signature`` marked :attr:`~Signature.weight_reused` (a degenerate call, which
    ``F.conv1d`` answers, as it is)."""
    if signature.is_degenerate:
        return signature
    return dataclasses.replace(signature, weight_reused=True)


_PLAIN: Runners = (plain.conv1d, None, None)
#: The first element of the key of a call whose weight is reused (:meth:`Dispatcher.runners`).
_REUSED_WEIGHT = "weight reused"
# The defaults, compared by identity: ``is`` holds for the int 0 or 1 alone (CPython keeps one
# object of each small int), not for 1.0 or True, which F.conv1d refuses and must see.
_ZERO, _ONE = 0, 1

#: The dispatcher of this process, on ``autoconv.settings``.
dispatcher = Dispatcher(settings)
settings.on_change(dispatcher.reset)


def conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | tuple[int] = 1, padding: PaddingArg = 0,
           dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """Apply a 1-D convolution exactly as ``torch.nn.functional.conv1d`` does, faster.

    The first call with a new signature (shapes, stride, padding, dilation, groups, dtype,
    device, whether gradients are needed) looks the answer up in the tuning database, or, in
    mode ``tune``, measures the candidate strategies once; later calls run the winner directly.
    Under ``torch.compile`` the call is one custom op in the graph (no graph break): it runs
    the tuned strategy when the compiled graph runs (:mod:`autoconv.runtime.custom_op`).

    This is ``autoconv.conv1d`` itself; the custom op runs :func:`eager_conv1d`.

    Args:
        input, weight, bias, stride, padding, dilation, groups: as for ``F.conv1d``.

    Returns:
        The same tensor ``F.conv1d`` returns (within floating-point tolerance).

    Raises:
        RuntimeError: the error ``F.conv1d`` raises for the same bad arguments.
    """
    if torch.compiler.is_compiling():
        return traced_conv1d(input, weight, bias, stride, padding, dilation, groups)
    return eager_conv1d(input, weight, bias, stride, padding, dilation, groups)


def eager_conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1) -> torch.Tensor:
    """:func:`conv1d` as it runs when nothing traces it: the remembered strategy (looked up,
    or tuned, on a new call key), what the custom op runs when a compiled graph runs.

    Never asks whether torch is compiling: torch's flag for it is one for the whole process,
    so while another thread compiles (a preparation in the background, a model compiled
    beside) it reads true on this thread too, and the op that :func:`conv1d` then records
    would call :func:`conv1d` again, and so on without end.
    """
    if settings.mode == "off":
        return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
    run, _, watch = dispatcher.runners(input, weight, bias, stride, padding, dilation, groups)
    try:
        if watch is not None:  # a decision re-checked on live calls: one call in N is timed
            watch.countdown -= 1
            if watch.countdown <= 0:
                return watch.sampled(run, input, weight, bias, stride, padding, dilation,
                                     groups)
        if (bias is None and stride is _ONE and padding is _ZERO and dilation is _ONE
                and groups is _ONE):
            return run(input, weight)  # torch parses two arguments faster than seven
        return run(input, weight, bias, stride, padding, dilation, groups)
    except Exception as error:
        # F.conv1d's own error (the call itself is wrong), or checkpointing's control flow
        if run is plain.conv1d or contexts.is_control_flow(error):
            raise
        return dispatcher.recover(error, input, weight, bias, stride, padding, dilation,
                                  groups)


def conv1d_cached(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride: int | tuple[int], padding: PaddingArg, dilation: int | tuple[int],
                  groups: int, spectrum_cache: SpectrumCache,
                  weight_reused: bool = False) -> torch.Tensor:
    """:func:`conv1d` that lets FFT strategies reuse the weight's spectrum from a cache
    (what ``autoconv.Conv1d`` runs). ``weight_reused``: ``weight`` is the same tensor on every
    call (the layer's own, or its parametrization's result reused while its originals are
    unchanged), so that a call without gradients is decided with the spectrum's reuse
    counted (:attr:`Signature.weight_reused`)."""
    if torch.compiler.is_compiling():  # the op runs without the cache
        return traced_conv1d(input, weight, bias, stride, padding, dilation, groups)
    if settings.mode == "off":
        return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
    run, run_cached, watch = dispatcher.runners(input, weight, bias, stride, padding, dilation,
                                                groups, weight_reused)
    try:
        if watch is not None:
            watch.countdown -= 1
            if watch.countdown <= 0:
                cached = None if run_cached is None else functools.partial(
                    run_cached, spectrum_cache=spectrum_cache)
                return watch.sampled(cached or run, input, weight, bias, stride, padding,
                                     dilation, groups)
        if run_cached is not None:
            return run_cached(input, weight, bias, stride, padding, dilation, groups,
                              spectrum_cache=spectrum_cache)
        return run(input, weight, bias, stride, padding, dilation, groups)
    except Exception as error:
        if run is plain.conv1d or contexts.is_control_flow(error):
            raise
        return dispatcher.recover(error, input, weight, bias, stride, padding, dilation,
                                  groups, weight_reused)


def traced_conv1d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride, padding, dilation, groups: int) -> torch.Tensor:
    """What :func:`conv1d` does while ``torch.compile`` traces it: one
    ``torch.ops.autoconv.conv1d`` node (registered by :mod:`autoconv.runtime.custom_op`,
    which importing :mod:`autoconv.runtime` loads), with the padding made explicit.

    ``torch.export`` (and the exporters built on it: ``torch.onnx.export``, AOTInductor)
    records ``F.conv1d`` itself instead: an exported program runs where autoconv does not
    (onnxruntime, a C++ runtime, a process without autoconv), so it carries the standard op.
    """
    if torch.compiler.is_exporting():
        return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
    stride_, dilation_ = _single(stride, "stride"), _single(dilation, "dilation")
    left, right = resolve_padding(padding, weight.shape[-1], dilation_, stride_)
    return torch.ops.autoconv.conv1d(input, weight, bias, stride_, left, right, dilation_,
                                     groups)
