"""A warm's measurements are never lost to its database: checked before, kept when it fails.

Before a warm measures anything, :func:`check_writable` opens the database and writes this
device's row (what its first measurement writes anyway), so that a database it cannot reach
or write costs one line and no measuring. If the database fails midway, the warm goes on:
its store (:class:`KeepingStore`) keeps what the database did not take, and
:func:`write_bundle` writes it as a tuning bundle, the format of ``autoconv export``, which
``autoconv import FILE`` adds once the database works again.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from autoconv.signature import Signature
from autoconv.storage.guarded import GuardedStore
from autoconv.storage.store import (
    TuningStore,
    UnstorableSignature,
    measurement_record,
    signature_record,
)
from autoconv.tuning.outcome import Outcome
from tuning_db import DeviceRecord, MeasurementRecord
from tuning_db.bundle import build, to_json
from tuning_db.errors import ConnectionFailedError, TuningDBError

#: A measurement the database did not take, with the device it was made on.
Kept = tuple[DeviceRecord, MeasurementRecord]


def check_writable(store: TuningStore, device: torch.device) -> None:
    """Open ``store``'s database and write ``device``'s row in it (a warm's first write).

    Raises:
        TuningDBError: the database cannot be reached, opened or written (one line, naming
            it).
    """
    try:
        store.db.record_many(store.device(device), [])
    except TuningDBError:
        raise
    except Exception as error:  # noqa: BLE001  (a server refusing the write: permissions)
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConnectionFailedError(f"cannot write to the tuning database {store.where}: "
                                    f"{first}") from None


class KeepingStore(GuardedStore):
    """A :class:`~autoconv.storage.guarded.GuardedStore` that keeps the measurements its
    database does not take (:attr:`kept`), for :func:`write_bundle`.

    Args:
        store: the database.
        retry_s: seconds the database is left alone after a failure.
        clock: monotonic seconds (injectable for tests).
    """

    unsaved_outcomes = "kept for a bundle file"

    def __init__(self, store: TuningStore, retry_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(store, retry_s, clock)
        #: what the database did not take, in the order it was measured
        self.kept: list[Kept] = []

    def record(self, signature: Signature, device: torch.device,
               outcomes: Sequence[Outcome]) -> bool:
        """Store one tuning run's outcomes; those the database does not take are kept (the
        answer is then False)."""
        if super().record(signature, device, outcomes):
            return True
        try:
            record = signature_record(signature)
        except UnstorableSignature:
            return False  # a bundle cannot hold it either
        made_on = self.store.device(device)
        self.kept += [(made_on, measurement_record(record, outcome)) for outcome in outcomes]
        return False


def write_bundle(kept: Sequence[Kept], folders: Sequence[Path] | None = None) -> Path:
    """Write measurements as a new bundle file ``autoconv-unsaved-DATE.json`` in the first of
    ``folders`` that takes it (default: the current folder, then the temporary one).

    Returns:
        The file's absolute path.

    Raises:
        OSError: no folder could take it.
    """
    devices = {device.device_id: device for device, _ in kept}
    data = to_json(build(devices.values(),
                         ((device.device_id, measurement) for device, measurement in kept)))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    failure: OSError | None = None
    for folder in folders if folders is not None else (Path.cwd(),
                                                       Path(tempfile.gettempdir())):
        for attempt in range(100):
            path = (folder / f"autoconv-unsaved-{stamp}"
                    f"{'' if attempt == 0 else f'-{attempt}'}.json").absolute()
            try:
                with open(path, "xb") as file:  # never over an existing file
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
            except FileExistsError:
                continue
            except OSError as error:
                path.unlink(missing_ok=True)
                failure = error
                break
            return path
    raise failure or OSError("no folder took the bundle")
