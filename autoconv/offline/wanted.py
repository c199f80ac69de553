"""What a fleet wants measured: the signatures its processes answered without a measurement.

Processes in mode ``predict`` (and calls that live exploration does not cover) note the
signatures they answer without a measurement in the tuning database's ``wanted`` table
(:mod:`autoconv.runtime.refresh`). ``autoconv warm --wanted`` reads the ones noted under this
machine's fingerprint (same CPU or GPU, torch version, thread count) that no measurement
answers yet, most called first, and measures them; with ``--follow`` it keeps watching for
new ones. The serving processes pick the measured answers up on their next refresh.
"""

from __future__ import annotations

import torch

import tuning_db
from autoconv.signature import Signature
from autoconv.storage.store import device_record


def wanted_signatures(db_url: str | None, device: torch.device | str = "cpu"
                      ) -> list[Signature]:
    """The signatures noted under this machine's fingerprint on ``device`` (at the current
    torch thread count) that no ``ok`` measurement answers yet, most called first.

    Raises:
        tuning_db.TuningDBError: the database cannot be opened or read.
    """
    target = torch.device(device)
    with tuning_db.connect(db_url) as db:
        rows = db.wanted(device_record(target).device_id)
    return [Signature(**row.signature.model_dump()) for row in rows]
