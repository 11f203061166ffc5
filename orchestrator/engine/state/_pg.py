"""Fleets' journals and locks in PostgreSQL: the schema, the lock, and the reads.

Every table lives in the schema ``orchestrator`` of the database the URL names;
each fleet has one journal there, found by the fleet's name (a fleet kept in
PostgreSQL must be named: an unnamed fleet's identity lives in its journal
file). The rows are those of the SQLite journal (``_db``), with the journal's id
and the table (``vms``: builds, ``deletes``: deletes) in front of the key.

**The lock** is a session-level advisory lock of the writer's own connection,
keyed by the fleet's name: PostgreSQL drops it when that connection ends, however
it ends (the process killed, the machine gone, the server restarted). The
holder writes who it is (host, pid, run id, since when) into ``holders`` so that
a second run, from any machine, is refused naming it. Because the lock and the
writes share one connection, a run that lost its connection has lost its lock
and can write nothing more: it stops submitting (see the writer).

The driver is psycopg 3: one library with a synchronous API (the reads here,
which ``plan`` and ``status`` call from plain functions) and an asynchronous one
(the writer, on the event loop), both over libpq, which finds a password the way
``psql`` does (``PGPASSWORD``, ``~/.pgpass``, service files) and speaks every
``sslmode``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, LiteralString
from urllib.parse import parse_qsl, unquote, urlsplit

from orchestrator.engine.state._db import ENTRY_COLUMNS, Table, entry_from_row, spec_of_text
from orchestrator.engine.state._model import JournalEntry, JournalSnapshot, RunRecord
from orchestrator.engine.state.location import PostgresState
from orchestrator.errors import JournalError, NoJournal

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "SCHEMA_LOCK",
    "SCHEMA_VERSION",
    "connect_kwargs",
    "describe",
    "ensure_schema_sql",
    "lock_key",
    "need_fleet",
    "pg_error",
    "pg_journal_exists",
    "psycopg_module",
    "read_pg_journal",
]

#: bumped on every incompatible change of the tables below
SCHEMA_VERSION: Final = 1
#: the advisory lock that serializes creating the schema (any constant of ours)
SCHEMA_LOCK: Final = 0x4B504F4A_00000001

#: the schema, made once per database (each statement is idempotent)
_SCHEMA: Final[tuple[LiteralString, ...]] = (
    "CREATE SCHEMA IF NOT EXISTS orchestrator",
    "CREATE TABLE IF NOT EXISTS orchestrator.meta (name text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS orchestrator.journals (
        journal_id  bigserial PRIMARY KEY,
        fleet       text NOT NULL UNIQUE,
        api_url     text,
        fleet_spec  text,
        created_at  text NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS orchestrator.runs (
        seq          bigserial PRIMARY KEY,
        journal_id   bigint NOT NULL REFERENCES orchestrator.journals,
        run_id       text NOT NULL,
        spec_sha256  text NOT NULL,
        started_at   text NOT NULL,
        pid          integer NOT NULL,
        host         text NOT NULL,
        finished_at  text
    )""",
    """CREATE TABLE IF NOT EXISTS orchestrator.rows (
        journal_id   bigint NOT NULL REFERENCES orchestrator.journals,
        tbl          text NOT NULL CHECK (tbl IN ('vms', 'deletes')),
        seq          bigserial NOT NULL,
        key          text NOT NULL,
        hostname     text NOT NULL,
        state        text NOT NULL
                     CHECK (state IN ('pending', 'intent', 'submitted', 'uncertain', 'finished')),
        attempts     integer NOT NULL DEFAULT 0,
        task_id      text,
        build_id     text,
        vm_id        text,
        submitted_at text,
        last_error   text,
        note         text,
        result       text,
        updated_at   text NOT NULL,
        PRIMARY KEY (journal_id, tbl, key)
    )""",
    """CREATE TABLE IF NOT EXISTS orchestrator.vm_specs (
        journal_id  bigint NOT NULL REFERENCES orchestrator.journals,
        key         text NOT NULL,
        spec        text NOT NULL,
        PRIMARY KEY (journal_id, key)
    )""",
    """CREATE TABLE IF NOT EXISTS orchestrator.holders (
        fleet   text PRIMARY KEY,
        host    text NOT NULL,
        pid     integer NOT NULL,
        run_id  text NOT NULL,
        since   text NOT NULL
    )""",
)


def psycopg_module() -> Any:
    """psycopg, or a JournalError saying how to install it."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - installed with the package's extra
        raise JournalError(
            "a PostgreSQL state needs psycopg: pip install 'katapult-orchestrator[postgresql]'"
        ) from None
    return psycopg


def connect_kwargs(application_name: str = "orchestrator") -> dict[str, Any]:
    """Connection options of ours: a bounded connect, a name ``pg_stat_activity`` shows, and
    TCP keepalives with a user timeout, so that a write to a server the network lost fails
    within about 30 s instead of hanging the run (the run then stops submitting)."""
    return {
        "connect_timeout": 10,
        "application_name": application_name[:63],
        "autocommit": True,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }


def lock_key(fleet: str) -> int:
    """The advisory lock's key of ``fleet``: 64 bits of a digest, as a signed bigint."""
    digest = hashlib.sha256(f"orchestrator fleet\n{fleet}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def describe(state: PostgresState, fleet: str | None) -> str:
    """How messages name a fleet's journal in ``state`` (never a password)."""
    return f"{state.redacted} (fleet {fleet!r})" if fleet else state.redacted


def need_fleet_text(state: PostgresState) -> str:
    """Why a fleet kept in PostgreSQL must be named."""
    return (
        f"the state at {state.redacted} keeps each fleet's journal under the fleet's "
        'name, and this fleet has none: name it (fleet = "..." in the spec, or --fleet NAME)'
    )


def need_fleet(state: PostgresState, fleet: str | None) -> str:
    """``fleet``, or a JournalError: PostgreSQL keeps fleets by name."""
    if not fleet:
        raise JournalError(need_fleet_text(state))
    return fleet


def _fleets_held(state: PostgresState) -> str:
    """Which fleets the database keeps (for a reader that named none)."""
    psycopg = psycopg_module()
    try:
        with _connection(state) as conn:
            found = conn.execute("SELECT to_regclass('orchestrator.journals')").fetchone()
            if found is None or found[0] is None:
                return "It keeps no fleet yet"
            names = [
                str(row[0])
                for row in conn.execute("SELECT fleet FROM orchestrator.journals ORDER BY fleet")
            ]
    except (psycopg.Error, JournalError):
        return "Its fleets could not be listed"
    if not names:
        return "It keeps no fleet yet"
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"It keeps: {shown}"


def pg_error(state: PostgresState, what: str, exc: BaseException) -> JournalError:
    """A JournalError for a failed database operation, with nothing secret in it.

    libpq's messages do not carry the password; the URL's password is still cut
    out of whatever the driver said, in case a future one does.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in _secrets_of(state.url):
        text = text.replace(secret, "***")
    return JournalError(f"{what} ({state.redacted}): {text}")


def _secrets_of(url: str) -> list[str]:
    found: list[str] = []
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() in ("password", "sslpassword")]
    return [s for s in found if s]


def ensure_schema_sql() -> tuple[LiteralString, ...]:
    """The statements that make the schema (run in one transaction, under its lock)."""
    return _SCHEMA


def check_version(state: PostgresState, found: object) -> None:
    """Refuse a schema this orchestrator does not know."""
    if str(found) != str(SCHEMA_VERSION):
        raise JournalError(
            f"the state at {state.redacted} was written by another orchestrator "
            f"(schema {found}; this one reads schema {SCHEMA_VERSION}); it was left untouched"
        )


def holder_name(run_id: str, host: str, pid: int) -> str:
    """The ``application_name`` of a run's connection: who holds the lock, for a second
    comer that asks before the holder has written its ``holders`` row (cut at 63 bytes)."""
    return f"orchestrator run {run_id} pid {pid} host {host}"


#: who holds a fleet's lock: the session holding the advisory lock, and the holders row
#: (written just after the lock is taken: it may not be there yet, or be an older run's)
HOLDER_SQL: Final = (
    "SELECT a.application_name, a.backend_start, h.host, h.pid, h.run_id, h.since"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " LEFT JOIN orchestrator.holders h ON h.fleet = %s"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid::bigint = %s AND l.objid::bigint = %s"
)


def lock_key_parts(key: int) -> tuple[int, int]:
    """How ``pg_locks`` shows a bigint advisory key: its high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def holder_text(row: tuple[Any, ...] | None) -> str:
    """Who holds a fleet's lock, from a row of :data:`HOLDER_SQL`."""
    if row is None:
        return "holder gone: try again"
    application, backend_start, host, pid, run_id, since = row
    if run_id is not None and f" {run_id} " in f"{application} ":
        return f"host {host}, pid {pid}, run {run_id}, since {since}"
    # the holder has not written its row yet (or the row is an older run's)
    words = str(application or "").split()
    said = dict(zip(words[1::2], words[2::2], strict=False))
    return (
        f"host {said.get('host', 'unknown')}, pid {said.get('pid', 'unknown')}, "
        f"run {said.get('run', 'unknown')}, since {backend_start.isoformat()}"
    )


def this_host() -> str:
    """This machine's name, as the lock's holder row says it."""
    return socket.gethostname() or "unknown"


# ---------------------------------------------------------------------- reads

_ROW_SELECT: Final = ", ".join(f"r.{name.strip()}" for name in ENTRY_COLUMNS.split(","))


@contextlib.contextmanager
def _connection(state: PostgresState) -> Iterator[psycopg.Connection[Any]]:
    psycopg = psycopg_module()
    try:
        conn = psycopg.connect(state.url, **connect_kwargs())
    except psycopg.Error as exc:
        raise pg_error(state, "cannot connect to the state database", exc) from None
    try:
        yield conn
    finally:
        conn.close()


def pg_journal_exists(state: PostgresState, fleet: str | None) -> bool:
    """Whether ``state`` holds a journal of ``fleet`` (one query; no row is read)."""
    name = need_fleet(state, fleet)
    psycopg = psycopg_module()
    with _connection(state) as conn:
        try:
            made = conn.execute("SELECT to_regclass('orchestrator.journals')").fetchone()
            if made is None or made[0] is None:
                return False
            found = conn.execute(
                "SELECT 1 FROM orchestrator.journals WHERE fleet = %s", (name,)
            ).fetchone()
        except psycopg.Error as exc:
            raise pg_error(state, f"cannot read the journal of fleet {name!r}", exc) from None
    return found is not None


def read_pg_journal(state: PostgresState, fleet: str | None) -> JournalSnapshot:
    """Everything ``fleet``'s journal holds in ``state``, read without its lock.

    JournalError when the database cannot be reached, or holds no journal of
    that fleet.
    """
    psycopg = psycopg_module()
    if not fleet:
        raise JournalError(f"{need_fleet_text(state)}. {_fleets_held(state)}")
    name = fleet
    where = describe(state, name)
    with _connection(state) as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                found = conn.execute("SELECT to_regclass('orchestrator.journals')").fetchone()
                if found is None or found[0] is None:
                    raise NoJournal(f"there is no journal of fleet {name!r} at {state}")
                version = conn.execute(
                    "SELECT value FROM orchestrator.meta WHERE name = 'schema_version'"
                ).fetchone()
                check_version(state, version[0] if version else None)
                journal = conn.execute(
                    "SELECT journal_id, fleet, fleet_spec FROM orchestrator.journals"
                    " WHERE fleet = %s",
                    (name,),
                ).fetchone()
                if journal is None:
                    raise NoJournal(f"there is no journal of fleet {name!r} at {state}")
                journal_id, bound, spec = journal
                runs = [
                    RunRecord(
                        run_id=str(run_id),
                        spec_sha256=str(sha),
                        started_at=_when(started),
                        pid=int(pid),
                        finished_at=None if finished is None else _when(finished),
                    )
                    for run_id, sha, started, pid, finished in conn.execute(
                        "SELECT run_id, spec_sha256, started_at, pid, finished_at"
                        " FROM orchestrator.runs WHERE journal_id = %s ORDER BY seq",
                        (journal_id,),
                    )
                ]
                entries = read_pg_entries(conn, journal_id, "vms", where)
                deletes = read_pg_entries(conn, journal_id, "deletes", where)
        except psycopg.Error as exc:
            raise pg_error(state, f"cannot read the journal of fleet {name!r}", exc) from None
    return JournalSnapshot(
        path=where,
        runs=runs,
        entries=entries,
        deletes=deletes,
        fleet=str(bound),
        fleet_spec=None if spec is None else str(spec),
    )


def _when(text: object) -> Any:
    return datetime.fromisoformat(str(text))


def entries_sql(table: Table) -> LiteralString:
    """The SELECT of one journal's rows of ``table``, in the order they were added."""
    if table == "deletes":
        return (
            "SELECT "
            + _ROW_SELECT
            + ", NULL FROM orchestrator.rows r WHERE r.journal_id = %s AND r.tbl = 'deletes'"
            " ORDER BY r.seq"
        )
    return (
        "SELECT "
        + _ROW_SELECT
        + ", s.spec FROM orchestrator.rows r LEFT JOIN orchestrator.vm_specs s"
        " ON s.journal_id = r.journal_id AND s.key = r.key"
        " WHERE r.journal_id = %s AND r.tbl = 'vms' ORDER BY r.seq"
    )


def entries_from_rows(rows: list[tuple[Any, ...]], where: str) -> list[JournalEntry]:
    """Journal entries from rows of :func:`entries_sql` (the last column: the spec)."""
    label = Path(where)
    return [
        dataclasses.replace(
            entry_from_row(tuple(row[:-1]), label), built_with=spec_of_text(row[-1])
        )
        for row in rows
    ]


def read_pg_entries(
    conn: psycopg.Connection[Any], journal_id: int, table: Table, where: str
) -> list[JournalEntry]:
    """One journal's rows of ``table`` through a synchronous connection."""
    return entries_from_rows(conn.execute(entries_sql(table), (journal_id,)).fetchall(), where)
