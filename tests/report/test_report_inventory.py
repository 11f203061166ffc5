"""The Ansible inventory of a report: hosts, ``ansible_host``, and valid group names."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from orchestrator.report import VmRef, inventory_of
from orchestrator.report._inventory import group_name, inventory_to_yaml
from orchestrator.vm_request import Lookup, VmRequest

from ._helpers import report_of, vm

_VALID_GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _request(hostname: str, **fields: object) -> VmRequest:
    base: dict[str, object] = {
        "key": hostname,
        "hostname": hostname,
        "organization": Lookup("sub_domain", "acme"),
        "package": Lookup("permalink", "rock-1"),
        "zone": Lookup("permalink", "lon-zone-1"),
    }
    return VmRequest(**{**base, **fields})  # type: ignore[arg-type]


def _ref(vm_id: str, *addresses: str, data_center: str | None = "uk-lon-01") -> VmRef:
    return VmRef(
        id=vm_id, fqdn=f"{vm_id}.acme.katapult.cloud", ip_addresses=list(addresses),
        data_center=data_center,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "value", "name"),
    [
        ("dc", "uk-lon-01", "dc_uk_lon_01"),
        ("package", "vmpkg_abcdefgh12345678", "package_vmpkg_abcdefgh12345678"),
        ("tag", "9lives", "tag_9lives"),
        ("tag", "prod.eu/web", "tag_prod_eu_web"),
        ("group", "Web Servers", "group_Web_Servers"),
        ("tag", "café", "tag_caf_"),
        ("tag", "all", "tag_all"),
    ],
)
def test_group_names_are_valid_ansible_names(prefix: str, value: str, name: str) -> None:
    """Every character but ASCII letters, digits and _ becomes _; the prefix leads."""
    assert group_name(prefix, value) == name
    assert _VALID_GROUP.fullmatch(name)


def test_hosts_are_the_vms_in_place_with_their_groups() -> None:
    """Succeeded and already-existing VMs are hosts; failed, cancelled and not-built are not."""
    report = report_of(
        [
            vm("web-01", virtual_machine=_ref("vm_1", "100.64.0.2")),
            vm("old-01", "skipped", virtual_machine=_ref("vm_2", "100.64.0.3")),
            vm("bad-01", "failed"),
            vm("gone-01", "cancelled", virtual_machine=_ref("vm_3", "100.64.0.4")),
            vm("other-01", "skipped", reason="not_selected"),
        ]
    )
    requests = [
        _request("web-01", tags=("frontend", "prod"), group="web"),
        _request("old-01", package=Lookup("permalink", "rock-3")),
        _request("bad-01"),
        _request("gone-01"),
        _request("other-01"),
    ]
    inventory = inventory_of(report, requests)
    assert list(inventory["all"]["hosts"]) == ["web-01", "old-01"]
    web = inventory["all"]["hosts"]["web-01"]
    assert web["ansible_host"] == "100.64.0.2"
    assert web["katapult_vm_id"] == "vm_1"
    assert web["katapult_package"] == "rock-1"
    groups = {name: sorted(group["hosts"]) for name, group in inventory["all"]["children"].items()}
    assert groups == {
        "dc_uk_lon_01": ["old-01", "web-01"],
        "group_web": ["web-01"],
        "package_rock_1": ["web-01"],
        "package_rock_3": ["old-01"],
        "tag_frontend": ["web-01"],
        "tag_prod": ["web-01"],
    }


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (("2a03:2800::1", "100.64.0.9"), "100.64.0.9"),
        (("2a03:2800::1",), "2a03:2800::1"),
        ((), "vm_1.acme.katapult.cloud"),
    ],
)
def test_ansible_host_prefers_ipv4_then_any_address_then_the_fqdn(
    addresses: tuple[str, ...], expected: str
) -> None:
    """``ansible_host`` is the first IPv4 address, else the first address, else the fqdn."""
    report = report_of([vm("a", virtual_machine=_ref("vm_1", *addresses))])
    host = inventory_of(report, [_request("a")])["all"]["hosts"]["a"]
    assert host["ansible_host"] == expected


def test_data_center_falls_back_to_the_spec_when_the_api_gave_none() -> None:
    """Addresses unknown (the VM list failed): the spec's data center still groups the VM."""
    report = report_of([vm("a", virtual_machine=_ref("vm_1", data_center=None))])
    request = _request("a", zone=None, data_center=Lookup("permalink", "nl-ams-01"))
    children = inventory_of(report, [request])["all"]["children"]
    assert "dc_nl_ams_01" in children


def test_an_empty_fleet_is_a_valid_empty_inventory() -> None:
    """No VM in place: ``all`` with no hosts (Ansible reads it as an empty inventory)."""
    report = report_of([vm("bad", "failed")])
    text = inventory_to_yaml(report, [_request("bad")])
    assert yaml.safe_load(text) == {"all": {"hosts": {}}}
    assert text.startswith('# Ansible inventory written by orchestrator run "run-0001"')


@pytest.mark.parametrize(
    "path",
    [
        "web\nall:\n  hosts:\n    evil-01: {}\n.toml",
        "web\r\nall: {hosts: {evil-01: {}}}\n.toml",
        "web\u2028all: {hosts: {evil-01: {}}}.toml",
        "web\x85all: {hosts: {evil-01: {}}}.toml",
    ],
    ids=["LF", "CRLF", "LINE SEPARATOR", "NEL"],
)
def test_a_spec_path_with_line_breaks_adds_no_host(path: str) -> None:
    """The spec's path is quoted in the header comment: a line break in it (of any kind
    YAML knows) cannot end the comment and add hosts (it added evil-01)."""
    report = report_of([vm("a", virtual_machine=_ref("vm_1"))])
    report = report.model_copy(update={"spec": report.spec.model_copy(update={"path": path})})
    text = inventory_to_yaml(report, [_request("a")])
    assert list(yaml.safe_load(text)["all"]["hosts"]) == ["a"]
    header = text.split("\n", 2)[:2]
    assert all(line.startswith("# ") for line in header)
    assert json.loads(header[0].split(" from ", 1)[1]) == path
