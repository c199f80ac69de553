"""The ``wanted`` table: signatures answered without a measurement, for a tuning worker.

Processes that may not measure (mode predict, or calls live exploration does not cover) note
the signatures they answered without a measurement, with a call count and when they were
first and last seen; ``autoconv warm --wanted`` measures them on a machine of the same
fingerprint. Measurements are unchanged.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SIZES = ("batch", "in_channels", "out_channels", "length", "kernel_size", "stride",
          "padding_left", "padding_right", "dilation", "groups")


def upgrade() -> None:
    op.create_table(
        "wanted",
        sa.Column("device_id", sa.String(32),
                  sa.ForeignKey("devices.device_id", ondelete="CASCADE"), nullable=False),
        sa.Column("sig_key", sa.String(120), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False) for name in _SIZES),
        sa.Column("dtype", sa.String(32), nullable=False),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("requires_grad", sa.Boolean, nullable=False),
        sa.Column("chunk_size", sa.Integer),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("device_id", "sig_key", name="uq_wanted"),
    )


def downgrade() -> None:
    op.drop_table("wanted")
