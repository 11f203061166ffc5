"""Helpers of the journal tests: reading a journal behind the writer's back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.report import ErrorInfo, VmRef, VmResult

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def raw_state(path: Path, key: str) -> tuple[str, int] | None:
    """``(state, attempts)`` of ``key`` through a separate connection (committed data only)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT state, attempts FROM vms WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else (str(row[0]), int(row[1]))


def pragma(path: Path, name: str) -> int:
    """An integer pragma of the database at ``path``."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def failed(key: str, *, attempts: int = 1) -> VmResult:
    """A failed build's result."""
    return VmResult(
        key=key,
        hostname=key,
        outcome="failed",
        category="build_failed",
        error=ErrorInfo(code="build_failed", description="disk [template] broke"),
        task_id="task_aaaaaaaaaaaaaaaa",
        build_id="vmbuild_aaaaaaaaaaaaaaaa",
        attempts=attempts,
        submitted_at=T0,
        finished_at=T0,
        duration_seconds=40.5,
    )


def succeeded(key: str) -> VmResult:
    """A built VM's result."""
    return VmResult(
        key=key,
        hostname=key,
        outcome="succeeded",
        virtual_machine=VmRef(id=f"vm_{key}", fqdn=f"{key}.acme.katapult.cloud"),
        task_id="task_bbbbbbbbbbbbbbbb",
        build_id="vmbuild_bbbbbbbbbbbbbbbb",
        attempts=1,
        submitted_at=T0,
        finished_at=T0,
    )
