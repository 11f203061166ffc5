"""``--inventory PATH``: an Ansible inventory (YAML) of the VMs a run leaves in place.

The shape is Ansible's YAML inventory (the ``yaml`` inventory plugin)::

    all:
      hosts:
        web-01:
          ansible_host: 100.64.0.2
          katapult_vm_id: vm_...
          ...
      children:
        dc_uk_lon_01:
          hosts:
            web-01: {}
        package_rock_1: ...
        group_frontend: ...
        tag_production: ...

A host is every VM whose outcome is ``succeeded``, or ``skipped`` because it
already existed: the fleet as it stands after the run. Group names are made
valid Ansible names (letters, digits, ``_``; never starting with a digit).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Report, VmResult
from orchestrator.vm_request import VmRequest

__all__ = [
    "group_name",
    "inventory_hosts",
    "inventory_of",
    "inventory_to_yaml",
    "write_inventory",
]

_INVALID = re.compile(r"[^A-Za-z0-9_]")


def group_name(prefix: str, value: str) -> str:
    """``prefix`` + ``value`` as a valid Ansible group name: ``dc_uk_lon_01``.

    Every character other than an ASCII letter, digit or ``_`` becomes ``_``;
    the prefix (a word, such as ``tag``) keeps the name from starting with a
    digit and from clashing with ``all`` or ``ungrouped``.
    """
    return _INVALID.sub("_", f"{prefix}_{value}")


def inventory_hosts(report: Report) -> list[VmResult]:
    """The rows of ``report`` that go into the inventory, in report order."""
    return [
        vm
        for vm in report.vms
        if vm.virtual_machine is not None
        and (
            vm.outcome == "succeeded" or (vm.outcome == "skipped" and vm.reason == "already_exists")
        )
    ]


def _ansible_host(vm: VmResult) -> str | None:
    """The first IPv4 address, else the first address, else the fqdn."""
    ref = vm.virtual_machine
    if ref is None:
        return None
    for address in ref.ip_addresses:
        try:
            if ipaddress.ip_address(address).version == 4:
                return address
        except ValueError:
            continue
    if ref.ip_addresses:
        return ref.ip_addresses[0]
    return ref.fqdn


def inventory_of(report: Report, requests: Sequence[VmRequest]) -> dict[str, Any]:
    """The inventory of ``report`` as a mapping (see the module's docstring).

    ``requests`` are the spec's VMs: they give each host's package, ``group``
    and tags. The data center is the one the API listed for the VM, else the
    one the spec names.
    """
    by_key: Mapping[str, VmRequest] = {req.key: req for req in requests}
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, dict[str, Any]]] = {}

    def join(group: str, host: str) -> None:
        groups.setdefault(group, {})[host] = {}

    for vm in inventory_hosts(report):
        ref = vm.virtual_machine
        assert ref is not None  # inventory_hosts keeps only rows with a VM
        req = by_key.get(vm.key)
        data_center = ref.data_center or (
            req.data_center.value if req is not None and req.data_center is not None else None
        )
        host: dict[str, Any] = {}
        address = _ansible_host(vm)
        if address is not None:
            host["ansible_host"] = address
        host["katapult_vm_id"] = ref.id
        host["katapult_fqdn"] = ref.fqdn
        host["katapult_ip_addresses"] = list(ref.ip_addresses)
        host["katapult_data_center"] = data_center
        host["katapult_outcome"] = vm.outcome
        hosts[vm.hostname] = host
        if data_center:
            join(group_name("dc", data_center), vm.hostname)
        if req is None:
            continue
        host["katapult_package"] = req.package.value
        join(group_name("package", req.package.value), vm.hostname)
        if req.group:
            join(group_name("group", req.group), vm.hostname)
        for tag in req.tags:
            join(group_name("tag", tag), vm.hostname)
    children = {name: {"hosts": groups[name]} for name in sorted(groups)}
    everything: dict[str, Any] = {"hosts": hosts}
    if children:
        everything["children"] = children
    return {"all": everything}


def inventory_to_yaml(report: Report, requests: Sequence[VmRequest]) -> str:
    """The text of the inventory file, with a comment saying where it comes from."""
    # the spec's path and the run id are the user's: quoted as JSON (ASCII), no line
    # break of any kind (YAML's own among them) can end the comment and start hosts
    run_id, spec_path = json.dumps(report.run_id), json.dumps(report.spec.path)
    header = (
        f"# Ansible inventory written by orchestrator run {run_id} from {spec_path}\n"
        "# (VMs that succeeded or already existed; rewritten by every run)\n"
    )
    body = yaml.safe_dump(inventory_of(report, requests), sort_keys=False, default_flow_style=False)
    return header + body


def write_inventory(
    report: Report, requests: Sequence[VmRequest], path: str | os.PathLike[str]
) -> None:
    """Write the inventory of ``report`` to ``path`` atomically, owner-only (0o600)."""
    atomic_write(path, inventory_to_yaml(report, requests).encode("utf-8"))
