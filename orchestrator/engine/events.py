"""Observability as data: progress events, hooks and statistics snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["EngineStatistics", "EventKind", "ProgressHook", "ProvisionEvent"]

EventKind = Literal[
    "queued",  # known to the run, waiting to be submitted
    "submitting",  # the intent is journaled, the POST is going out
    "submitted",  # 201: task and build ids known
    "reconciling",  # the POST's outcome is unknown: looking the hostname up
    "adopted",  # an earlier uncertain POST did create the VM; it is ours
    "retrying",  # resubmitting after a POST that surely had no effect
    "building",  # a poll saw the build still going
    "succeeded",  # built (a delete's VMs end "deleted" or "purged" instead)
    "deleted",  # a delete: the VM is in the trash
    "purged",  # a delete: the VM is gone for good, its hostname free
    "failed",
    "skipped",
    "cancelled",
]


@dataclass(frozen=True, slots=True)
class ProvisionEvent:
    """Something happened to one VM of the run."""

    kind: EventKind
    key: str
    hostname: str
    at: float
    task_id: str | None = None
    build_id: str | None = None
    vm_id: str | None = None
    category: str | None = None
    message: str | None = None
    attempt: int = 0


class ProgressHook(Protocol):
    """Called synchronously for every :class:`ProvisionEvent`; must not block."""

    def __call__(self, event: ProvisionEvent, /) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of a run's progress (see :meth:`Orchestrator.statistics`).

    ``in_flight_limit`` is how many VMs may be submitting or building at once
    right now: sized from the rate budget and the build time learned, at most
    ``engine.max_in_flight`` when that is set.
    """

    total: int
    queued: int
    submitting: int
    building: int
    succeeded: int
    failed: int
    skipped: int
    cancelled: int
    requests_total: int
    rate_limited: int
    permitted: int | None
    remaining: int | None
    elapsed_seconds: float
    in_flight_limit: int = 0

    @property
    def done(self) -> int:
        """VMs with a final outcome."""
        return self.succeeded + self.failed + self.skipped + self.cancelled
