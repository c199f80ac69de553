"""Fixtures for the strategy tests."""

from __future__ import annotations

import pytest

from .helpers import STRATEGIES


@pytest.fixture(scope="module", params=STRATEGIES, ids=[s.name for s in STRATEGIES])
def strategy(request: pytest.FixtureRequest):
    """Every registered strategy, one test per strategy."""
    return request.param
