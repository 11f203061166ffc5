"""Stored SSH keys, tags, the tag PATCH and the flexible-resources policy, per organization."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.simulator import RunningSimulator, SimulatorConfig

from ._helpers import SPEC_XML, Api, FakeClock, spec_body

pytestmark = pytest.mark.anyio

ORG = {"organization[sub_domain]": "acme"}


def _org_id(sim: RunningSimulator, sub_domain: str) -> str:
    org = sim.state.catalogue.org_by("sub_domain", sub_domain)
    assert org is not None
    return org.id


async def test_ssh_keys_are_listed_per_organization_with_pagination(
    api: Api, sim: RunningSimulator
) -> None:
    """``GET organizations/_/ssh_keys``: id, name, fingerprint, page by page; basic has its own."""
    first = await api.get("organizations/_/ssh_keys", per_page="1", **ORG)
    second = await api.get("organizations/_/ssh_keys", per_page="1", page="2", **ORG)
    assert first.status == second.status == 200
    assert first.json["pagination"]["total"] == 2
    keys = first.json["ssh_keys"] + second.json["ssh_keys"]
    assert [k["name"] for k in keys] == ["alice-laptop", "deploy"]
    assert all(set(k) == {"id", "name", "fingerprint"} for k in keys)
    assert all(k["id"].startswith("key_") and k["fingerprint"].startswith("SHA256:") for k in keys)
    basic = await api.get("organizations/_/ssh_keys", **{"organization[sub_domain]": "basic"})
    assert [k["name"] for k in basic.json["ssh_keys"]] == ["ops"]
    frozen = await api.get("organizations/_/ssh_keys", **{"organization[sub_domain]": "frozen"})
    assert (frozen.status, frozen.code) == (403, "organization_suspended")


async def test_tags_are_listed_with_id_and_name(api: Api) -> None:
    """``GET organizations/_/tags`` shows ``id,name`` as the list's spec says."""
    reply = await api.get("organizations/_/tags", **ORG)
    assert reply.status == 200
    assert [t["name"] for t in reply.json["tags"]] == ["web", "db", "public", "ci"]
    assert all(set(t) == {"id", "name"} and t["id"].startswith("tag_") for t in reply.json["tags"])


async def test_policy_says_whether_flexible_resources_are_allowed(api: Api) -> None:
    """acme's policy allows flexible resources; basic's does not."""
    acme = await api.get("organizations/_/policy_limits", **ORG)
    basic = await api.get("organizations/_/policy_limits", **{"organization[sub_domain]": "basic"})
    assert acme.json["policy_limits"]["flexible_virtual_machine_resources"] is True
    assert basic.json["policy_limits"]["flexible_virtual_machine_resources"] is False


def _xml(**replace: str) -> str:
    xml = SPEC_XML.format(hostname="spec-01", name="Spec 01")
    for old, new in replace.items():
        xml = xml.replace(old, new)
    return xml


def _flexible(xml: str) -> str:
    return xml.replace("</Package>", "</Package><Memory>4</Memory><CPUCores>2</CPUCores>")


@pytest.mark.parametrize(
    ("org", "xml", "status", "code"),
    [
        ("basic", _flexible(_xml()), 422, "validation_error"),
        (
            "acme",
            _xml(**{"<DataCenter": '<Zone by="permalink">lon-zone-1</Zone><DataCenter'}),
            400,
            "invalid_spec_xml",
        ),
        (
            "acme",
            _xml(
                **{'<SSHKeys all="yes"></SSHKeys>': "<SSHKeys><SSHKey>key_nope</SSHKey></SSHKeys>"}
            ),
            400,
            "invalid_spec_xml",
        ),
        ("acme", _xml(**{">web</Tag": ">nope</Tag"}), 400, "invalid_spec_xml"),
    ],
    ids=["flexible-without-policy", "zone-and-data-center", "unknown-key", "unknown-tag"],
)
async def test_build_from_spec_refuses_what_the_organization_does_not_have(
    api: Api, sim: RunningSimulator, org: str, xml: str, status: int, code: str
) -> None:
    """CPU/memory without the policy, a zone and a DC, unknown keys and tags: refused unbuilt."""
    reply = await api.post(
        "organizations/_/virtual_machines/build_from_spec",
        {"organization": {"sub_domain": org}, "xml": xml},
    )
    assert (reply.status, reply.code) == (status, code)
    assert sim.state.snapshot()["virtual_machines"] == []


async def test_build_from_spec_takes_stored_keys_by_id_and_flexible_resources(
    api: Api, sim: RunningSimulator, clock: FakeClock
) -> None:
    """Stored keys by id land in the build's spec; CPU and memory in the VM."""
    key = sim.state.catalogue.ssh_keys[_org_id(sim, "acme")][1]
    xml = _flexible(
        _xml(**{'<SSHKeys all="yes"></SSHKeys>': f"<SSHKeys><SSHKey>{key.id}</SSHKey></SSHKeys>"})
    )
    reply = await api.post(
        "organizations/_/virtual_machines/build_from_spec",
        {**spec_body(), "xml": xml, "annotations": [{"key": "k", "value": "v"}]},
    )
    assert reply.status == 201, reply.json
    assert reply.json["annotations"] == [{"key": "k", "value": "v"}]
    build_id = reply.json["virtual_machine_build"]["id"]
    clock.advance(60)
    build = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    spec_xml = build.json["virtual_machine_build"]["spec_xml"]
    assert f"<SSHKey>{key.id}</SSHKey>" in spec_xml
    assert "<CPUCores>2</CPUCores>" in spec_xml
    assert "<Memory>4</Memory>" in spec_xml
    vm_id = build.json["virtual_machine_build"]["virtual_machine"]["id"]
    vm = await api.get("virtual_machines/_", **{"virtual_machine[id]": vm_id})
    assert (
        vm.json["virtual_machine"]["cpu_cores"],
        vm.json["virtual_machine"]["memory_in_gb"],
    ) == (
        2,
        4,
    )


async def _built_vm(api: Api, clock: FakeClock) -> str:
    reply = await api.post("organizations/_/virtual_machines/build_from_spec", spec_body())
    assert reply.status == 201
    clock.advance(60)
    build = await api.get(
        "virtual_machines/builds/_",
        **{"virtual_machine_build[id]": reply.json["virtual_machine_build"]["id"]},
    )
    vm_id: str = build.json["virtual_machine_build"]["virtual_machine"]["id"]
    return vm_id


async def test_the_tag_patch_sets_the_vm_tags(
    api: Api, sim: RunningSimulator, clock: FakeClock
) -> None:
    """``PATCH virtual_machines/_`` with ``tag_names`` replaces the tags (recorded shape).

    A name the organization has no tag for creates the tag [inferred].
    """
    vm_id = await _built_vm(api, clock)
    body: dict[str, Any] = {
        "virtual_machine": {"id": vm_id},
        "properties": {"tag_names": ["public", "brand-new"]},
    }
    reply = await api.request("PATCH", "virtual_machines/_", json_body=body)
    assert reply.status == 200
    vm = reply.json["virtual_machine"]
    assert vm["tag_names"] == ["public", "brand-new"]
    assert [t["name"] for t in vm["tags"]] == ["public", "brand-new"]
    tags = await api.get("organizations/_/tags", **ORG)
    assert "brand-new" in [t["name"] for t in tags.json["tags"]]
    again = await api.get("virtual_machines/_", **{"virtual_machine[id]": vm_id})
    assert again.json["virtual_machine"]["tag_names"] == ["public", "brand-new"]


async def test_the_tag_patch_errors(api: Api, sim: RunningSimulator, clock: FakeClock) -> None:
    """Unknown VM 404; trashed VM 406; no properties 400: the endpoint's own errors."""
    missing = await api.request(
        "PATCH",
        "virtual_machines/_",
        json_body={"virtual_machine": {"id": "vm_nope"}, "properties": {"tag_names": []}},
    )
    assert (missing.status, missing.code) == (404, "virtual_machine_not_found")
    vm_id = await _built_vm(api, clock)
    no_properties = await api.request(
        "PATCH", "virtual_machines/_", json_body={"virtual_machine": {"id": vm_id}}
    )
    assert (no_properties.status, no_properties.code) == (400, "missing_required_argument")
    sim.state.trash_vm(vm_id)
    trashed = await api.request(
        "PATCH",
        "virtual_machines/_",
        json_body={"virtual_machine": {"id": vm_id}, "properties": {"tag_names": ["web"]}},
    )
    assert (trashed.status, trashed.code) == (406, "object_in_trash")


@pytest.mark.parametrize("config", [SimulatorConfig(build_spread=0.0, vm_limit=0)])
async def test_build_from_spec_gives_the_vm_limit_as_a_validation_error(
    api: Api, config: SimulatorConfig
) -> None:
    """build_from_spec lists no resource_creation_restricted: the limit is a 422 there."""
    spec = await api.post("organizations/_/virtual_machines/build_from_spec", spec_body())
    assert (spec.status, spec.code) == (422, "validation_error")
    assert "maximum number of virtual machines" in spec.detail["errors"][0]


@pytest.mark.parametrize(
    "config",
    [
        SimulatorConfig(
            build_spread=0.0, refused_tokens={"sim-token": "unauthorized_network_for_api_token"}
        )
    ],
)
async def test_a_token_refused_for_its_network(api: Api, config: SimulatorConfig) -> None:
    """A token the authenticator refuses for the caller's network: 403 with ``ip_address``."""
    reply = await api.get("organizations/_/tags", **ORG)
    assert (reply.status, reply.code) == (403, "unauthorized_network_for_api_token")
    assert reply.detail == {"ip_address": "127.0.0.1"}
    assert reply.headers["x-ratelimit-remaining"] == "1000"  # refused before the budget


def test_refused_tokens_take_only_the_authenticators_codes() -> None:
    """Anything else is not an answer the authenticator gives."""
    with pytest.raises(ValueError, match="refused_tokens"):
        SimulatorConfig(refused_tokens={"t": "permission_denied"})
