"""Per-VM bookkeeping of a run: what is known of each VM, and its final result."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import anyio

from orchestrator.engine._compact import compact
from orchestrator.engine.state.fate import Row, row_of
from orchestrator.errors import ApiError, Category
from orchestrator.katapult import VirtualMachine
from orchestrator.katapult._gate import ON_SENT
from orchestrator.report import ErrorInfo, Outcome, VmRef, VmResult
from orchestrator.vm_request import Lookup, VmRequest

__all__ = ["OrgContext", "Phase", "PollKind", "Sends", "Track", "error_info", "utcnow"]

Phase = Literal["queued", "submitting", "building", "done"]
PollKind = Literal["build", "task", "vm", "hostname", "wait", "stopping"]


def utcnow() -> datetime:
    """The wall-clock time for reports (timezone-aware UTC, whole microseconds)."""
    return datetime.now(UTC)


def error_info(exc: Exception) -> ErrorInfo:
    """The report's view of an exception (see :meth:`ErrorInfo.of`).

    An error that is not the API's is named by its class in ``code``
    (``ApiConnectError``, ``ApiTimeout``...), so reports can be grouped by it.
    """
    info = ErrorInfo.of(exc)
    if isinstance(exc, ApiError):
        return info
    return info.model_copy(update={"code": type(exc).__name__})


@dataclass(slots=True, eq=False)
class OrgContext:
    """What the run knows of one organization of the spec."""

    lookup: Lookup
    infrastructure_domain: str | None = None
    #: hostname (lower-cased) -> VM id, of VMs that existed when the run began (those
    #: the fleet's listing, or the fallback, found: ``orchestrator.engine._fleet_listing``)
    existing: dict[str, str] = field(default_factory=dict)
    #: VM id -> the VM as an fqdn lookup of the listing showed it (its one look)
    looked: dict[str, VirtualMachine] = field(default_factory=dict)
    #: ids of VMs an fqdn lookup of the listing found in the trash (that was their look)
    trashed: set[str] = field(default_factory=set)
    #: the organization's whole VM list was read (never again this run)
    whole_read: bool = False
    #: pages of the organization's whole VM list, when known
    pages: int | None = None
    #: set when a failure dooms every further build in this organization
    doom: tuple[Category, ErrorInfo] | None = None

    def fqdn(self, hostname: str) -> str | None:
        """The fqdn the API gives a VM of this hostname, if the domain is known."""
        if self.infrastructure_domain is None:
            return None
        return f"{hostname}.{self.infrastructure_domain}"


#: the row of a VM the journal knows nothing of (one, shared: a Row never changes)
_NO_ROW = row_of(None)


@dataclass(slots=True, eq=False)
class Sends:
    """How a VM's non-idempotent requests (a build's POST, a DELETE) went, in this run."""

    #: one was sent whose outcome was never learned: a VM found later may be its doing
    uncertain: bool = False
    #: one is on the wire now (sent, not answered)
    on_wire: bool = False
    #: how many had an unknown outcome (what ``MAX_SUBMIT_ATTEMPTS`` bounds)
    uncertain_count: int = 0
    #: when the latest with an unknown outcome went out: its VM may appear only later
    last_uncertain_clock: float | None = None
    #: since when they have been refused without effect (429, connection refused)
    refused_since: float | None = None
    #: too many were uncertain: the outcome is watched until the timeout, nothing re-sent
    gave_up: bool = False


@dataclass(slots=True, eq=False)
class Track:
    """Everything the run knows of one VM, until its result is final."""

    request: VmRequest
    org: OrgContext
    phase: Phase = "queued"
    #: requests sent for this VM, over every run (each journaled before it went out)
    attempts: int = 0
    #: how its non-idempotent requests went (what exactly-once is decided on)
    sends: Sends = field(default_factory=lambda: Sends())
    task_id: str | None = None
    build_id: str | None = None
    vm_id: str | None = None
    fqdn: str | None = None
    submitted_at: datetime | None = None
    submitted_clock: float | None = None
    poll_kind: PollKind = "build"
    poll_errors: int = 0
    adopted: bool = False
    #: a VM with this hostname existed when the run began (its id): judged before anything is sent
    existing_vm: str | None = None
    #: what the fleet's journal remembers of this VM's builds (a hint, never a fact)
    row: Row = _NO_ROW
    #: the build object has shown its VM (the appearance time was learned from it)
    vm_seen: bool = False
    #: the VM's state when it was last looked at
    vm_state: str | None = None
    #: the VM's addresses and data center, as a look at it (or a listing) showed them
    ip_addresses: tuple[str, ...] = ()
    data_center: str | None = None
    last_error: ErrorInfo | None = None
    last_category: Category | None = None
    #: the tags the VM has after they were set (None: none asked for, or not yet set)
    tags: tuple[str, ...] | None = None
    result: VmResult | None = None
    #: holds a place among the VMs in flight (given back when the result is set)
    placed: bool = False
    #: holds a place of its data center's ``max_in_flight_per_data_center``
    dc_placed: bool = False

    @property
    def key(self) -> str:
        return self.request.key

    @property
    def hostname(self) -> str:
        return self.request.hostname

    @property
    def group(self) -> tuple[str, str, str]:
        """What build durations are learned by: package, template, location."""
        req = self.request
        template = req.disk_template.value if req.disk_template else ""
        return (req.package.value, template, req.location)

    def make_result(
        self,
        outcome: Outcome,
        *,
        category: Category | None = None,
        error: ErrorInfo | None = None,
        reason: str | None = None,
        stopped_because: str | None = None,
        first_seen_at: datetime | None = None,
    ) -> VmResult:
        """The final :class:`VmResult` from what is known now, with what the report's
        timeline needs (package, location, ``first_seen_at``: when the run first saw
        the VM's record), in one model (never a copy of it)."""
        finished = utcnow()
        duration = None
        if self.submitted_at is not None:
            duration = round((finished - self.submitted_at).total_seconds(), 3)
        vm = (
            VmRef(
                id=self.vm_id,
                fqdn=self.fqdn,
                # a few distinct words over every VM: one copy of each
                state=None if self.vm_state is None else sys.intern(self.vm_state),
                ip_addresses=list(self.ip_addresses),
                data_center=None if self.data_center is None else sys.intern(self.data_center),
            )
            if self.vm_id
            else None
        )
        return compact(
            VmResult(
                key=self.key,
                hostname=self.hostname,
                outcome=outcome,
                category=category,
                reason=reason,
                error=error,
                virtual_machine=vm,
                task_id=self.task_id,
                build_id=self.build_id,
                attempts=self.attempts,
                stopped_because=stopped_because,
                submitted_at=self.submitted_at,
                finished_at=finished,
                duration_seconds=duration,
                tags=self.tags,
                first_seen_at=first_seen_at,
                package=self.request.package.value,
                location=None if self.request.location == "?" else self.request.location,
            )
        )


@contextmanager
def sending(track: Track) -> Iterator[None]:
    """Around an operation's request(s) for ``track``: ``track.sends.on_wire`` says whether
    one went on the wire unanswered. Set the moment a request passes the rate budget
    (``ON_SENT``); cleared by any answer or error; left as it is when cancelled, which
    tells "stopped while waiting for the budget" (never sent) from "sent, no answer"."""

    def sent() -> None:
        track.sends.on_wire = True

    token = ON_SENT.set(sent)
    try:
        yield
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException:
        track.sends.on_wire = False
        raise
    else:
        track.sends.on_wire = False
    finally:
        ON_SENT.reset(token)
