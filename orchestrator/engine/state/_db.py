"""The journal's file: schema, identity checks, the run lock, row conversion.

Everything here is blocking and runs off the event loop: in the journal's writer
thread, or in ``read_journal`` (a synchronous call for the CLI).

A journal is an SQLite database that says it is ours twice over:
``PRAGMA application_id`` is :data:`APPLICATION_ID` and ``PRAGMA user_version`` is
:data:`SCHEMA_VERSION`. Anything else at the journal's path (a text file, another
application's database, a truncated copy) is refused with :class:`JournalError`
before a single byte of it is written: the header is read with a plain ``open``,
then the database is checked through a read-only connection, and only a file that
passes both is opened for writing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import ValidationError

from orchestrator.engine.state._model import (
    JOURNAL_STATES,
    JournalEntry,
    JournalState,
    RunRecord,
)
from orchestrator.errors import JournalError
from orchestrator.report import VmResult

__all__ = [
    "APPLICATION_ID",
    "DELETES_SCHEMA",
    "ENTRY_COLUMNS",
    "SCHEMA_VERSION",
    "Table",
    "acquire_lock",
    "connect_readonly",
    "create_journal",
    "entry_from_row",
    "journal_exists",
    "lock_path",
    "read_entries",
    "read_runs",
    "release_lock",
    "spec_of_text",
    "utc_text",
    "validate",
]

#: ``PRAGMA application_id`` of every journal: the bytes ``KPOJ`` (Katapult
#: Provisioning Orchestrator Journal). See https://www.sqlite.org/fileformat.html.
APPLICATION_ID: Final = 0x4B504F4A
#: ``PRAGMA user_version``: bumped on every incompatible change of :data:`SCHEMA`.
SCHEMA_VERSION: Final = 1

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_SIZE: Final = 100
_USER_VERSION_OFFSET: Final = 60
_APPLICATION_ID_OFFSET: Final = 68

# No column ever holds a secret: the journal receives keys, hostnames, API ids,
# error texts (which the error tree guarantees token-free) and VmResults.
#: the columns of a VM's row, the same for a build's (``vms``) and a delete's (``deletes``)
_ROW_COLUMNS: Final = """
    seq          INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    hostname     TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('pending', 'intent', 'submitted', 'uncertain', 'finished')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    task_id      TEXT,
    build_id     TEXT,
    vm_id        TEXT,
    submitted_at TEXT,
    last_error   TEXT,
    note         TEXT,
    result       TEXT,
    updated_at   TEXT NOT NULL
"""

SCHEMA: Final = f"""
CREATE TABLE runs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    spec_sha256  TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    finished_at  TEXT
);
CREATE TABLE vms ({_ROW_COLUMNS});
"""

#: the deletes' rows (``destroy``, ``run --prune``): the same columns as ``vms``, kept
#: apart so that a delete's row is never read as a build's (never proof of ownership)
DELETES_SCHEMA: Final = f"CREATE TABLE IF NOT EXISTS deletes ({_ROW_COLUMNS})"

#: which rows an open journal writes: a build's (``vms``) or a delete's (``deletes``)
Table = Literal["vms", "deletes"]

ENTRY_COLUMNS: Final = (
    "key, hostname, state, attempts, task_id, build_id, vm_id, submitted_at,"
    " last_error, result, updated_at, note"
)

_STATE_BY_TEXT: Final[dict[object, JournalState]] = {state: state for state in JOURNAL_STATES}


def utc_text(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as the ISO-8601 text the journal stores."""
    return (moment or datetime.now(UTC)).isoformat()


# ------------------------------------------------------------------ identity


def journal_exists(path: Path) -> bool:
    """Check what is at ``path`` without touching it.

    False when there is nothing (or an empty file: a journal whose creation never
    got going) and a new journal may be created; True when the header says it is
    a journal of this schema. Raises :class:`JournalError` for anything else.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise JournalError(f"journal {path} is not a regular file")
    if info.st_size == 0:
        return False
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_SIZE)
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from exc
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        raise JournalError(
            f"{path} is not an orchestrator journal (not an SQLite database); it was left untouched"
        )
    app_id = int.from_bytes(header[_APPLICATION_ID_OFFSET : _APPLICATION_ID_OFFSET + 4], "big")
    version = int.from_bytes(header[_USER_VERSION_OFFSET : _USER_VERSION_OFFSET + 4], "big")
    _check_identity(path, app_id, version)
    return True


def _check_identity(path: Path, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise JournalError(
            f"{path} is an SQLite database of another application "
            f"(application_id {app_id:#010x}), not an orchestrator journal; "
            "it was left untouched"
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"journal {path} was written by a newer orchestrator (schema {version}; "
            f"this one reads schema {SCHEMA_VERSION}); it was left untouched"
        )
    if version != SCHEMA_VERSION:
        raise JournalError(
            f"journal {path} has an unknown schema version {version}; it was left untouched"
        )


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path`` (nor checkpoint its WAL).

    While a writer is (or was, until it died) at work, the ``-wal`` file exists and
    the reader joins it like any WAL reader. Without one, the database is opened
    ``immutable``, so that no ``-wal``/``-shm`` files are left behind by a reader.
    """
    wal = path.with_name(path.name + "-wal")
    query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    return conn


def validate(conn: sqlite3.Connection, path: Path) -> None:
    """Check a journal's identity and integrity through ``conn``; JournalError if not sound."""
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        _check_identity(path, int(app_id), int(version))
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.OperationalError as exc:  # cannot open/lock/read: not a verdict on the file
        raise JournalError(f"cannot read journal {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from exc
    if problems != ["ok"]:
        raise _corrupt(path, "; ".join(str(p) for p in problems))


def _corrupt(path: Path, why: str) -> JournalError:
    return JournalError(
        f"journal {path} is corrupt ({why}); it was left untouched. "
        "Move it aside and reconcile with `orchestrator plan`, which finds the VMs "
        "that already exist"
    )


def create_journal(path: Path) -> None:
    """Create an empty journal at ``path`` (mode 0o600), atomically.

    The database is built under a temporary name and renamed into place, so the
    journal's path never holds a half-made file. The caller holds the run lock.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            # one transaction: the schema and the identity appear together or not at all
            conn.executescript(
                f"BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID};"
                f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise JournalError(f"cannot create journal {path}: {_reason(exc)}") from exc


def _sync_directory(directory: Path) -> None:
    """fsync a directory so a rename in it survives an OS crash (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


# ---------------------------------------------------------------------- lock


def lock_path(path: Path) -> Path:
    """The sidecar file whose ``flock`` marks the journal as taken by a run."""
    return path.with_name(path.name + ".lock")


def acquire_lock(path: Path, *, holder: dict[str, object]) -> tuple[int, bytes]:
    """Take the run lock of journal ``path``; return the lock file's descriptor and what
    the file said before (the journal's high-water mark, see ``_meta``).

    ``flock`` belongs to the open file description, so the kernel drops it when
    the process dies however it dies (SIGKILL included), and a second open in the
    same process conflicts too. The holder writes who it is into the file so that
    the next comer can say who holds it. The lock file is never deleted (deleting
    a lock file races with a process about to lock it).
    """
    target = lock_path(path)
    try:
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot lock journal {path}: {_reason(exc)} ({target})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        who = _read_holder(fd)
        os.close(fd)
        raise JournalError(f"journal {path} is in use by another run ({who})") from None
    except OSError as exc:
        os.close(fd)
        raise JournalError(f"cannot lock journal {path}: {_reason(exc)} ({target})") from exc
    try:
        before = os.pread(fd, 4096, 0)
    except OSError:
        before = b""
    try:
        previous = json.loads(before or b"{}")
        kept = {k: previous[k] for k in ("journal_id", "records") if k in previous}
    except (ValueError, TypeError):
        kept = {}
    info = json.dumps({**kept, **holder}).encode() + b"\n"
    try:
        os.pwrite(fd, info, 0)
        os.ftruncate(fd, len(info))
    except OSError:
        pass  # the lock is what matters; the note is for error messages only
    return fd, before


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw)
        return f"pid {int(info['pid'])}, run {info['run_id']}, started {info['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


def release_lock(fd: int) -> None:
    """Release the run lock taken by :func:`acquire_lock`."""
    with contextlib.suppress(OSError):
        os.close(fd)


# ---------------------------------------------------------------------- rows


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def entry_from_row(row: tuple[object, ...], path: Path) -> JournalEntry:
    """A :class:`JournalEntry` from a row of ``SELECT {ENTRY_COLUMNS} FROM vms``."""
    (key, hostname, state, attempts, task_id, build_id, vm_id) = row[:7]
    (submitted_at, last_error, result, updated_at, note) = row[7:]
    known_state = _STATE_BY_TEXT.get(state)
    if known_state is None:
        raise _corrupt(path, f"VM {key!r} has an unknown state {state!r}")
    parsed: VmResult | None = None
    if result is not None:
        try:
            parsed = VmResult.model_validate_json(str(result))
        except ValidationError as exc:
            raise JournalError(
                f"journal {path} holds a result for {key!r} that this orchestrator "
                f"cannot read: {exc.errors()[0]['msg']}"
            ) from exc
    return JournalEntry(
        key=str(key),
        hostname=str(hostname),
        state=known_state,
        attempts=int(str(attempts)),
        task_id=_opt(task_id),
        build_id=_opt(build_id),
        vm_id=_opt(vm_id),
        submitted_at=_when(_opt(submitted_at)),
        last_error=_opt(last_error),
        result=parsed,
        updated_at=datetime.fromisoformat(str(updated_at)),
        note=_opt(note),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def read_entries(conn: sqlite3.Connection, path: Path, table: Table = "vms") -> list[JournalEntry]:
    """Every VM row of ``table``, in the order the VMs were first recorded (spec order).

    ``vms`` holds the builds' rows, ``deletes`` the deletes' (absent: none yet).
    """
    if table == "deletes":
        if not _has_table(conn, "deletes"):
            return []
        return [
            entry_from_row(row, path)
            for row in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM deletes ORDER BY seq")
        ]
    if not _has_table(conn, "vm_specs"):  # a journal written before specs were recorded
        return [
            entry_from_row(row, path)
            for row in conn.execute(f"SELECT {ENTRY_COLUMNS} FROM vms ORDER BY seq")
        ]
    columns = ", ".join(f"vms.{name.strip()}" for name in ENTRY_COLUMNS.split(","))
    sql = (
        f"SELECT {columns}, vm_specs.spec FROM vms"
        " LEFT JOIN vm_specs ON vm_specs.key = vms.key ORDER BY vms.seq"
    )
    return [
        dataclasses.replace(entry_from_row(row[:-1], path), built_with=spec_of_text(row[-1]))
        for row in conn.execute(sql)
    ]


def spec_of_text(raw: object) -> dict[str, str] | None:
    """What a build asked for, from its ``vm_specs`` text (None: none, or unreadable)."""
    if raw is None:
        return None
    try:
        data = json.loads(str(raw))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items() if v is not None}


def read_runs(conn: sqlite3.Connection) -> list[RunRecord]:
    """Every run that opened the journal, oldest first."""
    sql = "SELECT run_id, spec_sha256, started_at, pid, finished_at FROM runs ORDER BY seq"
    return [
        RunRecord(
            run_id=str(run_id),
            spec_sha256=str(sha),
            started_at=datetime.fromisoformat(str(started)),
            pid=int(str(pid)),
            finished_at=_when(_opt(finished)),
        )
        for run_id, sha, started, pid, finished in conn.execute(sql)
    ]
