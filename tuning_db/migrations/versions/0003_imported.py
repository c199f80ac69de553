"""Tell local measurements from imported ones: ``imported`` flag on measurements.

A measurement made on this machine replaces an imported one of the same key whatever their
sample counts, and an import never replaces a local measurement. Rows written before this
revision were written by the tuner of a machine with that fingerprint or by an import; they
cannot be told apart now and are taken as local (``imported = false``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("imported", sa.Boolean, nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("imported")
