"""The write-ahead journal: what is about to be sent, recorded before it is sent.

Scheduled and long runs get killed (SIGKILL, cron timeouts, laptops closing). The
engine records each VM's intent *before* its POST goes out and every change of
state after, so that a rerun on the same journal resumes: finished VMs are left
alone, submitted ones are polled rather than sent again, and those whose POST
outcome is unknown (``intent``/``uncertain``) are reconciled by hostname first.

The journal is an SQLite database in WAL mode, written by one dedicated thread
(never on the event loop) with group commit: writes awaited concurrently by many
tasks share one transaction. When ``record_intent``, ``record_submitted``,
``record_uncertain``, ``record_finished`` or ``add_pending`` returns, its row is
committed; :data:`~orchestrator.engine.state._model.Durability` says what a
commit survives (by default: any death of the process, and, for intents, an OS
crash too). ``record_progress`` only queues its write (it is committed with the
next group, at the latest by ``close()``): losing a progress note costs nothing.

A cancelled caller never leaves half a write: once a ``record_*`` call has
started, its write is applied whole (in a later group if need be), and
``close()`` waits for every queued write, shielded from cancellation.

One run at a time: :meth:`Journal.open` takes an ``flock`` on ``<journal>.lock``
for the whole run, which the kernel releases when the process dies, however it
dies. :func:`read_journal` needs no lock and never writes.

Nothing secret is ever stored: the journal receives keys, hostnames, API ids,
error texts (token-free by construction of :mod:`orchestrator.errors`) and
:class:`~orchestrator.report.VmResult`\\ s, never the token or request bodies.
POSIX only (``fcntl``); the asyncio backend of anyio.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel

from orchestrator.engine.state._db import (
    Table,
    connect_readonly,
    journal_exists,
    read_entries,
    read_runs,
    validate,
)
from orchestrator.engine.state._meta import FleetClaim, fleet_of
from orchestrator.engine.state._model import (
    JOURNAL_STATES,
    Durability,
    JournalEntry,
    JournalSnapshot,
    JournalState,
    JournalStatistics,
    RunRecord,
)
from orchestrator.engine.state._pg import pg_journal_exists, read_pg_journal
from orchestrator.engine.state._pg_writer import PgJournalWriter
from orchestrator.engine.state._status import render_status
from orchestrator.engine.state._writer import (
    ADD,
    CLOSE,
    ENTRIES,
    FINISHED,
    INTENT,
    PROGRESS,
    SUBMITTED,
    UNCERTAIN,
    JournalWriter,
    Opened,
    WriterSetup,
)
from orchestrator.engine.state.location import PostgresState, StateLocation, parse_state
from orchestrator.errors import JournalError, NoJournal
from orchestrator.report import VmResult

__all__ = [
    "JOURNAL_STATES",
    "Durability",
    "FleetClaim",
    "Journal",
    "JournalEntry",
    "JournalSnapshot",
    "JournalState",
    "JournalStatistics",
    "RunRecord",
    "journal_exists_at",
    "read_journal",
    "render_status",
]


class Journal:
    """An open journal, locked for this run. Get one with :meth:`Journal.open`.

    ::

        async with await Journal.open("run.journal", spec_sha256=sha, run_id=rid) as journal:
            entries = await journal.entries()
            await journal.add_pending([(vm.key, vm.hostname) for vm in vms])
            await journal.record_intent("web-01", attempt=1)   # committed: now POST
    """

    def __init__(
        self,
        path: StateLocation,
        *,
        spec_sha256: str,
        run_id: str,
        durability: Durability,
        post: Callable[..., None],
        api_url: str | None = None,
        rebind: bool = False,
        table: Table = "vms",
        fleet: FleetClaim | None = None,
    ) -> None:
        """Private: use :meth:`Journal.open`."""
        #: where the journal is: its file, or a PostgreSQL state and the fleet (no password)
        self.path = str(path)
        #: where the journal is, as given (a path, or a PostgreSQL state)
        self.location: StateLocation = path
        #: this run's id and spec digest, as recorded in the ``runs`` table
        self.run_id = run_id
        self.spec_sha256 = spec_sha256
        #: the spec digest of the run recorded before this one (None: new journal)
        self.previous_spec_sha256: str | None = None
        #: the fleet this journal is the state of (known once opened)
        self.fleet: str = (fleet.named or fleet.legacy) if fleet is not None else "default"
        #: which rows this journal writes: a build's (``vms``) or a delete's (``deletes``)
        self.table: Table = table
        self.durability: Durability = durability
        self._seq = 0
        self._committed = 0
        self._error: JournalError | None = None
        #: (seq, future) of the tasks waiting for their operation's commit, a heap by seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._results: dict[int, object] = {}
        self._keys: set[str] = set()
        self._specs: dict[str, str] = {}
        self._closing = False
        self._closed = anyio.Event()
        self._opened = anyio.Event()
        self._open_result: Opened | Exception | None = None
        setup = WriterSetup(
            on_open=lambda result: post(self._on_open, result),
            on_commit=lambda upto, results, error: post(self._on_commit, upto, results, error),
            on_closed=lambda: post(self._closed.set),
            spec_sha256=spec_sha256,
            run_id=run_id,
            durability=durability,
            api_url=api_url,
            rebind=rebind,
            table=table,
            fleet=fleet or FleetClaim(named=None, legacy="default"),
        )
        self._writer: JournalWriter | PgJournalWriter
        if isinstance(path, PostgresState):
            self._writer = PgJournalWriter(path, setup)
            self.path = self._writer.path
        else:
            self._writer = JournalWriter(path, setup)

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str] | PostgresState,
        *,
        spec_sha256: str,
        run_id: str,
        durability: Durability = "intent",
        api_url: str | None = None,
        rebind: bool = False,
        table: Table = "vms",
        fleet: FleetClaim | None = None,
    ) -> Journal:
        """Create (mode 0o600) or open the journal at ``path`` and lock it for this run.

        Raises :class:`JournalError` when another run holds it ("journal X is in use
        by another run (pid N, run R, started T)"), or when the file is not a
        journal of this orchestrator (another file, another application's SQLite
        database, a corrupt or truncated journal, a newer schema); such a file is
        never written to. Records this run in the journal's ``runs`` table.

        ``api_url`` binds the journal to that API: a journal written against
        another one is refused, as is a journal that lost records it once held
        (see ``_meta``), unless ``rebind`` (then it is bound to ``api_url``).

        One journal is the state of one fleet, for ``run`` and ``destroy`` alike:
        ``table`` says which rows this operation writes (``vms``: builds,
        ``deletes``: deletes); ``fleet`` is the fleet it claims, refused when the
        journal is another fleet's (see ``_meta.bind_fleet``; ``journal.fleet``
        then names the fleet bound).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("the journal needs anyio's asyncio backend") from None

        def post(callback: Callable[..., None], *args: Any) -> None:
            # a closed loop (RuntimeError) has nobody left waiting
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)

        journal = cls(
            parse_state(path),
            spec_sha256=spec_sha256,
            run_id=run_id,
            durability=durability,
            post=post,
            api_url=api_url,
            rebind=rebind,
            table=table,
            fleet=fleet,
        )
        journal._writer.start()
        # shielded: abandoning the handshake would leave the lock held by a writer
        # nobody can close
        with anyio.CancelScope(shield=True):
            await journal._opened.wait()
        result = journal._open_result
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, Opened)
        journal.previous_spec_sha256 = result.previous_spec_sha256
        journal._keys = result.keys
        journal.fleet = result.fleet
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            await journal.close()
            raise
        return journal

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --------------------------------------------------------------- reads

    async def entries(self, table: Table | None = None) -> dict[str, JournalEntry]:
        """Every VM the journal knows, by key, in the order they were first added.

        The rows of this journal's own operation, or of ``table`` (a delete reads
        the builds' rows: which VMs this fleet's builds created).
        """
        seq = self._put(ENTRIES, (table or self.table,))
        await self._wait(seq)
        found = self._results.pop(seq)
        if isinstance(found, JournalError):
            raise found
        assert isinstance(found, list)
        return {entry.key: entry for entry in found}

    def statistics(self) -> JournalStatistics:
        """Counters of the writer's work so far (transactions, writes, batch sizes)."""
        writer = self._writer
        return JournalStatistics(
            transactions=writer.transactions,
            synced_transactions=writer.synced_transactions,
            writes=writer.writes,
            largest_batch=writer.largest_batch,
            queued=self._seq - writer.applied_seq,
        )

    # -------------------------------------------------------------- writes

    async def add_pending(self, items: Sequence[tuple[str, str]]) -> None:
        """Add ``(key, hostname)`` rows in state ``pending``; existing keys stay untouched."""
        if not items:
            return
        rows = [(str(key), str(hostname)) for key, hostname in items]
        seq = self._put(ADD, (rows,))
        self._keys.update(key for key, _ in rows)
        await self._wait(seq)

    def describe(self, specs: Mapping[str, Mapping[str, str]]) -> None:
        """What each VM's POST asks for (organization, package, disk_template, location),
        by key: recorded with its intent, read back as ``JournalEntry.built_with``."""
        # the VMs of a fleet mostly ask for the same: one text for each distinct spec
        texts: dict[str, str] = {}
        self._specs = {
            key: texts.setdefault(text, text)
            for key, spec in specs.items()
            for text in (json.dumps(dict(spec), sort_keys=True),)
        }

    async def record_intent(self, key: str, *, attempt: int) -> None:
        """Record that attempt ``attempt`` of ``key``'s POST is about to go out.

        Committed (and, with the default durability, fsync'd) when it returns: only
        then may the POST be sent. Clears the ids and result of earlier attempts.
        """
        seq = self._put(INTENT, (self._known(key), attempt, self._specs.get(key)))
        await self._wait(seq)

    async def record_submitted(
        self,
        key: str,
        *,
        task_id: str,
        build_id: str | None,
        submitted_at: datetime,
    ) -> None:
        """Record the 201: the build exists, with these ids. Committed when it returns."""
        seq = self._put(SUBMITTED, (self._known(key), task_id, build_id, submitted_at))
        await self._wait(seq)

    async def record_uncertain(self, key: str, *, error: str) -> None:
        """Record that ``key``'s POST has an unknown outcome; reconcile by hostname before
        sending again. Committed when it returns."""
        seq = self._put(UNCERTAIN, (self._known(key), error))
        await self._wait(seq)

    async def record_progress(
        self, key: str, *, vm_id: str | None = None, note: str | None = None
    ) -> None:
        """Note the VM's id or a progress note (None leaves a field as it was).

        Does not wait for the commit: the write goes with the next group, at the
        latest with ``close()``.
        """
        self._put(PROGRESS, (self._known(key), vm_id, note))

    async def record_finished(self, key: str, result: VmResult) -> None:
        """Record ``key``'s final result (state ``finished``). Committed when it returns."""
        if result.key != key:
            raise ValueError(f"result is for {result.key!r}, not {key!r}")
        await self.record_finished_many([result])

    async def record_finished_many(self, results: Sequence[VmResult]) -> None:
        """Record many final results in one transaction (for a cancelled run).

        A result whose key the journal does not know yet is added.
        """
        if not results:
            return
        batch = list(results)
        seq = self._put(FINISHED, (batch,))
        self._keys.update(result.key for result in batch)
        await self._wait(seq)

    async def close(self) -> None:
        """Commit every queued write, record the run's end, release the lock. Idempotent.

        Shielded from cancellation. A write that failed raised where it was
        awaited; ``close()`` itself does not raise for it.
        """
        with anyio.CancelScope(shield=True):
            if not self._closing:
                self._closing = True
                self._seq += 1
                self._writer.queue.put((self._seq, CLOSE, ()))
            await self._closed.wait()

    # ------------------------------------------------------------ plumbing

    def _known(self, key: str) -> str:
        if key not in self._keys:
            raise KeyError(f"{key!r} is not in the journal: add_pending() it first")
        return key

    def _put(self, kind: int, args: tuple[Any, ...]) -> int:
        if self._closing:
            raise RuntimeError(f"journal {self.path} is closed")
        if self._error is not None:
            raise JournalError(str(self._error)) from self._error
        self._seq += 1
        self._writer.queue.put((self._seq, kind, args))
        return self._seq

    async def _wait(self, seq: int) -> None:
        """Wait until operation ``seq`` is committed; JournalError if it failed.

        Cancelling this wait does not withdraw the operation: it is applied whole.
        Each waiter is woken once, by the commit that covers it (not by every
        commit: thousands of VMs in flight would each wake for every group).
        """
        if self._committed < seq and self._error is None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (seq, future))
            await future
        if self._committed < seq and self._error is not None:
            raise JournalError(str(self._error)) from self._error

    # called on the event loop by the writer thread (through call_soon_threadsafe)

    def _on_open(self, result: Opened | Exception) -> None:
        self._open_result = result
        self._opened.set()

    def _on_commit(self, upto: int, results: dict[int, object], error: JournalError | None) -> None:
        if error is None:
            self._committed = upto
            self._results.update(results)
        elif self._error is None:
            self._error = error
        waiters = self._waiters
        while waiters and (waiters[0][0] <= self._committed or self._error is not None):
            _, future = heapq.heappop(waiters)
            if not future.done():  # (a cancelled wait)
                future.set_result(None)


def journal_exists_at(path: str | os.PathLike[str] | PostgresState, fleet: str | None) -> bool:
    """True when there is a journal at ``path`` (for a PostgreSQL state: of ``fleet``).

    JournalError when that cannot be told (a database that cannot be reached, a
    file that is not a journal, a PostgreSQL state and a fleet with no name).
    """
    location = parse_state(path)
    if isinstance(location, Path):
        return journal_exists(location)
    return pg_journal_exists(location, fleet)


def read_journal(
    path: str | os.PathLike[str] | PostgresState, *, fleet: str | None = None
) -> JournalSnapshot:
    """Read everything a journal holds, without its lock and without writing to it.

    Works while a run holds the journal (it reads the last committed state) and
    after a run was killed. Raises :class:`JournalError` when there is no journal at
    ``path`` or it is not one (foreign or corrupt). ``path`` may be a PostgreSQL
    state; ``fleet`` then says whose journal (a file is one fleet's: ``fleet`` is
    not needed).
    """
    location = parse_state(path)
    if isinstance(location, PostgresState):
        return read_pg_journal(location, fleet)
    where = location
    if not journal_exists(where):
        raise NoJournal(f"there is no journal at {where}")
    conn = connect_readonly(where)
    try:
        validate(conn, where)
        try:
            conn.execute("BEGIN")  # one read transaction: runs and VMs agree
            runs: list[RunRecord] = read_runs(conn)
            entries = read_entries(conn, where)
            deletes = read_entries(conn, where, "deletes")
            fleet, fleet_spec = fleet_of(conn)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {where} is corrupt ({exc})") from exc
    finally:
        conn.close()
    return JournalSnapshot(
        path=str(where),
        runs=runs,
        entries=entries,
        deletes=deletes,
        fleet=fleet,
        fleet_spec=fleet_spec,
    )
