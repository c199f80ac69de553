"""Keep failed and disqualified candidates: ``ok`` flag and ``note`` on measurements.

Rows written before this revision were all successful measurements, so they get ``ok = true``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("ok", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("note", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("note")
        batch.drop_column("ok")
