"""``plan``: a dry run checked against the API. Resolves, counts, estimates; never POSTs."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from orchestrator.engine._concurrency import in_flight_for
from orchestrator.engine._fleet_listing import FleetFinder
from orchestrator.engine._ownership import Ownership
from orchestrator.engine._readings import found_readings
from orchestrator.engine._references import Checked, check_references
from orchestrator.engine._retry import retry_get
from orchestrator.engine._spec_drift import spec_changes
from orchestrator.engine.state._model import JournalEntry
from orchestrator.engine.state.fate import Seen, build_fate, delete_fate, row_of, seen_of
from orchestrator.errors import ApiError, NotFound, OrchestratorError, PermissionDenied
from orchestrator.katapult import KatapultClient, VirtualMachine
from orchestrator.katapult._page_size import WIDE as VM_LIST_PAGE
from orchestrator.report import ApiReading
from orchestrator.vm_request import Lookup, VmRequest

__all__ = ["FATE_LABELS", "LookupProblem", "Plan", "make_plan", "preview_fates"]

#: VMs looked at at once by a plan (one GET each: its state and annotations)
_LOOKS_AT_ONCE = 16

_FIELDS = ("zone", "data_center", "package", "disk_template", "network")
#: organization states that make its VMs a plan problem (not a refused token)
_ORG_STATES = frozenset({"organization_suspended", "organization_not_activated"})


@dataclass(frozen=True, slots=True)
class LookupProblem:
    """A lookup of the spec that names nothing on the API (or a quota that would be hit)."""

    field: str
    value: str
    message: str
    hostnames: tuple[str, ...] = ()


#: how plan names each decision of :func:`build_fate`, in the order it shows them
FATE_LABELS: dict[str, str] = {
    "submit": "to build",
    "reconcile": "to build unless an earlier POST of the fleet took (looked up first)",
    "follow_build": "being built (followed)",
    "follow_vm": "being built (followed)",
    "ours": "up to date",
    "drift": "drift: differs from what was built (not rebuilt)",
    "held_by_trash": "held by the trash (orchestrator destroy --purge frees it)",
    "conflict": "another fleet's (not touched; name that fleet to adopt it)",
    "not_ours": "exists, not provably this fleet's (not touched)",
    "broken": "failed: delete it first (orchestrator destroy --limit HOSTNAME)",
}


@dataclass(slots=True)
class Plan:
    """What ``run`` would do: build, skip, and what stands in the way.

    ``fates`` is the run's own decision for each VM (:func:`build_fate`, from what
    the API holds and what the fleet's journal remembers), ``drift`` the fields
    that differ from what each VM was built with, ``removed`` the fleet's VMs
    that the spec no longer lists.
    """

    to_build: list[VmRequest] = field(default_factory=list)
    existing: list[tuple[VmRequest, str]] = field(default_factory=list)
    problems: list[LookupProblem] = field(default_factory=list)
    #: the fleet planned for (its identity), None when it has none yet
    fleet: str | None = None
    #: key -> decision (a key of :data:`FATE_LABELS`)
    fates: dict[str, str] = field(default_factory=dict)
    #: key -> [(field, built, spec)] of VMs whose spec changed since they were built
    drift: dict[str, list[tuple[str, str | None, str | None]]] = field(default_factory=dict)
    #: hostnames of the fleet's VMs that the spec no longer lists
    removed: list[str] = field(default_factory=list)
    permitted: int | None = None
    window_seconds: float = 60.0
    expected_build_seconds: float = 45.0
    requests_spent: int = 0
    #: the user's cap on builds in flight (None: sized by the run)
    max_in_flight: int | None = None
    #: the requests with their SSH keys resolved (what ``run`` sends)
    checked: Checked = field(default_factory=Checked)
    #: whether the VM list honoured its annotation filter (None: never asked), and how
    #: each organization's VMs of the spec were found (as ``run`` finds them)
    annotation_filter: str | None = None
    filter_evidence: str | None = None
    listed_by: dict[str, str] = field(default_factory=dict)
    #: the readings of the unconfirmed API plan found out, as a run's report lists them
    readings: list[ApiReading] = field(default_factory=list)

    @property
    def estimated_requests(self) -> int:
        """At least a POST and a poll per VM to build (and a tag PATCH), plus organization requests.

        Per organization with VMs to build: its lookup and the fleet's VM list
        at the start, and the fleet's VM list again at the end for the
        addresses (up to 200 VMs a page; more where the API ignores the list's
        annotation filter: see ``listed_by``). And before all that, ``run``
        checks what this plan checked, with as many requests as it spent
        (``requests_spent``).
        """
        in_place: Counter[str] = Counter(r.organization.value for r in self.to_build)
        in_place.update(r.organization.value for r, _ in self.existing)
        orgs = {r.organization.value for r in self.to_build}
        pages = sum(math.ceil(in_place[org] / VM_LIST_PAGE) for org in orgs)
        tagged = sum(1 for r in self.to_build if r.tags)  # a tag PATCH once built
        checks = self.requests_spent if self.to_build else 0
        return checks + 2 * len(self.to_build) + tagged + 2 * len(orgs) + pages

    @property
    def estimated_seconds(self) -> float | None:
        """Lower-bound duration from the rate budget (None when the budget is unknown)."""
        if not self.to_build:
            return 0.0
        if not self.permitted:
            return None
        windows = self.estimated_requests / self.permitted
        return windows * self.window_seconds + self.expected_build_seconds

    @property
    def in_flight_limit(self) -> int | None:
        """How many builds ``run`` would keep in flight at first (None when the budget is unknown).

        Sized as the run sizes it before it has learned anything: by Little's
        law from the rate budget and the expected build time, at most
        ``max_in_flight``; the run then follows the build times it measures.
        """
        if not self.permitted:
            return self.max_in_flight
        return in_flight_for(
            permitted=self.permitted,
            window_seconds=self.window_seconds,
            flight_seconds=self.expected_build_seconds,
            cap=self.max_in_flight,
        )

    @property
    def has_errors(self) -> bool:
        return bool(self.problems)

    @property
    def has_changes(self) -> bool:
        return bool(self.to_build)

    def by_fate(self) -> dict[str, list[str]]:
        """Hostnames by decision, in :data:`FATE_LABELS` order (empty ones left out)."""
        out: dict[str, list[str]] = {}
        for fate in FATE_LABELS:
            keys = [key for key, f in self.fates.items() if f == fate]
            if keys:
                out[fate] = keys
        return out


async def _names(
    call: Callable[[], Awaitable[Sequence[Any]]], deadline: float
) -> set[tuple[str, str]]:
    """Every (key, value) an object of a listing can be looked up by."""
    items = await retry_get(call, deadline_seconds=deadline)
    names: set[tuple[str, str]] = set()
    for item in items:
        for key in ("id", "permalink", "sub_domain"):
            value = getattr(item, key, None)
            if value:
                names.add((key, str(value)))
    return names


async def _check_references(
    client: KatapultClient, requests: Sequence[VmRequest], plan: Plan, deadline: float
) -> None:
    """SSH keys, tags and flexible resources: what ``run`` checks before its first POST."""
    checked = plan.checked = await check_references(
        client, requests, retry={"deadline_seconds": deadline}
    )
    found: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for problem in checked.problems:
        found[(problem.field, problem.value, problem.message)].append(problem.request.hostname)
    by_key = {r.key: r for r in requests}
    for key, (_, error) in checked.unreadable.items():
        org = by_key[key].organization.value
        message = (
            f"cannot read organization {org!r}'s SSH keys, tags or policy: {error.description}"
        )
        found[("organization", org, message)].append(key)
    for (name, value, message), hostnames in found.items():
        plan.problems.append(LookupProblem(name, value, message, tuple(hostnames)))


async def _vm_count(client: KatapultClient, org: Lookup, deadline: float) -> int:
    """How many VMs the organization holds (for its quota): the list's total, or its pages
    counted where the API gives no total (a large set)."""
    first = await retry_get(lambda: client.vm_list_page(org, per_page=1), deadline_seconds=deadline)
    if first.pagination is not None and first.pagination.total is not None:
        return first.pagination.total

    async def count() -> int:
        return sum([1 async for _ in client.list_vms(org)])

    return await retry_get(count, deadline_seconds=deadline)


async def make_plan(
    client: KatapultClient,
    requests: Sequence[VmRequest],
    *,
    deadline_seconds: float = 60.0,
    window_seconds: float = 60.0,
    expected_build_seconds: float = 45.0,
    permitted: Callable[[], int | None] = lambda: None,
    max_in_flight: int | None = None,
    fleet: str | None = None,
    rows: Mapping[str, JournalEntry] | None = None,
    decide: bool = True,
) -> Plan:
    """Resolve every lookup of ``requests``, find existing hostnames, check quota, and
    decide each VM's fate as ``run`` would (``fleet``: the fleet's identity; ``rows``:
    its journal's build rows, read without its lock; ``decide``: find the fleet and
    look at each VM a hostname holds, as ``run`` will; without it, as ``run``'s own
    checks before its first build, nothing is listed)."""
    plan = Plan(
        window_seconds=window_seconds,
        expected_build_seconds=expected_build_seconds,
        max_in_flight=max_in_flight,
        fleet=fleet,
    )
    start_requests = client.requests_total
    finder = FleetFinder(client, fleet=fleet, retry={"deadline_seconds": deadline_seconds})
    ownership = Ownership(fleet=fleet or "")
    likely = {
        k for k, e in (rows or {}).items() if row_of(e).created or row_of(e).fact == "accepted"
    }
    orgs: dict[Lookup, list[VmRequest]] = defaultdict(list)
    for req in requests:
        orgs[req.organization].append(req)
    # the fleet's VMs the spec no longer lists, by the organization they were built in:
    # looked for too (plan names those still there)
    spec_keys = {req.key for req in requests}
    gone_from_spec: dict[str, list[str]] = defaultdict(list)
    for key, entry in (rows or {}).items():
        if key not in spec_keys and row_of(entry).created and entry.built_with:
            gone_from_spec[entry.built_with.get("organization", "")].append(key)
    known: dict[str, set[tuple[str, str]]] = {}
    per_org: dict[Lookup, dict[str, set[tuple[str, str]]]] = {}
    existing: dict[Lookup, dict[str, str]] = {}
    looked: dict[str, VirtualMachine] = {}
    limits: dict[Lookup, tuple[int | None, int | None]] = {}
    bad_orgs: set[Lookup] = set()

    async def global_listing(name: str, call: Callable[[], Awaitable[Sequence[Any]]]) -> None:
        known[name] = await _names(call, deadline_seconds)

    async def org_facts(org: Lookup) -> None:
        try:
            info = await retry_get(
                lambda: client.get_organization(org), deadline_seconds=deadline_seconds
            )
        except (NotFound, PermissionDenied) as exc:
            if isinstance(exc, PermissionDenied) and exc.code not in _ORG_STATES:
                raise
            bad_orgs.add(org)
            plan.problems.append(
                LookupProblem(
                    "organization",
                    org.value,
                    exc.description or "organization not found",
                    tuple(r.hostname for r in orgs[org]),
                )
            )
            return
        per_org[org] = {
            "disk_template": await _names(
                lambda: client.list_disk_templates(org), deadline_seconds
            ),
            "network": await _names(lambda: client.list_networks(org), deadline_seconds),
        }

        policy = await retry_get(
            lambda: client.get_policy_limits(org), deadline_seconds=deadline_seconds
        )
        limit = policy.max_virtual_machines
        current: int | None = None
        existing[org] = {}
        if decide:
            listing = await finder.list_org(
                org,
                [r.key for r in orgs[org]] + gone_from_spec.get(org.value, []),
                domain=info.infrastructure_domain,
                # every holder of a hostname of the spec: plan names another fleet's VM now,
                # where a run would meet it as the API's refusal of a taken hostname
                complete=True,
                likely=likely,
            )
            existing[org] = listing.existing
            looked.update(listing.looked)
            current = len(listing.existing) if listing.whole else None
        # (a run's checks before building list nothing: the run finds its fleet itself;
        # the VMs they are given are those it may build)
        if limit is not None and current is None:
            current = await _vm_count(client, org, deadline_seconds)
        limits[org] = (limit, current)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(global_listing, "data_center", client.list_data_centers)
            tg.start_soon(global_listing, "zone", client.list_zones)
            tg.start_soon(global_listing, "package", client.list_packages)
            for org in orgs:
                tg.start_soon(org_facts, org)
    except* OrchestratorError as group:
        # callers catch our errors, not groups: raise the first (auth errors first)
        errors = [e for e in group.exceptions if isinstance(e, OrchestratorError)]
        errors.sort(key=lambda e: 0 if getattr(e, "category", None) == "auth" else 1)
        raise errors[0] from None

    missing: dict[tuple[str, str], list[str]] = defaultdict(list)
    for org, reqs in orgs.items():
        if org in bad_orgs:
            continue
        for req in reqs:
            for name in _FIELDS:
                lookup: Lookup | None = getattr(req, name)
                if lookup is None:
                    continue
                names = per_org[org].get(name) if name in per_org[org] else known.get(name)
                if names is not None and (lookup.key, lookup.value) not in names:
                    missing[(name, lookup.value)].append(req.hostname)
            vm_id = existing[org].get(req.key)
            if vm_id is not None:
                plan.existing.append((req, vm_id))
            else:
                plan.to_build.append(req)
        limit, current = limits.get(org, (None, None))
        building = sum(1 for r in plan.to_build if r.organization == org)
        if limit is not None and current is not None and current + building > limit:
            plan.problems.append(
                LookupProblem(
                    "quota",
                    org.value,
                    f"organization has {current} of {limit} VMs; building {building} more "
                    f"would exceed the limit by {current + building - limit}",
                )
            )
    for (name, value), hostnames in sorted(missing.items()):
        plan.problems.append(
            LookupProblem(name, value, f"no {name.replace('_', ' ')} '{value}'", tuple(hostnames))
        )
    await _check_references(
        client, [r for r in requests if r.organization not in bad_orgs], plan, deadline_seconds
    )
    if decide:  # (a run's own checks before building leave the looks to the run)
        await _decide(
            client, requests, plan, existing, dict(rows or {}), deadline_seconds, looked, ownership
        )
    plan.annotation_filter = finder.filter
    plan.readings = found_readings(finder, ownership)
    plan.filter_evidence = finder.filter_evidence
    plan.listed_by = dict(finder.listed_by)
    plan.permitted = permitted()
    plan.requests_spent = client.requests_total - start_requests
    return plan


async def _decide(
    client: KatapultClient,
    requests: Sequence[VmRequest],
    plan: Plan,
    existing: Mapping[Lookup, Mapping[str, str]],
    rows: dict[str, JournalEntry],
    deadline: float,
    looked: Mapping[str, VirtualMachine],
    ownership: Ownership,
) -> None:
    """Each VM's fate as ``run`` decides it (:func:`preview_fates`), its drift, and the
    fleet's VMs the spec no longer lists."""
    drift = spec_changes(requests, rows)
    known = [r for r in requests if r.organization in existing]
    fates = await preview_fates(
        client,
        known,
        existing=existing,
        rows=rows,
        fleet=plan.fleet,
        deadline=deadline,
        looked=looked,
        ownership=ownership,
    )
    for key, fate in fates.items():
        if fate == "ours" and key in drift:
            fate = "drift"
            plan.drift[key] = [(c.field, c.built, c.spec) for c in drift[key]]
        plan.fates[key] = fate
    listed = {key for found in existing.values() for key in found}
    spec_keys = {req.key for req in requests}
    plan.removed = sorted(
        entry.hostname
        for key, entry in rows.items()
        if key not in spec_keys and key in listed and row_of(entry).created is not None
    )
    plan.to_build = [r for r in requests if plan.fates.get(r.key) in ("submit", "reconcile")]


async def preview_fates(
    client: KatapultClient,
    requests: Sequence[VmRequest],
    *,
    existing: Mapping[Lookup, Mapping[str, str]],
    rows: Mapping[str, JournalEntry],
    fleet: str | None,
    deadline: float,
    delete: bool = False,
    looked: Mapping[str, VirtualMachine] | None = None,
    ownership: Ownership | None = None,
) -> dict[str, str]:
    """What ``run`` (or, with ``delete``, ``destroy``) would decide for each VM, by the
    same functions (:func:`build_fate`, :func:`delete_fate`), without sending anything:
    one look at every VM a hostname of the spec holds in ``existing`` (each
    organization's listing) or that the fleet's journal says its build created
    (``looked``: VMs already looked at, by id, which are not looked at again).
    ``ownership``: what the looks learn of the API's copying of annotations (kept)."""
    ownership = ownership if ownership is not None else Ownership(fleet=fleet or "")
    limiter = anyio.CapacityLimiter(_LOOKS_AT_ONCE)
    fates: dict[str, str] = {}

    async def decide(req: VmRequest) -> None:
        row = row_of(rows.get(req.key))
        vm_id = existing.get(req.organization, {}).get(req.key) or row.created
        seen: Seen = "none"
        state: str | None = None
        if vm_id is not None and looked is not None and vm_id in looked:
            vm = looked[vm_id]
            state = vm.state
            seen = seen_of(ownership.judge(req.key, vm.annotations), vm.state)
        elif vm_id is not None:
            async with limiter:
                try:
                    vm = await retry_get(
                        lambda: client.get_vm(Lookup("id", vm_id)), deadline_seconds=deadline
                    )
                except NotFound:
                    vm = None
                except ApiError as exc:
                    if exc.code != "object_in_trash":
                        raise
                    seen = "trash_ours" if vm_id == row.created else "trash_theirs"
                    vm = None
            if vm is not None:
                state = vm.state
                seen = seen_of(ownership.judge(req.key, vm.annotations), vm.state)
        if delete:
            fates[req.key] = delete_fate(seen, row, vm_id=vm_id, vm_state=state)
        else:
            fates[req.key] = build_fate(
                seen, row, vm_id=vm_id, copies=ownership.copied, vm_state=state
            )

    async with anyio.create_task_group() as tg:
        for req in requests:
            tg.start_soon(decide, req)
    return {req.key: fates[req.key] for req in requests}
