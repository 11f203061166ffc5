"""The journal's value types: what one VM's row says, what one run's row says."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, get_args

from orchestrator.report import VmResult

__all__ = [
    "JOURNAL_STATES",
    "Durability",
    "JournalEntry",
    "JournalSnapshot",
    "JournalState",
    "JournalStatistics",
    "RunRecord",
]

JournalState = Literal["pending", "intent", "submitted", "uncertain", "finished"]
"""Where one VM stands.

* ``pending``: known, never sent.
* ``intent``: a POST is about to be sent (recorded before sending); found after a
  crash it means "outcome unknown", exactly like ``uncertain``.
* ``submitted``: the API answered 201; the task/build ids are known.
* ``uncertain``: the POST's outcome is unknown (timeout, reset, 5xx): reconcile by
  hostname before sending again.
* ``finished``: the final :class:`~orchestrator.report.VmResult` is recorded.
"""

#: Every state, in the order a VM normally goes through them.
JOURNAL_STATES: Final[tuple[JournalState, ...]] = get_args(JournalState)

Durability = Literal["process", "intent", "full"]
"""What a committed write survives.

* ``process``: the death of the process (SIGKILL, OOM killer, cron timeout, laptop
  sleep); an OS crash or power loss may lose the last few commits (WAL mode with
  ``synchronous=NORMAL``: a commit is a ``write()`` to the WAL, no ``fsync``).
* ``intent`` (default): as ``process``, and every commit that carries an intent is
  also ``fsync``'d before :meth:`~orchestrator.engine.state.journal.Journal.record_intent`
  returns, so not even an OS crash can lose the record of a POST that may have gone
  out (losing it would mean a duplicate VM on the rerun). Losing a later
  ``submitted`` or ``finished`` record costs only a hostname lookup or a poll.
* ``full``: every commit is ``fsync``'d.
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One VM's row in the journal, as of the last committed write."""

    key: str
    hostname: str
    state: JournalState
    attempts: int
    task_id: str | None
    build_id: str | None
    vm_id: str | None
    submitted_at: datetime | None
    last_error: str | None
    result: VmResult | None
    updated_at: datetime
    note: str | None = None
    #: what its latest POST asked for: organization, package, disk_template, location
    #: (None: never sent, or a journal older than this record)
    built_with: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run that opened the journal. ``finished_at`` is None when it never closed it."""

    run_id: str
    spec_sha256: str
    started_at: datetime
    pid: int
    finished_at: datetime | None


@dataclass(frozen=True)
class JournalSnapshot:
    """Everything a journal holds, read without taking its lock (``orchestrator status``)."""

    path: str
    runs: list[RunRecord]
    #: the builds' rows
    entries: list[JournalEntry]
    #: the deletes' rows (``destroy``, ``run --prune``)
    deletes: list[JournalEntry] = field(default_factory=list)
    #: the fleet the journal is the state of (None: an older journal, not bound yet)
    fleet: str | None = None
    #: the name of the spec an unnamed fleet was made from (None: not recorded)
    fleet_spec: str | None = None

    def counts(self) -> dict[str, int]:
        """How many VMs are in each state (every state present, in lifecycle order)."""
        seen = Counter(entry.state for entry in self.entries)
        return {state: seen[state] for state in JOURNAL_STATES}


@dataclass(frozen=True, slots=True)
class JournalStatistics:
    """A snapshot of the journal writer's work so far (see ``Journal.statistics()``)."""

    #: transactions committed (one per group commit)
    transactions: int
    #: of those, how many were fsync'd (synchronous=FULL)
    synced_transactions: int
    #: writes applied (one per record_* call; add_pending/record_finished_many count 1)
    writes: int
    #: the most operations one transaction carried
    largest_batch: int
    #: operations handed to the writer and not yet committed
    queued: int
