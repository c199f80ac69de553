"""Initial schema: devices and measurements.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SIGNATURE_INTS = ("batch", "in_channels", "out_channels", "length", "kernel_size", "stride",
                   "padding_left", "padding_right", "dilation", "groups")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(32), primary_key=True),
        sa.Column("cpu_model", sa.String(200), nullable=False),
        sa.Column("cpu_cores", sa.Integer, nullable=False),
        sa.Column("torch_threads", sa.Integer, nullable=False),
        sa.Column("gpu_name", sa.String(200)),
        sa.Column("compute_capability", sa.String(8)),
        sa.Column("driver_version", sa.String(200)),
        sa.Column("torch_version", sa.String(200), nullable=False),
        sa.Column("cuda_version", sa.String(200)),
        sa.Column("cudnn_version", sa.String(200)),
        sa.Column("mkl_version", sa.String(200)),
        sa.Column("onednn_version", sa.String(200)),
        sa.Column("platform", sa.String(200)),
        sa.Column("autoconv_version", sa.String(200), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(32),
                  sa.ForeignKey("devices.device_id", ondelete="CASCADE"), nullable=False),
        sa.Column("sig_key", sa.String(120), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False) for name in _SIGNATURE_INTS),
        sa.Column("dtype", sa.String(32), nullable=False),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("requires_grad", sa.Boolean, nullable=False),
        sa.Column("median_s", sa.Float, nullable=False),
        sa.Column("spread_s", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("error", sa.Float),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("autoconv_version", sa.String(200), nullable=False),
        sa.UniqueConstraint("device_id", "sig_key", "strategy", "params",
                            name="uq_measurement"),
    )


def downgrade() -> None:
    op.drop_table("measurements")
    op.drop_table("devices")
