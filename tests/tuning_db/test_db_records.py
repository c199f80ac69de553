"""The pydantic records: fingerprint hash, signature key, validation bounds."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db import DeviceRecord, SignatureRecord


def test_device_id_is_the_same_in_every_process() -> None:
    probe = "from tests.tuning_db.factories import make_device; print(make_device().device_id)"
    ids = set()
    for seed in ("0", "1", "12345"):
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        ids.add(result.stdout.strip())
    assert ids == {make_device().device_id}
    assert len(make_device().device_id) == 20


@pytest.mark.parametrize("field, value", [
    ("cpu_model", "Other CPU"), ("cpu_cores", 16), ("torch_threads", 1),
    ("gpu_name", "NVIDIA A100"), ("compute_capability", "8.0"), ("driver_version", "550.54"),
    ("torch_version", "2.12.0"), ("cuda_version", "12.4"), ("cudnn_version", "90100"),
    ("mkl_version", "2025.0"), ("onednn_version", "3.8.0"), ("platform", "Darwin-arm64")])
def test_every_identifying_field_changes_the_device_id(field: str, value: object) -> None:
    assert make_device(**{field: value}).device_id != make_device().device_id


def test_the_autoconv_version_does_not_change_the_device_id() -> None:
    assert make_device(autoconv_version="9.9.9").device_id == make_device().device_id


_signatures = st.builds(
    SignatureRecord, batch=st.integers(1, 64), in_channels=st.integers(1, 64),
    out_channels=st.integers(1, 64), length=st.integers(1, 10**6), kernel_size=st.integers(1, 999),
    stride=st.integers(1, 9), padding_left=st.integers(0, 99), padding_right=st.integers(0, 99),
    dilation=st.integers(1, 9), groups=st.integers(1, 64),
    dtype=st.sampled_from(["float32", "float64", "bfloat16"]),
    device=st.sampled_from(["cpu", "cuda"]),
    requires_grad=st.booleans(), weight_reused=st.booleans())


@given(_signatures, _signatures)
def test_signature_keys_are_equal_exactly_when_signatures_are(a: SignatureRecord,
                                                              b: SignatureRecord) -> None:
    assert (a.key == b.key) == (a == b)
    assert (hash(a) == hash(b)) or a != b


def test_measured_at_is_stored_in_utc() -> None:
    naive = make_measurement(measured_at=datetime(2026, 5, 1, 12, 0))
    assert naive.measured_at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    local = make_measurement(measured_at=datetime(2026, 5, 1, 14, 0,
                                                  tzinfo=timezone(timedelta(hours=2))))
    assert local.measured_at == naive.measured_at and local.measured_at.tzinfo is UTC


@pytest.mark.parametrize("changes", [
    {"median_s": 0.0}, {"median_s": float("nan")}, {"median_s": float("inf")},
    {"spread_s": -1.0}, {"samples": 0}, {"error": -0.1}, {"error": float("nan")},
    {"strategy": "Not A Name"}, {"params": {"block": [1]}}, {"params": {"1bad": 1}},
    {"note": "x" * 201}, {"unexpected": 1}])
def test_bad_measurements_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as raised:
        make_measurement(**changes)
    assert _fields(raised.value) == set(changes)  # refused for the bad field, and it alone


@pytest.mark.parametrize("changes", [
    {"batch": 0}, {"length": -1}, {"padding_left": -1}, {"kernel_size": 2**31},
    {"dtype": "float 32"}, {"device": ""}, {"weight_reused": "maybe"}])
def test_bad_signatures_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as raised:
        make_signature(**changes)
    assert _fields(raised.value) == set(changes)


def _fields(error: ValidationError) -> set[object]:
    """The top-level fields a validation error is about."""
    return {detail["loc"][0] for detail in error.errors()}


def test_records_are_frozen() -> None:
    signature = make_signature()
    with pytest.raises(ValidationError, match="Instance is frozen"):
        signature.batch = 2  # type: ignore[misc]
    assert signature.batch == 4
    with pytest.raises(ValidationError) as raised:
        DeviceRecord(cpu_model="x", cpu_cores=0, torch_threads=1, torch_version="2",
                     autoconv_version="0")
    assert _fields(raised.value) == {"cpu_cores"}
