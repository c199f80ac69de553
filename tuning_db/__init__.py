"""tuning_db: the persistent store of autoconv's measurements (no torch, no autoconv imports).

::

    import tuning_db
    with tuning_db.connect() as db:              # AUTOCONV_DB_URL, or the cache-dir SQLite file
        db.record(device, measurement)
        choice = db.best(device.device_id, signature)
"""

from __future__ import annotations

from tuning_db.errors import TuningDBError
from tuning_db.records import (
                               BestChoice,
                               DeviceRecord,
                               DeviceStats,
                               MeasurementRecord,
                               SignatureRecord,
                               Stats,
                               WantedRecord,
)
from tuning_db.schema import SCHEMA_VERSION
from tuning_db.store import TuningDB, connect
from tuning_db.urls import default_path, default_url

__all__ = ["SCHEMA_VERSION", "BestChoice", "DeviceRecord", "DeviceStats", "MeasurementRecord",
           "SignatureRecord", "Stats", "TuningDB", "TuningDBError", "WantedRecord", "connect",
           "default_path", "default_url"]
