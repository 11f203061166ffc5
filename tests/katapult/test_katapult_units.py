"""Pure pieces of the client: query encoding, lookups, spec XML, rate-limit headers, models."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

import orchestrator.katapult as katapult
from orchestrator.katapult import (
    ApiResponse,
    CreatedBuild,
    PolicyLimits,
    RateLimitInfo,
    Task,
    VirtualMachine,
    VirtualMachineBuild,
    build_spec_xml,
    flatten_params,
    lookup_arg,
    parse_retry_after,
)
from orchestrator.vm_request import Lookup

from ._helpers import BUILD_CREATED, TASK

# ---------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("params", "pairs"),
    [
        ({"organization": {"sub_domain": "acme"}}, [("organization[sub_domain]", "acme")]),
        (
            {"organization": {"id": "org_1"}, "page": 2, "per_page": 100},
            [("organization[id]", "org_1"), ("page", "2"), ("per_page", "100")],
        ),
        ({"include_universal": True, "x": False}, [("include_universal", "true"), ("x", "false")]),
        ({"a": None, "b": {"c": None}, "d": "1"}, [("d", "1")]),
        ({"a": {"b": {"c": "deep"}}}, [("a[b][c]", "deep")]),
        (
            {"annotations": [{"key": "k1", "value": "v1"}, {"key": "k2"}]},
            [
                ("annotations[][key]", "k1"),
                ("annotations[][value]", "v1"),
                ("annotations[][key]", "k2"),
            ],
        ),
        ({"ids": ["a", "b"], "ratio": 1.5}, [("ids[]", "a"), ("ids[]", "b"), ("ratio", "1.5")]),
        ({"q": "a&b=c d"}, [("q", "a&b=c d")]),
        ({}, []),
    ],
)
def test_flatten_params_bracket_form(params: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    """Nested params flatten to bracket-named pairs, in order, skipping None."""
    assert flatten_params(params) == pairs


def test_flatten_params_refuses_unknown_types() -> None:
    """An object that has no query form is a programming error."""
    with pytest.raises(TypeError, match="'when'"):
        flatten_params({"when": object()})


# ---------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("kind", "lookup", "arg"),
    [
        ("organization", Lookup("sub_domain", "acme"), {"sub_domain": "acme"}),
        ("organization", Lookup("id", "org_1"), {"id": "org_1"}),
        ("organization", Lookup("permalink", "acme"), {"sub_domain": "acme"}),
        ("zone", Lookup("permalink", "lon-zone-1"), {"permalink": "lon-zone-1"}),
        ("data_center", Lookup("id", "loc_1"), {"id": "loc_1"}),
        ("package", Lookup("permalink", "rock-3"), {"permalink": "rock-3"}),
        ("disk_template", Lookup("permalink", "templates/x"), {"permalink": "templates/x"}),
        ("network", Lookup("permalink", "uk-lon-01-public"), {"permalink": "uk-lon-01-public"}),
        ("virtual_machine", Lookup("fqdn", "a.b.c"), {"fqdn": "a.b.c"}),
        ("virtual_machine", Lookup("id", "vm_1"), {"id": "vm_1"}),
    ],
)
def test_lookup_arg_one_key(kind: Any, lookup: Lookup, arg: dict[str, str]) -> None:
    """A lookup becomes the API's one-key object; an org permalink is its sub_domain."""
    assert lookup_arg(kind, lookup) == arg


@pytest.mark.parametrize(
    ("kind", "lookup"),
    [
        ("zone", Lookup("sub_domain", "x")),
        ("zone", Lookup("fqdn", "x")),
        ("virtual_machine", Lookup("permalink", "x")),
        ("organization", Lookup("fqdn", "x")),
        ("package", Lookup("permalink", "")),
    ],
)
def test_lookup_arg_refuses_wrong_key(kind: Any, lookup: Lookup) -> None:
    """A key the object cannot be found by (or an empty value) is a programming error."""
    with pytest.raises(ValueError, match=kind):
        lookup_arg(kind, lookup)


# ---------------------------------------------------------------- spec XML


def _parse(xml: str) -> ET.Element:
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<VirtualMachineSpec>')
    return ET.fromstring(xml.split("\n", 1)[1])  # noqa: S314 - parses our own output


def test_spec_xml_minimal_matches_recorded_shape() -> None:
    """The minimal spec has the recorded element layout (lookups by permalink carry by=)."""
    xml = build_spec_xml(
        hostname="web-01",
        package=Lookup("permalink", "rock-3"),
        data_center=Lookup("permalink", "uk-lon-01"),
        disk_template=Lookup("permalink", "templates/ubuntu-18-04"),
        disk_template_options={"install_agent": "true"},
    )
    assert xml.split("\n", 1)[1] == (
        "<VirtualMachineSpec>"
        '<DataCenter by="permalink">uk-lon-01</DataCenter>'
        '<Resources><Package by="permalink">rock-3</Package></Resources>'
        '<DiskTemplate><DiskTemplate by="permalink">templates/ubuntu-18-04</DiskTemplate>'
        '<Option key="install_agent">true</Option></DiskTemplate>'
        "<Hostname><Hostname>web-01</Hostname></Hostname>"
        '<AuthorizedKeys><Users all="yes" /><SSHKeys all="yes" /></AuthorizedKeys>'
        "</VirtualMachineSpec>"
    )


def test_spec_xml_every_field() -> None:
    """Every field lands in its element; ids are bare text, names and tags repeat."""
    root = _parse(
        build_spec_xml(
            hostname="db-01",
            package=Lookup("id", "vmpkg_1"),
            zone=Lookup("permalink", "lon-zone-1"),
            network=Lookup("id", "netw_1"),
            cpu_cores=4,
            memory_gb=16,
            system_disk_gb=50,
            ssh_keys=["key_one1", "key_two2"],
            tags=["db", "prod"],
            name="Database 1",
            description="primary",
            group="vmgrp_abc",
        )
    )
    assert [child.tag for child in root] == [
        "Zone",
        "Resources",
        "SystemDisks",
        "NetworkInterfaces",
        "Hostname",
        "Name",
        "Description",
        "Group",
        "AuthorizedKeys",
        "Tags",
    ]
    assert root.findtext("Zone") == "lon-zone-1"
    package = root.find("Resources/Package")
    assert package is not None
    assert package.text == "vmpkg_1"
    assert "by" not in package.attrib
    assert root.findtext("Resources/CPUCores") == "4"
    assert root.findtext("Resources/Memory") == "16"
    assert root.findtext("SystemDisks/Disk/Size") == "50"
    assert root.findtext("NetworkInterfaces/NetworkInterface/Network") == "netw_1"
    allocation = root.find("NetworkInterfaces/NetworkInterface/IPAddressAllocation")
    assert allocation is not None
    assert allocation.get("type") == "new"
    assert root.findtext("Hostname/Hostname") == "db-01"
    assert root.findtext("Group") == "vmgrp_abc"
    assert [k.text for k in root.iterfind("AuthorizedKeys/SSHKeys/SSHKey")] == [
        "key_one1",
        "key_two2",
    ]
    assert root.find("AuthorizedKeys/Users") is None
    assert [t.text for t in root.iterfind("Tags/Tag")] == ["db", "prod"]


def test_spec_xml_with_keys_tags_and_flexible_resources_has_the_official_outline() -> None:
    """Keys, tags, CPU and memory come out as go-katapult's buildspec writes them.

    The outline of krystal/go-katapult (``buildspec`` golden files) and of
    Krystal's CLI (``vm create``: stored keys by id, ``AuthorizedKeys`` with
    only ``SSHKeys``) and of the Terraform provider (tags by name, after the
    ``AuthorizedKeys``): ``<Memory>`` before ``<CPUCores>`` in ``<Resources>``.
    """
    xml = build_spec_xml(
        hostname="app-01",
        package=Lookup("permalink", "rock-3"),
        data_center=Lookup("permalink", "uk-lon-01"),
        cpu_cores=4,
        memory_gb=16,
        ssh_keys=["key_AbC123", "key_dEf456"],
        tags=["web", "public"],
    )
    assert xml.split("\n", 1)[1] == (
        "<VirtualMachineSpec>"
        '<DataCenter by="permalink">uk-lon-01</DataCenter>'
        '<Resources><Package by="permalink">rock-3</Package>'
        "<Memory>16</Memory><CPUCores>4</CPUCores></Resources>"
        "<Hostname><Hostname>app-01</Hostname></Hostname>"
        "<AuthorizedKeys><SSHKeys>"
        "<SSHKey>key_AbC123</SSHKey><SSHKey>key_dEf456</SSHKey>"
        "</SSHKeys></AuthorizedKeys>"
        "<Tags><Tag>web</Tag><Tag>public</Tag></Tags>"
        "</VirtualMachineSpec>"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"zone": Lookup("permalink", "lon-zone-1"), "data_center": Lookup("id", "loc_1")},
            "not both",
        ),
        ({"ssh_keys": ["ssh-ed25519 AAAAC3Nz me@host"]}, "ids of stored keys"),
        ({"ssh_keys": ["alice-laptop"]}, "ids of stored keys"),
    ],
)
def test_spec_xml_refuses_what_the_api_would_not_read(kwargs: Any, message: str) -> None:
    """A zone and a data center both, or SSH keys not resolved to ids, are refused."""
    with pytest.raises(ValueError, match=message):
        build_spec_xml(hostname="x", package=Lookup("permalink", "rock-1"), **kwargs)


def test_spec_xml_escapes_user_values() -> None:
    """Markup in user values is escaped text, never structure."""
    evil = 'x</Hostname><Zone>evil</Zone><!-- "&'
    root = _parse(
        build_spec_xml(
            hostname=evil,
            package=Lookup("permalink", "rock-1"),
            description=evil,
            group="a group",
            disk_template_options={'k"ey': evil},
            tags=[evil],
        )
    )
    assert root.find("Zone") is None
    assert root.findtext("Hostname/Hostname") == evil
    assert root.findtext("Description") == evil
    assert root.findtext("Tags/Tag") == evil
    option = root.find("DiskTemplate/Option")
    assert option is not None
    assert (option.get("key"), option.text) == ('k"ey', evil)
    group = root.find("Group")
    assert group is not None
    assert (group.get("by"), group.text) == ("name", "a group")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hostname": "a\x00b"},
        {"description": "bell\x07"},
        {"cpu_cores": 0},
        {"memory_gb": -1},
        {"system_disk_gb": True},
        {"zone": Lookup("fqdn", "x")},
    ],
)
def test_spec_xml_refuses_what_it_cannot_say(kwargs: dict[str, Any]) -> None:
    """Control characters, non-positive sizes and wrong lookup keys raise ValueError."""
    args: dict[str, Any] = {"hostname": "h", "package": Lookup("permalink", "rock-1"), **kwargs}
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build_spec_xml(**args)


# ---------------------------------------------------------------- rate-limit headers


def _resp(headers: dict[str, str], status: int = 200) -> ApiResponse:
    return ApiResponse(status=status, headers=headers, body=b"{}")


def test_rate_limit_info_reads_headers_case_insensitively() -> None:
    """X-Ratelimit-* are read whatever their case, as ints."""
    info = RateLimitInfo.from_response(
        _resp({"X-RateLimit-Permitted": " 200 ", "x-ratelimit-remaining": "0"}, status=429)
    )
    assert info == RateLimitInfo(status=429, permitted=200, remaining=0, retry_after=None)


@pytest.mark.parametrize("garbage", ["", "abc", "-1", "1.5", "1e3", "١٢"])
def test_rate_limit_info_ignores_garbage(garbage: str) -> None:
    """A header that is not a non-negative decimal integer reads as None."""
    info = RateLimitInfo.from_response(
        _resp({"x-ratelimit-permitted": garbage, "x-ratelimit-remaining": garbage})
    )
    assert (info.permitted, info.remaining) == (None, None)


NOW = 1_786_739_846.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("2.5", 2.5),
        ("-3", None),  # delta-seconds are digits: a negative delay is nonsense
        ("nan", None),
        ("inf", None),
        ("soon", None),
        (format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), 30.0),
        (format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True), 0.0),
        ("Fri, 14 Aug 2026 20:37:26 -0000", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After is seconds or an HTTP date (relative to now); bad values are None."""
    assert parse_retry_after(value, now=NOW) == seconds


# ---------------------------------------------------------------- models


@pytest.mark.parametrize(
    "body",
    [
        BUILD_CREATED,
        {k: v for k, v in BUILD_CREATED.items() if k != "virtual_machine_build"},
        {k: v for k, v in BUILD_CREATED.items() if k != "build"},
        {**BUILD_CREATED, "build": None},
    ],
    ids=["both", "only build", "only virtual_machine_build", "build null"],
)
def test_created_build_accepts_both_shapes(body: dict[str, Any]) -> None:
    """The build id comes from virtual_machine_build or the deprecated build key."""
    created = CreatedBuild.model_validate(body)
    assert created.build_id == "vmbuild_syAXTRFgVAXvVhTq"
    assert created.build_state == "pending"
    assert created.task.id == "task_cl69PTf3pECcBv97"
    assert created.hostname == "web-01"


def test_unknown_future_states_parse() -> None:
    """A status or state the API adds later parses and counts as not finished."""
    task = Task.model_validate({**TASK, "status": "paused", "new_field": [1]})
    build = VirtualMachineBuild.model_validate({"id": "vmbuild_1", "state": "queued"})
    vm = VirtualMachine.model_validate({"id": "vm_1", "state": "hibernating"})
    assert (task.status, task.is_finished) == ("paused", False)
    assert (build.state, build.is_finished) == ("queued", False)
    assert vm.state == "hibernating"
    assert {"pending", "running", "completed", "failed"} == katapult.TASK_STATUSES
    assert {"draft", "pending", "building", "complete", "failed"} == katapult.BUILD_STATES
    assert len(katapult.VM_STATES) == 12


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        ({"maximum_virtual_machines": {"value": 50, "unlimited": False}}, 50),
        ({"maximum_virtual_machines": {"value": None, "unlimited": True}}, None),
        ({}, None),
    ],
)
def test_policy_limits_vm_count(raw: dict[str, Any], limit: int | None) -> None:
    """max_virtual_machines is the VM limit, None when unlimited or absent."""
    assert PolicyLimits.model_validate(raw).max_virtual_machines == limit


def test_public_api_is_sorted_and_complete() -> None:
    """__all__ is sorted (constants first, as ruff sorts it) and every name exists."""
    names = katapult.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(katapult, name) is not None
