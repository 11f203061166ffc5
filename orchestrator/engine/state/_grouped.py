"""The hot writes of one group commit (intents, 201s, results) as a few multi-row statements.

Thousands of VMs in flight put a few dozen intents, 201s and results in each
group. Written one statement each, every statement gives the GIL back to the
event loop's thread while SQLite runs it, and takes it back after: the writer
thread and the loop hand the GIL to each other some hundred thousand times in
a run of 20,000 VMs, which costs both threads more CPU than the writes. Here
the writes of a kind are gathered and written with one statement per chunk of
rows (``UPDATE ... FROM (VALUES ...)``, ``INSERT ... VALUES ... ON CONFLICT``),
chunks of 64, 32, ... 1 rows, so that the few statement texts stay in
``sqlite3``'s statement cache.

What the transaction commits is exactly what the one-by-one statements would
commit: every statement touches the rows of its own keys alone, so the writes
of different keys may go in any order; a key gathered a second time writes
what was gathered first (the writes of one key keep their order); any other
operation writes what was gathered before it runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, Final

from orchestrator.engine.state._db import Table
from orchestrator.report import VmResult

__all__ = ["FINISHED", "INTENT", "SUBMITTED", "GroupedWrites", "finished_row"]

#: the chunk sizes, largest first: a group of n rows is written in popcount-like pieces
_CHUNKS: Final = (64, 32, 16, 8, 4, 2, 1)

# the operation kinds gathered (``_writer`` numbers the others)
INTENT: Final = 1
SUBMITTED: Final = 2
FINISHED: Final = 5


def _values(columns: int, rows: int, row: str | None = None) -> str:
    one = row or "(" + ", ".join("?" * columns) + ")"
    return ", ".join([one] * rows)


@cache
def _intent_sql(table: Table, rows: int) -> str:
    # a new attempt starts clean: ids, result and note of an earlier attempt are stale
    return (
        f"UPDATE {table} SET state = 'intent', attempts = v.column2, task_id = NULL,"
        " build_id = NULL, vm_id = NULL, submitted_at = NULL, result = NULL,"
        f" note = NULL, updated_at = v.column3 FROM (VALUES {_values(3, rows)}) AS v"
        f" WHERE {table}.key = v.column1"
    )


@cache
def _spec_sql(rows: int) -> str:
    return (
        f"INSERT INTO vm_specs (key, spec) VALUES {_values(2, rows)}"
        " ON CONFLICT (key) DO UPDATE SET spec = excluded.spec"
    )


@cache
def _submitted_sql(table: Table, rows: int) -> str:
    return (
        f"UPDATE {table} SET state = 'submitted', task_id = v.column2, build_id = v.column3,"
        f" submitted_at = v.column4, updated_at = v.column5 FROM (VALUES {_values(5, rows)})"
        f" AS v WHERE {table}.key = v.column1"
    )


@cache
def _finished_sql(table: Table, rows: int) -> str:
    t = table
    return (
        f"INSERT INTO {t} (key, hostname, state, attempts, task_id, build_id, vm_id,"
        " submitted_at, result, updated_at) VALUES "
        + _values(0, rows, "(?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?)")
        + " ON CONFLICT (key) DO UPDATE SET state = 'finished',"
        f" attempts = max({t}.attempts, excluded.attempts),"
        f" task_id = coalesce(excluded.task_id, {t}.task_id),"
        f" build_id = coalesce(excluded.build_id, {t}.build_id),"
        f" vm_id = coalesce(excluded.vm_id, {t}.vm_id),"
        f" submitted_at = coalesce(excluded.submitted_at, {t}.submitted_at),"
        " result = excluded.result, updated_at = excluded.updated_at"
    )


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


class GroupedWrites:
    """Gathers one transaction's intents, 201s and results; :meth:`flush` writes them.

    ``add`` takes an operation's kind and arguments as the journal queued them
    (see ``_writer``) and returns False for a kind it does not gather (the
    caller flushes, then writes that one itself).
    """

    def __init__(self, conn: sqlite3.Connection, table: Table, now: str) -> None:
        self._conn = conn
        self._table: Table = table
        self._now = now
        self._keys: set[str] = set()
        self._intents: list[tuple[object, ...]] = []
        self._specs: list[tuple[object, ...]] = []
        self._submitted: list[tuple[object, ...]] = []
        self._finished: list[tuple[object, ...]] = []

    def add(self, kind: int, args: tuple[Any, ...]) -> bool:
        """Gather the write of one operation; False when ``kind`` is not gathered."""
        if kind == INTENT:
            key, attempt, spec = args
            self._claim((key,))
            self._intents.append((key, attempt, self._now))
            if spec is not None:
                self._specs.append((key, spec))
        elif kind == SUBMITTED:
            key, task_id, build_id, submitted_at = args
            self._claim((key,))
            self._submitted.append((key, task_id, build_id, _iso(submitted_at), self._now))
        elif kind == FINISHED:
            results: Sequence[VmResult] = args[0]
            self._claim([result.key for result in results])
            self._finished.extend(finished_row(result, self._now) for result in results)
        else:
            return False
        return True

    def _claim(self, keys: Sequence[str]) -> None:
        """Write what was gathered first if one of ``keys`` has a write gathered already."""
        gathered = self._keys
        if not gathered.isdisjoint(keys):
            self.flush()
        gathered.update(keys)

    def flush(self) -> None:
        """Write everything gathered (in chunks of :data:`_CHUNKS` rows)."""
        if not self._keys:
            return
        table = self._table
        self._write(self._intents, lambda n: _intent_sql(table, n))
        self._write(self._specs, _spec_sql)
        self._write(self._submitted, lambda n: _submitted_sql(table, n))
        self._write(self._finished, lambda n: _finished_sql(table, n))
        self._keys.clear()

    def _write(self, rows: list[tuple[object, ...]], sql: Any) -> None:
        start = 0
        left = len(rows)
        for size in _CHUNKS:
            while left >= size:
                params = [value for row in rows[start : start + size] for value in row]
                self._conn.execute(sql(size), params)
                start += size
                left -= size
        rows.clear()
