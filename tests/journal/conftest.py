"""Fixtures of the journal tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The journal needs anyio's asyncio backend."""
    return "asyncio"


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """Where a test's journal lives (not created yet)."""
    return tmp_path / "run.journal"
