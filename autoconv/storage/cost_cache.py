"""The cost model's constants, measured once per device fingerprint and reused.

Calibrating takes a few tenths of a second and, measured anew in every process, gave slightly
different constants each time, so predict mode could answer differently from one process to
the next. :func:`persistent_calibration` keeps the first measurement of a fingerprint (CPU,
thread count, torch and library versions, GPU: what ``autoconv.storage.fingerprint`` records)
in a small JSON file in the user cache folder, ``AUTOCONV_MODEL_DIR``'s parent when that is set,
and every later process on the same fingerprint reads it back. A missing, unreadable or
implausible file is measured again (and rewritten), and so is one written before a constant
was added to :class:`CostConstants` (one field short: nothing to price the new terms with);
a cache folder that cannot be written only means measuring in each process, as before.
Constants measured on a busy machine are never written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs
import torch

from autoconv.storage.store import device_record
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.cost_model import CalibratedCostModel, CostConstants, calibrate

#: Largest cache file read (a real one is about 300 bytes).
MAX_BYTES = 4096
_FIELDS = tuple(field.name for field in dataclasses.fields(CostConstants))


def default_dir() -> Path:
    """Where the constants live: beside the cached models (``AUTOCONV_MODEL_DIR``'s parent
    when set), else the user cache folder."""
    override = os.environ.get("AUTOCONV_MODEL_DIR")
    base = Path(override).parent if override else Path(platformdirs.user_cache_dir("autoconv"))
    return base / "cost_constants"


def path_for(device: torch.device, directory: Path | None = None) -> Path:
    """The file of ``device``'s fingerprint in this process."""
    return (directory or default_dir()) / f"{device_record(device).device_id}.json"


def load(path: Path) -> CostConstants | None:
    """The constants stored at ``path``, or None when there are none worth trusting (missing,
    not a regular file, too large, not JSON, fields missing (a file of an older autoconv) or
    unknown, or any value not a finite positive number of seconds)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the open
            return None
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
        values = json.loads(data) if len(data) <= MAX_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(values, dict) or set(values) != set(_FIELDS):
        return None
    numbers = [values[name] for name in _FIELDS]
    if not all(type(v) is float and math.isfinite(v) and 0 < v < 1 for v in numbers):
        return None
    return CostConstants(*numbers)


def save(constants: CostConstants, path: Path) -> None:
    """Write ``constants`` to ``path`` atomically; a failure to write is ignored (the
    constants stay in this process's memory)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(dataclasses.asdict(constants), file)
        os.replace(temporary, path)
    except OSError:
        return


def others_load() -> MachineLoad:
    """The machine's load as far as other processes make it busy: with more torch threads
    than cores (the user's own setting, the same in every process) it is busy only when
    others' threads are runnable too."""
    return MachineLoad(cores=max(os.cpu_count() or 1, torch.get_num_threads()))


def persistent_calibration(device: torch.device, directory: Path | None = None, *,
                           load_of: Callable[[], MachineLoad | QuietMachine] = others_load
                           ) -> CostConstants:
    """``device``'s constants from the cache, else measured now (and cached).

    Constants measured while other work held the CPU's cores (``load_of()`` stays busy) are
    used by this process but not cached: at two threads every FFT's parallel regions wait
    for a descheduled thread, and such constants priced a 1025-tap call's FFT above
    ``F.conv1d``; a later process on a quiet machine measures again.
    """
    path = path_for(device, directory)
    constants = load(path)
    if constants is None:
        busy = device.type == "cpu" and load_of().stays_busy()
        constants = calibrate(device)
        if not busy:
            save(constants, path)
    return constants


#: The cost model of a process that uses the tuning database: calibrated once per device
#: fingerprint, on this machine, and the same in every process.
persistent_cost_model = CalibratedCostModel(calibrator=persistent_calibration)
