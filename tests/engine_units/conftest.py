"""Fixtures of the engine unit tests (rate budget, poll scheduler)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (modules on virtual time override this)."""
    return "asyncio"
