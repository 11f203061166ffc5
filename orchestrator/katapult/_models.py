"""Typed API responses (pydantic, ``extra="ignore"``, frozen).

Only the fields the orchestrator needs are modelled; unknown fields are
dropped, and every field the API may omit is optional. Timestamps are integer
Unix seconds or ``None``.

**States are plain ``str``**, not ``Literal``: a state the API adds tomorrow
must not make today's client fail to parse a build it is waiting on. The
``Literal`` aliases (:data:`TaskStatus`, :data:`BuildState`, :data:`VmState`)
and the ``*_STATUSES``/``*_STATES`` sets list the values known today, and the
``is_*`` properties answer the questions the engine asks; an unknown value is
simply "not finished".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = [
    "BUILD_STATES",
    "TASK_STATUSES",
    "VM_STATES",
    "BuildState",
    "CreatedBuild",
    "DataCenter",
    "DiskTemplate",
    "IpAddress",
    "Limit",
    "Network",
    "Organization",
    "Package",
    "PackageRef",
    "Pagination",
    "PolicyLimits",
    "SshKey",
    "Tag",
    "Task",
    "TaskRef",
    "TaskStatus",
    "VirtualMachine",
    "VirtualMachineBuild",
    "VirtualMachineSummary",
    "VmState",
    "Zone",
]

TaskStatus = Literal["pending", "running", "completed", "failed"]
BuildState = Literal["draft", "pending", "building", "complete", "failed"]
VmState = Literal[
    "stopped",
    "failed",
    "started",
    "starting",
    "allocated",
    "allocating",
    "resetting",
    "migrating",
    "stopping",
    "shutting_down",
    "transferring",
    "orphaned",
]

#: Task statuses known today (the ``status`` field accepts any string).
TASK_STATUSES: Final[frozenset[str]] = frozenset(get_args(TaskStatus))
#: Build states known today.
BUILD_STATES: Final[frozenset[str]] = frozenset(get_args(BuildState))
#: VM states known today.
VM_STATES: Final[frozenset[str]] = frozenset(get_args(VmState))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ------------------------------------------------------------------ catalogue


class DataCenter(_Model):
    """A data center (``loc_...``); also the ``data_center`` nested in zones and networks."""

    id: str
    name: str | None = None
    permalink: str | None = None


class Zone(_Model):
    """A zone (``zone_...``) and the data center it belongs to."""

    id: str
    name: str | None = None
    permalink: str | None = None
    data_center: DataCenter | None = None


class Package(_Model):
    """A virtual machine package (``vmpkg_...``)."""

    id: str
    name: str | None = None
    permalink: str | None = None
    cpu_cores: int | None = None
    memory_in_gb: int | None = None
    storage_in_gb: int | None = None
    ipv4_addresses: int | None = None
    privacy: str | None = None


class PackageRef(_Model):
    """A package as nested in a VM (the VM list gives only its ``name``)."""

    id: str | None = None
    name: str | None = None
    permalink: str | None = None


class DiskTemplate(_Model):
    """A disk template (``dtpl_...``)."""

    id: str
    name: str | None = None
    permalink: str | None = None
    description: str | None = None
    universal: bool | None = None
    size_in_gb: int | None = None


class Network(_Model):
    """A network (``netw_...``) and the data center it belongs to."""

    id: str
    name: str | None = None
    permalink: str | None = None
    default: bool | None = None
    data_center: DataCenter | None = None


class Organization(_Model):
    """An organization (``org_...``); ``infrastructure_domain`` completes VM fqdns."""

    id: str
    name: str | None = None
    sub_domain: str | None = None
    infrastructure_domain: str | None = None
    suspended: bool | None = None
    managed: bool | None = None
    created_at: int | None = None
    activated_at: int | None = None


class Limit(_Model):
    """One policy limit: ``value`` (``None`` when not set) unless ``unlimited``."""

    value: int | None = None
    unlimited: bool = False


class PolicyLimits(_Model):
    """An organization's computed policy limits (the fields the orchestrator uses)."""

    maximum_virtual_machines: Limit | None = None
    maximum_virtual_machine_memory: Limit | None = None
    maximum_disk_space: Limit | None = None
    maximum_disk_size: Limit | None = None
    minimum_disk_size: Limit | None = None
    maximum_unallocated_ip_addresses: Limit | None = None
    flexible_virtual_machine_resources: bool | None = None

    @property
    def max_virtual_machines(self) -> int | None:
        """The VM count limit, or ``None`` when unlimited or not reported."""
        limit = self.maximum_virtual_machines
        if limit is None or limit.unlimited:
            return None
        return limit.value


class SshKey(_Model):
    """An SSH key stored in an organization (``key_...``), as listed."""

    id: str
    name: str | None = None
    fingerprint: str | None = None


class Tag(_Model):
    """A tag of an organization (``tag_...``); the list gives ``id`` and ``name``."""

    id: str
    name: str


# ------------------------------------------------------------------ pagination


class Pagination(_Model):
    """A list page's ``pagination`` object; totals may be ``None`` for large sets."""

    current_page: int | None = None
    total_pages: int | None = None
    total: int | None = None
    per_page: int | None = None
    large_set: bool = False


# ------------------------------------------------------------ tasks and builds


class TaskRef(_Model):
    """The task as returned by a build POST (no timestamps yet)."""

    id: str
    name: str | None = None
    status: str | None = None


class Task(_Model):
    """A task (``task_...``); ``status`` is one of :data:`TaskStatus` or a future value."""

    id: str
    name: str | None = None
    status: str
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    progress: int | None = None

    @property
    def is_finished(self) -> bool:
        """True once the task ``completed`` or ``failed``."""
        return self.status in ("completed", "failed")


class TrashObject(_Model):
    """A VM (or other object) in the trash (``trsh_...``); it keeps its hostname taken."""

    id: str
    keep_until: int | None = None
    object_id: str | None = None
    object_type: str | None = None


class CreatedBuild(_Model):
    """The answer to a build POST: the task to poll and the build it created.

    Parsed from the API's response: ``build_id``/``build_state`` come from
    ``virtual_machine_build`` or, on older servers, the deprecated ``build``.
    """

    task: TaskRef
    build_id: str
    build_state: str | None = None
    hostname: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_api(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "build_id" in data:
            return data
        build = data.get("virtual_machine_build")
        if not isinstance(build, Mapping):
            build = data.get("build")
        if not isinstance(build, Mapping):
            return {"task": data.get("task"), "hostname": data.get("hostname")}
        return {
            "task": data.get("task"),
            "build_id": build.get("id"),
            "build_state": build.get("state"),
            "hostname": data.get("hostname"),
        }


class IpAddress(_Model):
    """An IP address of a VM (the VM list gives only ``address``)."""

    address: str
    id: str | None = None


class VirtualMachine(_Model):
    """A virtual machine (``vm_...``); ``state`` is one of :data:`VmState` or a future value.

    The VM nested in a build carries only ``id``, ``name``, ``hostname``,
    ``fqdn`` and ``state``.
    """

    id: str
    name: str | None = None
    hostname: str | None = None
    fqdn: str | None = None
    state: str | None = None
    created_at: int | None = None
    description: str | None = None
    cpu_cores: int | None = None
    memory_in_gb: int | None = None
    zone: Zone | None = None
    package: PackageRef | None = None
    organization: Organization | None = None
    ip_addresses: tuple[IpAddress, ...] = ()
    tag_names: tuple[str, ...] = ()
    #: the annotations the API returned beside the VM (``GET virtual_machines/_`` only);
    #: None when the answer carried none at all
    annotations: dict[str, str] | None = None


class VirtualMachineSummary(_Model):
    """A VM as listed in an organization's VM list (no ``state``)."""

    id: str
    name: str | None = None
    hostname: str | None = None
    fqdn: str | None = None
    created_at: int | None = None
    zone: Zone | None = None
    package: PackageRef | None = None
    ip_addresses: tuple[IpAddress, ...] = ()


class VirtualMachineBuild(_Model):
    """A VM build (``vmbuild_...``); ``virtual_machine`` appears once the VM exists."""

    id: str
    state: str
    created_at: int | None = None
    spec_xml: str | None = None
    virtual_machine: VirtualMachine | None = None

    @property
    def is_finished(self) -> bool:
        """True once the build is ``complete`` or ``failed``."""
        return self.state in ("complete", "failed")
