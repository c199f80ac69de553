"""The tables of the tuning database (SQLAlchemy Core).

Three tables: ``devices`` (one row per fingerprint), ``measurements`` (one row per device,
signature, strategy and parameters) and ``wanted`` (signatures that processes answered
without a measurement, for a tuning worker to measure: ``autoconv warm --wanted``). The winner of a (device, signature) is not stored: it is
the ok measurement with the smallest median, so it can never disagree with the measurements.

The signature is stored twice over: as one column per field (for training queries) and as the
compact ``sig_key`` text that the unique index starts with, so that the best-strategy lookup is
one index range of a handful of rows. Changes to these tables go through an alembic migration
in ``tuning_db/migrations/versions`` (``autoconv db upgrade`` applies them).
"""

from __future__ import annotations

from sqlalchemy import (
                        Boolean,
                        Column,
                        DateTime,
                        Float,
                        ForeignKey,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
                        false,
                        true,
)

#: The alembic revision of the newest schema this code reads and writes.
SCHEMA_VERSION = "0006"

metadata = MetaData()

devices = Table(
    "devices", metadata,
    Column("device_id", String(32), primary_key=True),
    Column("cpu_model", String(200), nullable=False),
    Column("cpu_cores", Integer, nullable=False),
    Column("torch_threads", Integer, nullable=False),
    Column("gpu_name", String(200)),
    Column("compute_capability", String(8)),
    Column("driver_version", String(200)),
    Column("torch_version", String(200), nullable=False),
    Column("cuda_version", String(200)),
    Column("cudnn_version", String(200)),
    Column("mkl_version", String(200)),
    Column("onednn_version", String(200)),
    Column("platform", String(200)),
    Column("autoconv_version", String(200), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

#: Signature columns, in ``SignatureRecord`` field order.
SIGNATURE_COLUMNS = ("batch", "in_channels", "out_channels", "length", "kernel_size", "stride",
                     "padding_left", "padding_right", "dilation", "groups", "dtype", "device",
                     "requires_grad", "chunk_size", "weight_reused")

measurements = Table(
    "measurements", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(32), ForeignKey("devices.device_id", ondelete="CASCADE"),
           nullable=False),
    Column("sig_key", String(120), nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("params", Text, nullable=False),
    *(Column(name, Integer, nullable=False) for name in SIGNATURE_COLUMNS[:10]),
    Column("dtype", String(32), nullable=False),
    Column("device", String(32), nullable=False),
    Column("requires_grad", Boolean, nullable=False),
    Column("median_s", Float, nullable=False),
    Column("spread_s", Float, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("error", Float),
    Column("ok", Boolean, nullable=False, server_default=true()),
    Column("note", String(200)),
    Column("measured_at", DateTime(timezone=True), nullable=False),
    Column("autoconv_version", String(200), nullable=False),
    #: written by an import or merge, not by a tuner on a machine of this fingerprint
    Column("imported", Boolean, nullable=False, server_default=false()),
    #: a stream's chunk size (``SignatureRecord.chunk_size``); NULL for a conv1d call
    Column("chunk_size", Integer),
    #: whether the call's weight is the same unchanged tensor on every call
    #: (``SignatureRecord.weight_reused``); false for every row older than schema 0006
    Column("weight_reused", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("device_id", "sig_key", "strategy", "params", name="uq_measurement"),
)

#: The columns that identify a measurement; a second one with the same values is an upsert.
MEASUREMENT_KEY = ("device_id", "sig_key", "strategy", "params")

#: Signatures answered without a measurement on a device (a process in mode predict, or a call
#: live exploration does not cover), with how often they were called: a tuning worker of the
#: same fingerprint measures them (``autoconv warm --wanted``).
wanted = Table(
    "wanted", metadata,
    Column("device_id", String(32), ForeignKey("devices.device_id", ondelete="CASCADE"),
           nullable=False),
    Column("sig_key", String(120), nullable=False),
    *(Column(name, Integer, nullable=False) for name in SIGNATURE_COLUMNS[:10]),
    Column("dtype", String(32), nullable=False),
    Column("device", String(32), nullable=False),
    Column("requires_grad", Boolean, nullable=False),
    Column("chunk_size", Integer),
    Column("weight_reused", Boolean, nullable=False, server_default=false()),
    Column("calls", Integer, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint("device_id", "sig_key", name="uq_wanted"),
)
