"""Fixtures and helpers of the spec tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (aiohttp needs it)."""
    return "asyncio"
