"""Fixtures for the tuning_db tests (the backends themselves live in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def db_url(backend_url: str) -> str:
    """A URL for a new, empty database on each backend (SQLite file, PostgreSQL schema)."""
    return backend_url
