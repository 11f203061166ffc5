"""The library entry point: ``async with Orchestrator(settings) as orch: await orch.run(spec)``."""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator._logging import get_logger
from orchestrator.engine._addresses import add_addresses
from orchestrator.engine._delete import DeleteOperation
from orchestrator.engine._gc import fewer_collections
from orchestrator.engine._loop import loop_time
from orchestrator.engine._ownership import default_fleet
from orchestrator.engine._preflight import RunStopped, preflight, settled_keys
from orchestrator.engine._references import Checked
from orchestrator.engine._report_facts import with_build_facts
from orchestrator.engine._runner import OperationFactory, Run
from orchestrator.engine._spec_drift import (
    moved_organization,
    spec_changes,
    spec_of,
    with_spec_changes,
)
from orchestrator.engine._track import error_info, utcnow
from orchestrator.engine._windows import WindowLog
from orchestrator.engine.budget import BudgetStatistics, RateBudget
from orchestrator.engine.events import EngineStatistics, ProgressHook, ProvisionEvent
from orchestrator.engine.scheduler import DurationModel, PollScheduler
from orchestrator.engine.state._meta import new_fleet_id
from orchestrator.engine.state._pg import need_fleet
from orchestrator.engine.state.fate import row_of
from orchestrator.engine.state.fleet_lock import FleetLock
from orchestrator.engine.state.journal import FleetClaim, Journal, read_journal
from orchestrator.engine.state.location import (
    JournalLike,
    PostgresState,
    parse_state,
    same_state,
)
from orchestrator.errors import (
    ApiError,
    Category,
    ConfigError,
    JournalError,
    NoJournal,
    TransportError,
)
from orchestrator.katapult import KatapultClient, Timeouts
from orchestrator.report import (
    ApiInfo,
    ErrorInfo,
    Report,
    RequestCounts,
    SpecChange,
    SpecInfo,
    VmResult,
)
from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from orchestrator.katapult import Transport
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec

__all__ = ["Orchestrator"]

_log = get_logger("orchestrator.engine")

#: (API URL, organization) of every run in progress in this process
_ORGANIZATIONS_IN_RUNS: set[tuple[str, str]] = set()


async def _stop_at_deadline(run: Run, at: float) -> None:
    """``--deadline``: at ``at``, stop the run as a signal would. Nothing more is
    submitted or polled; builds in flight stay in the journal (a rerun follows them)
    and end ``cancelled``/``build_in_progress`` in the report, with their ids."""
    await anyio.sleep_until(at)
    _log.warning("orchestrator.run.deadline", message="deadline reached: stopping the run")
    run.request_stop("deadline")


class Orchestrator:
    """Provisions the VMs of a spec exactly once, paced by the API's rate budget.

    One instance holds one HTTP session and one rate budget; runs made with it
    share both. Progress can be followed with ``hooks`` (called for every
    :class:`ProvisionEvent`) or by iterating :meth:`events`. Settings without an
    API token raise :class:`ConfigError` (no request could succeed).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        hooks: Sequence[ProgressHook] = (),
    ) -> None:
        self._settings = settings
        engine = settings.engine
        # wall_clock lets the budget guess the real API's minute-aligned windows
        # before it has seen one reset; it never makes it send more than allowed
        self._budget = RateBudget(
            window_seconds=engine.rate_window_seconds,
            wall_clock=time.time,
            share=engine.budget_share,
        )
        #: the budget per window, for the report (it passes every request on to the budget)
        self._windows = WindowLog(self._budget)
        token = settings.katapult.api_token
        if token is None:
            # every request would be refused (missing_api_token): say so now, as the CLI does
            raise ConfigError(
                "katapult.api_token is not set: set KATAPULT_API_KEY, or pass "
                "Settings(katapult=KatapultSettings(api_token=...))"
            )
        self._client = KatapultClient(
            api_url=settings.katapult.api_url,
            token=token,
            transport=transport,
            timeouts=Timeouts(
                connect=engine.connect_timeout_seconds,
                read=engine.read_timeout_seconds,
                total=engine.connect_timeout_seconds + engine.read_timeout_seconds,
            ),
            gate=self._windows,
        )
        self._hooks: list[ProgressHook] = [*hooks, self._publish]
        self._streams: list[MemoryObjectSendStream[ProvisionEvent]] = []
        #: streams of run_events(): closed when the run in progress (or the next) ends
        self._run_streams: list[MemoryObjectSendStream[ProvisionEvent]] = []
        self._run: Run | None = None
        self._stop_requested = False
        self._addresses_scope: anyio.CancelScope | None = None
        self._entered = False
        self._running = False

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session and every event stream."""
        self._entered = False
        for stream in [*self._streams, *self._run_streams]:
            stream.close()
        self._streams.clear()
        self._run_streams.clear()
        with anyio.CancelScope(shield=True):
            await self._client.aclose()

    @property
    def settings(self) -> Settings:
        """The settings this orchestrator was made with."""
        return self._settings

    @property
    def client(self) -> KatapultClient:
        """The API client (with the shared rate budget) this orchestrator uses."""
        return self._client

    def events(self) -> MemoryObjectReceiveStream[ProvisionEvent]:
        """A stream of every event from now on, of every run; it ends when the
        orchestrator is closed. Iterate it with ``async for``."""
        send, receive = anyio.create_memory_object_stream[ProvisionEvent](math.inf)
        self._streams.append(send)
        return receive

    def run_events(self) -> MemoryObjectReceiveStream[ProvisionEvent]:
        """A stream of the events of one run: the run in progress, or else the next one
        to start. It ends when that run ends (or the orchestrator is closed)."""
        send, receive = anyio.create_memory_object_stream[ProvisionEvent](math.inf)
        self._run_streams.append(send)
        return receive

    def _publish(self, event: ProvisionEvent) -> None:
        for stream in [*self._streams, *self._run_streams]:
            try:
                stream.send_nowait(event)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                continue

    def request_stop(self, reason: str = "interrupted") -> None:
        """Graceful stop: no new builds; what is in flight is reported ``cancelled``."""
        self._stop_requested = True
        if self._run is not None:
            self._run.request_stop(reason)
        if self._addresses_scope is not None:
            self._addresses_scope.cancel()

    def statistics(self) -> EngineStatistics | None:
        """A snapshot of the current run's progress (None before a run starts)."""
        return self._run.statistics() if self._run is not None else None

    def budget_statistics(self) -> BudgetStatistics:
        """What the shared rate budget knows now (permitted, remaining, window)."""
        return self._budget.statistics()

    @property
    def current_run(self) -> Run | None:
        """The run in progress or last finished."""
        return self._run

    async def run(
        self,
        spec: Spec | Sequence[VmRequest],
        *,
        journal: JournalLike | None = None,
        only_keys: set[str] | None = None,
        spec_path: str | None = None,
        spec_sha256: str | None = None,
        fleet: str | None = None,
        operation: OperationFactory | None = None,
        journal_rebind: bool = False,
        state: JournalLike | None = None,
    ) -> Report:
        """Provision every VM of ``spec``; return the report (never raises for a VM's failure).

        ``journal`` names the fleet's state, to resume from and write ahead to
        (None: no journal): the path of an SQLite journal, or a
        ``postgresql://`` URL (or :class:`PostgresState`) of a database that
        keeps every named fleet's journal and lock; ``state`` is another name
        for it. ``destroy`` shares it. ``only_keys``
        limits building to those VMs (``--retry-failed``); the others are
        ``skipped``/``not_selected`` (builds of theirs in flight are followed).
        ``fleet`` names the fleet in the ownership annotations every build
        carries (default: the spec's ``fleet``; unnamed, the journal's fleet,
        made at its first build; without a journal, an identity of this run's
        own, so that nothing unnamed is ever another's). ``operation`` drives
        the VMs through another operation than a build (see :meth:`destroy`).
        ``journal_rebind`` uses a journal written against another API URL or
        organization, or one that lost records (otherwise refused with
        :class:`JournalError`).

        One run at a time: a second ``run`` while one is in progress on this
        orchestrator, or on any orchestrator of this process for the same
        organization of the same API, raises ``RuntimeError`` (two runs would
        each build the VMs the other is building). Only inside ``async with``.
        """
        if not self._entered:
            raise RuntimeError(
                "use the Orchestrator inside `async with Orchestrator(settings) as orch:` "
                "(it holds an HTTP session that must be closed)"
            )
        if self._running:
            raise RuntimeError("a run is already in progress on this Orchestrator")
        journal = _one_state(journal, state)
        self._running = True
        try:
            with fewer_collections():
                return await self._run_once(
                    spec,
                    journal=journal,
                    only_keys=only_keys,
                    spec_path=spec_path,
                    spec_sha256=spec_sha256,
                    fleet=fleet,
                    operation=operation,
                    journal_rebind=journal_rebind,
                )
        finally:
            self._running = False

    async def _run_once(
        self,
        spec: Spec | Sequence[VmRequest],
        *,
        journal: JournalLike | None,
        only_keys: set[str] | None,
        spec_path: str | None,
        spec_sha256: str | None,
        fleet: str | None,
        operation: OperationFactory | None,
        journal_rebind: bool,
    ) -> Report:
        if isinstance(spec, Sequence):
            requests = list(spec)
            path = spec_path or "<library>"
            sha = spec_sha256 or ""
        else:
            requests = list(spec.vms)
            path, sha = spec.path, spec.sha256
            fleet = fleet or spec.fleet
        if journal is not None:
            location = parse_state(journal)
            if isinstance(location, PostgresState):
                need_fleet(location, fleet)  # before anything is sent
        run_id = uuid.uuid4().hex[:16]
        started = utcnow()
        base_total = self._client.requests_total
        base_limited = self._client.rate_limited_total
        started_clock = loop_time()  # the same moment as started, for the budget's windows
        self._windows.start()
        engine = self._settings.engine
        scheduler = PollScheduler(
            poll_min=engine.poll_min_seconds,
            poll_max=engine.poll_max_seconds,
            # first polls aim at the p95 of the durations learned: a poll that
            # comes too early costs a request, one a little late only seconds
            durations=DurationModel(default_seconds=engine.expected_build_seconds, quantile=0.95),
            # a few builds of each group are polled closely: they measure how
            # long builds really take, faster or slower than expected
            follow=3,
            follow_every=100,
            # a build missed at the p95 is among the slowest: look again soon
            first_retry=0.1,
        )
        self._stop_requested = False
        api_url = self._settings.katapult.api_url
        organizations = {(api_url, r.organization.value) for r in requests}
        # checked and taken with no await in between: two orchestrators of this process
        # started together cannot both pass the check
        busy = organizations & _ORGANIZATIONS_IN_RUNS
        if busy:
            names = ", ".join(sorted(org for _, org in busy))
            raise RuntimeError(
                f"another run of this process is working on VMs of {names} on {api_url}: "
                "one run at a time per organization"
            )
        _ORGANIZATIONS_IN_RUNS.update(organizations)
        try:
            checked = Checked(requests=requests)
            doomed: tuple[Category, ErrorInfo] | None = None
            if operation is None:
                # everything a build needs, checked before anything is sent, as plan does:
                # a problem raises SpecError; a refused token or an API that cannot be
                # reached stops the run (every VM reported not submitted)
                checked, doomed = await self._preflight(requests, only_keys, path, journal, fleet)
            requests = checked.requests
            run, results, changes = await self._execute(
                requests,
                journal,
                sha=sha,
                run_id=run_id,
                scheduler=scheduler,
                only_keys=only_keys,
                rebind=journal_rebind,
                fleet=FleetClaim(named=fleet, legacy=default_fleet(path)),
                operation=operation,
                refused=checked.refused(),
                doomed=doomed,
            )
        finally:
            _ORGANIZATIONS_IN_RUNS.difference_update(organizations)
            for stream in self._run_streams:
                stream.close()
            self._run_streams.clear()
        for key, found in changes.items():
            _log.warning(
                "orchestrator.vm.spec_changed",
                key=key,
                changes=[f"{c.field}: built {c.built}, spec {c.spec}" for c in found],
                message="not rebuilt: the spec differs from what the VM was built with",
            )
        results = with_spec_changes(results, changes)
        results = await self._with_addresses(requests, results)
        results = with_build_facts(results, requests, run.first_seen)
        organization = self._settings.katapult.organization
        if organization is None and requests:
            organization = requests[0].organization.value
        return Report.build(
            run_id=run_id,
            started_at=started,
            finished_at=utcnow(),
            spec=SpecInfo(path=path, sha256=sha),
            api=ApiInfo(url=self._settings.katapult.api_url, organization=organization),
            vms=results,
            requests=RequestCounts(
                total=self._client.requests_total - base_total,
                rate_limited=self._client.rate_limited_total - base_limited,
            ),
            interrupted=run.stopped_because is not None,
            stopped_because=run.stopped_because,
            removed_from_spec=run.removed_from_spec,
            ownership=run.ownership,
            readings=run.readings,
            operation=run.operation_kind,
            budget=self._windows.windows(started_clock=started_clock, started_wall=started),
        )

    async def _preflight(
        self,
        requests: list[VmRequest],
        only_keys: set[str] | None,
        path: str,
        journal: JournalLike | None,
        fleet: str | None,
    ) -> tuple[Checked, tuple[Category, ErrorInfo] | None]:
        """The requests as checked (SSH keys resolved), or what stops the whole run.

        Only the VMs this run may send a build for are checked: selected
        (``only_keys``), and not already built or building by the journal's
        records; the others keep their requests as they are.
        """
        settled = await anyio.to_thread.run_sync(settled_keys, journal, fleet)
        selected = [
            r
            for r in requests
            if (only_keys is None or r.key in only_keys) and r.key not in settled
        ]
        if not selected:
            return Checked(requests=requests), None
        try:
            found = await preflight(
                self._client,
                selected,
                spec_path=path,
                deadline_seconds=self._settings.engine.retry_deadline_seconds,
            )
        except (ApiError, TransportError) as exc:
            return Checked(requests=requests), (exc.category, error_info(exc))
        except RunStopped as stopped:
            return Checked(requests=requests), (stopped.category, stopped.error)
        resolved = {r.key: r for r in found.checked.requests}
        checked = Checked(
            requests=[resolved.get(r.key, r) for r in requests],
            problems=found.checked.problems,
            unreadable=found.checked.unreadable,
        )
        return checked, None

    async def _execute(
        self,
        requests: list[VmRequest],
        journal: JournalLike | None,
        *,
        sha: str,
        run_id: str,
        scheduler: PollScheduler,
        only_keys: set[str] | None,
        rebind: bool,
        fleet: FleetClaim,
        operation: OperationFactory | None,
        refused: Mapping[str, tuple[Category, ErrorInfo]],
        doomed: tuple[Category, ErrorInfo] | None,
    ) -> tuple[Run, list[VmResult], dict[str, list[SpecChange]]]:
        """Open the journal (checked against the spec), run, close the journal."""
        started = anyio.current_time()
        opened: Journal | None = None
        changes: dict[str, list[SpecChange]] = {}
        if journal is not None:
            opened = await Journal.open(
                parse_state(journal),
                spec_sha256=sha,
                run_id=run_id,
                api_url=self._settings.katapult.api_url,
                rebind=rebind,
                table="vms" if operation is None else "deletes",
                fleet=fleet,
            )
        # the fleet's identity: the journal's (it refused another), else the name given,
        # else one of its own for this run (an unnamed fleet without a journal)
        fleet_id = opened.fleet if opened is not None else fleet.named or new_fleet_id(fleet.legacy)
        holder = {"pid": os.getpid(), "run_id": run_id, "started_at": utcnow().isoformat()}
        try:
            fleet_lock = await anyio.to_thread.run_sync(
                FleetLock.acquire,
                self._settings.katapult.api_url,
                {r.organization.value for r in requests},
                fleet_id,
                holder,
            )
        except JournalError:
            if opened is not None:
                with anyio.CancelScope(shield=True):
                    await opened.close()
            raise
        try:
            if opened is not None and operation is None:
                # what each build asks for, and where the spec left what was built
                opened.describe({r.key: spec_of(r) for r in requests})
                changes = spec_changes(requests, await opened.entries())
                moved = moved_organization(changes)
                if moved and not rebind:
                    raise JournalError(
                        f"journal {opened.path} holds VMs built in another organization "
                        f"than the spec says: {', '.join(moved[:5])}"
                        + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
                        + ". Use another --journal, or pass --journal-rebind to use it anyway"
                    )
            run = self._run = Run(
                requests,
                client=self._client,
                budget=self._budget,
                scheduler=scheduler,
                settings=self._settings.engine,
                journal=opened,
                hooks=self._hooks,
                run_id=run_id,
                only_keys=only_keys,
                fleet=fleet_id,
                operation=operation,
                refused=refused,
                doomed=doomed,
            )
            deadline = self._settings.engine.deadline_seconds
            async with anyio.create_task_group() as tg:
                if deadline is not None:
                    tg.start_soon(_stop_at_deadline, run, started + deadline)
                results = await run.execute()
                tg.cancel_scope.cancel()
        finally:
            fleet_lock.release()
            if opened is not None:
                with anyio.CancelScope(shield=True):
                    await opened.close()
        return run, results, changes

    async def _with_addresses(
        self, requests: Sequence[VmRequest], results: list[VmResult]
    ) -> list[VmResult]:
        """``results`` with the built VMs' addresses (the fleet's VM list, or what is cheaper).

        Only after builds (not a destroy); skipped when the run was stopped by
        the user or by a refused token; a stop requested meanwhile cancels it,
        and the results stay as they were.
        """
        run = self._run
        if run is None or run.operation_kind != "build":
            return results
        if self._stop_requested or run.doomed_run is not None:
            return results
        engine = self._settings.engine
        filled = results
        with anyio.CancelScope() as scope:
            self._addresses_scope = scope
            try:
                filled = await add_addresses(
                    self._client,
                    results,
                    {req.key: req.organization for req in requests},
                    deadline_seconds=engine.retry_deadline_seconds,
                    wait_initial=min(0.2, engine.poll_min_seconds),
                    wait_max=min(10.0, engine.poll_max_seconds),
                    sources=run.address_sources(),
                )
            finally:
                self._addresses_scope = None
        return filled

    async def prune(
        self,
        spec: Spec | Sequence[VmRequest],
        *,
        journal: JournalLike,
        purge: bool = False,
        fleet: str | None = None,
    ) -> Report | None:
        """Delete the fleet's VMs that ``spec`` no longer lists (``run --prune``).

        Which VMs: those the fleet's ``journal`` recorded its own builds creating
        (or having in flight) under a key the spec no longer has. They go through
        :meth:`destroy`, under its ownership rules (annotations, or this very VM
        created by this fleet's build: never a hostname alone). None when there
        is nothing to prune.
        """
        keys = {r.key for r in (spec if isinstance(spec, Sequence) else spec.vms)}
        if fleet is None and not isinstance(spec, Sequence):
            fleet = spec.fleet
        removed = await anyio.to_thread.run_sync(_removed_requests, journal, keys, fleet)
        if not removed:
            return None
        return await self.destroy(removed, journal=journal, purge=purge, fleet=fleet)

    async def destroy(
        self,
        spec: Spec | Sequence[VmRequest],
        *,
        journal: JournalLike | None = None,
        build_journal: JournalLike | None = None,
        purge: bool = False,
        only_keys: set[str] | None = None,
        spec_path: str | None = None,
        spec_sha256: str | None = None,
        fleet: str | None = None,
        state: JournalLike | None = None,
    ) -> Report:
        """Delete the VMs of ``spec`` that this fleet built, and only those; return the report.

        ``journal`` is the fleet's journal, the one its runs wrote (run and
        destroy share it, and its lock: a destroy while a run of the fleet holds
        it is refused with :class:`JournalError`). A VM is this fleet's when its
        annotations carry the fleet's identity or, where the API keeps no
        annotations, when the journal recorded that this fleet's own accepted
        build created this very VM. Never on the strength of a hostname, a VM a
        run *found*, or a delete's own rows. Any other VM with a spec hostname
        is left untouched and reported ``failed``/``conflict`` (``not_ours``).
        Builds the journal has in flight are followed until their VM can be
        deleted (within the build timeout). ``purge`` also purges each VM from
        the trash, which frees its hostname. ``build_journal`` is the older name
        of ``journal``, and ``state`` another (as for :meth:`run`: a path or a
        ``postgresql://`` URL). Uses the same rate budget, reconciliation and
        report as :meth:`run`.
        """
        journal = _one_state(journal, state)
        if (
            build_journal is not None
            and journal is not None
            and not same_state(build_journal, journal)
        ):
            raise JournalError(
                "a fleet has one journal: run and destroy share it (pass it as journal=); "
                f"{build_journal} and {journal} differ"
            )
        journal = journal if journal is not None else build_journal

        def deleting(run: Run) -> DeleteOperation:
            return DeleteOperation(run, fleet=run.fleet, purge=purge, only_keys=only_keys)

        return await self.run(
            spec,
            journal=journal,
            spec_path=spec_path,
            spec_sha256=spec_sha256,
            fleet=fleet,
            operation=deleting,
        )


def _one_state(journal: JournalLike | None, state: JournalLike | None) -> JournalLike | None:
    """The fleet's state, given as ``journal=`` or ``state=`` (not two different ones)."""
    if journal is not None and state is not None and not same_state(journal, state):
        raise JournalError(
            f"journal= and state= name the same thing, and differ: {parse_state(journal)} "
            f"and {parse_state(state)}"
        )
    return journal if journal is not None else state


def _removed_requests(journal: JournalLike, keys: set[str], fleet: str | None) -> list[VmRequest]:
    """What to delete for the journal's built VMs whose key is not in ``keys``: enough of
    each request (organization, hostname) for a delete, from what its build asked for."""
    try:
        snapshot = read_journal(journal, fleet=fleet)
    except NoJournal:
        return []
    out: list[VmRequest] = []
    for entry in snapshot.entries:
        row = row_of(entry)
        if entry.key in keys or entry.built_with is None:
            continue
        if row.created is None and row.fact != "accepted":
            continue
        built = entry.built_with
        org = built.get("organization", "")
        out.append(
            VmRequest(
                key=entry.key,
                hostname=entry.hostname,
                organization=Lookup("id" if org.startswith("org_") else "sub_domain", org),
                # (only the organization and hostname matter to a delete)
                package=Lookup("permalink", built.get("package") or "?"),
                data_center=Lookup("permalink", built.get("location") or "?"),
            )
        )
    return out
