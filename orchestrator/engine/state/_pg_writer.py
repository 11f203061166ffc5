"""The journal's writer for a PostgreSQL state: one connection, group commit, the fleet's lock.

It keeps the SQLite writer's contract (``_writer.JournalWriter``) so that the
:class:`~orchestrator.engine.state.journal.Journal` in front of it, and all
above, cannot tell them apart: operations are queued with a sequence number,
applied in groups (each group one transaction: while one commits, the next
piles up), and ``on_commit(upto, results, error)`` reports each group.

It runs as a task on the event loop (psycopg's asynchronous connection), not as
a thread. The connection holds the fleet's advisory lock for the whole run, so
a write that fails because the connection is gone also means the lock is gone:
every later write fails too (the run stops submitting, as for a full disk), and
nothing reconnects behind the run's back.

Durability, as for the file (``Durability``): a group carrying an intent always
commits with ``synchronous_commit = on`` (the server has flushed it to its WAL
before the POST may go out); other groups commit with ``synchronous_commit =
off`` unless the durability is ``full`` (a server crash may lose the last of
them, which costs a lookup or a poll, never a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, LiteralString

from orchestrator.engine.state._db import Table, utc_text
from orchestrator.engine.state._pg import (
    HOLDER_SQL,
    SCHEMA_LOCK,
    SCHEMA_VERSION,
    check_version,
    connect_kwargs,
    describe,
    ensure_schema_sql,
    entries_from_rows,
    entries_sql,
    holder_name,
    holder_text,
    lock_key,
    lock_key_parts,
    need_fleet,
    pg_error,
    psycopg_module,
    this_host,
)
from orchestrator.engine.state._writer import (
    ADD,
    CLOSE,
    ENTRIES,
    FINISHED,
    INTENT,
    PROGRESS,
    SUBMITTED,
    UNCERTAIN,
    CommitCounters,
    Op,
    Opened,
    WriterSetup,
    finished_row,
)
from orchestrator.engine.state.location import PostgresState
from orchestrator.errors import JournalError

__all__ = ["PgJournalWriter"]

_ADD: Final = (
    "INSERT INTO orchestrator.rows (journal_id, tbl, key, hostname, state, attempts, updated_at)"
    " VALUES (%s, %s, %s, %s, 'pending', 0, %s) ON CONFLICT DO NOTHING"
)
_INTENT: Final = (
    "UPDATE orchestrator.rows SET state = 'intent', attempts = %s, task_id = NULL,"
    " build_id = NULL, vm_id = NULL, submitted_at = NULL, result = NULL, note = NULL,"
    " updated_at = %s WHERE journal_id = %s AND tbl = %s AND key = %s"
)
_SPEC: Final = (
    "INSERT INTO orchestrator.vm_specs (journal_id, key, spec) VALUES (%s, %s, %s)"
    " ON CONFLICT (journal_id, key) DO UPDATE SET spec = excluded.spec"
)
_SUBMITTED: Final = (
    "UPDATE orchestrator.rows SET state = 'submitted', task_id = %s, build_id = %s,"
    " submitted_at = %s, updated_at = %s WHERE journal_id = %s AND tbl = %s AND key = %s"
)
_UNCERTAIN: Final = (
    "UPDATE orchestrator.rows SET state = 'uncertain', last_error = %s, updated_at = %s"
    " WHERE journal_id = %s AND tbl = %s AND key = %s"
)
_PROGRESS: Final = (
    "UPDATE orchestrator.rows SET vm_id = coalesce(%s, vm_id), note = coalesce(%s, note),"
    " updated_at = %s WHERE journal_id = %s AND tbl = %s AND key = %s"
)
_FINISHED: Final = (
    "INSERT INTO orchestrator.rows (journal_id, tbl, key, hostname, state, attempts, task_id,"
    " build_id, vm_id, submitted_at, result, updated_at)"
    " VALUES (%s, %s, %s, %s, 'finished', %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (journal_id, tbl, key) DO UPDATE SET state = 'finished',"
    " attempts = greatest(orchestrator.rows.attempts, excluded.attempts),"
    " task_id = coalesce(excluded.task_id, orchestrator.rows.task_id),"
    " build_id = coalesce(excluded.build_id, orchestrator.rows.build_id),"
    " vm_id = coalesce(excluded.vm_id, orchestrator.rows.vm_id),"
    " submitted_at = coalesce(excluded.submitted_at, orchestrator.rows.submitted_at),"
    " result = excluded.result, updated_at = excluded.updated_at"
)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class _Queue:
    """What the journal puts operations on: a deque and a wake-up, on the loop's thread."""

    def __init__(self) -> None:
        self._items: deque[Op] = deque()
        self._ready = asyncio.Event()

    def put(self, op: Op) -> None:
        self._items.append(op)
        self._ready.set()

    async def take_all(self) -> list[Op]:
        """Wait for at least one operation; return every one queued."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self.take_now()

    def take_now(self) -> list[Op]:
        """Every operation queued (perhaps none)."""
        batch = list(self._items)
        self._items.clear()
        return batch


class _Gate:
    """Holds the writer after it took its first operations (tests), as the thread's Event."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    def set(self) -> None:
        self._open.set()

    def clear(self) -> None:
        self._open.clear()

    def is_set(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()


class PgJournalWriter(CommitCounters):
    """Opens, locks, writes and closes one fleet's journal in PostgreSQL (see the module)."""

    def __init__(self, state: PostgresState, setup: WriterSetup) -> None:
        self.state = state
        self.queue = _Queue()
        #: cleared by tests to hold the writer after it took its first operation
        self.gate = _Gate()
        self._setup = setup
        self._fleet = setup.fleet
        self._name: str | None = self._fleet.named
        self.path = describe(state, self._name)
        self._run_id = setup.run_id
        self._table: Table = setup.table
        self._on_open = setup.on_open
        self._on_commit = setup.on_commit
        self._on_closed = setup.on_closed
        self._conn: Any = None
        self._journal_id = 0
        self._run_seq = 0
        self._failed: JournalError | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start serving (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._main(), name=self.path)

    async def _main(self) -> None:
        try:
            opened = await self._open()
        except Exception as exc:
            await self._shutdown()
            self._on_open(exc)
            return
        self._on_open(opened)
        while True:
            batch = await self.queue.take_all()
            await self.gate.wait()
            batch += self.queue.take_now()
            closing = batch[-1][1] == CLOSE
            results, error = await self._apply(batch)
            self.applied_seq = batch[-1][0]
            if closing:
                await self._shutdown()
            self._on_commit(batch[-1][0], results, error)
            if closing:
                self._on_closed()
                return

    # -------------------------------------------------------------------- open

    async def _open(self) -> Opened:
        name = need_fleet(self.state, self._name)
        psycopg = psycopg_module()
        try:
            self._conn = conn = await psycopg.AsyncConnection.connect(
                self.state.url,
                **connect_kwargs(holder_name(self._run_id, this_host(), os.getpid())),
            )
        except psycopg.Error as exc:
            raise pg_error(self.state, "cannot connect to the state database", exc) from None
        try:
            return await self._bind(conn, name)
        except psycopg.Error as exc:
            raise pg_error(self.state, f"cannot open the journal of fleet {name!r}", exc) from None

    async def _bind(self, conn: Any, name: str) -> Opened:
        """Make the schema if need be, take the fleet's lock, claim its journal."""
        await self._ensure_schema(conn)
        await self._lock(conn, name)
        return await self._claim(conn, name)

    async def _ensure_schema(self, conn: Any) -> None:
        """Make the schema if absent (serialized by an advisory lock); refuse a newer one.

        A schema already there is only read: a role without ``CREATE`` on the database
        can use a state whose schema someone else made.
        """
        cur = await conn.execute("SELECT to_regclass('orchestrator.rows') IS NOT NULL")
        (made,) = await cur.fetchone()
        if made:
            cur = await conn.execute(
                "SELECT value FROM orchestrator.meta WHERE name = 'schema_version'"
            )
            found = await cur.fetchone()
            check_version(self.state, found[0] if found else None)
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in ensure_schema_sql():
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO orchestrator.meta (name, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (name) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
            cur = await conn.execute(
                "SELECT value FROM orchestrator.meta WHERE name = 'schema_version'"
            )
            version = await cur.fetchone()
        check_version(self.state, version[0] if version else None)

    async def _lock(self, conn: Any, name: str) -> None:
        """Take the fleet's advisory lock for this connection, or refuse naming the holder."""
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
        (locked,) = await cur.fetchone()
        if not locked:
            cur = await conn.execute(HOLDER_SQL, (name, *lock_key_parts(lock_key(name))))
            who = holder_text(await cur.fetchone())
            raise JournalError(
                f"fleet {name!r} is being run or destroyed by another process ({who}), its "
                f"state at {self.state.redacted}: one operation of a fleet at a time"
            )

    async def _claim(self, conn: Any, name: str) -> Opened:
        """Name this run the holder, find or make the fleet's journal, check its API, record
        the run; what the journal knows."""
        started = utc_text()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO orchestrator.holders (fleet, host, pid, run_id, since)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (fleet) DO UPDATE SET"
                " host = excluded.host, pid = excluded.pid, run_id = excluded.run_id,"
                " since = excluded.since",
                (name, this_host(), os.getpid(), self._run_id, started),
            )
            await conn.execute(
                "INSERT INTO orchestrator.journals (fleet, api_url, fleet_spec, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (fleet) DO NOTHING",
                (name, self._setup.api_url, self._fleet.legacy, started),
            )
            cur = await conn.execute(
                "SELECT journal_id, api_url, fleet_spec FROM orchestrator.journals"
                " WHERE fleet = %s",
                (name,),
            )
            journal_id, bound, spec = await cur.fetchone()
            self._journal_id = int(journal_id)
            api_url = self._setup.api_url
            if (
                api_url is not None
                and bound is not None
                and bound != api_url
                and not self._setup.rebind
            ):
                raise JournalError(
                    f"the journal of fleet {name!r} at {self.state.redacted} was written "
                    f"against the API at {bound}, not {api_url}: its VMs and ids are that "
                    "API's. Use another fleet name or state for this API, or pass "
                    "--journal-rebind to use it anyway"
                )
            if api_url is not None and bound != api_url:
                await conn.execute(
                    "UPDATE orchestrator.journals SET api_url = %s WHERE journal_id = %s",
                    (api_url, journal_id),
                )
            if spec is None:
                await conn.execute(
                    "UPDATE orchestrator.journals SET fleet_spec = %s WHERE journal_id = %s",
                    (self._fleet.legacy, journal_id),
                )
            cur = await conn.execute(
                "SELECT spec_sha256 FROM orchestrator.runs WHERE journal_id = %s"
                " ORDER BY seq DESC LIMIT 1",
                (journal_id,),
            )
            previous = await cur.fetchone()
            cur = await conn.execute(
                "INSERT INTO orchestrator.runs"
                " (journal_id, run_id, spec_sha256, started_at, pid, host)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING seq",
                (
                    journal_id,
                    self._run_id,
                    self._setup.spec_sha256,
                    started,
                    os.getpid(),
                    this_host(),
                ),
            )
            (self._run_seq,) = await cur.fetchone()
            cur = await conn.execute(
                "SELECT key FROM orchestrator.rows WHERE journal_id = %s AND tbl = %s",
                (journal_id, self._table),
            )
            keys = {str(key) for (key,) in await cur.fetchall()}
        return Opened(
            previous_spec_sha256=None if previous is None else str(previous[0]),
            keys=keys,
            fleet=name,
        )

    async def _shutdown(self) -> None:
        """Close the connection: PostgreSQL drops the fleet's lock with it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # ------------------------------------------------------------------ writes

    async def _apply(self, batch: Sequence[Op]) -> tuple[dict[int, object], JournalError | None]:
        """Apply ``batch`` in one transaction; all of it commits or none of it."""
        if self._failed is not None:
            return {}, self._failed
        conn = self._conn
        psycopg = psycopg_module()
        full = self._setup.must_sync(batch)
        results: dict[int, object] = {}
        writes = 0
        try:
            async with conn.transaction():
                if not full:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                writes = await self._write(conn, batch, results)
        except (psycopg.Error, OSError) as exc:
            self._failed = pg_error(
                self.state,
                f"the journal of fleet {self._name!r}: a write failed; it holds every write "
                "acknowledged before this one, and takes no more in this run (the "
                "connection, and with it the fleet's lock, is gone)",
                exc,
            )
            await self._shutdown()
            return {}, self._failed
        self.count_commit(len(batch), synced=full, writes=writes)
        return results, None

    async def _write(self, conn: Any, batch: Sequence[Op], results: dict[int, object]) -> int:
        """Run ``batch``'s statements; consecutive ones of a kind go as one ``executemany``."""
        now = utc_text()
        jid, tbl = self._journal_id, self._table
        writes = 0
        pending: list[tuple[LiteralString, list[tuple[Any, ...]]]] = []

        def add(sql: LiteralString, params: tuple[Any, ...]) -> None:
            if pending and pending[-1][0] is sql:
                pending[-1][1].append(params)
            else:
                pending.append((sql, [params]))

        async def flush() -> None:
            async with conn.cursor() as cur:
                for sql, rows in pending:
                    await cur.executemany(sql, rows)
            pending.clear()

        for seq, kind, args in batch:
            if kind == ENTRIES:
                await flush()
                table: Table = args[0] if args else "vms"
                cur = await conn.execute(entries_sql(table), (jid,))
                try:
                    results[seq] = entries_from_rows(await cur.fetchall(), self.path)
                except JournalError as exc:
                    results[seq] = exc
                continue
            if kind == CLOSE:
                add(
                    "UPDATE orchestrator.runs SET finished_at = %s WHERE seq = %s",
                    (now, self._run_seq),
                )
                add(
                    "DELETE FROM orchestrator.holders WHERE fleet = %s AND run_id = %s",
                    (self._name, self._run_id),
                )
                continue
            writes += 1
            if kind == INTENT:
                add(_INTENT, (args[1], now, jid, tbl, args[0]))
                if args[2] is not None:
                    add(_SPEC, (jid, args[0], args[2]))
            elif kind == SUBMITTED:
                key, task_id, build_id, submitted_at = args
                add(_SUBMITTED, (task_id, build_id, _iso(submitted_at), now, jid, tbl, key))
            elif kind == PROGRESS:
                add(_PROGRESS, (args[1], args[2], now, jid, tbl, args[0]))
            elif kind == UNCERTAIN:
                add(_UNCERTAIN, (args[1], now, jid, tbl, args[0]))
            elif kind == FINISHED:
                for result in args[0]:
                    add(_FINISHED, (jid, tbl, *finished_row(result, now)))
            elif kind == ADD:
                for key, host in args[0]:
                    add(_ADD, (jid, tbl, key, host, now))
        await flush()
        return writes
