"""Alembic environment for the tuning database, driven from code (no alembic.ini).

``tuning_db.migrate`` passes an open connection, already inside the transaction that holds the
creation/upgrade lock, as ``config.attributes["connection"]``; the migrations run inside it.
"""

from __future__ import annotations

from alembic import context

from tuning_db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
