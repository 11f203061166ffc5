"""Fixtures of the journal tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.engine.state.journal import FleetClaim, Journal, JournalSnapshot
from tests.state_backends import StateRef

from ._helpers import raw_state


@pytest.fixture
def anyio_backend() -> str:
    """The journal needs anyio's asyncio backend."""
    return "asyncio"


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """Where a test's journal lives (not created yet)."""
    return tmp_path / "run.journal"


@dataclass
class JournalAt:
    """One journal in either backend (see ``tests/state_backends.py``): open it, read it."""

    state: StateRef
    _conn: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def open(self, **options: Any) -> Journal:
        """``Journal.open`` of this journal (a PostgreSQL state: of its named fleet)."""
        if self.state.fleet is not None:
            options.setdefault("fleet", FleetClaim(named=self.state.fleet, legacy="default"))
        return await Journal.open(self.state.journal, **options)

    async def read(self) -> JournalSnapshot:
        """What it holds now, read without its lock."""
        return await anyio.to_thread.run_sync(self.state.read)

    def raw_state(self, key: str) -> tuple[str, int] | None:
        """``(state, attempts)`` of ``key`` through a connection of its own (committed data
        only; blocking: call it in a thread)."""
        if self.state.backend == "sqlite":
            assert isinstance(self.state.location, Path)
            return raw_state(self.state.location, key)
        import psycopg

        with self._lock:
            if self._conn is None:
                self._conn = psycopg.connect(str(self.state.location), autocommit=True)
        row = self._conn.execute(
            "SELECT state, attempts FROM orchestrator.rows WHERE tbl = 'vms' AND key = %s",
            (key,),
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@pytest.fixture
def journal_at(state: StateRef) -> Iterator[JournalAt]:
    """A journal in each backend, for the tests of what both must do alike."""
    at = JournalAt(state)
    yield at
    at.close()
