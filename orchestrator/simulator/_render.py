"""Objects as the API renders them: key sets, key order and types as recorded.

Where a recording shows an object (organization, virtual machine, build, task,
list item, pagination) the keys are those of the recording; elsewhere they
follow the OpenAPI file and the field specs of the server's schema.
"""

from __future__ import annotations

from typing import Any

from orchestrator.simulator._actions import ActionTask
from orchestrator.simulator._catalogue import (
    CATALOGUE_CREATED_AT,
    Country,
    DataCenter,
    DiskTemplate,
    Network,
    Organization,
    Package,
    SshKey,
    Tag,
    Zone,
    make_id,
    tag_id,
)
from orchestrator.simulator._state import Build, TrashInfo, VirtualMachine

__all__ = [
    "build_info",
    "country",
    "data_center_full",
    "data_center_short",
    "disk_template",
    "ip_address",
    "network_short",
    "organization",
    "package_full",
    "package_list_item",
    "pagination",
    "policy_limits",
    "ssh_key",
    "tag",
    "task",
    "task_short",
    "trash_object",
    "virtual_machine",
    "vm_list_item",
    "zone_short",
]


def country(c: Country) -> dict[str, Any]:
    """A country with all its fields."""
    return {
        "eu": c.eu,
        "id": c.id,
        "iso_code2": c.iso_code2,
        "iso_code3": c.iso_code3,
        "name": c.name,
        "time_zone": c.time_zone,
    }


def data_center_short(dc: DataCenter) -> dict[str, Any]:
    """``data_center[id,name,permalink]``."""
    return {"id": dc.id, "name": dc.name, "permalink": dc.permalink}


def data_center_full(dc: DataCenter) -> dict[str, Any]:
    """A data center with its full country (as nested in a VM)."""
    return {"country": country(dc.country), **data_center_short(dc)}


def zone_short(z: Zone) -> dict[str, Any]:
    """``zone[id,name,permalink,data_center[id,name,permalink]]``."""
    return {
        "id": z.id,
        "name": z.name,
        "permalink": z.permalink,
        "data_center": data_center_short(z.data_center),
    }


def network_short(n: Network) -> dict[str, Any]:
    """A network as listed (``id,name,permalink,default,data_center[...]``)."""
    return {
        "id": n.id,
        "name": n.name,
        "permalink": n.permalink,
        "default": True,
        "data_center": data_center_short(n.data_center),
    }


def organization(o: Organization) -> dict[str, Any]:
    """The organization with every recorded field."""
    return {
        "activated_at": None if o.status == "not_activated" else CATALOGUE_CREATED_AT,
        "address1": "1 Simulation Way",
        "address2": None,
        "address3": None,
        "address4": None,
        "billing_name": o.name,
        "country": country(o.country),
        "country_state": None,
        "created_at": CATALOGUE_CREATED_AT,
        "currency": {
            "id": o.currency_id,
            "iso_code": "GBP",
            "name": "British Pound",
            "symbol": "£",
        },
        "id": o.id,
        "infrastructure_domain": o.infrastructure_domain,
        "managed": False,
        "name": o.name,
        "phone_number": None,
        "postcode": "ZZ9 1LS",
        "sub_domain": o.sub_domain,
        "suspended": o.status == "suspended",
        "uuid": o.uuid,
        "vat_number": None,
    }


def package_full(p: Package) -> dict[str, Any]:
    """A package with every recorded field (as nested in a VM)."""
    return {
        "cpu_cores": p.cpu_cores,
        "group": {"id": p.group_id, "name": "Standard vCPU"},
        "icon": None,
        "id": p.id,
        "ipv4_addresses": 1,
        "memory_in_gb": p.memory_in_gb,
        "monthly_bandwidth_allowance_in_gb": 2048,
        "name": p.name,
        "permalink": p.permalink,
        "privacy": "public",
        "storage_in_gb": p.storage_in_gb,
        "use_dedicated_cpus": False,
    }


def package_list_item(p: Package) -> dict[str, Any]:
    """``id,name,permalink,cpu_cores,memory_in_gb,storage_in_gb,privacy,ipv4_addresses,icon``."""
    return {
        "id": p.id,
        "name": p.name,
        "permalink": p.permalink,
        "cpu_cores": p.cpu_cores,
        "memory_in_gb": p.memory_in_gb,
        "storage_in_gb": p.storage_in_gb,
        "privacy": "public",
        "ipv4_addresses": 1,
        "icon": None,
    }


def disk_template(t: DiskTemplate) -> dict[str, Any]:
    """A disk template as listed."""
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "permalink": t.permalink,
        "universal": t.universal,
        "size_in_gb": t.size_in_gb,
        "latest_version": {"id": t.version_id, "number": 1},
        "operating_system": {"id": t.os_id, "name": t.os_name},
    }


def pagination(page: int, per_page: int, total: int, large_set: bool) -> dict[str, Any]:
    """The pagination object; totals are null for a large set."""
    return {
        "current_page": page,
        "total_pages": None if large_set else -(-total // per_page),
        "total": None if large_set else total,
        "per_page": per_page,
        "large_set": large_set,
    }


def ssh_key(k: SshKey) -> dict[str, Any]:
    """A stored SSH key as listed (``id,name,fingerprint``)."""
    return {"id": k.id, "name": k.name, "fingerprint": k.fingerprint}


def tag(t: Tag) -> dict[str, Any]:
    """A tag as the organization's tag list shows it (spec ``id,name``)."""
    return {"id": t.id, "name": t.name}


def policy_limits(vm_limit: int | None, *, flexible_resources: bool = True) -> dict[str, Any]:
    """The organization's policy limits.

    ``maximum_virtual_machines`` and ``flexible_virtual_machine_resources`` are
    enforced; the rest are shown unlimited.
    """

    def unlimited() -> dict[str, Any]:
        return {"value": None, "unlimited": True}

    limits: dict[str, Any] = {
        "maximum_uninvoiced_balance": unlimited(),
        "maximum_virtual_machines": (
            unlimited() if vm_limit is None else {"value": vm_limit, "unlimited": False}
        ),
    }
    for name in (
        "maximum_virtual_machine_memory",
        "maximum_disk_space",
        "maximum_managed_organizations",
        "maximum_unallocated_ip_addresses",
        "maximum_security_groups",
        "maximum_virtual_networks",
        "maximum_load_balancers",
        "maximum_dns_zones",
        "maximum_certificates",
        "maximum_file_storage_volumes",
        "maximum_isos",
        "maximum_disk_size",
    ):
        limits[name] = unlimited()
    limits["minimum_disk_size"] = {"value": 10}
    limits["flexible_virtual_machine_resources"] = flexible_resources
    limits["allow_suspension"] = True
    limits["allow_restricted_traffic_types"] = False
    return limits


def task(source: Build | ActionTask, now: float) -> dict[str, Any]:
    """A task (a build's, a power action's, a purge's) with every field."""
    view = source.task(now)
    return {
        "id": source.task_id,
        "name": source.task_name,
        "status": view.status,
        "created_at": int(source.created_at),
        "started_at": view.started_at,
        "finished_at": view.finished_at,
        "progress": view.progress,
    }


def task_short(source: Build | ActionTask, now: float) -> dict[str, Any]:
    """``task[id,name,status]``, as a power action answers it."""
    return {"id": source.task_id, "name": source.task_name, "status": source.task(now).status}


def trash_object(vm: VirtualMachine, trash: TrashInfo) -> dict[str, Any]:
    """The trash object holding ``vm``."""
    return {
        "id": trash.id,
        "keep_until": trash.keep_until,
        "object_id": vm.id,
        "object_type": "VirtualMachine",
    }


def build_info(build: Build, now: float, start_seconds: float) -> dict[str, Any]:
    """``id,spec_xml,state,virtual_machine[id,name,hostname,fqdn,state],created_at``."""
    vm = None if build.vm is None or build.vm.purged else build.vm
    return {
        "id": build.id,
        "spec_xml": build.spec_xml,
        "state": build.state(now),
        "virtual_machine": None
        if vm is None
        else {
            "id": vm.id,
            "name": vm.name,
            "hostname": vm.hostname,
            "fqdn": vm.fqdn,
            "state": vm.state(now, start_seconds),
        },
        "created_at": int(build.created_at),
    }


def _address(vm: VirtualMachine) -> tuple[str, str]:
    """A stable address for the VM (from its serial) and its /24 subnet."""
    q, r = divmod(vm.serial, 250)
    second = vm.network.data_center.ip_prefix
    third, fourth = q % 256, r + 2
    second += (q // 256) * 3
    return f"100.{second % 256}.{third}.{fourth}", f"100.{second % 256}.{third}"


def ip_address(vm: VirtualMachine) -> dict[str, Any]:
    """The VM's public IP address with its network and subnet."""
    address, net = _address(vm)
    return {
        "address": address,
        "address_with_mask": f"{address}/24",
        "allocation_id": vm.id,
        "allocation_type": "VirtualMachine",
        "id": make_id(0, "ip", vm.id),
        "label": None,
        "network": {
            "data_center": data_center_full(vm.network.data_center),
            "default": True,
            "id": vm.network.id,
            "name": vm.network.name,
            "permalink": vm.network.permalink,
        },
        "reverse_dns": vm.fqdn,
        "subnet": {
            "address": f"{net}.0",
            "billable": True,
            "gateway": f"{net}.1",
            "id": make_id(0, "sbnt", net),
            "mask": 24,
            "version": 4,
        },
        "vip": False,
    }


def virtual_machine(vm: VirtualMachine, now: float, start_seconds: float) -> dict[str, Any]:
    """The full VM, as ``GET virtual_machines/:virtual_machine`` shows it."""
    return {
        "attached_iso": None,
        "cpu_cores": vm.cpu_cores,
        "created_at": vm.created_at,
        "description": vm.description,
        "fqdn": vm.fqdn,
        "gpu_type": None,
        "gpus": [],
        "group": None,
        "hostname": vm.hostname,
        "id": vm.id,
        "initial_root_password": make_id(0, "pw", vm.id)[3:],
        "ip_addresses": [ip_address(vm)] if vm.addressed else [],
        "memory_in_gb": vm.memory_in_gb,
        "name": vm.name,
        "organization": organization(vm.org),
        "package": None if vm.package is None else package_full(vm.package),
        "state": vm.state(now, start_seconds),
        "suspended": False,
        "suspended_at": None,
        "tag_names": list(vm.tags),
        "tags": [
            {
                "color": "pink",
                "created_at": vm.created_at,
                "id": tag_id(vm.org.id, t),
                "name": t,
            }
            for t in vm.tags
        ],
        "use_dedicated_cpus": False,
        "zone": {
            "data_center": data_center_full(vm.zone.data_center),
            "id": vm.zone.id,
            "name": vm.zone.name,
            "permalink": vm.zone.permalink,
        },
    }


def vm_list_item(vm: VirtualMachine) -> dict[str, Any]:
    """A VM as the organization's VM list shows it."""
    return {
        "id": vm.id,
        "name": vm.name,
        "hostname": vm.hostname,
        "fqdn": vm.fqdn,
        "created_at": vm.created_at,
        "zone": zone_short(vm.zone),
        "package": None if vm.package is None else {"name": vm.package.name},
        "gpu_type": None,
        "ip_addresses": [{"address": _address(vm)[0]}] if vm.addressed else [],
    }
