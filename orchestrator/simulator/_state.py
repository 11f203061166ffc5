"""All mutable state of a simulated Katapult: builds, VMs, rate windows, counters.

Pure and clock-injected: nothing here does I/O or sleeps. Time is simulated
seconds since the Unix epoch, read from one ``clock`` callable. Build life
cycles are not driven by background tasks: a build's state is computed from
the clock whenever it is asked for, and the two things that change indexes -
a build getting its VM, and a failed build freeing its hostname - are kept in
a heap of timed events that :meth:`SimulatorState.advance` applies lazily, so
10,000 builds cost nothing while nobody looks at them.

A build's life (``D`` = its duration, drawn per build) with the default readings::

    0 ........ 3% D ............ 40% D ... 45% D ..................... D ... D + start
    pending    building (vm null)           building (vm ``stopped``)   complete (vm
    task pending  task running (progress rises)                        ``starting``,
                                            failed builds end here      then ``started``)
                                            (task/build ``failed``, no VM, hostname freed)

A hanging build gets its VM and then stays ``building`` forever. The readings
of :class:`SimulatorConfig` move the VM record (``vm_record_at``), let a
failed build keep its VM (``failed_build_leaves_vm``: it then fails between
its VM record and its end), and decide when a hostname is taken and whether
a taken one is refused (``hostname_taken_at``, ``duplicate_hostnames``).
"""

from __future__ import annotations

import heapq
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.simulator._actions import ActionTask, PowerAction, TaskView
from orchestrator.simulator._catalogue import (
    Catalogue,
    Network,
    Organization,
    Package,
    Tag,
    Zone,
    build_catalogue,
    make_id,
    tag_id,
)
from orchestrator.simulator._config import PENDING_END, FaultConfig, SimulatorConfig
from orchestrator.simulator._errors import api_error, validation_error

__all__ = [
    "Build",
    "BuildState",
    "Clock",
    "ScaledClock",
    "SimulatorState",
    "TaskView",
    "TrashInfo",
    "VirtualMachine",
]

Clock = Callable[[], float]
BuildState = Literal["pending", "building", "complete", "failed"]
Fate = Literal["complete", "failed", "hang"]

#: Fraction of a build's duration at which a failing build fails (when it leaves no VM).
FAIL_AT = 0.40
#: How long VMs stay in the trash (the API keeps them ~48 h).
TRASH_KEEP_SECONDS = 48 * 3600

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_WORDS_A = ("amber", "brisk", "calm", "dusty", "eager", "fuzzy", "gentle", "hazy", "icy", "jolly")
_WORDS_B = ("otter", "falcon", "maple", "river", "comet", "harbor", "lantern", "meadow", "pine")


class ScaledClock:
    """Simulated time: ``epoch + real elapsed seconds * time_scale``."""

    __slots__ = ("_epoch", "_monotonic", "_scale", "_start")

    def __init__(
        self,
        time_scale: float = 1.0,
        *,
        epoch: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scale = time_scale
        self._epoch = time.time() if epoch is None else epoch
        self._monotonic = monotonic
        self._start = monotonic()

    @property
    def time_scale(self) -> float:
        """Simulated seconds per real second."""
        return self._scale

    def __call__(self) -> float:
        return self._epoch + (self._monotonic() - self._start) * self._scale


@dataclass(frozen=True, slots=True)
class TrashInfo:
    """Where a trashed VM sits in the trash."""

    id: str
    keep_until: int


@dataclass(slots=True, eq=False)
class VirtualMachine:
    """A VM that exists (visible through the API)."""

    id: str
    org: Organization
    hostname: str
    name: str
    created_at: int
    zone: Zone
    network: Network
    package: Package | None
    cpu_cores: int
    memory_in_gb: int
    description: str | None
    tags: list[str]
    annotations: list[dict[str, str | None]]
    build: Build | None
    serial: int
    trash: TrashInfo | None = None
    power: PowerAction | None = None  # the last stop or shutdown asked for
    purge_at: float | None = None  # when a purge asked for takes effect
    purged: bool = False  # gone for good: no lookup finds it, its hostname is free
    addressed: bool = True  # False: it came up without an IP address
    #: when its annotations show (``annotations_copied_at="complete"``: its build's end)
    annotations_from: float = float("-inf")

    def annotations_at(self, now: float) -> list[dict[str, str | None]]:
        """The annotations the VM shows at ``now``."""
        return self.annotations if now >= self.annotations_from else []

    @property
    def fqdn(self) -> str:
        """``hostname.<organization infrastructure domain>``."""
        return f"{self.hostname}.{self.org.infrastructure_domain}"

    def state(self, now: float, start_seconds: float) -> str:
        """The VM's power state at ``now``."""
        build = self.build
        if build is None:
            decided = None if self.power is None else self.power.state(now)
            return decided or "started"
        if build.fate == "failed":
            return "failed" if now >= build.failed_at else "stopped"
        decided = None if self.power is None else self.power.state(now)
        if decided is not None:
            return decided
        if build.fate == "hang" or now < build.finished_at:
            return "stopped"
        if now < build.finished_at + start_seconds:
            return "starting"
        return "started"


@dataclass(slots=True, eq=False)
class Build:
    """A build accepted by the API, and the task that runs it."""

    id: str
    task_id: str
    vm_id: str
    org: Organization
    hostname: str
    name: str
    created_at: float
    duration: float
    fate: Fate
    vm_at: float  # when its VM record appears (unless it fails first)
    failed_at: float  # when it fails, if its fate is "failed"
    zone: Zone
    network: Network
    package: Package | None
    cpu_cores: int
    memory_in_gb: int
    description: str | None
    tags: list[str]
    annotations: list[dict[str, str | None]]
    spec_xml: str = ""
    vm: VirtualMachine | None = None
    addressed: bool = True  # False: its VM comes up without an IP address
    released: bool = False  # failed, and no longer counted against the VM limit

    @property
    def task_name(self) -> str:
        """The name of the build's task."""
        return "Build virtual machine"

    @property
    def running_at(self) -> float:
        """When the build leaves ``pending``."""
        return self.created_at + PENDING_END * self.duration

    @property
    def finished_at(self) -> float:
        """When a successful build completes."""
        return self.created_at + self.duration

    def state(self, now: float) -> BuildState:
        """The build's state at ``now``."""
        if now < self.running_at:
            return "pending"
        if self.fate == "failed":
            return "failed" if now >= self.failed_at else "building"
        if self.fate == "complete" and now >= self.finished_at:
            return "complete"
        return "building"

    def task(self, now: float) -> TaskView:
        """The build's task at ``now``."""
        if now < self.running_at:
            return TaskView("pending", None, None, 0)
        started = int(self.running_at)
        if self.fate == "failed" and now >= self.failed_at:
            return TaskView("failed", started, int(self.failed_at), self._progress(self.failed_at))
        if self.fate == "complete" and now >= self.finished_at:
            return TaskView("completed", started, int(self.finished_at), 100)
        if self.fate == "hang":
            now = min(now, self.vm_at)
        return TaskView("running", started, None, self._progress(now))

    def _progress(self, now: float) -> int:
        span = self.finished_at - self.running_at
        done = (now - self.running_at) / span if span > 0 else 1.0
        return max(5, min(95, 5 + int(90 * done)))


@dataclass(slots=True)
class _OrgState:
    # builds holding their hostname from the POST (hostname_taken_at="post")
    claims: dict[str, Build] = field(default_factory=dict)
    # VM records by hostname, trash included, oldest first (several when duplicates are accepted)
    named: dict[str, list[VirtualMachine]] = field(default_factory=dict)
    vms: list[VirtualMachine] = field(default_factory=list)  # visible, creation order
    live: int = 0  # VMs and builds that count against the VM limit
    #: bumped whenever ``vms`` or a VM's annotations change (the filtered listing's memo)
    version: int = 0
    #: the filtered listing's memo: (pairs) -> (version, valid from, valid until, VMs)
    listings: dict[
        tuple[tuple[str | None, str | None], ...],
        tuple[int, float, float, list[VirtualMachine]],
    ] = field(default_factory=dict)

    def taken(self, hostname: str, *, by_claims: bool, by_trash: bool = True) -> bool:
        """Whether a VM record (or, ``by_claims``, an accepted build) holds ``hostname``.

        ``by_trash``: a VM in the trash holds its hostname too.
        """
        if by_claims and hostname in self.claims:
            return True
        return any(by_trash or vm.trash is None for vm in self.named.get(hostname, ()))


@dataclass(slots=True)
class _Window:
    index: int
    count: int


class SimulatorState:
    """Everything a simulator remembers; reusable across server restarts.

    Args:
        config: the policy (build durations, limits, faults). A server started
            with this state adopts its own config (see ``create_app``).
        clock: simulated Unix seconds; default: a :class:`ScaledClock` at the
            config's ``time_scale`` starting from the real time now.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, clock: Clock | None = None):
        self.config = config or SimulatorConfig()
        self.clock: Clock = clock or ScaledClock(self.config.time_scale)
        self.catalogue: Catalogue = build_catalogue(self.config.seed)
        self._rng = random.Random(self.config.seed)  # builds and hostnames
        self._id_rng = random.Random(f"request-ids/{self.config.seed}")
        self._serial = 0
        self._orgs: dict[str, _OrgState] = {o.id: _OrgState() for o in self.catalogue.organizations}
        self._builds: dict[str, Build] = {}
        self._tasks: dict[str, Build | ActionTask] = {}
        self._trash: dict[str, VirtualMachine] = {}  # by trash object id, in trashing order
        self._vms: dict[str, VirtualMachine] = {}
        self._records: list[Build | VirtualMachine] = []  # accepted builds and pre-existing VMs
        self._events: list[tuple[float, int, str, Build | VirtualMachine]] = []
        self._windows: dict[str, _Window] = {}
        self.requests_total = 0
        self.rate_limited = 0
        self.by_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.taken_refusals: Counter[str] = Counter()
        self.taken_build_failures: Counter[str] = Counter()
        #: (VM id, action, VM state before it) of the request being handled: set by the
        #: stop, shutdown and delete endpoints once they found their VM
        self.touched: tuple[str, str, str] | None = None
        #: every stop, shutdown and DELETE that reached its VM, in order (see snapshot)
        self.vm_actions: list[dict[str, Any]] = []
        fleet = self.config.existing_vms_fleet
        for i in range(1, self.config.existing_vms + 1):
            vm_id = self.add_existing_vm("acme", f"existing-{i:05d}")
            if fleet is not None:
                self._orgs[self._vms[vm_id].org.id].version += 1
                self._vms[vm_id].annotations = [
                    {"key": "orchestrator.vm", "value": f"existing-{i:05d}"},
                    {"key": "orchestrator.spec", "value": fleet},
                ]

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Simulated Unix seconds."""
        return self.clock()

    def advance(self, now: float | None = None) -> float:
        """Apply every timed event due by ``now`` (VMs appear, failed builds free names)."""
        now = self.clock() if now is None else now
        events = self._events
        while events and events[0][0] <= now:
            when, _, kind, record = heapq.heappop(events)
            if isinstance(record, VirtualMachine):
                self._purge_now(record)
            elif kind == "vm":
                self._materialize(record, when)
            else:
                self._fail(record)
        return now

    def _materialize(self, build: Build, when: float) -> None:
        org = self._orgs[build.org.id]
        if build.released:
            return
        config = self.config
        if config.duplicate_hostnames == "refuse" and org.taken(
            build.hostname, by_claims=False, by_trash=config.trash_holds_hostname
        ):
            # taken by another VM record since the POST (hostname_taken_at="vm_record")
            self.taken_build_failures[f"{build.org.sub_domain}/{build.hostname}"] += 1
            build.fate = "failed"
            build.failed_at = when
            self._fail(build)
            return
        self._serial += 1
        vm = VirtualMachine(
            id=build.vm_id,
            org=build.org,
            hostname=build.hostname,
            name=build.name,
            created_at=int(when),
            zone=build.zone,
            network=build.network,
            package=build.package,
            cpu_cores=build.cpu_cores,
            memory_in_gb=build.memory_in_gb,
            description=build.description,
            tags=build.tags,
            annotations=list(build.annotations) if self.config.copy_annotations else [],
            build=build,
            serial=self._serial,
            addressed=build.addressed,
            annotations_from=(
                build.finished_at if config.annotations_copied_at == "complete" else float("-inf")
            ),
        )
        build.vm = vm
        self._vms[vm.id] = vm
        org.vms.append(vm)
        org.version += 1
        org.named.setdefault(build.hostname, []).append(vm)
        if org.claims.get(build.hostname) is build:
            del org.claims[build.hostname]

    def _fail(self, build: Build) -> None:
        if build.released:
            return
        org = self._orgs[build.org.id]
        if org.claims.get(build.hostname) is build:
            del org.claims[build.hostname]
        vm = build.vm
        if vm is not None and self.config.failed_build_leaves_vm:
            return  # the VM stays, state failed, hostname held, still counted
        build.released = True
        if vm is None or vm.trash is None:  # trashing it uncounted it already
            org.live -= 1
        if vm is not None and not vm.purged:
            # a failed build leaves nothing: the VM record it had is removed
            build.vm = None
            self._vms.pop(vm.id, None)
            if vm in org.vms:
                org.vms.remove(vm)
                org.version += 1
            org.named[vm.hostname].remove(vm)
            if vm.trash is not None:
                self._trash.pop(vm.trash.id, None)

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return make_id(self.config.seed, prefix, f"n{self._serial}")

    def request_id(self) -> str:
        """A fresh ``X-Request-Id`` (a UUID drawn from the seeded RNG)."""
        return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))

    # ----------------------------------------------------------- rate limits

    def hit_rate_limit(self, token: str, now: float) -> tuple[bool, int]:
        """Count one request of ``token``: (allowed, remaining) in its fixed window."""
        config = self.config
        index = math.floor(now / config.window_seconds)
        window = self._windows.get(token)
        if window is None or window.index != index:
            window = self._windows[token] = _Window(index, 0)
        window.count += 1
        permitted = config.permitted
        if config.rate_limit is not None and window.count > permitted:
            return False, 0
        return True, max(0, permitted - window.count)

    def peek_rate_limit(self, token: str, now: float) -> int:
        """The remaining budget of ``token``'s window, without spending any."""
        index = math.floor(now / self.config.window_seconds)
        window = self._windows.get(token)
        used = window.count if window is not None and window.index == index else 0
        return max(0, self.config.permitted - used)

    def window_end(self, now: float) -> float:
        """Simulated time at which the current rate window ends."""
        size = self.config.window_seconds
        return (math.floor(now / size) + 1) * size

    # --------------------------------------------------------------- lookups

    def build_by_id(self, build_id: str) -> Build | None:
        """The build with this id."""
        return self._builds.get(build_id)

    def task_by_id(self, task_id: str) -> Build | ActionTask | None:
        """The task with this id: a build's, or a power action's or purge's."""
        return self._tasks.get(task_id)

    def vm_by_id(self, vm_id: str) -> VirtualMachine | None:
        """The VM with this id, once it exists (and until it is purged)."""
        return self._vms.get(vm_id)

    def vm_by_fqdn(self, fqdn: str) -> VirtualMachine | None:
        """The VM whose fqdn is ``hostname.<org infrastructure domain>``."""
        hostname, _, domain = fqdn.strip().lower().partition(".")
        org = self.catalogue.org_by_domain(domain)
        if org is None:
            return None
        found = self._orgs[org.id].named.get(hostname)
        if not found:
            return None
        # the oldest (when several hold the name), outside the trash if any is
        return next((vm for vm in found if vm.trash is None), found[0])

    def vms_of(self, org: Organization) -> list[VirtualMachine]:
        """The organization's VMs outside the trash, in creation order (do not mutate)."""
        return self._orgs[org.id].vms

    def vms_annotated(
        self, org: Organization, pairs: list[tuple[str | None, str | None]], now: float
    ) -> list[VirtualMachine]:
        """:meth:`vms_of` keeping the VMs that show every ``(key, value)`` pair at ``now``
        (a None value: the key alone); do not mutate.

        Remembered until the organization's VMs or annotations change, or a VM's
        annotations show: every page of a listing asks again.
        """
        org_state = self._orgs[org.id]
        key = tuple(pairs)
        memo = org_state.listings.get(key)
        if memo is not None and memo[0] == org_state.version and memo[1] <= now < memo[2]:
            return memo[3]
        until = float("inf")
        kept: list[VirtualMachine] = []
        for vm in org_state.vms:
            if vm.annotations_from > now:
                until = min(until, vm.annotations_from)
            elif _has_annotations(vm.annotations, pairs):
                kept.append(vm)
        org_state.listings[key] = (org_state.version, now, until, kept)
        return kept

    def live_count(self, org: Organization) -> int:
        """VMs and unfinished or successful builds counting against the VM limit."""
        return self._orgs[org.id].live

    # ---------------------------------------------------------------- builds

    def create_build(
        self,
        *,
        org: Organization,
        zone: Zone,
        network: Network,
        package: Package | None,
        cpu_cores: int | None,
        memory_in_gb: int | None,
        hostname: str | None,
        name: str | None,
        description: str | None,
        tags: list[str],
        annotations: list[dict[str, str | None]],
        spec_xml: Callable[[str], str],
        now: float,
        addressed: bool = True,
    ) -> Build:
        """Accept a build, or raise the API's refusal (limit, bad or taken hostname)."""
        config = self.config
        org_state = self._orgs[org.id]
        if config.vm_limit is not None and org_state.live >= config.vm_limit:
            raise api_error(
                "resource_creation_restricted",
                {
                    "errors": [
                        f"The maximum number of virtual machines ({config.vm_limit}) "
                        "for this organization has been reached"
                    ]
                },
            )
        hostname = self._claimable(org, hostname) if hostname else self._random_hostname(org_state)
        faults: FaultConfig = config.faults
        draw = self._rng.random()
        fate: Fate = "complete"
        if draw < faults.build_fail_rate:
            fate = "failed"
        elif draw < faults.build_fail_rate + faults.build_hang_rate:
            fate = "hang"
        spread = config.build_spread * (2 * self._rng.random() - 1)
        duration = config.build_seconds * (1 + spread)
        lo, hi = config.vm_record_at
        vm_at = now + duration * (lo if lo == hi else self._rng.uniform(lo, hi))
        failed_at = now + FAIL_AT * duration
        if fate == "failed" and config.failed_build_leaves_vm:
            failed_at = vm_at + self._rng.random() * (now + duration - vm_at)
        build = Build(
            id=self._next_id("vmbuild"),
            task_id=self._next_id("task"),
            vm_id=self._next_id("vm"),
            org=org,
            hostname=hostname,
            name=name or hostname,
            created_at=now,
            duration=duration,
            fate=fate,
            vm_at=vm_at,
            failed_at=failed_at,
            zone=zone,
            network=network,
            package=package,
            cpu_cores=cpu_cores or (package.cpu_cores if package else 1),
            memory_in_gb=memory_in_gb or (package.memory_in_gb if package else 1),
            description=description,
            tags=tags,
            annotations=annotations,
            addressed=addressed,
        )
        build.spec_xml = spec_xml(hostname)
        self._builds[build.id] = build
        self._tasks[build.task_id] = build
        self._records.append(build)
        if config.hostname_taken_at == "post":
            org_state.claims.setdefault(hostname, build)
        org_state.live += 1
        if fate != "failed" or vm_at < failed_at or config.failed_build_leaves_vm:
            self._serial += 1
            heapq.heappush(self._events, (vm_at, self._serial, "vm", build))
        if fate == "failed":
            self._serial += 1
            heapq.heappush(self._events, (failed_at, self._serial, "fail", build))
        return build

    def _claimable(self, org: Organization, hostname: str) -> str:
        """``hostname`` lower-cased, or the API's refusal: invalid, too long, taken."""
        config = self.config
        hostname = hostname.strip().lower()
        problems = []
        if len(hostname) > 63:
            problems.append("Hostname is too long (maximum is 63 characters)")
        if not _HOSTNAME.match(hostname):
            problems.append("Hostname is invalid")
        if problems:
            raise validation_error(*problems)
        by_claims = config.hostname_taken_at == "post"
        if config.duplicate_hostnames == "refuse" and self._orgs[org.id].taken(
            hostname, by_claims=by_claims, by_trash=config.trash_holds_hostname
        ):
            self.taken_refusals[f"{org.sub_domain}/{hostname}"] += 1
            # config.hostname_taken_error names the one reading implemented (inferred)
            assert config.hostname_taken_error == "validation_error"
            raise validation_error("Hostname has already been taken")
        return hostname

    def update_vm(
        self,
        vm: VirtualMachine,
        *,
        hostname: str | None,
        name: str | None,
        description: str | None,
        tags: list[str] | None,
        annotations: list[dict[str, str | None]] | None,
    ) -> None:
        """Change a VM's properties (``None``: unchanged); a new hostname frees the old one."""
        if hostname is not None and hostname.strip().lower() != vm.hostname:
            new = self._claimable(vm.org, hostname)
            named = self._orgs[vm.org.id].named
            named[vm.hostname].remove(vm)
            holders = named.setdefault(new, [])
            holders.append(vm)
            holders.sort(key=lambda held: held.serial)  # the oldest first, as fqdn lookups see
            vm.hostname = new
        if name is not None:
            vm.name = name
        if description is not None:
            vm.description = description
        if tags is not None:
            # a name the organization has no tag for creates that tag [inferred: the
            # endpoint lists no error for it, and the Terraform provider sends any name]
            vm.tags = list(dict.fromkeys(tags))
            self.ensure_tags(vm.org, vm.tags)
        if annotations is not None:
            vm.annotations = list(annotations)
            vm.annotations_from = float("-inf")
            self._orgs[vm.org.id].version += 1

    def _random_hostname(self, org_state: _OrgState) -> str:
        while True:
            suffix = "".join(
                self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6)
            )
            name = f"{self._rng.choice(_WORDS_A)}-{self._rng.choice(_WORDS_B)}-{suffix}"
            if not org_state.taken(name, by_claims=True):
                return name

    def ensure_tags(self, org: Organization, names: list[str]) -> None:
        """Create the tags of ``names`` that ``org`` does not have yet."""
        have = self.catalogue.tags_of(org)
        known = {t.name for t in have}
        fresh = tuple(
            Tag(tag_id(org.id, name), name, "pink", int(self.clock()))
            for name in names
            if name not in known
        )
        if fresh:
            self.catalogue.tags[org.id] = have + fresh

    # ---------------------------------------------------------- test helpers

    def add_existing_vm(
        self,
        org_sub_domain: str,
        hostname: str,
        *,
        zone: str = "lon-zone-1",
        package: str = "rock-3",
        in_trash: bool = False,
    ) -> str:
        """Create a VM that existed before the run (``started``); returns its id."""
        org = self.catalogue.org_by("sub_domain", org_sub_domain)
        if org is None:
            raise ValueError(f"unknown organization {org_sub_domain!r}")
        the_zone = self.catalogue.zone_by("permalink", zone)
        the_package = self.catalogue.package_by("permalink", package)
        if the_zone is None or the_package is None:
            raise ValueError("unknown zone or package")
        hostname = hostname.lower()
        org_state = self._orgs[org.id]
        if org_state.taken(hostname, by_claims=True):
            raise ValueError(f"hostname {hostname!r} is taken in {org_sub_domain!r}")
        self._serial += 1
        vm = VirtualMachine(
            id=self._next_id("vm"),
            org=org,
            hostname=hostname,
            name=hostname,
            created_at=int(self.clock()) - 86400,
            zone=the_zone,
            network=self.catalogue.default_network(the_zone.data_center),
            package=the_package,
            cpu_cores=the_package.cpu_cores,
            memory_in_gb=the_package.memory_in_gb,
            description=None,
            tags=[],
            annotations=[],
            build=None,
            serial=self._serial,
        )
        self._vms[vm.id] = vm
        self._records.append(vm)
        org_state.named.setdefault(hostname, []).append(vm)
        org_state.vms.append(vm)
        org_state.version += 1
        org_state.live += 1
        if in_trash:
            self.trash_vm(vm.id)
        return vm.id

    def trash_vm(self, vm_id: str) -> TrashInfo:
        """Move a VM to the trash: its hostname stays taken, lookups give 406.

        It is purged by itself at ``keep_until`` (48 h later) unless purged before.
        """
        vm = self._vms[vm_id]
        if vm.trash is not None:
            return vm.trash
        vm.trash = TrashInfo(
            id=self._next_id("trsh"), keep_until=int(self.clock()) + TRASH_KEEP_SECONDS
        )
        self._trash[vm.trash.id] = vm
        org_state = self._orgs[vm.org.id]
        org_state.vms.remove(vm)
        org_state.version += 1
        org_state.live -= 1
        self._serial += 1  # the trash purges what it has kept long enough by itself
        heapq.heappush(self._events, (vm.trash.keep_until, self._serial, "purge", vm))
        return vm.trash

    # ------------------------------------------------- power, trash and purge

    def _queue_task(self, name: str, now: float, seconds: float) -> ActionTask:
        task = ActionTask.queued(self._next_id("task"), name, now, seconds)
        self._tasks[task.task_id] = task
        return task

    def stop_vm(
        self, vm: VirtualMachine, kind: Literal["stop", "shutdown"], now: float
    ) -> ActionTask:
        """Queue a stop (or a graceful shutdown) of ``vm``; it is ``stopped`` when the task ends.

        A VM already stopped stays stopped (its task still runs its course).
        """
        name = "Stop virtual machine" if kind == "stop" else "Shutdown virtual machine"
        task = self._queue_task(name, now, self.config.stop_seconds)
        already = vm.state(now, self.config.vm_start_seconds) == "stopped"
        vm.power = PowerAction(kind, task, now if already else task.finished_at)
        return task

    def trash_object(self, key: str, value: str) -> VirtualMachine | None:
        """The trashed VM whose trash object has this ``id`` (or whose ``object_id`` is this)."""
        if key == "id":
            return self._trash.get(value)
        vm = self._vms.get(value)
        return vm if vm is not None and vm.trash is not None else None

    def trash_of(self, org: Organization) -> list[VirtualMachine]:
        """The organization's trashed VMs, in the order they were trashed."""
        return [vm for vm in self._trash.values() if vm.org.id == org.id]

    def purge_vm(self, vm: VirtualMachine, now: float) -> ActionTask:
        """Queue the purge of a trashed VM: when its task ends, the VM and its hostname are gone.

        Purging again while a purge runs queues another task; the VM goes
        when the first one ends.
        """
        task = self._queue_task("Purge items from trash", now, self.config.purge_seconds)
        if vm.purge_at is None:
            vm.purge_at = task.finished_at
            self._serial += 1
            heapq.heappush(self._events, (task.finished_at, self._serial, "purge", vm))
        return task

    def _purge_now(self, vm: VirtualMachine) -> None:
        if vm.purged or vm.trash is None:
            return
        vm.purged = True
        self._trash.pop(vm.trash.id, None)
        self._vms.pop(vm.id, None)
        self._orgs[vm.org.id].named[vm.hostname].remove(vm)

    # -------------------------------------------------------------- counters

    def count_response(self, status: int) -> None:
        """Record the status of one API answer."""
        self.by_status[status] += 1
        if status == 429:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_simulator/state`` serves: what was really created, and traffic.

        ``virtual_machines`` lists every VM counted as created: a build is
        counted from the moment its POST was accepted (``created_at``), until
        it fails without leaving a VM (then it is only in ``failed_builds``).
        A failed build that left its VM (``failed_build_leaves_vm``) is in
        both, and in ``failed_vms``. Pre-existing VMs carry ``"preexisting":
        true`` and ``build_id: null``. Each entry's ``vm_state`` is its VM
        record's state now (``null`` while it has none), ``in_trash`` whether
        it is in the trash. ``duplicates`` names every hostname of an
        organization that more than one entry of ``virtual_machines`` holds.
        ``hostname_taken_refusals`` counts the POSTs refused because the
        hostname was taken, and (``builds_failed``) the builds that failed
        when their VM record found it taken (``hostname_taken_at="vm_record"``).
        ``readings`` are the config's readings of the unconfirmed API.
        ``vm_actions`` lists every stop, shutdown and DELETE that reached its VM, in
        order: ``vm_id``, ``action``, ``vm_state`` (before it), ``status`` (what the
        endpoint answered) and ``lost`` (the fault that struck its answer after it
        acted, or ``null``). A VM
        purged from the trash leaves ``virtual_machines`` for ``purged_vms``
        (its hostname is free again).
        """
        now = self.advance()
        start_seconds = self.config.vm_start_seconds
        vms: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        failed_vms: list[dict[str, Any]] = []
        purged: list[dict[str, Any]] = []
        live_names: Counter[tuple[str, str]] = Counter()
        for record in self._records:
            if isinstance(record, Build):
                state = record.state(now)
                vm = record.vm
                entry: dict[str, Any] = {
                    "id": record.vm_id,
                    "hostname": record.hostname if vm is None else vm.hostname,
                    "build_id": record.id,
                    "task_id": record.task_id,
                    "created_at": int(record.created_at),
                    "organization": record.org.sub_domain,
                    "build_state": state,
                    "visible": vm is not None,
                    "preexisting": False,
                    "vm_state": None if vm is None else vm.state(now, start_seconds),
                    "in_trash": vm is not None and vm.trash is not None,
                }
                if state == "failed":
                    failed.append(entry)
                    if vm is None:
                        continue
            else:
                entry = {
                    "id": record.id,
                    "hostname": record.hostname,
                    "build_id": None,
                    "task_id": None,
                    "created_at": record.created_at,
                    "organization": record.org.sub_domain,
                    "build_state": None,
                    "visible": True,
                    "preexisting": True,
                    "vm_state": record.state(now, start_seconds),
                    "in_trash": record.trash is not None,
                }
            vm_record = record.vm if isinstance(record, Build) else record
            if vm_record is not None and vm_record.purged:
                entry["vm_state"] = None
                purged.append(entry)
                continue
            vms.append(entry)
            if entry["vm_state"] == "failed":
                failed_vms.append(entry)
            live_names[(record.org.sub_domain, entry["hostname"])] += 1
        duplicates = [
            {"organization": org, "hostname": host, "count": count}
            for (org, host), count in live_names.items()
            if count > 1
        ]
        return {
            "time": int(now),
            "virtual_machines": vms,
            "failed_builds": failed,
            "failed_vms": failed_vms,
            "purged_vms": purged,
            "duplicates": duplicates,
            "hostname_taken_refusals": {
                "total": sum(self.taken_refusals.values()),
                "hostnames": dict(self.taken_refusals),
                "builds_failed": sum(self.taken_build_failures.values()),
            },
            "requests": {
                "total": self.requests_total,
                "rate_limited": self.rate_limited,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            },
            "faults": dict(self.faults),
            "vm_actions": list(self.vm_actions),
            "readings": self.config.readings(),
        }


def _has_annotations(
    have: list[dict[str, str | None]], wanted: list[tuple[str | None, str | None]]
) -> bool:
    """Whether ``have`` holds every ``(key, value)`` pair wanted (a None value: the key alone)."""
    for key, value in wanted:
        for kv in have:
            if kv["key"] == key and (value is None or kv["value"] == value):
                break
        else:
            return False
    return True
