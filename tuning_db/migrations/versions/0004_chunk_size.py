"""Streams: a nullable ``chunk_size`` on measurements.

A stream (a causal convolution fed in chunks, ``autoconv.Conv1dStream``) is measured per chunk
and stored under its own signature, whose key ends with ``|c`` and the chunk size. Rows written
before this revision are all conv1d calls: their ``chunk_size`` is NULL and their keys are
unchanged.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("chunk_size", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("chunk_size")
