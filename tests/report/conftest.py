"""Fixtures of the report tests."""

from __future__ import annotations

import pytest

from orchestrator.report import Report

from ._helpers import sample_report


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (aiohttp needs it)."""
    return "asyncio"


@pytest.fixture
def report() -> Report:
    """A report with one VM of every outcome."""
    return sample_report()
