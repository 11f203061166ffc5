"""Suite-wide fixtures: the asyncio backend for anyio, and no blocking calls on the loop."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.state_backends import StateRef


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


# ------------------------------------------------------------ a real PostgreSQL


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session: the cluster ``.ci/run`` started in
    ``TEST_POSTGRES_DIR`` (``python -m tests.pg_cluster start DIR``), else a
    throwaway cluster of the distribution's binaries, started here and stopped after.

    Skipped where PostgreSQL is not installed, unless ``REQUIRE_POSTGRES=1`` (CI), which
    makes its absence a failure.
    """
    from tests.pg_cluster import find_binaries, running, start, stop

    given = os.environ.get("TEST_POSTGRES_DIR", "").strip()
    if given:
        cluster = running(Path(given))
        yield PgServer(cluster.url(), restartable=cluster)
        return
    if find_binaries() is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (REQUIRE_POSTGRES=1) and is not installed")
        pytest.skip("PostgreSQL's server is not installed")
    directory = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    try:
        cluster = start(directory)
        yield PgServer(cluster.url(), restartable=cluster)
    finally:
        stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_cluster: PgServer) -> Iterator[str]:
    """The URL (password included) of a fresh database of its own, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = postgres_cluster.url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_cluster.database_url(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class PgServer:
    """The session's PostgreSQL server: its admin URL, and the cluster when it is ours."""

    url: str
    restartable: Any

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server (same role and password)."""
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateRef:
    """One fleet's state in each backend: ``run.journal`` in ``tmp_path``, or a fresh
    database (its fleet named ``fleet``; a PostgreSQL state keeps fleets by name)."""
    from tests.state_backends import StateRef

    if request.param == "sqlite":
        return StateRef("sqlite", tmp_path / "run.journal", None)
    url: str = request.getfixturevalue("pg_url")
    return StateRef("postgresql", url, "fleet")
