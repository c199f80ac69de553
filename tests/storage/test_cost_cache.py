"""The cost model's constants: measured once per fingerprint, reused, never trusted blindly."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from autoconv.storage import cost_cache
from autoconv.tuning.cost_model import CalibratedCostModel, CostConstants

CPU = torch.device("cpu")
MEASURED = CostConstants(1e-10, 2e-10, 3e-10, 4e-10, 5e-10, 6e-10, 7e-6, 8e-11, 9e-11, 1e-9,
                         2e-10)


@pytest.fixture
def calibrations(monkeypatch) -> list[torch.device]:
    """Counts real calibrations (each returns MEASURED)."""
    calls: list[torch.device] = []

    def fake(device: torch.device) -> CostConstants:
        calls.append(device)
        return MEASURED

    monkeypatch.setattr(cost_cache, "calibrate", fake)
    return calls


def model(directory: Path) -> CalibratedCostModel:
    """A new process's cost model, as far as the cache is concerned."""
    return CalibratedCostModel(
        calibrator=lambda device: cost_cache.persistent_calibration(device, directory))


def test_a_fingerprint_is_calibrated_once_and_every_process_reads_the_same(
        tmp_path: Path, calibrations) -> None:
    first, second = model(tmp_path), model(tmp_path)
    assert first.constants(CPU) == second.constants(CPU) == MEASURED
    assert len(calibrations) == 1
    [stored] = tmp_path.iterdir()
    assert stored == cost_cache.path_for(CPU, tmp_path) and stored.suffix == ".json"


def test_another_thread_count_is_another_fingerprint(tmp_path: Path, calibrations) -> None:
    threads = torch.get_num_threads()
    model(tmp_path).constants(CPU)
    try:
        torch.set_num_threads(threads + 1)
        model(tmp_path).constants(CPU)
    finally:
        torch.set_num_threads(threads)
    assert len(calibrations) == 2 and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("content", [
    b"", b"garbage", b"[1, 2]", b"[" * 100_000, b"{}" + b" " * 5000,
    json.dumps({**dataclasses.asdict(MEASURED), "call_s": -1.0}).encode(),
    json.dumps({**dataclasses.asdict(MEASURED), "call_s": 1e400}).encode(),
    json.dumps({**dataclasses.asdict(MEASURED), "call_s": "1e-6"}).encode(),
    json.dumps({k: v for k, v in dataclasses.asdict(MEASURED).items() if k != "call_s"}
               ).encode()])
def test_a_damaged_or_tampered_file_is_measured_again(tmp_path: Path, calibrations,
                                                      content: bytes) -> None:
    path = cost_cache.path_for(CPU, tmp_path)
    path.write_bytes(content)
    assert model(tmp_path).constants(CPU) == MEASURED and len(calibrations) == 1
    assert cost_cache.load(path) == MEASURED  # and rewritten


def test_a_fifo_at_the_path_is_not_opened(tmp_path: Path, calibrations) -> None:
    os.mkfifo(cost_cache.path_for(CPU, tmp_path))  # opening it would block
    assert model(tmp_path).constants(CPU) == MEASURED


def test_a_cache_folder_that_cannot_be_written_only_costs_a_calibration(
        tmp_path: Path, calibrations) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert model(blocked).constants(CPU) == MEASURED
    assert model(blocked).constants(CPU) == MEASURED and len(calibrations) == 2


def test_the_real_calibration_round_trips(tmp_path: Path) -> None:
    measured = cost_cache.persistent_calibration(CPU, tmp_path)
    assert cost_cache.load(cost_cache.path_for(CPU, tmp_path)) == measured


def test_a_file_of_an_older_autoconv_without_the_newer_rates_is_measured_again(
        tmp_path: Path, calibrations) -> None:
    path = cost_cache.path_for(CPU, tmp_path)
    older = {k: v for k, v in dataclasses.asdict(MEASURED).items()
             if k not in ("matmul_mac_s", "copy_byte_s", "transposed_byte_s")}  # before those rates
    path.write_text(json.dumps(older))
    assert model(tmp_path).constants(CPU) == MEASURED and len(calibrations) == 1
    assert cost_cache.load(path) == MEASURED  # rewritten with every rate


def test_constants_measured_on_a_busy_machine_are_used_but_not_cached(
        tmp_path: Path, calibrations) -> None:
    from autoconv.tuning.contention import MachineLoad

    def busy() -> MachineLoad:
        return MachineLoad(read_runnable=lambda: 4, cores=2)

    assert cost_cache.persistent_calibration(CPU, tmp_path, load_of=busy) == MEASURED
    assert list(tmp_path.iterdir()) == []  # a quiet process measures again
    assert cost_cache.persistent_calibration(CPU, tmp_path) == MEASURED  # the machine reads
    assert len(calibrations) == 2 and len(list(tmp_path.iterdir())) == 1  # quiet in tests
