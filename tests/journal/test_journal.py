"""The write-ahead journal: round trips, the run lock, refusing foreign files, group commit."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from anyio import wait_all_tasks_blocked

from orchestrator.engine.state._db import APPLICATION_ID, SCHEMA_VERSION
from orchestrator.engine.state.journal import Journal, JournalEntry, JournalSnapshot, read_journal
from orchestrator.errors import JournalError

from ._helpers import T0, failed, pragma, succeeded
from .conftest import JournalAt

pytestmark = pytest.mark.anyio


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _read(path: Path) -> JournalSnapshot:
    return await anyio.to_thread.run_sync(read_journal, path)


# ----------------------------------------------------------------- create/open


async def test_new_journal_is_ours_private_and_records_the_run(journal_path: Path) -> None:
    """A new journal carries our application_id and schema version, mode 0o600, one run row."""
    async with await Journal.open(journal_path, spec_sha256="s1", run_id="r1") as journal:
        assert journal.previous_spec_sha256 is None
        assert _mode(journal_path) == 0o600
        assert _mode(journal_path.with_name(journal_path.name + ".lock")) == 0o600
        await journal.add_pending([("web-01", "web-01")])
        wal = journal_path.with_name(journal_path.name + "-wal")
        assert _mode(wal) == 0o600
    assert pragma(journal_path, "application_id") == APPLICATION_ID
    assert pragma(journal_path, "user_version") == SCHEMA_VERSION
    snapshot = await _read(journal_path)
    assert [(r.run_id, r.spec_sha256, r.pid) for r in snapshot.runs] == [("r1", "s1", os.getpid())]
    assert snapshot.runs[0].finished_at is not None
    assert not [p for p in journal_path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_reopen_round_trips_every_field(journal_at: JournalAt) -> None:
    """What one run records, the next run reads back field for field."""
    async with await journal_at.open(spec_sha256="s1", run_id="r1") as journal:
        await journal.add_pending([(f"web-0{i}", f"web-0{i}") for i in range(1, 6)])
        await journal.record_intent("web-01", attempt=1)
        await journal.record_intent("web-02", attempt=2)
        await journal.record_submitted(
            "web-02", task_id="task_x", build_id="vmbuild_x", submitted_at=T0
        )
        await journal.record_progress("web-02", vm_id="vm_x", note="building")
        await journal.record_intent("web-03", attempt=1)
        await journal.record_uncertain("web-03", error="POST timed out")
        await journal.record_finished("web-04", failed("web-04", attempts=3))
        before = await journal.entries()
    async with await journal_at.open(spec_sha256="s2", run_id="r2") as journal:
        assert journal.previous_spec_sha256 == "s1"
        after = await journal.entries()
    assert after == before
    assert list(after) == ["web-01", "web-02", "web-03", "web-04", "web-05"]
    assert after["web-01"].state == "intent"
    assert after["web-02"] == JournalEntry(
        key="web-02",
        hostname="web-02",
        state="submitted",
        attempts=2,
        task_id="task_x",
        build_id="vmbuild_x",
        vm_id="vm_x",
        submitted_at=T0,
        last_error=None,
        result=None,
        updated_at=after["web-02"].updated_at,
        note="building",
    )
    assert after["web-03"].state == "uncertain"
    assert after["web-03"].last_error == "POST timed out"
    finished = after["web-04"]
    assert finished.state == "finished"
    assert finished.result == failed("web-04", attempts=3)
    assert (finished.attempts, finished.task_id, finished.build_id) == (
        3,
        "task_aaaaaaaaaaaaaaaa",
        "vmbuild_aaaaaaaaaaaaaaaa",
    )
    assert after["web-05"].state == "pending"
    assert isinstance(after["web-05"].updated_at, datetime)
    assert [r.run_id for r in (await journal_at.read()).runs] == ["r1", "r2"]


async def test_add_pending_leaves_known_keys_alone(journal_at: JournalAt) -> None:
    """add_pending of a key already journaled changes nothing about it."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-01", "web-01")])
        await journal.record_intent("web-01", attempt=1)
        await journal.add_pending([("web-01", "web-01"), ("web-02", "web-02")])
        entries = await journal.entries()
    assert (entries["web-01"].state, entries["web-01"].attempts) == ("intent", 1)
    assert entries["web-02"].state == "pending"


async def test_add_pending_of_ten_thousand_is_one_transaction(journal_at: JournalAt) -> None:
    """10,000 new VMs are added in a single transaction."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        before = journal.statistics().transactions
        await journal.add_pending([(f"vm-{i:05d}", f"vm-{i:05d}") for i in range(10_000)])
        assert journal.statistics().transactions == before + 1
        assert len(await journal.entries()) == 10_000


async def test_a_new_attempt_forgets_the_previous_attempts_ids_and_result(
    journal_at: JournalAt,
) -> None:
    """record_intent of a retried VM clears its old task, build, VM and result."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-01", "web-01")])
        await journal.record_intent("web-01", attempt=1)
        await journal.record_submitted("web-01", task_id="t", build_id="b", submitted_at=T0)
        await journal.record_finished("web-01", failed("web-01"))
        await journal.record_intent("web-01", attempt=2)
        entry = (await journal.entries())["web-01"]
    assert (entry.state, entry.attempts) == ("intent", 2)
    assert (entry.task_id, entry.build_id, entry.vm_id, entry.result) == (None, None, None, None)


async def test_record_finished_many_is_one_transaction_and_adds_unknown_keys(
    journal_at: JournalAt,
) -> None:
    """Cancelling records every result in one transaction, even for VMs never added."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([(f"web-{i}", f"web-{i}") for i in range(100)])
        before = journal.statistics().transactions
        results = [succeeded(f"web-{i}") for i in range(100)] + [succeeded("extra")]
        await journal.record_finished_many(results)
        assert journal.statistics().transactions == before + 1
        entries = await journal.entries()
    assert {e.state for e in entries.values()} == {"finished"}
    assert entries["extra"].vm_id == "vm_extra"


async def test_misuse_raises_builtin_errors(journal_at: JournalAt) -> None:
    """Unknown keys, mismatched results and writes after close are programming errors."""
    journal = await journal_at.open(spec_sha256="s", run_id="r")
    await journal.add_pending([("web-01", "web-01")])
    with pytest.raises(KeyError, match="add_pending"):
        await journal.record_intent("nope", attempt=1)
    with pytest.raises(ValueError, match="not 'web-01'"):
        await journal.record_finished("web-01", succeeded("web-02"))
    await journal.add_pending([])
    await journal.record_finished_many([])
    await journal.close()
    await journal.close()
    with pytest.raises(RuntimeError, match="closed"):
        await journal.record_intent("web-01", attempt=1)
    assert (await journal_at.read()).entries[0].state == "pending"


async def test_an_empty_file_becomes_a_journal(journal_path: Path) -> None:
    """A zero-byte file (e.g. from mktemp) is taken as a new journal."""
    await anyio.Path(journal_path).touch()
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r"):
        pass
    assert pragma(journal_path, "application_id") == APPLICATION_ID


# ------------------------------------------------------------------------ lock


async def test_second_open_in_the_same_process_is_refused(journal_path: Path) -> None:
    """While one run holds the journal, another open fails and names the holder."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="holder"):
        with pytest.raises(JournalError, match=r"in use by another run") as info:
            await Journal.open(journal_path, spec_sha256="s", run_id="other")
        assert f"pid {os.getpid()}, run holder, started 20" in str(info.value)
        assert str(journal_path) in str(info.value)
    async with await Journal.open(journal_path, spec_sha256="s", run_id="next") as journal:
        assert journal.previous_spec_sha256 == "s"


_CHILD = """
import sys, anyio
from orchestrator.engine.state.journal import Journal

async def main():
    journal = await Journal.open(sys.argv[1], spec_sha256="child-spec", run_id="child")
    await journal.add_pending([("web-01", "web-01"), ("web-02", "web-02")])
    await journal.record_intent("web-01", attempt=1)
    print("ready", flush=True)
    await anyio.sleep_forever()

anyio.run(main)
"""


async def test_lock_is_refused_across_processes_and_freed_by_sigkill(journal_path: Path) -> None:
    """Another process's run blocks the journal; after kill -9 it is free, its writes kept."""
    process = await anyio.open_process(
        [sys.executable, "-c", _CHILD, str(journal_path)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        seen = b""
        while b"ready\n" not in seen:
            seen += await process.stdout.receive()
        with pytest.raises(
            JournalError, match=rf"in use by another run \(pid {process.pid}, run child"
        ):
            await Journal.open(journal_path, spec_sha256="s", run_id="parent")
        live = await _read(journal_path)  # a reader needs no lock
        assert [e.state for e in live.entries] == ["intent", "pending"]
    finally:
        process.kill()  # SIGKILL: no cleanup code of the child runs
        await process.wait()
        await process.aclose()
    assert process.returncode == -9
    dead = await _read(journal_path)  # status of a killed run, before anyone reopens it
    assert [(e.key, e.state) for e in dead.entries] == [("web-01", "intent"), ("web-02", "pending")]
    async with await Journal.open(journal_path, spec_sha256="s", run_id="parent") as journal:
        assert journal.previous_spec_sha256 == "child-spec"
        entries = await journal.entries()
    assert (entries["web-01"].state, entries["web-01"].attempts) == ("intent", 1)
    runs = (await _read(journal_path)).runs
    assert [(r.run_id, r.finished_at is None) for r in runs] == [("child", True), ("parent", False)]


async def test_a_holder_that_left_no_note_is_reported_as_unknown(journal_path: Path) -> None:
    """If the lock is held but the holder's note is missing, the error still says so."""
    lock = journal_path.with_name(journal_path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(JournalError, match=r"in use by another run \(pid unknown\)"):
            await Journal.open(journal_path, spec_sha256="s", run_id="r")
    finally:
        os.close(fd)


# --------------------------------------------------------------- foreign files


def _other_app_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()


def _journal_bytes(path: Path) -> bytes:
    async def build() -> None:
        async with await Journal.open(path, spec_sha256="s", run_id="r") as journal:
            await journal.add_pending([(f"web-{i:04d}", "x" * 60) for i in range(3000)])

    anyio.run(build)
    data = path.read_bytes()
    path.unlink()
    path.with_name(path.name + ".lock").unlink()
    return data


def _schema(version: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(_journal_bytes(path))
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
        conn.close()

    return make


def _scribbled(path: Path) -> None:
    """A journal with garbage over the pages after the first two."""
    data = bytearray(_journal_bytes(path))
    data[8192:40960] = b"\xa5" * (40960 - 8192)
    path.write_bytes(bytes(data))


_FOREIGN = {
    "text file": (lambda p: p.write_text("just some notes\n" * 20), "not an SQLite database"),
    "random bytes": (lambda p: p.write_bytes(os.urandom(8192)), "not an SQLite database"),
    "tiny": (lambda p: p.write_bytes(b"SQLite format 3\x00"), "not an SQLite database"),
    "other application": (_other_app_db, r"another application \(application_id 0x000004d2\)"),
    "truncated journal": (
        lambda p: p.write_bytes(_journal_bytes(p)[: 64 * 1024]),
        "corrupt",
    ),
    "scribbled journal": (_scribbled, "corrupt"),
    "newer schema": (_schema(SCHEMA_VERSION + 1), "newer orchestrator"),
    "unknown schema": (_schema(0), "unknown schema version 0"),
}


@pytest.mark.parametrize("kind", list(_FOREIGN))
async def test_a_foreign_or_broken_file_is_refused_and_left_untouched(
    journal_path: Path, kind: str
) -> None:
    """open() and read_journal() refuse a non-journal without changing a byte or adding files."""
    make, message = _FOREIGN[kind]
    await anyio.to_thread.run_sync(make, journal_path)
    before = await anyio.Path(journal_path).read_bytes()
    with pytest.raises(JournalError, match=message):
        await Journal.open(journal_path, spec_sha256="s", run_id="r")
    with pytest.raises(JournalError, match=message):
        await _read(journal_path)
    assert await anyio.Path(journal_path).read_bytes() == before
    extra = sorted(p.name for p in journal_path.parent.iterdir() if p != journal_path)
    assert extra in ([], [journal_path.name + ".lock"])
    if "journal" not in kind and "schema" not in kind:
        assert extra == []  # refused on its header: not even a lock file appears


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA ignore_check_constraints = ON")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE vms SET state = 'exploded'", "unknown state 'exploded'"),
        ("""UPDATE vms SET state = 'finished', result = '{"key": 1}'""", "cannot read"),
    ],
)
async def test_rows_this_version_cannot_read_are_journal_errors(
    journal_path: Path, sql: str, message: str
) -> None:
    """An unreadable row fails entries() and read_journal(), but not the run's writes."""
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-01", "web-01")])
    await anyio.to_thread.run_sync(_tamper, journal_path, sql)
    with pytest.raises(JournalError, match=message):
        await _read(journal_path)
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r2") as journal:
        with pytest.raises(JournalError, match=message):
            await journal.entries()
        await journal.add_pending([("web-02", "web-02")])
        await journal.record_intent("web-02", attempt=1)


async def test_read_journal_of_nothing_is_an_error(journal_path: Path) -> None:
    """status on a path without a journal says so."""
    with pytest.raises(JournalError, match="no journal at"):
        await _read(journal_path)


async def test_unusable_paths_are_journal_errors(tmp_path: Path) -> None:
    """A directory, or a path in a missing directory, gives a JournalError naming it."""
    with pytest.raises(JournalError, match="not a regular file"):
        await Journal.open(tmp_path, spec_sha256="s", run_id="r")
    with pytest.raises(JournalError, match="cannot lock journal"):
        await Journal.open(tmp_path / "missing" / "j", spec_sha256="s", run_id="r")
    loop = tmp_path / "loop"
    await anyio.Path(loop).symlink_to(loop)
    with pytest.raises(JournalError, match="cannot read journal"):
        await Journal.open(loop, spec_sha256="s", run_id="r")


async def test_a_journal_that_cannot_be_created_leaves_nothing_half_made(
    journal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed creation leaves no journal, no temporary file, and a free lock."""

    def broken(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite3, "connect", broken)
    with pytest.raises(JournalError, match=r"cannot create journal .*: disk I/O error"):
        await Journal.open(journal_path, spec_sha256="s", run_id="r")
    monkeypatch.undo()
    names = [p.name async for p in anyio.Path(journal_path.parent).iterdir()]
    assert names == [journal_path.name + ".lock"]
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r"):
        pass


# -------------------------------------------------------- group commit, safety


async def test_concurrent_intents_are_each_committed_when_awaited(journal_at: JournalAt) -> None:
    """500 concurrent intents: each is committed when it returns, in far fewer transactions."""
    keys = [f"web-{i:03d}" for i in range(500)]
    seen: list[tuple[str, int] | None] = []
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([(k, k) for k in keys])
        before = journal.statistics()

        async def one(key: str) -> None:
            await journal.record_intent(key, attempt=7)
            seen.append(await anyio.to_thread.run_sync(journal_at.raw_state, key))

        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(one, key)
        after = journal.statistics()
    assert seen == [("intent", 7)] * 500
    assert after.writes - before.writes == 500
    assert after.transactions - before.transactions < 500
    assert after.largest_batch > 1


async def test_group_commit_puts_queued_writes_in_one_transaction(journal_path: Path) -> None:
    """Writes that queue while the writer is busy are committed together, once."""
    keys = [f"web-{i:03d}" for i in range(500)]
    async with await Journal.open(journal_path, spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([(k, k) for k in keys])
        before = journal.statistics()
        journal._writer.gate.clear()  # the writer takes one write, then stalls
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(lambda k: journal.record_intent(k, attempt=1), key)
            await wait_all_tasks_blocked()
            assert journal.statistics().queued == 500
            journal._writer.gate.set()
        after = journal.statistics()
    assert after.transactions - before.transactions == 1
    assert after.largest_batch == 500
    assert after.synced_transactions - before.synced_transactions == 1


async def test_a_cancelled_write_is_applied_whole(journal_at: JournalAt) -> None:
    """Cancelling a caller mid-write neither loses nor splits its write, nor stalls others."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-01", "web-01"), ("web-02", "web-02")])
        journal._writer.gate.clear()
        done = False
        async with anyio.create_task_group() as tg:

            async def submit() -> None:
                nonlocal done
                with anyio.CancelScope() as scope:
                    cancel_scopes.append(scope)
                    await journal.record_submitted(
                        "web-01", task_id="t", build_id="b", submitted_at=T0
                    )
                    done = True

            cancel_scopes: list[anyio.CancelScope] = []
            tg.start_soon(submit)
            await wait_all_tasks_blocked()
            cancel_scopes[0].cancel()
            await wait_all_tasks_blocked()
            journal._writer.gate.set()
        assert not done
        await journal.record_intent("web-02", attempt=1)  # the writer goes on
        entries = await journal.entries()
    assert (entries["web-01"].state, entries["web-01"].task_id) == ("submitted", "t")
    assert (entries["web-01"].build_id, entries["web-01"].submitted_at) == ("b", T0)


async def test_close_flushes_unawaited_writes_even_when_cancelled(journal_at: JournalAt) -> None:
    """record_progress does not wait; close() commits it and frees the lock, cancelled or not."""
    journal = await journal_at.open(spec_sha256="s", run_id="r")
    await journal.add_pending([("web-01", "web-01")])
    journal._writer.gate.clear()
    await journal.record_progress("web-01", vm_id="vm_1", note="state building")
    await journal.record_progress("web-01", note="state running")
    assert journal.statistics().queued == 2
    journal._writer.gate.set()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await journal.close()
    entry = (await journal_at.read()).entries[0]
    assert (entry.vm_id, entry.note) == ("vm_1", "state running")
    async with await journal_at.open(spec_sha256="s", run_id="again"):
        pass


async def test_a_cancelled_open_leaves_the_journal_unlocked(journal_at: JournalAt) -> None:
    """Cancelling open() midway closes what it opened: the lock is free afterwards."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await journal_at.open(spec_sha256="s", run_id="cancelled")
    async with await journal_at.open(spec_sha256="s", run_id="next"):
        pass
    runs = (await journal_at.read()).runs
    assert [r.run_id for r in runs] == ["cancelled", "next"]
    assert runs[0].finished_at is not None


@pytest.mark.parametrize(("durability", "synced"), [("process", 0), ("intent", 1), ("full", 3)])
async def test_durability_decides_which_commits_are_fsynced(
    journal_path: Path, durability: str, synced: int
) -> None:
    """Only intents are fsync'd by default; 'process' fsyncs none, 'full' every commit."""
    async with await Journal.open(
        journal_path,
        spec_sha256="s",
        run_id="r",
        durability=durability,  # type: ignore[arg-type]
    ) as journal:
        before = journal.statistics()
        await journal.add_pending([("web-01", "web-01")])
        await journal.record_intent("web-01", attempt=1)
        await journal.record_submitted("web-01", task_id="t", build_id=None, submitted_at=T0)
        after = journal.statistics()
    assert after.transactions - before.transactions == 3
    assert after.synced_transactions - before.synced_transactions == synced


async def test_a_failed_write_stops_the_journal_but_keeps_what_was_committed(
    journal_path: Path,
) -> None:
    """A failed write raises there and for later writes; close() unlocks; earlier writes stay."""
    journal = await Journal.open(journal_path, spec_sha256="s", run_id="r")
    await journal.add_pending([("web-01", "web-01"), ("web-02", "web-02")])
    await journal.record_intent("web-01", attempt=1)
    with pytest.raises(JournalError, match="a write failed"):
        await journal.record_submitted(
            "web-01",
            task_id="t",
            build_id=None,
            submitted_at="not a datetime",  # type: ignore[arg-type]
        )
    with pytest.raises(JournalError, match="a write failed"):
        await journal.record_intent("web-02", attempt=1)
    with pytest.raises(JournalError, match="a write failed"):
        await journal.record_progress("web-02", note="x")
    await journal.close()
    states = [e.state for e in (await _read(journal_path)).entries]
    assert states == ["intent", "pending"]
    async with await Journal.open(journal_path, spec_sha256="s", run_id="again"):
        pass


async def test_read_journal_sees_committed_writes_of_a_running_journal(
    journal_at: JournalAt,
) -> None:
    """status works while a run holds the journal, and shows what it committed."""
    async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
        await journal.add_pending([("web-01", "web-01"), ("web-02", "web-02")])
        await journal.record_intent("web-02", attempt=1)
        snapshot = await journal_at.read()
        assert snapshot.counts() == {
            "pending": 1,
            "intent": 1,
            "submitted": 0,
            "uncertain": 0,
            "finished": 0,
        }
        assert snapshot.runs[0].finished_at is None
        await journal.record_uncertain("web-02", error="reset")
        assert (await journal_at.read()).counts()["uncertain"] == 1


async def test_the_journal_never_blocks_the_event_loop(journal_at: JournalAt) -> None:
    """Open, writes, reads and close do no blocking I/O on the loop (blockbuster is on)."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["orchestrator"]):
        async with await journal_at.open(spec_sha256="s", run_id="r") as journal:
            await journal.add_pending([("web-01", "web-01")])
            await journal.record_intent("web-01", attempt=1)
            await journal.record_submitted("web-01", task_id="t", build_id="b", submitted_at=T0)
            await journal.record_progress("web-01", vm_id="vm_1")
            await journal.record_finished("web-01", succeeded("web-01"))
            assert (await journal.entries())["web-01"].state == "finished"
