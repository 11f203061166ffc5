"""A journal is bound to its API, keeps its records in its main file, and one that lost
records it once held is refused, never taken for a new one (issue 16, items 2 and 3)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from orchestrator.engine.state import _writer as _journal_writer
from orchestrator.engine.state.journal import Journal
from orchestrator.errors import JournalError

pytestmark = pytest.mark.anyio

API_A = "https://api.katapult.io/core/v1/"
API_B = "http://127.0.0.1:8080/core/v1/"


async def test_a_journal_is_refused_against_another_api_unless_rebound(journal_path: Path) -> None:
    """Written against A, opened for B: refused, naming both; --journal-rebind binds it to B."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="a", api_url=API_A) as j:
        await j.add_pending([("web-01", "web-01")])
        await j.record_intent("web-01", attempt=1)
    with pytest.raises(JournalError, match="--journal-rebind") as refused:
        await Journal.open(journal_path, spec_sha256="s", run_id="b", api_url=API_B)
    assert API_A in str(refused.value)
    assert API_B in str(refused.value)
    async with await Journal.open(
        journal_path, spec_sha256="s", run_id="b", api_url=API_B, rebind=True
    ):
        pass
    async with await Journal.open(journal_path, spec_sha256="s", run_id="c", api_url=API_B) as j:
        assert (await j.entries())["web-01"].state == "intent"
    with pytest.raises(JournalError, match="was written against the API"):
        await Journal.open(journal_path, spec_sha256="s", run_id="d", api_url=API_A)


async def test_a_clean_close_leaves_every_record_in_the_main_file(journal_path: Path) -> None:
    """After close, the journal file alone (no -wal) holds every record."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r", api_url=API_A) as j:
        await j.add_pending([(f"vm-{i}", f"vm-{i}") for i in range(20)])
        for i in range(20):
            await j.record_intent(f"vm-{i}", attempt=1)
    wal = journal_path.with_name(journal_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert _states_in_main_file(journal_path) == {"intent": 20}


async def test_records_reach_the_main_file_during_a_run(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the journal is open, its WAL is checkpointed regularly (here: at every
    commit), so the main file holds what was recorded even before the run ends."""
    monkeypatch.setattr(_journal_writer, "CHECKPOINT_SECONDS", 0.0)
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r", api_url=API_A) as j:
        await j.add_pending([("vm-1", "vm-1"), ("vm-2", "vm-2")])
        await j.record_intent("vm-1", attempt=1)
        await j.record_intent("vm-2", attempt=1)
        assert _states_in_main_file(journal_path) == {"intent": 2}


def _states_in_main_file(path: Path) -> dict[str, int]:
    """What the journal's main file alone says (a copy without its -wal file)."""
    copy = path.with_name("copy.journal")
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        rows = conn.execute("SELECT state, count(*) FROM vms GROUP BY state").fetchall()
    finally:
        conn.close()
        copy.unlink()
    return {str(state): int(n) for state, n in rows}


_KILLED = """
import os, signal, sys, math, anyio
from orchestrator.engine.state import _writer as _journal_writer
from orchestrator.engine.state.journal import Journal

_journal_writer.CHECKPOINT_SECONDS = math.inf  # the records stay in the -wal file

async def main():
    journal = await Journal.open(sys.argv[1], spec_sha256="s", run_id="killed")
    await journal.add_pending([(f"vm-{i}", f"vm-{i}") for i in range(10)])
    for i in range(10):
        await journal.record_intent(f"vm-{i}", attempt=1)
    os.kill(os.getpid(), signal.SIGKILL)

anyio.run(main)
"""


def _killed_run(journal_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED, str(journal_path)], timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert journal_path.with_name(journal_path.name + "-wal").stat().st_size > 0


def _lose(journal_path: Path, loss: str) -> None:
    wal = journal_path.with_name(journal_path.name + "-wal")
    if loss == "wal deleted":
        wal.unlink()
        journal_path.with_name(journal_path.name + "-shm").unlink(missing_ok=True)
    elif loss == "truncated to 0 bytes":
        os.truncate(journal_path, 0)
        wal.unlink()
    else:
        journal_path.unlink()
        wal.unlink()


@pytest.mark.parametrize("loss", ["wal deleted", "truncated to 0 bytes", "deleted"])
async def test_a_journal_that_lost_its_records_is_refused(journal_path: Path, loss: str) -> None:
    """Killed with its records only in -wal; the -wal is lost (or the journal emptied, or
    deleted alone): the rerun refuses instead of starting from nothing, and keeps
    refusing; --journal-rebind takes the journal as it is."""
    await anyio.to_thread.run_sync(_killed_run, journal_path)
    await anyio.to_thread.run_sync(_lose, journal_path, loss)
    for attempt in ("first", "again"):
        with pytest.raises(JournalError, match="lost records it once held"):
            await Journal.open(journal_path, spec_sha256="s", run_id=attempt)
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r", rebind=True) as j:
        entries = await j.entries()
    assert all(entry.state != "intent" for entry in entries.values())
    async with await Journal.open(journal_path, spec_sha256="s", run_id="after"):
        pass


async def test_a_killed_journal_with_its_wal_resumes(journal_path: Path) -> None:
    """The same kill, nothing lost: the journal opens and every intent is there."""
    await anyio.to_thread.run_sync(_killed_run, journal_path)
    async with await Journal.open(journal_path, spec_sha256="s", run_id="rerun") as journal:
        entries = await journal.entries()
    assert [entry.state for entry in entries.values()] == ["intent"] * 10


@pytest.mark.parametrize("note", [b"not a note", b"\x00\x00\x00", b'["records", 9]'])
async def test_a_lock_note_that_cannot_be_read_is_refused_not_ignored(
    journal_path: Path, note: bytes
) -> None:
    """A .lock that holds no readable note cannot say the journal lost nothing: the
    journal is refused (it was taken as a note of nothing, which turned the lost-records
    check off), and --journal-rebind takes it as it is."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="first") as journal:
        await journal.add_pending([("web-01", "web-01")])
    journal_path.with_name(journal_path.name + ".lock").write_bytes(note)
    with pytest.raises(JournalError, match=r"\.lock does not hold the note"):
        await Journal.open(journal_path, spec_sha256="s", run_id="second")
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r", rebind=True):
        pass
    async with await Journal.open(journal_path, spec_sha256="s", run_id="after"):
        pass


async def test_a_lock_note_with_the_tail_of_a_longer_one_is_still_read(journal_path: Path) -> None:
    """A kill between rewriting the note and truncating it leaves a note and a tail: the
    note is read as it is, and an intact journal opens."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="first") as journal:
        await journal.add_pending([("web-01", "web-01")])
    lock = journal_path.with_name(journal_path.name + ".lock")
    lock.write_bytes(lock.read_bytes() + b'0, "pid": 12345}\n')
    async with await Journal.open(journal_path, spec_sha256="s", run_id="second"):
        pass
