"""Shared pytest configuration: hypothesis profiles, a private cache directory, a machine
load the tests never see, a cost model calibrated once and for all, a steady machine for
warming, and one database URL per backend.

``backend_url`` is parametrized over the backends: a fresh SQLite file, and PostgreSQL (from
``AUTOCONV_TEST_DATABASE_URL``; skipped when unset) in a schema of its own, dropped after the
test, so tests never see each other's rows and can run again and again.
"""

from __future__ import annotations

import os

# Before torch loads: oneDNN (torch 2.13) never finishes building its float16 depthwise
# kernels for some shapes on CPUs with AVX512-FP16 (Sapphire Rapids: F.conv1d on a
# 1x8x2000 float16 input, groups=8, 15 taps, was still building after 5 minutes). Capped at
# AVX512-BF16 it builds the older kernels, in milliseconds. torch's bug, not autoconv's: the
# cap keeps the suite's F.conv1d references from hanging; nothing here is timed.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

from tuning_db.urls import parse_url

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60,
    derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

PG_ENV = "AUTOCONV_TEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's real default database and model cache out of every test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("AUTOCONV_DB_URL", raising=False)


@pytest.fixture(autouse=True)
def _machine_load_unseen(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test passes or fails with the machine's load: the timer's reading of other
    processes' runnable threads says none (tests of contention script their own load, and
    test the reading functions directly)."""
    from autoconv.tuning import contention

    monkeypatch.setattr(contention, "other_runnable_threads", lambda: 0)


#: The cost constants ``calibrate()`` measured on this project's 2-core test machine, quiet, at
#: 2 torch threads (2026-12-05): what the process-wide cost models use on the CPU in tests.
STEADY_CPU_CONSTANTS = {
    "direct_mac_s": 1.0e-11, "narrow_mac_s": 1.7e-10, "depthwise_mac_s": 5.8e-11,
    "fft_unit_s": 5.0e-11, "complex_mac_s": 9.0e-11, "elementwise_s": 1.5e-10,
    "call_s": 6.3e-6, "matmul_mac_s": 1.0e-11, "copy_byte_s": 1.0e-10,
    "transposed_byte_s": 2.4e-10}  # measured 2026-12-06


@pytest.fixture(autouse=True)
def _steady_cost_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test passes or fails with the load while the cost model calibrates: on a busy
    machine a calibration at two threads times every FFT's parallel regions waiting for a
    descheduled thread, and the model then priced a 1025-tap call's FFT above ``F.conv1d``.
    The process-wide models (tests of calibration make their own) get the constants of a
    quiet machine on the CPU; CUDA still calibrates."""
    from autoconv.storage import cost_cache
    from autoconv.tuning import cost_model

    steady = cost_model.CostConstants(**STEADY_CPU_CONSTANTS)
    for model in (cost_cache.persistent_cost_model, cost_model.default_cost_model):
        real = model.calibrator
        monkeypatch.setattr(model, "calibrator", lambda device, real=real: (
            steady if device.type == "cpu" else real(device)))
        monkeypatch.setattr(model, "_constants", {})


@pytest.fixture(autouse=True)
def _kernels_uncompiled(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``fused_shift_add`` runs its generated body as it is, uncompiled, in a cache of its
    own: the same sums, without the seconds ``torch.compile`` takes per signature (hundreds
    of signatures would cost the suite minutes). Tests marked ``compiles`` compile for real,
    into a fresh cache."""
    from autoconv.strategies import fused_shift_add_conv

    monkeypatch.setattr(fused_shift_add_conv, "KERNELS", fused_shift_add_conv.KernelCache())
    if request.node.get_closest_marker("compiles") is None:
        monkeypatch.setattr(fused_shift_add_conv, "compile_kernel", lambda body: body)


@pytest.fixture
def steady_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warming (``autoconv.offline.warm``, the ``warm`` command) times with the fake clock and
    timer of :mod:`tests.steady`: its decisions, and so what a resumed warm measures again,
    depend neither on the machine's speed nor on its load."""
    from autoconv.offline import warm
    from tests.steady import StepClock, steady_timer

    real = warm.measuring_selector
    monkeypatch.setattr(warm, "measuring_selector", lambda refresh=False: real(
        refresh, timer=steady_timer, clock=StepClock()))


@pytest.fixture
def fresh_autoconv(tmp_path: Path) -> Iterator[None]:
    """autoconv in mode ``tune`` on its own SQLite database, with a small tuning budget, and
    its in-memory decisions forgotten afterwards (``pytest.mark.usefixtures`` it)."""
    import autoconv
    from autoconv.runtime.dispatch import dispatcher

    with autoconv.settings.override(db_url=f"sqlite:///{tmp_path / 'tuning.sqlite3'}",
                                    budget_s=0.2, mode="tune", persist=True):
        yield
    dispatcher.reset()


@pytest.fixture
def exploring(fresh_autoconv: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """autoconv in mode ``live`` with exploration unbounded: every candidate the signature
    has is explored (none left out by the cost model), and every call after a signature's
    first runs one (checked against ``F.conv1d`` first, then timed) until the signature is
    decided. Every timed call takes one whole second (far beyond what the cost model
    predicts for any candidate, so every one fits exploration's allowance at once) and the
    machine reads quiet: how far exploration goes depends neither on the machine's speed nor
    on its load."""
    import itertools
    import math

    import autoconv
    from autoconv.runtime.dispatch import dispatcher
    from autoconv.tuning import selector
    from autoconv.tuning.contention import QuietMachine

    seconds = itertools.count()
    monkeypatch.setattr(selector, "EXPLORE_FACTOR", math.inf)
    monkeypatch.setattr(selector, "MAX_RIVALS", 1 << 10)
    monkeypatch.setattr(dispatcher, "live_clock", lambda: float(next(seconds)))
    monkeypatch.setattr(dispatcher, "live_load", QuietMachine())
    with autoconv.settings.override(mode="live", explore_overhead=1.0,
                                    explore_call_factor=1e9):
        yield


def pg_base_url() -> str | None:
    """The PostgreSQL test server's URL, or None when tests against it are off."""
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def pg_schema_url() -> Iterator[Callable[[], str]]:
    """Factory of PostgreSQL URLs, each confined to a new schema dropped afterwards."""
    base = pg_base_url()
    if base is None:
        pytest.skip(f"{PG_ENV} is not set")
    admin = create_engine(parse_url(base))
    schemas: list[str] = []

    def new_schema() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        schemas.append(name)
        url = parse_url(base).update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    yield new_schema
    with admin.begin() as connection:
        for name in schemas:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for a new, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    return request.getfixturevalue("pg_schema_url")()
