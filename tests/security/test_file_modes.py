"""Every file the orchestrator writes is owner-only (0o600), even with umask 0.

(``test_canary`` checks the same of a whole ``orchestrator run`` process under
umask 0; these check each writer directly, and the journal while it is open.)
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from orchestrator.engine.state.journal import Journal
from orchestrator.report import (
    ApiInfo,
    Report,
    RequestCounts,
    SpecInfo,
    VmResult,
    write_junit,
    write_metrics,
    write_report,
)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The process umask is 0 for the test (as under a careless service manager)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def _report() -> Report:
    now = datetime.now(UTC)
    return Report.build(
        run_id="r1",
        started_at=now,
        finished_at=now,
        spec=SpecInfo(path="spec.toml", sha256="0" * 64),
        api=ApiInfo(url="https://api.katapult.io/core/v1/", organization="acme"),
        vms=[VmResult(key="web-01", hostname="web-01", outcome="succeeded", attempts=1)],
        requests=RequestCounts(total=2, rate_limited=0),
    )


@pytest.mark.usefixtures("umask_zero")
def test_report_and_junit_are_owner_only_metrics_as_configured(tmp_path: Path) -> None:
    """report.json and JUnit XML are 0o600 under umask 0, new or replaced; the metrics file
    gets exactly its mode (0o644 by default, 0o600 when asked), whatever the umask."""
    report = _report()
    writers: dict[str, tuple[Callable[[Report, Path], None], int]] = {
        "report.json": (write_report, 0o600),
        "junit.xml": (write_junit, 0o600),
        "m.prom": (write_metrics, 0o644),
        "owner.prom": (functools.partial(write_metrics, mode=0o600), 0o600),
    }
    for name, (write, expected) in writers.items():
        path = tmp_path / name
        path.write_bytes(b"old")
        path.chmod(0o666)  # an older, too open file is replaced, not reused
        write(report, path)
        assert mode(path) == expected, name
        write(report, path)
        assert mode(path) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(writers)


@pytest.mark.anyio
@pytest.mark.usefixtures("umask_zero")
async def test_journal_its_wal_and_lock_are_owner_only(tmp_path: Path) -> None:
    """The journal, its -wal/-shm and its lock file are 0o600 under umask 0, while in use."""
    path = tmp_path / "run.journal"
    journal = await Journal.open(path, spec_sha256="0" * 64, run_id="r1")
    try:
        await journal.add_pending([("web-01", "web-01")])
        await journal.record_intent("web-01", attempt=1)
        files = sorted(await anyio.to_thread.run_sync(lambda: [p.name for p in tmp_path.iterdir()]))
        assert {"run.journal", "run.journal.lock", "run.journal-wal"} <= set(files), files
        for name in files:
            assert mode(tmp_path / name) == 0o600, name
    finally:
        await journal.close()
    for name in await anyio.to_thread.run_sync(lambda: [p.name for p in tmp_path.iterdir()]):
        assert mode(tmp_path / name) == 0o600, name
