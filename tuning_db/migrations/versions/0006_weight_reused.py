"""Reused weights: a ``weight_reused`` flag on measurements and wanted signatures.

A call whose weight is the same unchanged tensor on every call and needs no gradient (an
``autoconv.Conv1d`` layer's in inference) lets the FFT strategies transform the weight once,
so it is timed and decided apart from a functional call of the same shapes, under its own
signature, whose key ends with ``|wr``. Rows written before this revision are all functional
calls or streams: their ``weight_reused`` is false and their keys are unchanged.

A downgrade deletes the rows of reused weights before it drops the columns: schema 0005 could
not tell them from functional calls of the same shapes (their columns would read back as
those, under keys that do not match).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("measurements", "wanted")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("weight_reused", sa.Boolean, nullable=False,
                                       server_default=sa.false()))


def downgrade() -> None:
    for table in _TABLES:
        rows = sa.table(table, sa.column("weight_reused", sa.Boolean))
        op.execute(rows.delete().where(rows.c.weight_reused))
        with op.batch_alter_table(table) as batch:
            batch.drop_column("weight_reused")
