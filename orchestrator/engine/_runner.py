"""One run of the engine: submit every VM once, follow every build, one result each.

Exactly-once, in short (each rule holds on every reading of the API listed as
unconfirmed in ``docs/guarantees.md``):

* every build carries annotations naming the VM and its fleet
  (:mod:`orchestrator.engine._ownership`); a VM found by hostname is judged by
  them: ours, someone else's, or unknown (the API does not copy annotations);
* the journal records the intent before a POST goes out, the ids as soon as
  the 201 arrives;
* a POST whose outcome is unknown (timeout, reset, 5xx, a body that is not the
  API's) is never sent again blindly: the hostname is looked up at once and
  again once it has stayed free past the learned time a build takes to show
  its VM record (:mod:`orchestrator.engine._appearance`); only a hostname still
  free then is submitted again;
* a taken hostname (refusal or lookup) is adopted when the VM is ours, or when
  ownership cannot be told and an earlier POST of this VM was uncertain; it is
  a ``conflict`` when the VM is someone else's;
* a VM whose hostname existed before the run is looked at once: in state
  ``failed`` (or when the journal recorded its build as failed) it ends
  ``failed``/``build_failed`` and is never rebuilt over; someone else's is a
  ``conflict``; otherwise it is ``skipped`` (``already_exists``).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import structlog

from orchestrator.engine._appearance import AppearanceModel
from orchestrator.engine._ownership import Ownership, Verdict, ownership_annotations
from orchestrator.engine._retry import is_retryable, retry_get
from orchestrator.engine._track import OrgContext, Phase, Track, error_info, utcnow
from orchestrator.engine.events import EngineStatistics, EventKind, ProgressHook, ProvisionEvent
from orchestrator.errors import (
    ApiError,
    Category,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
    detail_messages,
)
from orchestrator.katapult import build_spec_xml
from orchestrator.report import ErrorInfo, Outcome, OwnershipInfo, VmResult
from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from orchestrator.engine.budget import RateBudget
    from orchestrator.engine.journal import Journal, JournalEntry
    from orchestrator.engine.scheduler import PollScheduler
    from orchestrator.katapult import CreatedBuild, KatapultClient, VirtualMachine
    from orchestrator.settings import EngineSettings

__all__ = ["Run", "is_hostname_taken"]

#: API codes after which no build in the whole run can succeed
_DOOM_RUN = frozenset(
    {"missing_api_token", "invalid_api_token", "expired_api_token", "scope_not_granted"}
)
#: API codes after which no build in the same organization can succeed
_DOOM_ORG = frozenset(
    {
        "organization_not_found",
        "organization_suspended",
        "organization_not_activated",
        "resource_creation_restricted",
        "permission_denied",
    }
)
#: after this many POSTs with an uncertain outcome, no more are sent for a VM
MAX_SUBMIT_ATTEMPTS = 8
#: consecutive "not found" answers while polling before the build is declared lost
MAX_POLL_NOT_FOUND = 5
_VM_SETTLED = frozenset({"started", "starting"})
#: VM states of a build still under way: an existing VM of ours in one is followed, not skipped
_VM_BUILDING = frozenset({"allocating", "allocated"})
#: VM states that make an existing VM unusable: it must be deleted before it can be rebuilt
_VM_BROKEN = frozenset({"failed", "orphaned"})
#: poll intervals are scaled by this while requests queue for the rate budget
_STRETCH_WHEN_SHORT = 1.3


def is_hostname_taken(exc: ApiError) -> bool:
    """True when the API refused a build because the hostname is in use.

    The exact error is unconfirmed on the real API; the simulator answers 422
    ``validation_error`` with ``detail.errors: ["Hostname has already been
    taken"]``. Any code whose messages speak of a taken/existing hostname counts.
    """
    if exc.code in ("hostname_taken", "hostname_already_taken", "hostname_in_use"):
        return True
    if exc.http_status not in (400, 409, 422):
        return False
    for message in [*detail_messages(exc.detail), exc.description or ""]:
        text = message.lower()
        if "hostname" in text and any(w in text for w in ("taken", "already", "in use", "exists")):
            return True
    return False


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
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._client = client
        self._budget = budget
        self._scheduler = scheduler
        self._settings = settings
        self._journal = journal
        self._hooks = list(hooks)
        self._clock = clock
        self._only_keys = only_keys
        self._log = structlog.get_logger("orchestrator").bind(run_id=run_id)
        self._orgs: dict[tuple[str, str], OrgContext] = {}
        self._tracks: dict[str, Track] = {}
        for req in requests:
            org_key = (req.organization.key, req.organization.value)
            org = self._orgs.setdefault(org_key, OrgContext(lookup=req.organization))
            self._tracks[req.key] = Track(request=req, org=org)
        self._in_flight = anyio.CapacityLimiter(settings.max_in_flight)
        per_dc = settings.max_in_flight_per_data_center
        self._dc_limiters: dict[str, anyio.CapacityLimiter] = {}
        if per_dc is not None:
            for req in requests:
                self._dc_limiters.setdefault(req.location, anyio.CapacityLimiter(per_dc))
        self._poll_slots = anyio.Semaphore(64)
        # GET retries back off on the same scale as polls (short under --simulate)
        self._retry: dict[str, float] = {
            "deadline_seconds": settings.retry_deadline_seconds,
            "wait_initial": min(0.2, settings.poll_min_seconds),
            "wait_max": min(10.0, settings.poll_max_seconds),
        }
        self._doom_all: tuple[Category, ErrorInfo] | None = None
        self._stop_reason: str | None = None
        self._failures = 0
        self._phases: Counter[str] = Counter(queued=len(self._tracks))
        self._outcomes: Counter[str] = Counter()
        self._work_scope: anyio.CancelScope | None = None
        self._started = clock()
        self._deadline_at = (
            self._started + settings.deadline_seconds
            if settings.deadline_seconds is not None
            else math.inf
        )
        self._removed: list[str] = []
        self._ownership = Ownership(fleet=fleet)
        self._appearance = AppearanceModel(expected_build_seconds=settings.expected_build_seconds)
        self._probing_ownership = False

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
    def removed_from_spec(self) -> list[str]:
        """Hostnames the journal knows that the spec no longer lists (never deleted)."""
        return list(self._removed)

    @property
    def ownership(self) -> OwnershipInfo:
        """Whether this run could verify ownership by annotations, and how it found out."""
        own = self._ownership
        return OwnershipInfo(fleet=own.fleet, verifiable=own.verifiable, evidence=own.evidence)

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
            total=len(self._tracks),
            queued=self._phases["queued"],
            submitting=self._phases["submitting"],
            building=self._phases["building"],
            succeeded=self._outcomes["succeeded"],
            failed=self._outcomes["failed"],
            skipped=self._outcomes["skipped"],
            cancelled=self._outcomes["cancelled"],
            requests_total=self._client.requests_total,
            rate_limited=self._client.rate_limited_total,
            permitted=budget.permitted,
            remaining=budget.remaining_estimate,
            elapsed_seconds=self._clock() - self._started,
        )

    async def execute(self) -> list[VmResult]:
        """Run to the end (or to :meth:`request_stop`); one result per request, in order."""
        with anyio.CancelScope() as scope:
            self._work_scope = scope
            if self._stop_reason is not None:
                scope.cancel()
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._poll_loop)
                await self._prepare()
                async with anyio.create_task_group() as drivers:
                    for track in self._tracks.values():
                        if track.result is None:
                            drivers.start_soon(self._drive, track)
                outer.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            for track in self._tracks.values():
                if track.result is None:
                    await self._finish_interrupted(track)
        return [t.result for t in self._tracks.values() if t.result is not None]

    # ----------------------------------------------------------------- prepare

    async def _prepare(self) -> None:
        """Learn each organization (domain, existing hostnames), then resume the journal."""
        async with anyio.create_task_group() as tg:
            for org in self._orgs.values():
                tg.start_soon(self._prepare_org, org)
        entries: dict[str, JournalEntry] = {}
        if self._journal is not None:
            entries = await self._journal.entries()
            self._removed = sorted(e.hostname for k, e in entries.items() if k not in self._tracks)
            await self._journal.add_pending(
                [(t.key, t.hostname) for t in self._tracks.values() if t.key not in entries]
            )
        for track in self._tracks.values():
            await self._classify(track, entries.get(track.key))

    async def _prepare_org(self, org: OrgContext) -> None:
        try:
            info = await retry_get(lambda: self._client.get_organization(org.lookup), **self._retry)
            org.infrastructure_domain = info.infrastructure_domain

            async def listing() -> dict[str, str]:
                return {
                    vm.hostname.lower(): vm.id
                    async for vm in self._client.list_vms(org.lookup)
                    if vm.hostname
                }

            org.existing = await retry_get(listing, **self._retry)
        except ApiError as exc:
            self._doom_for(org, exc, force_org=True)
        except TransportError as exc:
            org.doom = (exc.category, error_info(exc))
        self._log.debug(
            "orchestrator.org.prepared",
            organization=org.lookup.value,
            existing=len(org.existing),
            doomed=org.doom is not None,
        )

    async def _classify(self, track: Track, entry: JournalEntry | None) -> None:
        """Decide where a VM starts: done, poll, judge an existing VM, reconcile or submit.

        Nothing here sends a request; a VM whose hostname exists is judged by
        :meth:`_judge_existing` when its turn comes.
        """
        existing = track.org.existing.get(track.key)
        if entry is not None:
            track.attempts = entry.attempts
            final = entry.result if entry.state == "finished" else None
            selected = self._only_keys is not None and track.key in self._only_keys
            if final is not None and final.outcome in ("succeeded", "skipped") and not selected:
                self._settle(track, final)
                return
            if entry.state == "submitted" and (entry.build_id or entry.task_id):
                track.task_id, track.build_id = entry.task_id, entry.build_id
                track.submitted_at = entry.submitted_at
                track.submitted_clock = self._clock()
                track.poll_kind = "build" if entry.build_id else "task"
                return
            if entry.state in ("intent", "uncertain"):
                track.uncertain = True
                # the POST went out at the latest when the entry was written
                ago = max(0.0, (utcnow() - entry.updated_at).total_seconds())
                track.last_post_clock = self._clock() - ago
                track.existing_vm = existing
                return
            if final is not None and final.category == "build_failed":
                track.prior_build_failed = True
                if final.virtual_machine is not None and existing is None:
                    # its VM may be hidden from the list (e.g. in the trash): look it up
                    existing = final.virtual_machine.id
        if self._only_keys is not None and track.key not in self._only_keys:
            self._settle(
                track,
                track.make_result("skipped", reason="not_selected"),
            )
            return
        track.existing_vm = existing

    # ------------------------------------------------------------ submission

    async def _drive(self, track: Track) -> None:
        dc = self._dc_limiters.get(track.request.location)
        async with self._in_flight, dc if dc is not None else contextlib.nullcontext():
            if track.result is not None:
                return
            if track.existing_vm is not None and not (track.task_id or track.build_id):
                await self._judge_existing(track)
                if track.result is not None:
                    return
            if track.task_id or track.build_id or track.adopted:
                # resumed from the journal, or adopted: it may be done already
                self._set_phase(track, "building")
                self._scheduler.poll_soon(track.key, group=track.group)
            else:
                await self._submit(track)
            if track.result is None:
                await track.done.wait()

    async def _judge_existing(self, track: Track) -> None:
        """A VM with this hostname existed before the run: look at it once and decide.

        The decisions, in order: someone else's VM (by its annotations) is a
        ``conflict``; a VM in state ``failed``/``orphaned``, or one whose build
        the journal recorded as failed, ends ``failed``/``build_failed`` and is
        never built over; after an uncertain POST of ours, or while it is still
        being built and is ours, it is adopted and followed; otherwise it is
        ``skipped``/``already_exists``.
        """
        vm_id = track.existing_vm
        track.existing_vm = None
        if vm_id is None:
            return
        vm = await self._look_up(track, Lookup("id", vm_id))
        if track.result is not None:
            return
        if vm is None:
            if track.uncertain or track.prior_build_failed:
                return  # gone meanwhile: reconcile / submit as if it never was
            # could not look (or it vanished): keep today's rule, it exists
            track.vm_id, track.fqdn = vm_id, track.org.fqdn(track.key)
            await self._finish(track, "skipped", reason="already_exists")
            return
        verdict = self._ownership.judge(track.key, vm.annotations)
        self._seen_vm(track, vm)
        if verdict == "theirs":
            await self._conflict(track, None, "its annotations name another VM or fleet")
        elif vm.state in _VM_BROKEN or track.prior_build_failed:
            await self._finish(
                track,
                "failed",
                category="build_failed",
                error=ErrorInfo(
                    code="build_failed",
                    description=(
                        f"virtual machine {vm.id} ({track.hostname}) is in state "
                        f"{vm.state or 'unknown'} after a failed build; delete it before "
                        "it can be rebuilt"
                    ),
                ),
                reason="failed_vm_exists",
            )
        elif track.uncertain or (verdict == "ours" and vm.state in _VM_BUILDING):
            self._adopt(track, vm.id)
        else:
            await self._finish(track, "skipped", reason="already_exists")

    def _seen_vm(self, track: Track, vm: VirtualMachine) -> None:
        track.vm_id = vm.id
        track.fqdn = vm.fqdn or track.org.fqdn(track.key)
        track.vm_state = vm.state or track.vm_state

    async def _conflict(self, track: Track, exc: ApiError | None, why: str) -> None:
        await self._finish(
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

    def _blocked(self, track: Track) -> bool:
        return (
            self._doom_all is not None
            or track.org.doom is not None
            or self._stop_reason is not None
            or self._clock() >= self._deadline_at
        )

    async def _finish_blocked(self, track: Track) -> None:
        doom = self._doom_all or track.org.doom
        if doom is not None:
            category, error = doom
            await self._finish(
                track,
                "failed",
                category=category,
                error=error,
                reason="not_submitted",
                stopped_because=f"{category}: {error.code} stops every build",
                journal=False,
            )
            return
        if self._stop_reason is None and self._clock() >= self._deadline_at:
            self._stop_reason = "deadline"
        await self._finish(
            track,
            "cancelled",
            category="cancelled",
            reason="not_submitted",
            stopped_because=self._stop_reason,
            journal=False,
        )

    async def _submit(self, track: Track) -> None:
        """POST until the build is known to exist exactly once, or the VM fails."""
        xml: str | None = None
        if track.request.uses_spec_xml:
            try:
                xml = self._spec_xml(track.request)  # built once, sent with every attempt
            except ValueError as exc:
                # a library caller's request the API could not read: fail it unsent
                error = ErrorInfo(code="invalid_spec", description=str(exc))
                await self._finish(track, "failed", category="invalid_spec", error=error)
                return
        while track.result is None:
            if self._blocked(track):
                await self._finish_blocked(track)
                return
            if track.uncertain and await self._reconcile(track):
                return
            if track.tries >= MAX_SUBMIT_ATTEMPTS:
                # an earlier POST may still have taken: never fail a VM that may
                # exist; watch its hostname until the build timeout instead
                self._give_up_watching(track)
                return
            now = self._clock()
            refused_for = now - track.refused_since if track.refused_since is not None else 0.0
            # an API that refuses without acting (429, connection refused) is
            # waited out as long as a build may take, then the VM fails unbuilt
            if refused_for > self._settings.build_timeout_seconds:
                await self._finish(
                    track,
                    "failed",
                    category=track.last_category or "network",
                    error=track.last_error,
                    stopped_because=f"the API refused every POST for {refused_for:.0f} s",
                )
                return
            track.attempts += 1
            self._set_phase(track, "submitting")
            if self._journal is not None:
                await self._journal.record_intent(track.key, attempt=track.attempts)
            self._emit("submitting", track)
            try:
                created = await self._post(track, xml)
            except RateLimited as exc:
                # a 429 means the server did not act: sending again is safe
                self._note_error(track, exc)
                self._refused_without_effect(track)
                self._emit("retrying", track, message=str(exc))
            except ApiError as exc:
                track.refused_since = None
                if await self._refused(track, exc):
                    return
            except TransportError as exc:
                self._note_error(track, exc)
                if exc.maybe_sent:
                    track.refused_since = None
                    await self._mark_uncertain(track, exc)
                else:
                    self._refused_without_effect(track)
                    self._emit("retrying", track, message=str(exc))
                    await self._backoff(track)
            else:
                await self._submitted(track, created)
                return

    def _refused_without_effect(self, track: Track) -> None:
        if track.refused_since is None:
            track.refused_since = self._clock()

    def _give_up_watching(self, track: Track) -> None:
        track.gave_up = True
        track.poll_kind = "hostname"
        self._set_phase(track, "building")
        self._emit(
            "reconciling",
            track,
            message=f"{track.tries} uncertain POSTs: watching the hostname until the timeout",
        )
        self._scheduler.poll_soon(track.key, group=track.group)

    @staticmethod
    def _spec_xml(req: VmRequest) -> str:
        """The build_from_spec XML of ``req``; ``ValueError`` for values it cannot carry."""
        return build_spec_xml(
            hostname=req.hostname,
            package=req.package,
            zone=req.zone,
            data_center=req.data_center,
            disk_template=req.disk_template,
            disk_template_options=req.disk_template_options,
            network=req.network,
            cpu_cores=req.cpu_cores,
            memory_gb=req.memory_gb,
            system_disk_gb=req.system_disk_gb,
            ssh_keys=req.ssh_keys,
            tags=req.tags,
            name=req.name,
            description=req.description,
            group=req.group,
        )

    async def _post(self, track: Track, xml: str | None) -> CreatedBuild:
        req = track.request
        annotations = {**req.annotations, **ownership_annotations(req.key, self._ownership.fleet)}
        if xml is not None:
            return await self._client.build_vm_from_spec(
                organization=req.organization, xml=xml, annotations=annotations
            )
        return await self._client.build_vm(
            organization=req.organization,
            package=req.package,
            hostname=req.hostname,
            zone=req.zone,
            data_center=req.data_center,
            disk_template=req.disk_template,
            disk_template_options=req.disk_template_options or None,
            network=req.network,
            annotations=annotations,
        )

    async def _refused(self, track: Track, exc: ApiError) -> bool:
        """Handle an error answer to a POST; True when the VM's fate is settled."""
        self._note_error(track, exc)
        if is_hostname_taken(exc):
            vm = await self._find_hostname(track)
            if track.result is not None:
                return True
            verdict: Verdict = (
                self._ownership.judge(track.key, vm.annotations) if vm is not None else "unknown"
            )
            if vm is not None and verdict != "theirs" and (verdict == "ours" or track.uncertain):
                self._take(track, vm)
                return True
            if vm is None and track.uncertain:
                # our earlier POST most likely took: wait for its VM to appear
                self._set_phase(track, "building")
                track.poll_kind = "hostname"
                track.submitted_clock = track.submitted_clock or self._clock()
                self._emit("reconciling", track, message="hostname taken after an uncertain POST")
                self._scheduler.poll_soon(track.key, group=track.group)
                return True
            await self._conflict(track, exc, "the API refused it as taken")
            return True
        if exc.outcome_uncertain:
            await self._mark_uncertain(track, exc)
            return False
        self._doom_for(track.org, exc)
        await self._finish(track, "failed", category=exc.category, error=error_info(exc))
        return True

    async def _submitted(self, track: Track, created: CreatedBuild) -> None:
        track.task_id = created.task.id
        track.build_id = created.build_id
        track.submitted_at = utcnow()
        track.submitted_clock = self._clock()
        track.poll_kind = "build" if track.build_id else "task"
        if self._journal is not None:
            await self._journal.record_submitted(
                track.key,
                task_id=track.task_id,
                build_id=track.build_id,
                submitted_at=track.submitted_at,
            )
        self._set_phase(track, "building")
        self._emit("submitted", track)
        self._scheduler.stretch(self._poll_stretch())
        self._scheduler.add(track.key, group=track.group, submitted_at=track.submitted_clock)

    async def _mark_uncertain(self, track: Track, exc: Exception) -> None:
        track.uncertain = True
        track.tries += 1
        track.last_post_clock = self._clock()
        if track.submitted_clock is None:
            track.submitted_clock = track.last_post_clock
        if self._journal is not None:
            await self._journal.record_uncertain(track.key, error=str(exc))
        self._emit("reconciling", track, message=str(exc))

    async def _reconcile(self, track: Track) -> bool:
        """After an uncertain POST: adopt the VM if it is there. True when adopted/settled.

        A hostname that is free now may still be taken by that POST's build
        later (on an API that takes it only with the VM record): it is looked
        up again once it has stayed free past the learned time builds take to
        show their VM, and only then is the POST sent again.
        """
        vm = await self._find_hostname(track)
        if vm is None and track.result is None:
            settle = self._appearance.settle_seconds()
            since = self._clock() - (track.last_post_clock or self._clock())
            if since < settle:
                self._emit(
                    "reconciling",
                    track,
                    message=f"hostname free; look again in {settle - since:.0f} s, then re-send",
                )
                await anyio.sleep(settle - since)
            vm = await self._find_hostname(track)
        if track.result is not None:
            return True
        if vm is None:
            return False
        if self._ownership.judge(track.key, vm.annotations) == "theirs":
            await self._conflict(track, None, "found by hostname after an uncertain POST")
            return True
        self._take(track, vm)
        return True

    def _take(self, track: Track, vm: VirtualMachine) -> None:
        """Adopt ``vm`` as this VM's and follow it until it has settled."""
        self._seen_vm(track, vm)
        self._adopt(track, vm.id)
        self._set_phase(track, "building")
        self._scheduler.poll_soon(track.key, group=track.group)

    async def _find_hostname(self, track: Track, *, quiet: bool = True) -> VirtualMachine | None:
        """The VM with this VM's hostname (with its annotations), or None.

        Fails the VM on hard errors. A lookup that got no usable answer (429,
        5xx, transport) gives None too, unless ``quiet`` is false: then its
        error is raised, so that a poll can tell "not there" from "could not look".
        """
        fqdn = track.org.fqdn(track.key)
        if fqdn is not None:
            return await self._look_up(track, Lookup("fqdn", fqdn), quiet=quiet)

        async def scan() -> str | None:
            async for vm in self._client.list_vms(track.org.lookup):
                if vm.hostname and vm.hostname.lower() == track.key:
                    return vm.id
            return None

        try:
            vm_id = await retry_get(scan, **self._retry)
        except (ApiError, TransportError) as exc:
            await self._lookup_failed(track, exc, quiet=quiet)
            return None
        if vm_id is None:
            return None
        return await self._look_up(track, Lookup("id", vm_id), quiet=quiet)

    async def _look_up(
        self, track: Track, lookup: Lookup, *, quiet: bool = True
    ) -> VirtualMachine | None:
        """``GET`` one VM (with retries); None when it is not there or could not be read."""
        try:
            return await retry_get(lambda: self._client.get_vm(lookup), **self._retry)
        except NotFound:
            return None
        except (ApiError, TransportError) as exc:
            await self._lookup_failed(track, exc, quiet=quiet)
            return None

    async def _lookup_failed(
        self, track: Track, exc: ApiError | TransportError, *, quiet: bool
    ) -> None:
        if isinstance(exc, ApiError) and exc.code == "object_in_trash":
            await self._finish(
                track,
                "failed",
                category="conflict",
                error=error_info(exc),
                reason="hostname_in_trash",
            )
            return
        self._note_error(track, exc)
        if isinstance(exc, ApiError):
            self._doom_for(track.org, exc)
        if not quiet and is_retryable(exc):
            raise exc

    def _adopt(self, track: Track, vm_id: str) -> None:
        track.vm_id = vm_id
        track.fqdn = track.org.fqdn(track.key)
        track.adopted = True
        track.poll_kind = "vm"
        if track.submitted_clock is None:
            track.submitted_clock = self._clock()
        self._emit("adopted", track)

    async def _backoff(self, track: Track) -> None:
        base = self._settings.poll_min_seconds * (2 ** max(track.attempts - 1, 0))
        await anyio.sleep(min(base, self._settings.poll_max_seconds) * random.uniform(0.5, 1.0))

    def _note_error(self, track: Track, exc: Exception) -> None:
        track.last_error = error_info(exc)
        track.last_category = exc.category if isinstance(exc, ApiError | TransportError) else None

    def _doom_for(self, org: OrgContext, exc: ApiError, *, force_org: bool = False) -> None:
        """Remember a failure that dooms every later build of the run or organization."""
        doom = (exc.category, error_info(exc))
        if exc.code in _DOOM_RUN or exc.category == "auth":
            if self._doom_all is None:
                self._doom_all = doom
                self._log.error("orchestrator.run.doomed", error=str(exc))
        elif (exc.code in _DOOM_ORG or force_org) and org.doom is None:
            org.doom = doom
            self._log.error(
                "orchestrator.org.doomed", organization=org.lookup.value, error=str(exc)
            )

    # ---------------------------------------------------------------- polling

    async def _poll_loop(self) -> None:
        """One loop for every build in flight: poll whatever the scheduler says is due."""
        async with anyio.create_task_group() as tg:
            while True:
                await self._scheduler.wait()
                for key in self._scheduler.due():
                    track = self._tracks[key]
                    if track.result is not None:
                        continue
                    await self._poll_slots.acquire()
                    tg.start_soon(self._poll_one, track)

    async def _poll_one(self, track: Track) -> None:
        kind = track.poll_kind
        try:
            answered = await self._poll_or_fail(track)
        finally:
            self._poll_slots.release()
        # A timeout is judged on evidence, never instead of a poll: a build whose
        # polls were held (429s, an outage) may well have finished meanwhile. It
        # takes an answer saying "not finished", or polls failing for longer than
        # the retry deadline past the timeout. A poll that changed what to poll
        # (adopted a VM found by hostname, a task that named its build) is
        # followed at once by the poll that tells.
        if track.result is not None or track.poll_kind != kind:
            return
        grace = 0.0 if answered else self._settings.retry_deadline_seconds
        if self._timed_out(track, grace=grace) and track.gave_up:
            await self._finish(
                track,
                "failed",
                category=track.last_category or "server_error",
                error=track.last_error,
                stopped_because=(
                    f"gave up after {track.tries} uncertain POSTs; the hostname did not "
                    "appear within build_timeout_seconds"
                ),
            )
        elif self._timed_out(track, grace=grace):
            await self._finish(
                track,
                "failed",
                category="timeout",
                error=ErrorInfo(
                    code="build_timeout",
                    description=(
                        f"not finished after {self._settings.build_timeout_seconds:g} s; "
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
            await self._poll(track)
        except NotFound as exc:
            track.poll_errors += 1
            self._note_error(track, exc)
            if track.poll_errors >= MAX_POLL_NOT_FOUND:
                await self._finish(track, "failed", category="not_found", error=error_info(exc))
            else:
                self._repoll(track)
        except (RateLimited, ServerError, TransportError, UnexpectedResponse) as exc:
            track.poll_errors += 1
            self._note_error(track, exc)
            self._repoll(track)
            return False
        except ApiError as exc:
            self._doom_for(track.org, exc)
            await self._finish(track, "failed", category=exc.category, error=error_info(exc))
        return True

    def _poll_stretch(self) -> float:
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
            self._clock() - started > self._settings.build_timeout_seconds + grace
        )

    def _repoll(self, track: Track, *, progress: float | None = None, soon: bool = False) -> None:
        if track.result is not None:
            return
        if soon:
            self._scheduler.poll_soon(track.key, group=track.group)
        else:
            self._scheduler.polled(track.key, progress=progress)

    async def _poll(self, track: Track) -> None:
        kind = track.poll_kind
        if kind == "build" and track.build_id:
            build = await self._client.get_build(track.build_id)
            track.poll_errors = 0
            vm = build.virtual_machine
            if vm is not None:
                self._seen_vm(track, vm)
                await self._vm_appeared(track)
            if build.state == "complete" and vm is not None:
                await self._built(track, vm.state)
            elif build.state == "failed":
                left = (
                    f"; it left virtual machine {vm.id} in state {vm.state or 'unknown'}: "
                    "delete it before it can be rebuilt"
                    if vm is not None
                    else ""
                )
                await self._build_failed(track, f"build {track.build_id} ended failed{left}")
            else:
                self._emit("building", track)
                self._repoll(track)
        elif kind in ("build", "task") and track.task_id:
            task = await self._client.get_task(track.task_id)
            track.poll_errors = 0
            if task.status == "completed":
                if track.build_id:
                    track.poll_kind = "build"
                    self._repoll(track, soon=True)
                else:
                    await self._succeed(track)
            elif task.status == "failed":
                await self._build_failed(track, f"task {track.task_id} ended failed")
            else:
                self._emit("building", track)
                progress = task.progress / 100 if task.progress is not None else None
                self._repoll(track, progress=progress)
        elif kind == "vm" and track.vm_id:
            vm_id = track.vm_id
            vm = await self._client.get_vm(Lookup("id", vm_id))
            track.poll_errors = 0
            self._seen_vm(track, vm)
            if vm.state == "failed":
                await self._build_failed(track, f"virtual machine {vm.id} is in state failed")
            elif vm.state in self._settled_states():
                await self._succeed(track)
            else:
                self._emit("building", track)
                self._repoll(track)
        elif kind == "hostname":
            found = await self._find_hostname(track, quiet=False)
            if track.result is not None:
                return
            if found is None:
                self._repoll(track)
            elif self._ownership.judge(track.key, found.annotations) == "theirs":
                await self._conflict(track, None, "it appeared while its hostname was watched")
            else:
                self._seen_vm(track, found)
                self._adopt(track, found.id)
                self._repoll(track, soon=True)
        else:  # pragma: no cover - every track that polls has an id
            raise AssertionError("unreachable")

    async def _vm_appeared(self, track: Track) -> None:
        """A build of this run showed its VM: learn when, and (once) whether annotations stick."""
        if track.vm_seen:
            return
        track.vm_seen = True
        if track.submitted_clock is not None and not track.adopted:
            self._appearance.observe(self._clock() - track.submitted_clock)
        if self._ownership.copied is not None or self._probing_ownership or track.vm_id is None:
            return
        self._probing_ownership = True
        try:
            vm = await retry_get(
                lambda: self._client.get_vm(Lookup("id", track.vm_id or "")), **self._retry
            )
        except (ApiError, TransportError) as exc:
            self._log.info("orchestrator.ownership.unknown", error=str(exc))
            self._probing_ownership = False  # another VM will tell
            return
        self._ownership.learn_from_own_build(track.key, vm.annotations)
        self._log.info(
            "orchestrator.ownership.learned",
            verifiable=self._ownership.copied,
            evidence=self._ownership.evidence,
        )

    def _settled_states(self) -> frozenset[str]:
        return frozenset({"started"}) if self._settings.wait_until_started else _VM_SETTLED

    async def _built(self, track: Track, vm_state: str | None) -> None:
        if track.submitted_clock is not None:
            duration = self._clock() - track.submitted_clock
            if track.key in self._scheduler and self._scheduler.polls(track.key) == 0:
                # Seen done at its first poll: the build took *at most* this long,
                # and the poll itself may have waited for the budget. Learning the
                # full span would feed every wait back into later first polls
                # (polls later, builds seen later, durations longer...).
                duration = min(duration, self._scheduler.durations.expected(track.group))
            self._scheduler.completed(track.key, group=track.group, duration=duration)
        if self._settings.wait_until_started and vm_state != "started":
            track.poll_kind = "vm"
            self._repoll(track, soon=True)
            return
        await self._succeed(track)

    async def _succeed(self, track: Track) -> None:
        await self._finish(track, "succeeded", reason="adopted" if track.adopted else None)

    async def _build_failed(self, track: Track, description: str) -> None:
        error = ErrorInfo(code="build_failed", description=description)
        await self._finish(track, "failed", category="build_failed", error=error)

    # --------------------------------------------------------------- results

    async def _finish_interrupted(self, track: Track) -> None:
        reason = {
            "queued": "not_submitted",
            "submitting": "submission_outcome_unknown",
            "building": "build_in_progress",
        }.get(track.phase, "interrupted")
        await self._finish(
            track,
            "cancelled",
            category="cancelled",
            reason=reason,
            error=track.last_error,
            stopped_because=self._stop_reason or "interrupted",
            journal=False,
        )

    def _settle(self, track: Track, result: VmResult) -> None:
        track.result = result
        self._set_phase(track, "done")
        self._outcomes[result.outcome] += 1
        track.done.set()

    async def _finish(
        self,
        track: Track,
        outcome: Outcome,
        *,
        category: Category | None = None,
        error: ErrorInfo | None = None,
        reason: str | None = None,
        stopped_because: str | None = None,
        journal: bool = True,
    ) -> None:
        if track.result is not None:
            return
        result = track.make_result(
            outcome,
            category=category,
            error=error,
            reason=reason,
            stopped_because=stopped_because,
        )
        self._scheduler.remove(track.key)
        self._settle(track, result)
        kind: EventKind = outcome
        self._emit(kind, track, category=category, message=error.description if error else reason)
        if outcome == "failed" and journal:
            self._failures += 1
            limit = self._settings.max_failures
            if limit is not None and self._failures >= limit and self._stop_reason is None:
                self._stop_reason = "max_failures"
                self._log.warning("orchestrator.run.max_failures", failures=self._failures)
        if journal and self._journal is not None:
            with anyio.CancelScope(shield=True):
                await self._journal.record_finished(track.key, result)

    def _set_phase(self, track: Track, phase: Phase) -> None:
        if track.phase != phase:
            self._phases[track.phase] -= 1
            self._phases[phase] += 1
            track.phase = phase

    def _emit(
        self,
        kind: EventKind,
        track: Track,
        *,
        category: str | None = None,
        message: str | None = None,
    ) -> None:
        event = ProvisionEvent(
            kind=kind,
            key=track.key,
            hostname=track.hostname,
            at=self._clock(),
            task_id=track.task_id,
            build_id=track.build_id,
            vm_id=track.vm_id,
            category=category,
            message=message,
            attempt=track.attempts,
        )
        log = self._log.debug if kind in ("building", "submitting", "queued") else self._log.info
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
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                self._log.exception("orchestrator.hook.failed", hook=repr(hook))
