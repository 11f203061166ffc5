"""The journal's one writer thread: owns the SQLite connection, commits in groups.

Group commit, in short: callers on the event loop put operations on a queue and
wait. The writer takes the first operation, then every other one already queued,
applies them all in one transaction and commits once; then it tells the loop
"committed up to sequence number N" with one thread-safe callback. While it is
busy committing, new operations pile up and go into the next transaction, so the
number of commits adapts to the load: one per write when writes trickle in, a
few hundred writes per commit when 500 submitters record intents at once.

Under load the groups are also spaced: when the last group held more than one
operation, or more arrived while it was being committed (many writers, not one
waiting on the other), the next transaction begins no sooner than
:data:`GROUP_SECONDS` after the last one began. A lone caller, or a run whose
writes trickle in, is never held. Each transaction costs fixed work whatever
its size (a commit, an fsync for intents, the lock file's note, a wake-up of
the event loop, the GIL taken from the loop's thread): in the overhead
benchmark (20,000 VMs, 5,000 in flight) the transactions fell from
6,600-10,800 to about 1,100-1,900 and the CPU per VM by several percent, for
at most those milliseconds more before a POST goes out. What is committed, and
when a caller may rely on it, is unchanged.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from orchestrator.engine.state._db import (
    DELETES_SCHEMA,
    Table,
    acquire_lock,
    connect_readonly,
    create_journal,
    journal_exists,
    read_entries,
    release_lock,
    utc_text,
    validate,
)
from orchestrator.engine.state._meta import (
    FleetClaim,
    Meta,
    bind_meta,
    count_records,
    read_lock_note,
    write_lock_note,
)
from orchestrator.engine.state._model import Durability
from orchestrator.errors import JournalError
from orchestrator.report import VmResult

__all__ = [
    "ADD",
    "CLOSE",
    "ENTRIES",
    "FINISHED",
    "INTENT",
    "PROGRESS",
    "SUBMITTED",
    "UNCERTAIN",
    "CommitCounters",
    "JournalWriter",
    "Op",
    "Opened",
    "WriterSetup",
    "finished_row",
]

# operation kinds: (seq, kind, args)
ADD: Final = 0
INTENT: Final = 1
SUBMITTED: Final = 2
UNCERTAIN: Final = 3
PROGRESS: Final = 4
FINISHED: Final = 5
ENTRIES: Final = 6
CLOSE: Final = 7

Op = tuple[int, int, tuple[Any, ...]]

#: Seconds between two WAL checkpoints during a run (and one at every clean close).
CHECKPOINT_SECONDS: Final = 1.0

#: Under load (more than one writer at a time), the least seconds from the start of one
#: transaction to the start of the next: writes gather into fewer, larger groups.
GROUP_SECONDS: Final = 0.005


@dataclass(frozen=True, slots=True)
class _Statements:
    """The row-writing SQL of one table (``vms`` for builds, ``deletes`` for deletes)."""

    add: str
    intent: str
    submitted: str
    uncertain: str
    progress: str
    finished: str

    @classmethod
    def of(cls, t: Table) -> _Statements:
        return cls(
            add=(
                f"INSERT INTO {t} (key, hostname, state, attempts, updated_at)"
                " VALUES (?, ?, 'pending', 0, ?) ON CONFLICT (key) DO NOTHING"
            ),
            # a new attempt starts clean: ids, result and note of an earlier attempt are stale
            intent=(
                f"UPDATE {t} SET state = 'intent', attempts = ?, task_id = NULL,"
                " build_id = NULL, vm_id = NULL, submitted_at = NULL, result = NULL,"
                " note = NULL, updated_at = ? WHERE key = ?"
            ),
            submitted=(
                f"UPDATE {t} SET state = 'submitted', task_id = ?, build_id = ?,"
                " submitted_at = ?, updated_at = ? WHERE key = ?"
            ),
            uncertain=(
                f"UPDATE {t} SET state = 'uncertain', last_error = ?, updated_at = ? WHERE key = ?"
            ),
            progress=(
                f"UPDATE {t} SET vm_id = coalesce(?, vm_id), note = coalesce(?, note),"
                " updated_at = ? WHERE key = ?"
            ),
            finished=(
                f"INSERT INTO {t} (key, hostname, state, attempts, task_id, build_id, vm_id,"
                " submitted_at, result, updated_at) VALUES (?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET state = 'finished',"
                f" attempts = max({t}.attempts, excluded.attempts),"
                f" task_id = coalesce(excluded.task_id, {t}.task_id),"
                f" build_id = coalesce(excluded.build_id, {t}.build_id),"
                f" vm_id = coalesce(excluded.vm_id, {t}.vm_id),"
                f" submitted_at = coalesce(excluded.submitted_at, {t}.submitted_at),"
                " result = excluded.result, updated_at = excluded.updated_at"
            ),
        )


_SQL_SPEC: Final = (
    "INSERT INTO vm_specs (key, spec) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET spec = excluded.spec"
)


@dataclass(frozen=True, slots=True)
class Opened:
    """What the writer learnt while opening the journal."""

    previous_spec_sha256: str | None
    keys: set[str]
    #: the fleet the journal is bound to (see ``_meta.bind_meta``)
    fleet: str


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def finished_row(result: VmResult, now: str) -> tuple[object, ...]:
    """The ``finished`` row of ``result`` (key, hostname, attempts, ids, time, result, now)."""
    vm = result.virtual_machine
    return (
        result.key,
        result.hostname,
        result.attempts,
        result.task_id,
        result.build_id,
        vm.id if vm is not None else None,
        _iso(result.submitted_at),
        result.model_dump_json(),
        now,
    )


#: an operation that names no fleet (an older caller): the fleet the journal is bound to
_NO_CLAIM: Final = FleetClaim(named=None, legacy="default")


@dataclass(frozen=True, slots=True)
class WriterSetup:
    """What a journal's writer (either backend's) is told: whose run, what to check and
    whom to call. ``on_open(Opened | Exception)``, ``on_commit(upto, results, error)`` and
    ``on_closed()`` must be safe to call from any thread."""

    on_open: Callable[[Opened | Exception], None]
    on_commit: Callable[[int, dict[int, object], JournalError | None], None]
    on_closed: Callable[[], None]
    spec_sha256: str
    run_id: str
    durability: Durability
    api_url: str | None = None
    rebind: bool = False
    table: Table = "vms"
    fleet: FleetClaim = _NO_CLAIM

    def must_sync(self, batch: Sequence[Op]) -> bool:
        """Whether this group's commit must reach the disk before it returns."""
        return self.durability == "full" or (
            self.durability == "intent" and any(op[1] == INTENT for op in batch)
        )


class CommitCounters:
    """A writer's statistics (read from the loop's thread; ints are updated atomically)."""

    applied_seq: int = 0
    transactions: int = 0
    synced_transactions: int = 0
    writes: int = 0
    largest_batch: int = 0

    def count_commit(self, batch: int, *, synced: bool, writes: int) -> None:
        """Count one committed group of ``batch`` operations."""
        self.transactions += 1
        self.synced_transactions += synced
        self.writes += writes
        self.largest_batch = max(self.largest_batch, batch)


class JournalWriter(threading.Thread, CommitCounters):
    """The thread that opens, writes and closes one journal.

    ``on_open(Opened | Exception)``, ``on_commit(upto, results, error)`` and
    ``on_closed()`` are called from this thread and must be thread-safe (the
    journal wraps ``loop.call_soon_threadsafe``). ``on_commit`` says: every
    operation up to sequence ``upto`` is committed (``error`` None), or failed.
    """

    def __init__(self, path: Path, setup: WriterSetup) -> None:
        super().__init__(name=f"orchestrator-journal-{setup.run_id}", daemon=True)
        self.path = path
        self.queue: queue.SimpleQueue[Op] = queue.SimpleQueue()
        #: cleared by tests to hold the writer after it took its first operation
        self.gate = threading.Event()
        self.gate.set()
        self._setup = setup
        self._spec_sha256 = setup.spec_sha256
        self._run_id = setup.run_id
        self._durability = setup.durability
        self._api_url = setup.api_url
        self._rebind = setup.rebind
        self._table: Table = setup.table
        self._sql = _Statements.of(setup.table)
        self._fleet = setup.fleet
        self._meta: Meta | None = None
        self._holder: dict[str, object] = {}
        self._checkpointed = time.monotonic()
        self._on_open = setup.on_open
        self._on_commit = setup.on_commit
        self._on_closed = setup.on_closed
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._run_seq = 0
        self._synced = False
        self._failed: JournalError | None = None

    # ------------------------------------------------------------------ thread

    def run(self) -> None:
        """Open the journal, then serve batches until the close operation."""
        try:
            opened = self._open()
        except Exception as exc:
            self._shutdown()
            self._on_open(exc)
            return
        self._on_open(opened)
        self._serve()

    def _serve(self) -> None:
        began = -GROUP_SECONDS
        loaded = False
        while True:
            batch = [self.queue.get()]
            self.gate.wait()
            if loaded and batch[0][1] != CLOSE:
                # more writers than one at a time: let the group gather (see the module)
                pause = began + GROUP_SECONDS - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            began = time.monotonic()
            try:
                while True:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            closing = batch[-1][1] == CLOSE
            results, error = self._apply(batch)
            self.applied_seq = batch[-1][0]
            if closing:
                self._shutdown()
            self._on_commit(batch[-1][0], results, error)
            if closing:
                self._on_closed()
                return
            loaded = len(batch) > 1 or not self.queue.empty()

    # -------------------------------------------------------------------- open

    def _open(self) -> Opened:
        path = self.path
        started = utc_text()
        # refuse a foreign file before even creating the lock file next to it
        journal_exists(path)
        self._holder = {"pid": os.getpid(), "run_id": self._run_id, "started_at": started}
        self._lock_fd, before = acquire_lock(path, holder=self._holder)
        note = read_lock_note(before)
        if journal_exists(path):
            reader = connect_readonly(path)
            try:
                validate(reader, path)
            finally:
                reader.close()
        else:
            create_journal(path)
        try:
            conn = self._conn = sqlite3.connect(path, isolation_level=None)
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise JournalError(
                    f"journal {path}: its file system does not support SQLite's WAL mode "
                    "(network file systems often do not): put the journal on a local disk"
                )
            self._synced = self._durability == "full"
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._synced else 'NORMAL'}")
            conn.execute("PRAGMA busy_timeout = 10000")
            row = conn.execute("SELECT spec_sha256 FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
            conn.execute("BEGIN")
            try:
                conn.execute(DELETES_SCHEMA)
                self._meta = bind_meta(
                    conn,
                    path,
                    note=note,
                    api_url=self._api_url,
                    rebind=self._rebind,
                    fleet=self._fleet,
                )
            except JournalError:
                conn.execute("ROLLBACK")
                raise
            cursor = conn.execute(
                "INSERT INTO runs (run_id, spec_sha256, started_at, pid) VALUES (?, ?, ?, ?)",
                (self._run_id, self._spec_sha256, started, os.getpid()),
            )
            self._run_seq = int(cursor.lastrowid or 0)
            keys = {str(key) for (key,) in conn.execute(f"SELECT key FROM {self._table}")}
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        write_lock_note(self._lock_fd, self._holder, self._meta)
        assert self._meta.fleet is not None
        return Opened(
            previous_spec_sha256=None if row is None else str(row[0]),
            keys=keys,
            fleet=self._meta.fleet,
        )

    def _shutdown(self) -> None:
        """Checkpoint the WAL into the journal, close the connection, release the run lock."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                if self._failed is None:
                    # the main file holds everything: a lost -wal file costs nothing now
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ writes

    def _checkpoint_now_and_then(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the main file about every :data:`CHECKPOINT_SECONDS`, so that
        what a killed run recorded does not live in the ``-wal`` file alone for long."""
        now = time.monotonic()
        if now - self._checkpointed < CHECKPOINT_SECONDS:
            return
        self._checkpointed = now
        with contextlib.suppress(sqlite3.Error):  # busy readers: next time
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _apply(self, batch: Sequence[Op]) -> tuple[dict[int, object], JournalError | None]:
        """Apply ``batch`` in one transaction; all of it commits or none of it."""
        if self._failed is not None:
            return {}, self._failed
        conn = self._conn
        assert conn is not None
        full = self._setup.must_sync(batch)
        results: dict[int, object] = {}
        writes = 0
        sql = self._sql
        try:
            if full != self._synced:
                # the level applies to the next commit; it cannot change inside one
                conn.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
                self._synced = full
            conn.execute("BEGIN")
            now = utc_text()
            for seq, kind, args in batch:
                if kind == ENTRIES:
                    try:
                        results[seq] = read_entries(conn, self.path, args[0] if args else "vms")
                    except JournalError as exc:  # unreadable rows fail the read, not the writes
                        results[seq] = exc
                    continue
                if kind == CLOSE:
                    conn.execute(
                        "UPDATE runs SET finished_at = ? WHERE seq = ?", (now, self._run_seq)
                    )
                    continue
                writes += 1
                if kind == INTENT:
                    conn.execute(sql.intent, (args[1], now, args[0]))
                    if args[2] is not None:
                        conn.execute(_SQL_SPEC, (args[0], args[2]))
                elif kind == SUBMITTED:
                    key, task_id, build_id, submitted_at = args
                    conn.execute(sql.submitted, (task_id, build_id, _iso(submitted_at), now, key))
                elif kind == PROGRESS:
                    conn.execute(sql.progress, (args[1], args[2], now, args[0]))
                elif kind == UNCERTAIN:
                    conn.execute(sql.uncertain, (args[1], now, args[0]))
                elif kind == FINISHED:
                    conn.executemany(sql.finished, [finished_row(r, now) for r in args[0]])
                elif kind == ADD:
                    conn.executemany(sql.add, [(key, host, now) for key, host in args[0]])
            if writes and self._meta is not None:
                count_records(conn, self._meta, writes)
            conn.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._failed = JournalError(
                f"journal {self.path}: a write failed ({exc}); it holds every write "
                "acknowledged before this one, and takes no more in this run"
            )
            return {}, self._failed
        if writes and self._meta is not None and self._lock_fd is not None:
            write_lock_note(self._lock_fd, self._holder, self._meta)
        self._checkpoint_now_and_then(conn)
        self.count_commit(len(batch), synced=full, writes=writes)
        return results, None
