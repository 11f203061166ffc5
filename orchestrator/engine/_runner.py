"""The conductor of a run: drives every VM of a spec through one operation (build or delete).

What is the same whatever is done to a VM lives here, once: the concurrency
caps, the rate budget (through the client's gate), the journal, lookups by
hostname, the send-until-it-took-exactly-once loop for a request that is not
idempotent (:meth:`Run.submit`), the one poll loop and its timeouts, the dooms
that stop a run or an organization, and exactly one result per VM. What makes
each operation exactly-once (where a VM starts, what an attempt sends, what a
refusal, an uncertain outcome or a poll means) is the operation's, in one
module each: :mod:`orchestrator.engine._build` and
:mod:`orchestrator.engine._delete`.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from orchestrator._logging import get_logger
from orchestrator.engine._addresses import AddressSource
from orchestrator.engine._build import BuildOperation, is_hostname_taken
from orchestrator.engine._concurrency import AdaptiveLimiter
from orchestrator.engine._fleet_listing import FleetFinder
from orchestrator.engine._loop import loop_time
from orchestrator.engine._readings import found_readings
from orchestrator.engine._report_facts import FirstSeen
from orchestrator.engine._retry import is_retryable, retry_args, retry_get
from orchestrator.engine._track import OrgContext, Phase, Track, error_info, sending, utcnow
from orchestrator.engine.events import EngineStatistics, EventKind, ProgressHook, ProvisionEvent
from orchestrator.engine.state.fate import row_of
from orchestrator.errors import (
    ORG_STOPPING_CODES,
    RUN_STOPPING_CODES,
    ApiError,
    ApiUnreachable,
    Category,
    JournalError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from orchestrator.report import ApiReading, ErrorInfo, Outcome, OwnershipInfo, VmResult
from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from orchestrator.engine._operation import Operation, OperationKind, Where
    from orchestrator.engine.budget import RateBudget
    from orchestrator.engine.scheduler import PollScheduler
    from orchestrator.engine.state.journal import Journal, JournalEntry
    from orchestrator.katapult import KatapultClient, VirtualMachine
    from orchestrator.settings import EngineSettings

__all__ = ["OperationFactory", "Run", "is_hostname_taken"]

#: after this many attempts with an uncertain outcome, no more are sent for a VM
MAX_SUBMIT_ATTEMPTS = 8
#: a VM whose requests are refused without effect (429, connection refused) fails
#: unsent only after this many refusals in a row, and as long as a build may take:
#: time alone also counts the wait for the rate budget, which a long queue makes
#: longer than a build (VMs gave up after 2 POSTs in a 30% 429 storm)
MIN_REFUSALS = 20
#: consecutive "not found" answers while polling before the VM is declared lost
MAX_POLL_NOT_FOUND = 5
#: tasks that poll, each one VM at a time (the most polls waiting at once)
POLLERS = 64
#: poll intervals are scaled by this while requests queue for the rate budget
_STRETCH_WHEN_SHORT = 1.3

OperationFactory = Callable[["Run"], "Operation"]
T = TypeVar("T")


def _first_journal_error(group: BaseExceptionGroup[JournalError]) -> JournalError:
    for leaf in group.exceptions:
        if isinstance(leaf, BaseExceptionGroup):
            return _first_journal_error(leaf)
        return leaf
    raise AssertionError("an empty exception group")


class Run:
    """Drives a list of :class:`VmRequest` to one :class:`VmResult` each."""

    def __init__(
        self,
        requests: Sequence[VmRequest],
        *,
        client: KatapultClient,
        budget: RateBudget,
        scheduler: PollScheduler,
        settings: EngineSettings,
        journal: Journal | None = None,
        hooks: Sequence[ProgressHook] = (),
        run_id: str = "",
        only_keys: set[str] | None = None,
        fleet: str = "default",
        operation: OperationFactory | None = None,
        refused: Mapping[str, tuple[Category, ErrorInfo]] | None = None,
        doomed: tuple[Category, ErrorInfo] | None = None,
        clock: Callable[[], float] = loop_time,
    ) -> None:
        self.client = client
        #: the fleet's identity: what the annotations of its VMs carry
        self.fleet = fleet
        self.scheduler = scheduler
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self.run_id = run_id
        self.log = get_logger("orchestrator.engine", run_id=run_id)
        self._std_log = logging.getLogger("orchestrator.engine")
        #: VMs that must fail unsent (SSH keys, tags, flexible resources: _references.py)
        self.refused_unsent = dict(refused or {})
        self._budget = budget
        self._hooks = list(hooks)
        #: key -> when this run first saw the VM's record (for the report's timeline)
        self.first_seen: FirstSeen = {}
        self._orgs: dict[tuple[str, str], OrgContext] = {}
        self._tracks: dict[str, Track] = {}
        for req in requests:
            org_key = (req.organization.key, req.organization.value)
            org = self._orgs.setdefault(org_key, OrgContext(lookup=req.organization))
            self._tracks[req.key] = Track(request=req, org=org)
        self._in_flight = AdaptiveLimiter(
            budget=budget,
            cap=settings.max_in_flight,
            expected_seconds=settings.expected_build_seconds,
            clock=clock,
        )
        self._hooks.append(self._in_flight)  # it learns how long builds stay in flight
        per_dc = settings.max_in_flight_per_data_center
        self._dc_limiters: dict[str, anyio.CapacityLimiter] = {}
        if per_dc is not None:
            for req in requests:
                self._dc_limiters.setdefault(req.location, anyio.CapacityLimiter(per_dc))
        # GET retries back off on the same scale as polls (short under --simulate)
        self.retry: dict[str, Any] = {**retry_args(settings), "log": self.log}
        #: set when a failure (bad token, missing scope, no API) stops the whole run;
        #: ``doomed``: found before the run began, so nothing is sent at all
        self._doom_all: tuple[Category, ErrorInfo] | None = doomed
        self._doomed_before = doomed is not None
        self._stop_reason: str | None = None
        #: refusals without effect in a row, per VM still submitting
        self._refusals: Counter[str] = Counter()
        self._failures = 0
        self._phases: Counter[str] = Counter(queued=len(self._tracks))
        self._total = len(self._tracks)
        #: results by outcome; the run's work is over when every VM has one
        self._outcomes: Counter[str] = Counter()
        self._all_settled = anyio.Event()
        if not self._tracks:
            self._all_settled.set()
        self._work_scope: anyio.CancelScope | None = None
        self._started = clock()
        self._deadline_at = (
            self._started + settings.deadline_seconds
            if settings.deadline_seconds is not None
            else math.inf
        )
        self._removed: list[str] = []
        self._journal_error: JournalError | None = None
        self._op: Operation = (
            operation(self)
            if operation is not None
            else BuildOperation(self, fleet=fleet, only_keys=only_keys)
        )
        #: finds each organization's VMs of the spec (the fleet's listing, or a fallback)
        self.finder = FleetFinder(client, fleet=fleet, retry=self.retry)

    # ------------------------------------------------------------------ public

    @property
    def doomed_run(self) -> tuple[Category, ErrorInfo] | None:
        """Set when a failure (bad token, missing scope) stopped the whole run."""
        return self._doom_all

    @property
    def stopped_because(self) -> str | None:
        """Why submissions stopped early (interrupted, deadline, max_failures, a doom)."""
        if self._stop_reason is not None:
            return self._stop_reason
        if self._doom_all is not None:
            category, error = self._doom_all
            return f"{category}: {error.code}"
        return None

    @property
    def journal_error(self) -> JournalError | None:
        """Set when a journal write failed (a full disk): the run stopped submitting then."""
        return self._journal_error

    @property
    def removed_from_spec(self) -> list[str]:
        """Hostnames of VMs this fleet's builds created (or have in flight) that the spec
        no longer lists: deleted only by ``run --prune`` (:meth:`Orchestrator.prune`)."""
        return list(self._removed)

    @property
    def reconcile_wait_seconds(self) -> float:
        """How long uncertain attempts waited, in all, before they were reconciled.

        What exactly-once costs on an API that may take a hostname only once a
        build's VM record exists: the benchmarks report it.
        """
        return self._op.waited_seconds

    @property
    def operation_kind(self) -> OperationKind:
        """What this run does to each VM: ``build`` or ``delete``."""
        return self._op.kind

    @property
    def ownership(self) -> OwnershipInfo:
        """Whether this run could verify ownership by annotations, and how it found out;
        whether the VM list honoured its annotation filter, and how each organization's
        VMs were found."""
        own = self._op.ownership
        return OwnershipInfo(
            fleet=own.fleet,
            verifiable=own.verifiable,
            evidence=own.evidence,
            annotation_filter=self.finder.filter,
            filter_evidence=self.finder.filter_evidence,
            listed_by=dict(self.finder.listed_by),
        )

    @property
    def readings(self) -> list[ApiReading]:
        """The readings of the unconfirmed API this run found out (for the report)."""
        return found_readings(
            self.finder,
            self._op.ownership,
            delete_refused=getattr(self._op, "delete_refused", None),
        )

    def address_sources(self) -> dict[Lookup, AddressSource]:
        """How each organization's missing addresses may be read once the run is over."""
        own = self._op.ownership
        trusted = self.finder.filter == "honoured" and (self.finder.copies or own.copied)
        return {
            org.lookup: AddressSource(
                fleet=self.fleet if trusted else None,
                whole_read=org.whole_read,
                pages=org.pages,
            )
            for org in self._orgs.values()
        }

    def request_stop(self, reason: str = "interrupted") -> None:
        """Stop now: no new submissions, no more polls; in-flight VMs end ``cancelled``."""
        if self._stop_reason is None:
            self._stop_reason = reason
        if self._work_scope is not None:
            self._work_scope.cancel()

    def statistics(self) -> EngineStatistics:
        """A snapshot of the run's progress."""
        budget = self._budget.statistics()
        return EngineStatistics(
            total=self._total,
            queued=self._phases["queued"],
            submitting=self._phases["submitting"],
            building=self._phases["building"],
            succeeded=self._outcomes["succeeded"],
            failed=self._outcomes["failed"],
            skipped=self._outcomes["skipped"],
            cancelled=self._outcomes["cancelled"],
            requests_total=self.client.requests_total,
            rate_limited=self.client.rate_limited_total,
            permitted=budget.permitted,
            remaining=budget.remaining_estimate,
            elapsed_seconds=self.clock() - self._started,
            in_flight_limit=self._in_flight.limit,
        )

    async def execute(self) -> list[VmResult]:
        """Run to the end (or to :meth:`request_stop`); one result per request, in order."""
        with anyio.CancelScope() as scope:
            self._work_scope = scope
            if self._stop_reason is not None:
                scope.cancel()
            try:
                async with anyio.create_task_group() as outer:
                    outer.start_soon(self._poll_loop)
                    await self._prepare()
                    async with anyio.create_task_group() as drivers:
                        for track in self._tracks.values():
                            if track.result is None:
                                # a place first, then a task: VMs waiting cost no task
                                await self._in_flight.acquire_on_behalf_of(track)
                                track.placed = True
                                drivers.start_soon(self._drive, track)
                    # every VM started; those in flight end through the poll loop
                    await self._all_settled.wait()
                    outer.cancel_scope.cancel()
            except* JournalError as failed:
                # no intent can be recorded any more, so nothing more is sent;
                # what is in flight ends cancelled below, with its ids
                self._journal_error = _first_journal_error(failed)
                self._stop_reason = self._stop_reason or f"journal_failed: {self._journal_error}"
                self.log.error("orchestrator.journal.failed", error=str(self._journal_error))
        with anyio.CancelScope(shield=True):
            for track in self._tracks.values():
                if track.result is None:
                    await self._finish_interrupted(track)
        results = [t.result for t in self._tracks.values() if t.result is not None]
        self._tracks.clear()  # the results are the caller's now: a finished run keeps no VM
        return results

    # ----------------------------------------------------------------- prepare

    async def _prepare(self) -> None:
        """Learn each organization (domain, existing hostnames), then resume the journal."""
        if self._doom_all is not None:
            # found before the run began: the caller says it once (the CLI, an error: line)
            self.log.debug("orchestrator.run.doomed", error=self._doom_all[1].description)
        builds: dict[str, JournalEntry] = {}
        own: dict[str, JournalEntry] = {}
        if self.journal is not None:
            own = await self.journal.entries()
            # every operation decides from the fleet's *build* rows (what its builds sent
            # and created); a delete's own rows are only its write-ahead log
            builds = own if self.journal.table == "vms" else await self.journal.entries("vms")
        # VMs the journal says this fleet built: likely there (what a listing costs more for)
        likely = {k for k, e in builds.items() if row_of(e).created or row_of(e).fact == "accepted"}
        async with anyio.create_task_group() as tg:
            for org in self._orgs.values():
                if self._doom_all is None:
                    tg.start_soon(self._prepare_org, org, likely)
        if self.journal is not None:
            self._removed = sorted(
                e.hostname
                for k, e in builds.items()
                if k not in self._tracks and (row_of(e).created or row_of(e).fact == "accepted")
            )
            await self.journal.add_pending(
                [(t.key, t.hostname) for t in self._tracks.values() if t.key not in own]
            )
        ownership = self._op.ownership
        if self.finder.copies and ownership.copied is None:
            ownership.copied, ownership.evidence = True, self.finder.copies_evidence
        for track in self._tracks.values():
            self._op.classify(track, builds.get(track.key))

    async def _prepare_org(self, org: OrgContext, likely: set[str]) -> None:
        try:
            info = await retry_get(lambda: self.client.get_organization(org.lookup), **self.retry)
            org.infrastructure_domain = info.infrastructure_domain
            listing = await self.finder.list_org(
                org.lookup,
                [t.key for t in self._tracks.values() if t.org is org],
                domain=org.infrastructure_domain,
                complete=self._op.kind == "delete",
                likely=likely,
            )
            org.existing, org.looked = listing.existing, listing.looked
            org.trashed = listing.trashed
            org.whole_read, org.pages = listing.whole, listing.pages
        except ApiError as exc:
            self.doom_for(org, exc, force_org=True)
        except ApiUnreachable as exc:
            # the API URL cannot work (unknown host, TLS refused): for no organization
            if self._doom_all is None:
                self._doom_all = (exc.category, error_info(exc))
                self.log.error("orchestrator.run.doomed", error=str(exc))
        except TransportError as exc:
            org.doom = (exc.category, error_info(exc))
        self.log.debug(
            "orchestrator.org.prepared",
            organization=org.lookup.value,
            existing=len(org.existing),
            doomed=org.doom is not None,
        )

    # ------------------------------------------------------------ submission

    async def _drive(self, track: Track) -> None:
        """Start ``track``'s operation in the place in flight it was given.

        The task ends once the request is sent (or the VM's fate known); a VM
        then being polled costs no task, and gives its places back when it
        settles (:meth:`settle`).
        """
        if self._doomed_before and track.result is None:
            await self._finish_blocked(track)  # nothing at all is sent
            return
        dc = self._dc_limiters.get(track.request.location)
        if dc is not None:
            await dc.acquire_on_behalf_of(track)
            track.dc_placed = True
        if track.result is None:
            await self._op.start(track)

    def _release_places(self, track: Track) -> None:
        if track.placed:
            track.placed = False
            self._in_flight.release_on_behalf_of(track)
        if track.dc_placed:
            track.dc_placed = False
            self._dc_limiters[track.request.location].release_on_behalf_of(track)

    def _blocked(self, track: Track) -> bool:
        return (
            self._doom_all is not None
            or track.org.doom is not None
            or self._stop_reason is not None
            or self.clock() >= self._deadline_at
        )

    async def _finish_blocked(self, track: Track) -> None:
        doom = self._doom_all or track.org.doom
        if doom is not None:
            category, error = doom
            await self.finish(
                track,
                "failed",
                category=category,
                error=error,
                reason="not_submitted",
                stopped_because=f"{category}: {error.code} stops every request",
                journal=False,
                quiet=True,  # said once for the run, not once per VM
            )
            return
        if self._stop_reason is None and self.clock() >= self._deadline_at:
            self._stop_reason = "deadline"
        await self.finish(
            track,
            "cancelled",
            category="cancelled",
            reason="not_submitted",
            stopped_because=self._stop_reason,
            journal=False,
        )

    async def submit(self, track: Track) -> None:
        """Send the operation's request until it took exactly once, or the VM's fate is known.

        The intent is journaled before every attempt. A refusal that changed
        nothing (429, connection refused) is sent again, for as long as a
        build may take; an uncertain outcome (timeout, reset, 5xx) is never
        sent again before the operation has reconciled it; after
        :data:`MAX_SUBMIT_ATTEMPTS` uncertain attempts the operation watches
        instead of sending.
        """
        while track.result is None:
            if self._blocked(track):
                await self._finish_blocked(track)
                return
            if track.sends.uncertain and await self._op.reconcile(track):
                return
            if track.sends.uncertain_count >= MAX_SUBMIT_ATTEMPTS:
                self._op.give_up(track)
                return
            now = self.clock()
            refused_for = (
                now - track.sends.refused_since if track.sends.refused_since is not None else 0.0
            )
            # an API that refuses without acting (429, connection refused) is
            # waited out as long as a build may take, then the VM fails unsent
            refusals = self._refusals[track.key]
            if refused_for > self.settings.build_timeout_seconds and refusals >= MIN_REFUSALS:
                await self.finish(
                    track,
                    "failed",
                    category=track.last_category or "network",
                    error=track.last_error,
                    stopped_because=f"the API refused all {refusals} requests "
                    f"in {refused_for:.0f} s",
                )
                return
            track.attempts += 1
            self.set_phase(track, "submitting")
            if self.journal is not None:
                await self.journal.record_intent(track.key, attempt=track.attempts)
            self.emit("submitting", track)
            try:
                with sending(track):
                    await self._op.send(track)
            except RateLimited as exc:
                # a 429 means the server did not act: sending again is safe
                self.note_error(track, exc)
                self._refused_without_effect(track)
                self.emit("retrying", track, message=str(exc))
            except ApiError as exc:
                self._accepted(track)
                self.note_error(track, exc)
                if await self._op.refused(track, exc):
                    return
                if exc.outcome_uncertain:
                    await self._mark_uncertain(track, exc)
                    continue
                self.doom_for(track.org, exc)
                await self.finish(track, "failed", category=exc.category, error=error_info(exc))
                return
            except TransportError as exc:
                self.note_error(track, exc)
                if exc.maybe_sent:
                    self._accepted(track)
                    await self._mark_uncertain(track, exc)
                else:
                    self._refused_without_effect(track)
                    self.emit("retrying", track, message=str(exc))
                    await self._backoff(track)
            else:
                self._accepted(track)
                return

    def _refused_without_effect(self, track: Track) -> None:
        if track.sends.refused_since is None:
            track.sends.refused_since = self.clock()
        self._refusals[track.key] += 1

    def _accepted(self, track: Track) -> None:
        """The API acted on (or answered) a request of ``track``: no refusal streak."""
        track.sends.refused_since = None
        self._refusals.pop(track.key, None)

    async def _mark_uncertain(self, track: Track, exc: Exception) -> None:
        track.sends.uncertain = True
        track.sends.uncertain_count += 1
        track.sends.last_uncertain_clock = self.clock()
        if track.submitted_clock is None:
            track.submitted_clock = track.sends.last_uncertain_clock
        if self.journal is not None:
            await self.journal.record_uncertain(track.key, error=str(exc))
        self.emit("reconciling", track, message=str(exc))

    async def sleep(self, seconds: float) -> None:
        """Wait (on the run's time, which tests scale)."""
        await anyio.sleep(seconds)

    @property
    def api(self) -> KatapultClient:
        """The API client, paced by the run's rate budget."""
        return self.client

    async def retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` (a GET, or a request as safe to repeat) retried with the run's back-off."""
        return await retry_get(call, **self.retry)

    def refusal_for(self, track: Track) -> tuple[Category, ErrorInfo] | None:
        """Why ``track`` must fail unsent (SSH keys, tags, flexible resources), if it must."""
        return self.refused_unsent.get(track.key)

    async def record_submitted(self, track: Track, *, task_id: str, build_id: str | None) -> None:
        """Journal that the operation's request for ``track`` was accepted (committed on return)."""
        if self.journal is not None:
            await self.journal.record_submitted(
                track.key, task_id=task_id, build_id=build_id, submitted_at=utcnow()
            )

    def poll_soon(self, track: Track, *, delay: float | None = None) -> None:
        """Poll ``track`` soon (after ``delay`` seconds, else the scheduler's first wait)."""
        if delay is None:
            self.scheduler.poll_soon(track.key, group=track.group)
        else:
            self.scheduler.poll_soon(track.key, group=track.group, delay=delay)

    def unschedule(self, track: Track) -> None:
        """No more polls of ``track`` (its operation decides again now)."""
        self.scheduler.remove(track.key)

    def follow_build(self, track: Track) -> None:
        """A build was accepted: poll it when builds of its kind are expected to be done."""
        self.scheduler.stretch(self.poll_stretch())
        submitted = track.submitted_clock if track.submitted_clock is not None else self.clock()
        self.scheduler.add(track.key, group=track.group, submitted_at=submitted)

    def learn_build_time(self, track: Track) -> None:
        """A build was seen done: learn how long builds of its group take."""
        if track.submitted_clock is None:
            return
        scheduler = self.scheduler
        duration = self.clock() - track.submitted_clock
        if track.key in scheduler and scheduler.polls(track.key) == 0:
            # Seen done at its first poll: the build took *at most* this long,
            # and the poll itself may have waited for the budget. Learning the
            # full span would feed every wait back into later first polls
            # (polls later, builds seen later, durations longer...).
            duration = min(duration, scheduler.durations.expected(track.group))
        scheduler.completed(track.key, group=track.group, duration=duration)

    # ----------------------------------------------------------------- lookups

    async def find_hostname(self, track: Track, *, quiet: bool = True) -> VirtualMachine | None:
        """The VM with this VM's hostname (with its annotations), or None.

        Fails the VM on hard errors. A lookup that got no usable answer (429,
        5xx, transport) gives None too, unless ``quiet`` is false: then its
        error is raised, so that a poll can tell "not there" from "could not look".
        """
        fqdn = track.org.fqdn(track.key)
        if fqdn is not None:
            return await self.look_up(track, Lookup("fqdn", fqdn), quiet=quiet)

        async def scan() -> str | None:
            async for vm in self.client.list_vms(track.org.lookup):
                if vm.hostname and vm.hostname.lower() == track.key:
                    return vm.id
            return None

        try:
            vm_id = await retry_get(scan, **self.retry)
        except (ApiError, TransportError) as exc:
            await self._lookup_failed(track, exc, quiet=quiet)
            return None
        if vm_id is None:
            return None
        return await self.look_up(track, Lookup("id", vm_id), quiet=quiet)

    async def look_up(
        self, track: Track, lookup: Lookup, *, quiet: bool = True
    ) -> VirtualMachine | None:
        """``GET`` one VM (with retries); None when it is not there or could not be read.

        A VM in the trash fails ``track`` (``conflict``/``hostname_in_trash``).
        """
        try:
            return await retry_get(lambda: self.client.get_vm(lookup), **self.retry)
        except NotFound:
            return None
        except (ApiError, TransportError) as exc:
            await self._lookup_failed(track, exc, quiet=quiet)
            return None

    async def _lookup_failed(
        self, track: Track, exc: ApiError | TransportError, *, quiet: bool
    ) -> None:
        if isinstance(exc, ApiError) and exc.code == "object_in_trash":
            if track.row.fact in ("created", "failed", "deleted"):
                # this fleet built a VM of this hostname, and it is in the trash now
                await self.held_by_trash(track, exc)
                return
            await self.finish(
                track,
                "failed",
                category="conflict",
                error=error_info(exc),
                reason="hostname_in_trash",
            )
            return
        self.note_error(track, exc)
        if isinstance(exc, ApiError):
            self.doom_for(track.org, exc)
        if not quiet and is_retryable(exc):
            raise exc

    async def where(self, track: Track, vm_id: str) -> tuple[Where, VirtualMachine | None] | None:
        """One look at VM ``vm_id``: present (with its annotations), in the trash, or gone.

        None when the API gave no usable answer (after retries): the VM is then
        finished ``failed`` with that error, since nothing can be decided unseen.
        """
        looked = track.org.looked.pop(vm_id, None)
        if looked is not None:
            return "present", looked  # the listing's fqdn lookup was its look
        if vm_id in track.org.trashed:
            track.org.trashed.discard(vm_id)
            return "trash", None  # the listing's fqdn lookup found it in the trash
        try:
            return await self.where_or_raise(vm_id, retried=True)
        except (ApiError, TransportError) as exc:
            self.note_error(track, exc)
            if isinstance(exc, ApiError):
                self.doom_for(track.org, exc)
            await self.finish(track, "failed", category=exc.category, error=error_info(exc))
            return None

    async def where_or_raise(
        self, vm_id: str, *, retried: bool
    ) -> tuple[Where, VirtualMachine | None]:
        """As :meth:`where`; errors other than "gone" and "in the trash" propagate."""

        async def get() -> VirtualMachine:
            return await self.client.get_vm(Lookup("id", vm_id))

        try:
            vm = await (retry_get(get, **self.retry) if retried else get())
        except NotFound:
            return "gone", None
        except ApiError as exc:
            if exc.code != "object_in_trash":
                raise
            return "trash", None
        return "present", vm

    async def held_by_trash(self, track: Track, exc: ApiError | None = None) -> None:
        """A VM of this fleet in the trash holds the hostname: nothing can be built there."""
        await self.finish(
            track,
            "failed",
            category="conflict",
            error=ErrorInfo(
                code="object_in_trash",
                description=(
                    f"the hostname {track.hostname} is held by a VM of this fleet in the "
                    "trash; `orchestrator destroy --purge` frees it (or restore it from "
                    "the trash)"
                ),
                detail=exc.detail if exc is not None else None,
            ),
            reason="held_by_trash",
            journal=False,
        )

    def seen_vm(self, track: Track, vm: VirtualMachine) -> None:
        """Remember what a look at the VM told (id, fqdn, state, addresses, data center).

        A build's own view of its VM carries no addresses: what an earlier look
        showed is kept then.
        """
        if track.key not in self.first_seen:
            self.first_seen[track.key] = utcnow()
        if track.vm_id != vm.id:
            track.ip_addresses, track.data_center = (), None
        track.vm_id = vm.id
        track.fqdn = vm.fqdn or track.org.fqdn(track.key)
        track.vm_state = vm.state or track.vm_state
        addresses = tuple(ip.address for ip in vm.ip_addresses if ip.address)
        if addresses:
            track.ip_addresses = addresses
        data_center = vm.zone.data_center if vm.zone is not None else None
        if data_center is not None and data_center.permalink:
            track.data_center = data_center.permalink

    def adopt(self, track: Track, vm_id: str) -> None:
        """Take ``vm_id`` as this VM's; it is followed by polling the VM."""
        if track.key not in self.first_seen:
            self.first_seen[track.key] = utcnow()
        track.vm_id = vm_id
        track.fqdn = track.fqdn or track.org.fqdn(track.key)
        track.adopted = True
        track.poll_kind = "vm"
        if track.submitted_clock is None:
            track.submitted_clock = self.clock()
        self.emit("adopted", track)

    async def conflict(self, track: Track, exc: ApiError | None, why: str) -> None:
        """The hostname belongs to a VM this fleet did not build: ``failed``/``conflict``."""
        await self.finish(
            track,
            "failed",
            category="conflict",
            error=error_info(exc)
            if exc is not None
            else ErrorInfo(
                code="hostname_taken",
                description=f"the hostname {track.hostname} is taken by a VM this fleet did "
                f"not build ({why})",
            ),
            reason="hostname_taken",
            stopped_because="the hostname belongs to a VM this run did not create",
        )

    async def _backoff(self, track: Track) -> None:
        base = self.settings.poll_min_seconds * (2 ** max(track.attempts - 1, 0))
        await anyio.sleep(min(base, self.settings.poll_max_seconds) * random.uniform(0.5, 1.0))

    def note_error(self, track: Track, exc: Exception) -> None:
        """Remember ``exc`` as the VM's last error (reported if it ends failed)."""
        track.last_error = error_info(exc)
        track.last_category = exc.category if isinstance(exc, ApiError | TransportError) else None

    def doom_for(self, org: OrgContext, exc: ApiError, *, force_org: bool = False) -> None:
        """Remember a failure that dooms every later request of the run or organization."""
        doom = (exc.category, error_info(exc))
        if exc.code in RUN_STOPPING_CODES or exc.category == "auth":
            if self._doom_all is None:
                self._doom_all = doom
                self.log.error("orchestrator.run.doomed", error=str(exc))
        elif (exc.code in ORG_STOPPING_CODES or force_org) and org.doom is None:
            org.doom = doom
            self.log.error("orchestrator.org.doomed", organization=org.lookup.value, error=str(exc))

    # ---------------------------------------------------------------- polling

    async def _poll_loop(self) -> None:
        """One loop for every VM in flight: poll whatever the scheduler says is due.

        :data:`POLLERS` tasks do the polls, each handed one due VM at a time
        (no task per poll): at most that many polls wait for the budget or an
        answer at once.
        """
        send, receive = anyio.create_memory_object_stream[Track]()
        async with anyio.create_task_group() as tg, send, receive:
            for _ in range(POLLERS):
                tg.start_soon(self._poller, receive)
            while True:
                await self.scheduler.wait()
                for key in self.scheduler.due():
                    track = self._tracks[key]
                    if track.result is None:
                        try:  # to a poller waiting already: no trip round the loop
                            send.send_nowait(track)
                        except anyio.WouldBlock:
                            await send.send(track)

    async def _poller(self, due: MemoryObjectReceiveStream[Track]) -> None:
        async for track in due:
            await self._poll_one(track)

    async def _poll_one(self, track: Track) -> None:
        kind = track.poll_kind
        answered = await self._poll_or_fail(track)
        # A timeout is judged on evidence, never instead of a poll: a build whose
        # polls were held (429s, an outage) may well have finished meanwhile. It
        # takes an answer saying "not finished", or polls failing for longer than
        # the retry deadline past the timeout. A poll that changed what to poll
        # (adopted a VM found by hostname, a task that named its build) is
        # followed at once by the poll that tells.
        if track.result is not None or track.poll_kind != kind:
            return
        grace = 0.0 if answered else self.settings.retry_deadline_seconds
        if self._timed_out(track, grace=grace) and track.sends.gave_up:
            await self.finish(
                track,
                "failed",
                category=track.last_category or "server_error",
                error=track.last_error,
                stopped_because=(
                    f"gave up after {track.sends.uncertain_count} uncertain "
                    f"{self._op.request_name}s; their outcome did not show within "
                    "build_timeout_seconds"
                ),
            )
        elif self._timed_out(track, grace=grace):
            await self.finish(
                track,
                "failed",
                category="timeout",
                error=ErrorInfo(
                    code="build_timeout",
                    description=(
                        f"not finished after {self.settings.build_timeout_seconds:g} s; "
                        "the build may still complete on Katapult"
                    ),
                ),
                stopped_because="build_timeout_seconds",
            )

    async def _poll_or_fail(self, track: Track) -> bool:
        """One poll of ``track``; errors are counted, remembered or made its result.

        False when the API gave no usable answer (429, 5xx, transport, garbage).
        """
        try:
            await self._op.poll(track)
        except NotFound as exc:
            track.poll_errors += 1
            self.note_error(track, exc)
            if track.poll_errors >= MAX_POLL_NOT_FOUND:
                await self.finish(track, "failed", category="not_found", error=error_info(exc))
            else:
                self.repoll(track)
        except (RateLimited, ServerError, TransportError, UnexpectedResponse) as exc:
            track.poll_errors += 1
            self.note_error(track, exc)
            self.repoll(track)
            return False
        except ApiError as exc:
            self.doom_for(track.org, exc)
            await self.finish(track, "failed", category=exc.category, error=error_info(exc))
        return True

    def poll_stretch(self) -> float:
        """How much later than expected to poll: later when the budget is the bottleneck.

        When requests wait for the budget, an early poll that finds a build
        unfinished costs a whole request that a build could have used; polling
        a little late costs nothing the budget would not cost anyway.
        """
        stats = self._budget.statistics()
        return _STRETCH_WHEN_SHORT if stats.waiting_submits or stats.waiting_polls else 1.0

    def _timed_out(self, track: Track, *, grace: float = 0.0) -> bool:
        started = track.submitted_clock
        return started is not None and (
            self.clock() - started > self.settings.build_timeout_seconds + grace
        )

    def repoll(self, track: Track, *, progress: float | None = None, soon: bool = False) -> None:
        if track.result is not None:
            return
        if soon:
            self.scheduler.poll_soon(track.key, group=track.group)
        else:
            self.scheduler.polled(track.key, progress=progress)

    # --------------------------------------------------------------- results

    async def _finish_interrupted(self, track: Track) -> None:
        reason = {
            "queued": "not_submitted",
            "submitting": "submission_outcome_unknown",
            "building": "build_in_progress",
        }.get(track.phase, "interrupted")
        if reason == "submission_outcome_unknown" and not (
            track.sends.uncertain or track.sends.on_wire
        ):
            # stopped while waiting for the budget (or to resubmit after a 429):
            # no POST of it can have taken
            reason = "not_submitted"
        await self.finish(
            track,
            "cancelled",
            category="cancelled",
            reason=reason,
            error=track.last_error,
            stopped_because=self._stop_reason or "interrupted",
            journal=False,
        )

    def settle(self, track: Track, result: VmResult) -> None:
        """Make ``result`` the VM's one result and give back its places in flight."""
        track.result = result
        self.set_phase(track, "done")
        self._outcomes[result.outcome] += 1
        self._release_places(track)
        if self._outcomes.total() == self._total:
            self._all_settled.set()

    async def finish(
        self,
        track: Track,
        outcome: Outcome,
        *,
        category: Category | None = None,
        error: ErrorInfo | None = None,
        reason: str | None = None,
        stopped_because: str | None = None,
        journal: bool = True,
        quiet: bool = False,
    ) -> None:
        if track.result is not None:
            return
        result = track.make_result(
            outcome,
            category=category,
            error=error,
            reason=reason,
            stopped_because=stopped_because,
            # for the report's timeline (and the journal's copy of the row)
            first_seen_at=self.first_seen.pop(track.key, None),
        )
        self.scheduler.remove(track.key)
        self.settle(track, result)
        kind: EventKind = outcome
        if outcome == "succeeded" and self._op.kind == "delete":
            # a deletion is never a "succeeded" event: a log alert on vm.succeeded counts builds
            kind = "purged" if reason == "purged" else "deleted"
        message = error.description if error else reason
        self.emit(kind, track, category=category, message=message, quiet=quiet)
        if outcome == "failed" and journal:
            self._failures += 1
            limit = self.settings.max_failures
            if limit is not None and self._failures >= limit and self._stop_reason is None:
                self._stop_reason = "max_failures"
                self.log.warning("orchestrator.run.max_failures", failures=self._failures)
        if journal and self.journal is not None:
            with anyio.CancelScope(shield=True):
                await self.journal.record_finished(track.key, result)

    def set_phase(self, track: Track, phase: Phase) -> None:
        if track.phase != phase:
            self._phases[track.phase] -= 1
            self._phases[phase] += 1
            track.phase = phase

    def emit(
        self,
        kind: EventKind,
        track: Track,
        *,
        category: str | None = None,
        message: str | None = None,
        quiet: bool = False,
    ) -> None:
        event = ProvisionEvent(
            kind=kind,
            key=track.key,
            hostname=track.hostname,
            at=self.clock(),
            task_id=track.task_id,
            build_id=track.build_id,
            vm_id=track.vm_id,
            category=category,
            message=message,
            attempt=track.attempts,
        )
        if kind in ("building", "submitting", "queued") or quiet:
            level, log = logging.DEBUG, self.log.debug
        elif kind == "failed":
            level, log = logging.WARNING, self.log.warning
        else:
            level, log = logging.INFO, self.log.info
        if self._std_log.isEnabledFor(level):  # (cheap: structlog would build the event first)
            self._log_vm(log, kind, track, category, message)
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                self.log.exception("orchestrator.hook.failed", hook=repr(hook))

    @staticmethod
    def _log_vm(
        log: Callable[..., Any],
        kind: EventKind,
        track: Track,
        category: str | None,
        message: str | None,
    ) -> None:
        log(
            f"orchestrator.vm.{kind}",
            hostname=track.hostname,
            task_id=track.task_id,
            build_id=track.build_id,
            vm_id=track.vm_id,
            category=category,
            attempt=track.attempts,
            message=message,
        )
