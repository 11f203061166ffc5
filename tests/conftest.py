"""Suite-wide fixtures: the asyncio backend for anyio, and no blocking calls on the loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiohttp needs asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_blocking_calls(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that blocks the event loop (time.sleep, sync file I/O, ...)."""
    if "anyio" not in request.keywords:
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["orchestrator"]):
        yield
