"""What a journal is bound to, and the high-water mark that tells a journal lost records.

Two facts guard against trusting the wrong journal:

* **The API it was written against.** A journal says which VMs were built, with
  which ids, *on one API*. Used against another API URL, it would make a run
  send nothing and report VMs that do not exist there. The ``meta`` table holds
  the API URL; a journal opened for another one is refused unless the caller
  rebinds it explicitly (``--journal-rebind``).
* **How many records it once held.** After a SIGKILL, the latest commits may live
  only in the ``-wal`` file; losing that file (or the journal being truncated)
  would silently turn a journal into a new one, and the rerun would build again
  what the lost records said was built. Every commit counts its writes in
  ``meta.records`` and, after the commit, in the run lock's sidecar file
  (``<journal>.lock``, never deleted). A journal holding fewer records than its
  sidecar remembers is refused.

Everything here is blocking: it runs in the journal's writer thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from orchestrator.errors import JournalError

__all__ = [
    "FleetClaim",
    "LockNote",
    "Meta",
    "bind_meta",
    "count_records",
    "fleet_of",
    "new_fleet_id",
    "read_lock_note",
    "write_lock_note",
]

_SQL_META: Final = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
#: what each VM's latest POST asked for (organization, package, template, location)
_SQL_SPECS: Final = "CREATE TABLE IF NOT EXISTS vm_specs (key TEXT PRIMARY KEY, spec TEXT NOT NULL)"


@dataclass(frozen=True, slots=True)
class LockNote:
    """What the lock sidecar remembers of the journal last used at its path."""

    journal_id: str | None
    records: int
    #: the file holds something that is no note: what it remembered is unknown
    unreadable: bool = False


@dataclass(slots=True)
class Meta:
    """The journal's identity and record count, as of the last commit."""

    journal_id: str
    records: int
    api_url: str | None
    #: the fleet whose state this journal is (see :func:`bind_fleet`)
    fleet: str | None = None


@dataclass(frozen=True, slots=True)
class FleetClaim:
    """Which fleet an operation says it works on, for the journal to check.

    ``named``: the fleet the user named (``fleet =`` in the spec, ``--fleet``,
    ``fleet=``), or None. ``legacy``: the name an unnamed fleet had before fleets
    were bound to their journal (the spec file's stem), for a journal that holds
    builds but no fleet yet: its VMs carry that name.
    """

    named: str | None
    legacy: str


def read_lock_note(raw: bytes) -> LockNote:
    """The note in a lock file's content (empty: nothing remembered; not a note:
    ``unreadable``, which must not pass for "nothing remembered").

    A note followed by the tail of a longer one (a kill between rewriting and
    truncating it) is read as the note it starts with.
    """
    if not raw.strip():
        return LockNote(journal_id=None, records=0)
    info: Any
    try:
        info, _ = json.JSONDecoder().raw_decode(raw.decode("utf-8").lstrip())
        journal_id = info.get("journal_id")
        records = int(info.get("records", 0))
    except (ValueError, TypeError, AttributeError):
        return LockNote(journal_id=None, records=0, unreadable=True)
    return LockNote(journal_id=str(journal_id) if journal_id else None, records=max(0, records))


def write_lock_note(fd: int, holder: dict[str, Any], meta: Meta) -> None:
    """Rewrite the lock file: who holds it, and the journal's identity and record count.

    Best effort (the lock itself is what guards concurrent runs); not fsync'd: the
    mark guards against a lost ``-wal`` file, not against an OS crash.
    """
    info = {**holder, "journal_id": meta.journal_id, "records": meta.records}
    data = json.dumps(info).encode() + b"\n"
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except OSError:
        pass


def _value(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _set(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def bind_meta(
    conn: sqlite3.Connection,
    path: Path,
    *,
    note: LockNote,
    api_url: str | None,
    rebind: bool,
    fleet: FleetClaim | None = None,
) -> Meta:
    """Check the journal against its sidecar note and ``api_url``; record both. In a
    transaction of the caller's; JournalError when the journal must not be used."""
    conn.execute(_SQL_META)
    conn.execute(_SQL_SPECS)
    journal_id = _value(conn, "journal_id")
    if journal_id is None:
        # a new journal, or one written before the mark existed: count what it holds
        journal_id = uuid.uuid4().hex
        (held,) = conn.execute("SELECT count(*) FROM vms WHERE state != 'pending'").fetchone()
        records = int(held)
        _set(conn, "journal_id", journal_id)
    else:
        records = int(_value(conn, "records") or 0)
    if note.unreadable and not rebind:
        raise JournalError(
            f"journal {path}: {path.name}.lock does not hold the note of how many records "
            "the journal once held, so records it lost could not be told. Restore the "
            "journal and its .lock file, or pass --journal-rebind to use it as it is"
        )
    lost = note.records > 0 and (note.journal_id != journal_id or records < note.records)
    if lost and not rebind:
        raise JournalError(
            f"journal {path} has lost records it once held: {path.name}.lock remembers "
            f"{note.records} record(s) of journal {note.journal_id}, the file holds {records} "
            f"of journal {journal_id}. Its -wal file may have been lost or the file replaced "
            "or truncated; resuming from it could build VMs twice. Restore the journal "
            "(with its -wal file), or pass --journal-rebind to use it as it is"
        )
    _set(conn, "records", str(records))
    bound = _value(conn, "api_url")
    if api_url is not None and bound is not None and bound != api_url and not rebind:
        raise JournalError(
            f"journal {path} was written against the API at {bound}, not {api_url}: its "
            "VMs and ids are that API's. Use another --journal for this API, or pass "
            "--journal-rebind to use it anyway"
        )
    if api_url is not None:
        _set(conn, "api_url", api_url)
        bound = api_url
    meta = Meta(journal_id=journal_id, records=records, api_url=bound)
    meta.fleet = bind_fleet(conn, path, fleet or FleetClaim(named=None, legacy="default"))
    return meta


def fleet_of(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
    """The fleet a journal is bound to and the spec it was made from (None: none yet),
    read in the caller's connection."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not found:
        return None, None
    return _value(conn, "fleet"), _value(conn, "fleet_spec")


def new_fleet_id(stem: str) -> str:
    """An identity for an unnamed fleet, made at its first build: its spec's stem and a
    random part, so that two specs never share it (same file name in two folders,
    specs parsed from text)."""
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)[:40] or "fleet"
    return f"{base}-{uuid.uuid4().hex[:12]}"


def bind_fleet(conn: sqlite3.Connection, path: Path, claim: FleetClaim) -> str:
    """The fleet this journal is the state of; JournalError when ``claim`` names another.

    A journal knows one fleet for life. A named fleet binds a new journal (or one
    written before fleets were bound) to its name; an unnamed one takes the
    journal's fleet, and a new journal makes it an identity of its own
    (:func:`new_fleet_id`). A journal that holds builds from before fleets were
    bound keeps the name those builds' annotations carry (``claim.legacy``).
    """
    stored = _value(conn, "fleet")
    spec = _value(conn, "fleet_spec")
    if stored is not None:
        if claim.named is not None and claim.named != stored:
            raise JournalError(
                f"journal {path} is the state of fleet {stored!r}, not {claim.named!r}: "
                f"its VMs carry {stored!r}. To go on with them, name the fleet {stored!r} "
                f'(fleet = "{stored}" in the spec, or --fleet {stored}); for another '
                "fleet, use another --journal"
            )
        if claim.named is None and spec is not None and spec != claim.legacy:
            # an unnamed spec takes its identity from its journal: never another spec's
            raise JournalError(
                f"journal {path} is the state of fleet {stored!r}, made from spec "
                f"{spec!r}, not {claim.legacy!r}; two specs never share a journal. Use "
                f"another --journal, or, if this spec is that fleet (renamed), name it: "
                f'fleet = "{stored}" in the spec, or --fleet {stored}'
            )
        return stored
    _set(conn, "fleet_spec", claim.legacy)
    if claim.named is not None:
        fleet = claim.named
    else:
        (built,) = conn.execute("SELECT count(*) FROM vms WHERE state != 'pending'").fetchone()
        fleet = claim.legacy if int(built) else new_fleet_id(claim.legacy)
    _set(conn, "fleet", fleet)
    return fleet


def count_records(conn: sqlite3.Connection, meta: Meta, writes: int) -> None:
    """Add ``writes`` to the journal's record count, in the caller's transaction."""
    meta.records += writes
    _set(conn, "records", str(meta.records))
