"""autoconv's settings: one typed model, read from ``AUTOCONV_*`` environment variables.

Change a value for the rest of the process by assignment, or for a block with
:meth:`Settings.override`, which restores the previous values on exit (the way
``torch.backends.cudnn.flags`` does)::

    import autoconv
    autoconv.settings.mode = "predict"          # never measure in this process
    with autoconv.settings.override(mode="off"):
        ...                                     # plain F.conv1d inside the block
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuning_db.records import MAX_SAMPLES

Mode = Literal["tune", "live", "predict", "off"]


class Settings(BaseSettings):
    """What autoconv does on a call it has no answer for, and how hard it tries.

    Every field can be set with an environment variable named ``AUTOCONV_`` + the field name
    in capitals, e.g. ``AUTOCONV_MODE=predict`` or ``AUTOCONV_BUDGET_S=0.5``.
    """

    model_config = SettingsConfigDict(env_prefix="AUTOCONV_", validate_assignment=True,
                                      extra="forbid")

    mode: Mode = Field("tune", description=(
        "'tune': measure an unseen signature once and remember the winner; 'live': answer "
        "at once as 'predict' does, then measure the candidates on the signature's later "
        "calls (CPU calls without gradients) and switch to the winner; 'predict': never "
        "measure, use the database or a prediction; 'off': always F.conv1d."))
    db_url: str | None = Field(None, description=(
        "SQLAlchemy URL of the tuning database; None = the default SQLite file in the user's "
        "cache directory. The same variable, AUTOCONV_DB_URL, is read by tuning_db.connect."))
    persist: bool = Field(True, description="Store measurements in the tuning database.")
    db_timeout_s: float = Field(5.0, gt=0, description=(
        "Most seconds a database server may take to connect or to answer one statement; "
        "after that the operation fails (and autoconv carries on without the database)."))
    db_retry_s: float = Field(30.0, gt=0, description=(
        "After a tuning-database operation fails, seconds autoconv runs without the database "
        "before it tries it again (the failed operation alone is lost)."))
    budget_s: float = Field(2.0, gt=0, description=(
        "Wall-clock budget for tuning one signature, warm-up calls included."))
    max_samples: int = Field(25, ge=1, le=MAX_SAMPLES,
                             description="Timed calls per candidate at most.")
    max_tune_bytes: int = Field(4 * 2**30, ge=1, description=(
        "A signature whose input, weight and output would take more bytes than this is never "
        "measured (its tuning inputs alone could exhaust memory); the database or a "
        "prediction answers it."))
    min_samples: int = Field(1, ge=1, description=(
        "Timed calls per candidate at least, after its warm-up call, even past the budget. "
        "1 keeps first calls within the budget; 'autoconv warm' uses 3, so that what is "
        "stored (and what the predictor learns from) is never a lone warm-up call."))
    race: bool = Field(True, description=(
        "Race the candidates: stop warming up or timing those clearly slower than the best "
        "so far, and stop timing once one is left or those left are tied. False times every "
        "candidate that fits the budget to the end (slower to decide, for comparisons)."))
    prior_gain: float = Field(4.0, ge=1, description=(
        "Without measurements or a learned model (mode predict, or a call that cannot be "
        "measured), the cost model's pick replaces F.conv1d only when it predicts at least "
        "this many times less time; scripts/bench_prior.py measures the choice."))
    prune_factor: float = Field(8.0, gt=1, description=(
        "Candidates the cost model predicts to be this many times slower than the predicted "
        "best are never timed."))
    tie_margin: float = Field(0.03, ge=0, description=(
        "Candidates within this fraction of the fastest count as tied; the tie goes to the "
        "simpler, more accurate strategy (the one registered first: see autoconv.strategies)."))
    tolerance: float | None = Field(None, gt=0, description=(
        "Largest error relative to the output's magnitude that a candidate may show against "
        "F.conv1d before it is disqualified; None = a default per dtype."))
    recheck_every: int = Field(64, ge=0, description=(
        "Re-check decisions on live calls: the first calls of a signature decided for another "
        "strategy than F.conv1d, then one call in this many, are timed (alternately the "
        "winner and F.conv1d), and "
        "a winner found clearly slower is decided again on those timings and corrected in "
        "the database; the interval doubles each time the decision is confirmed. CPU calls "
        "outside autocast (a call with gradients is timed as a forward and backward on "
        "detached copies); 0 turns it off."))
    explore_overhead: float = Field(0.10, gt=0, le=1, description=(
        "Mode live: exploration adds at most this fraction to the time of a signature's "
        "calls (what its explored calls cost beyond the current answer)."))
    explore_call_factor: float = Field(4.0, ge=1, description=(
        "Mode live: no explored call is expected to take more than this many times the "
        "current answer's time; a candidate expected slower is not explored."))
    refresh_s: float = Field(30.0, ge=0, description=(
        "A process that answers signatures without a measurement (mode predict; in mode "
        "live, calls exploration does not cover) notes them in the database for "
        "'autoconv warm --wanted', and looks them up again every this many seconds, "
        "switching to a measured answer once one is stored (a background thread; never a "
        "query per call). 0 turns both off."))
    bucket_lengths: bool = Field(True, description=(
        "Share one tuning decision between nearby input lengths (geometric buckets), so that "
        "a model fed many lengths tunes a bounded number of signatures."))
    bucket_ratio: float = Field(1.25, gt=1, le=2, description=(
        "Ratio between consecutive length buckets (1.25: about 3 buckets per octave)."))
    bucket_min_length: int = Field(256, ge=1, description=(
        "Lengths up to this are never bucketed (tiny calls differ a lot between lengths)."))

    _listeners: list[Callable[[], None]] = PrivateAttr(default_factory=list)
    _lock: Any = PrivateAttr(default_factory=threading.RLock)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        changed = getattr(self, name, _MISSING) != value
        super().__setattr__(name, value)
        if changed:
            for listener in list(self._listeners):
                listener()

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after any setting *of this object* changes value (e.g. to drop
        cached choices).

        Returns:
            A function that unregisters ``listener``.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @contextmanager
    def override(self, **values: Any) -> Iterator[Settings]:
        """Set settings for the duration of a ``with`` block, then restore the previous values.

        Raises:
            pydantic.ValidationError: an unknown name or an invalid value (nothing is changed).
        """
        with self._lock:
            Settings.model_validate({**self.model_dump(), **values})  # all or nothing
            previous = {name: getattr(self, name) for name in values}
            for name, value in values.items():
                setattr(self, name, value)
        try:
            yield self
        finally:
            with self._lock:
                for name, value in previous.items():
                    setattr(self, name, value)

    def reload_from_environment(self) -> Settings:
        """Re-read every setting from the ``AUTOCONV_*`` environment variables."""
        fresh = Settings()
        with self._lock:
            for name in Settings.model_fields:
                setattr(self, name, getattr(fresh, name))
        return self


_MISSING = object()

def from_environment() -> tuple[Settings, list[str]]:
    """Settings from the ``AUTOCONV_*`` environment variables, and what was wrong with them.

    A variable that does not validate is not a reason to fail ``import autoconv`` (a drop-in
    must not break a program over a typo): its setting keeps its default, and the problem is
    returned as one line naming the variable, its value and what it should be. The
    ``autoconv`` command refuses to run with such a problem (exit 2).
    """
    try:
        return Settings(), []
    except ValidationError as error:
        problems, defaults = [], {}
        for item in error.errors(include_url=False):
            name = str(item["loc"][0]) if item["loc"] else ""
            field = Settings.model_fields.get(name)
            if field is None:
                continue
            variable = f"AUTOCONV_{name.upper()}"
            problems.append(f"{variable}={os.environ.get(variable, '')!r}: {item['msg']}")
            defaults[name] = field.get_default(call_default_factory=True)
        return Settings(**defaults), problems


#: ``AUTOCONV_*`` variables autoconv reads besides its settings': the log level
#: (:func:`configure_logging`), the folder of fitted models (``prediction/model_cache.py``) and
#: the test suite's PostgreSQL URL (``tests/conftest.py``, ``.ci/run``).
OTHER_VARIABLES = frozenset({"AUTOCONV_LOG_LEVEL", "AUTOCONV_MODEL_DIR",
                             "AUTOCONV_TEST_DATABASE_URL"})


def known_variables() -> frozenset[str]:
    """Every ``AUTOCONV_*`` environment variable autoconv reads: one per setting
    (``AUTOCONV_`` + its name in capitals), and :data:`OTHER_VARIABLES`."""
    return frozenset(f"AUTOCONV_{name.upper()}" for name in Settings.model_fields) | OTHER_VARIABLES


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``AUTOCONV_*`` variable of ``environ`` (default: this process's) that
    autoconv does not read, naming the closest one it reads: a misspelt setting
    (``AUTOCONV_MODE`` without its E) would otherwise be ignored without a word."""
    environ = os.environ if environ is None else environ
    known = sorted(known_variables())
    lines = []
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings reads the variables whatever their case
        if not upper.startswith("AUTOCONV_") or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"ignoring unknown environment variable {name}{hint}")
    return lines


#: The process-wide settings object (``autoconv.settings``), the environment variables it had
#: to ignore (:func:`from_environment`), and the unknown ones (:func:`unknown_variables`).
settings, ENVIRONMENT_PROBLEMS = from_environment()
UNKNOWN_VARIABLES = unknown_variables()
_warned = False


def warn_about_environment() -> None:
    """Warn, once per process, about the environment variables :data:`settings` ignored:
    invalid values, and unknown ``AUTOCONV_*`` names (:data:`UNKNOWN_VARIABLES`). The
    process's selector calls it when it is created, and the ``autoconv`` command before it
    runs (after refusing invalid values in one line), so that nothing is said twice."""
    global _warned
    if _warned:
        return
    _warned = True
    if ENVIRONMENT_PROBLEMS:
        warnings.warn(f"autoconv: ignoring invalid settings, using their defaults: "
                      f"{'; '.join(ENVIRONMENT_PROBLEMS)}", RuntimeWarning, stacklevel=3)
    if UNKNOWN_VARIABLES:
        warnings.warn(f"autoconv: {'; '.join(UNKNOWN_VARIABLES)}", RuntimeWarning,
                      stacklevel=3)




#: The library's logger; nothing is printed unless the application configures logging, or
#: ``AUTOCONV_LOG_LEVEL`` (or ``autoconv -v``) asks for it.
logger = logging.getLogger("autoconv")
logger.addHandler(logging.NullHandler())


def configure_logging(level: str | int | None = None) -> None:
    """Print autoconv's log to stderr from ``level`` up (default: ``AUTOCONV_LOG_LEVEL``, and
    nothing when that is unset). At INFO, each signature's decision: what was tuned or looked
    up, the winner, its time and where the answer came from. An unknown level is ignored."""
    level = level if level is not None else os.environ.get("AUTOCONV_LOG_LEVEL")
    if level is None or level == "":
        return
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(number, int):
        warnings.warn(f"autoconv: AUTOCONV_LOG_LEVEL={level!r} is not a logging level "
                      "(DEBUG, INFO, WARNING, ERROR)", RuntimeWarning, stacklevel=2)
        return
    logger.setLevel(number)
    if not any(getattr(handler, "_autoconv", False) for handler in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("autoconv: %(message)s"))
        handler._autoconv = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


configure_logging()
