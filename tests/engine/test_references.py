"""SSH keys, tags and flexible resources: checked in ``plan`` and before the first POST.

Every test runs the real client over loopback against the simulator, whose
catalogue stores SSH keys and tags per organization and gives ``basic`` a
policy without flexible resources. Requests are recorded by wrapping the real
aiohttp transport, so the tests can say what was sent.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Orchestrator, make_plan
from orchestrator.errors import SpecError
from orchestrator.katapult import AiohttpTransport, ApiRequest, ApiResponse
from orchestrator.simulator import FaultConfig, RunningSimulator, SimulatorConfig, run_simulator
from orchestrator.vm_request import VmRequest

from .conftest import SCALE, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


class RecordingTransport:
    """The real aiohttp transport, remembering every request it sent."""

    def __init__(self, sim: RunningSimulator) -> None:
        self._inner = AiohttpTransport(sim.url)
        self.requests: list[ApiRequest] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        return await self._inner.send(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def posts(self) -> list[ApiRequest]:
        return [r for r in self.requests if r.method == "POST"]


def _keys(sim: RunningSimulator, org: str = "acme") -> dict[str, Any]:
    catalogue = sim.state.catalogue
    found = catalogue.org_by("sub_domain", org)
    assert found is not None
    return {k.name: k for k in catalogue.ssh_keys_of(found)}


def _flexible(
    n: int, organization: str = "acme", prefix: str = "app", **extra: Any
) -> list[VmRequest]:
    return vms(n, prefix=prefix, organization=organization, **extra)


async def test_keys_tags_and_flexible_resources_go_through_plan_and_run() -> None:
    """Keys by name, fingerprint and id, tags and CPU/memory: planned, built, tagged.

    The XML sent has the official clients' outline: the stored keys' ids in
    ``<AuthorizedKeys><SSHKeys>``, the tags by name, ``<Memory>`` and
    ``<CPUCores>`` in ``<Resources>``; the annotations travel beside it.
    """
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        keys = _keys(sim)
        alice, deploy = keys["alice-laptop"], keys["deploy"]
        requests = _flexible(
            3,
            cpu_cores=4,
            memory_gb=16,
            ssh_keys=("alice-laptop", deploy.fingerprint, alice.id),
            tags=("web", "public"),
            annotations={"team": "platform"},
        )
        transport = RecordingTransport(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            plan = await make_plan(orch.client, requests)
            assert not plan.problems
            assert [r.key for r in plan.to_build] == [r.key for r in requests]
            assert not transport.posts()
            report = await orch.run(requests)
        built = {vm.hostname: vm for vm in sim.state.vms_of(_org(sim, "acme"))}

    assert [vm.outcome for vm in report.vms] == ["succeeded"] * 3
    assert all(vm.tags == ("web", "public") for vm in report.vms)
    assert sorted(built) == [r.key for r in requests]
    assert all(vm.tags == ["web", "public"] for vm in built.values())
    assert all((vm.cpu_cores, vm.memory_in_gb) == (4, 16) for vm in built.values())

    posts = transport.posts()
    assert len(posts) == 3
    body = posts[0].json
    assert {"key": "team", "value": "platform"} in body["annotations"]
    root = ET.fromstring(body["xml"].split("\n", 1)[1])  # noqa: S314 - our own request
    assert [k.text for k in root.iterfind("AuthorizedKeys/SSHKeys/SSHKey")] == [
        alice.id,
        deploy.id,
    ]
    authorized = root.find("AuthorizedKeys")
    assert authorized is not None
    assert [child.tag for child in authorized] == ["SSHKeys"]
    assert [t.text for t in root.iterfind("Tags/Tag")] == ["web", "public"]
    resources = root.find("Resources")
    assert resources is not None
    assert [child.tag for child in resources] == ["Package", "Memory", "CPUCores"]
    patches = [r for r in transport.requests if r.method == "PATCH"]
    assert len(patches) == 3
    assert patches[0].json["properties"] == {"tag_names": ["web", "public"]}


def _org(sim: RunningSimulator, sub_domain: str) -> Any:
    org = sim.state.catalogue.org_by("sub_domain", sub_domain)
    assert org is not None
    return org


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"ssh_keys": ("alice-laptop", "bob-desktop")}, "ssh_keys", "bob-desktop"),
        ({"tags": ("web", "no-such-tag")}, "tags", "no-such-tag"),
    ],
    ids=["unknown ssh key", "unknown tag"],
)
async def test_an_unknown_key_or_tag_is_a_spec_problem_and_nothing_is_sent(
    change: dict[str, Any], field: str, value: str
) -> None:
    """``plan`` lists it; ``run`` raises SpecError naming entry, hostname and field, unsent."""
    requests = [*vms(1, prefix="plain"), *[dataclasses.replace(r, **change) for r in vms(2)]]
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        transport = RecordingTransport(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            plan = await make_plan(orch.client, requests)
            with pytest.raises(SpecError) as info:
                await orch.run(requests, spec_path="fleet.toml")
        assert created_hostnames(sim) == []
    assert not transport.posts()
    (problem,) = plan.problems
    assert (problem.field, problem.value) == (field, value)
    assert problem.hostnames == ("vm-001", "vm-002")
    issues = info.value.issues
    assert [(i.file, i.entry, i.hostname, i.field) for i in issues] == [
        ("fleet.toml", 0, "vm-001", field),
        ("fleet.toml", 1, "vm-002", field),
    ]
    assert value in issues[0].message


async def test_one_issue_per_entry_however_many_vms_it_expands_to() -> None:
    """Five VMs of one entry naming an unknown key make one issue, not five."""
    requests = [dataclasses.replace(r, entry_index=0, ssh_keys=("nope",)) for r in vms(5)]
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            with pytest.raises(SpecError) as info:
                await orch.run(requests, spec_path="fleet.toml")
    (issue,) = info.value.issues
    assert (issue.entry, issue.hostname, issue.field) == (0, "vm-001", "ssh_keys")
    assert issue.message.endswith("(and 4 more VMs of this entry)")


async def test_flexible_resources_an_organization_forbids_are_refused_before_sending() -> None:
    """In ``basic`` (no flexible resources) CPU/memory VMs are a problem plan and run both
    find: the run raises SpecError naming entry and field, and nothing is built."""
    requests = [
        *_flexible(2, organization="basic", cpu_cores=2, memory_gb=4),
        *vms(1, prefix="plain", organization="basic"),
        *_flexible(1, organization="acme", prefix="flex", cpu_cores=2, memory_gb=4),
    ]
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            plan = await make_plan(orch.client, requests)
            with pytest.raises(SpecError) as caught:
                await orch.run(requests)
        created = created_hostnames(sim)
    (problem,) = plan.problems
    assert problem.field == "cpu_cores"
    assert problem.hostnames == ("app-001", "app-002")
    assert "flexible resources" in problem.message
    issues = caught.value.issues
    assert {issue.field for issue in issues} == {"cpu_cores"}
    assert all("flexible resources" in issue.message for issue in issues)
    assert created == []


async def test_a_rerun_sets_the_tags_a_first_run_could_not(tmp_path: Path) -> None:
    """Tags that failed are set by the rerun that finds our VM; the row says which it has."""
    requests = vms(2, tags=("web", "db"))
    faults = FaultConfig(error_5xx_rate=1.0, methods=frozenset({"PATCH"}))
    journal = tmp_path / "fleet.journal"
    # the build leaves the VM without its tags: only the PATCH sets them
    config = SimulatorConfig(time_scale=SCALE, faults=faults, xml_tags="ignored")
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            first = await orch.run(requests, journal=journal)
        sim.config.faults = FaultConfig()
        async with Orchestrator(settings_for(sim)) as orch:
            second = await orch.run(requests, journal=journal)
        tagged = {vm.hostname: vm.tags for vm in sim.state.vms_of(_org(sim, "acme"))}
        assert sorted(created_hostnames(sim)) == ["vm-001", "vm-002"]
    assert {vm.outcome for vm in first.vms} == {"failed"}
    assert [(vm.outcome, vm.reason, vm.tags) for vm in second.vms] == [
        ("skipped", "already_exists", ("web", "db")),
    ] * 2
    assert tagged == {"vm-001": ["web", "db"], "vm-002": ["web", "db"]}


async def test_a_tag_that_cannot_be_set_is_a_categorized_error_of_that_vm() -> None:
    """The build succeeded but every tag PATCH failed (5xx): failed/server_error, VM kept."""
    requests = vms(2, tags=("web", "db"))
    faults = FaultConfig(error_5xx_rate=1.0, methods=frozenset({"PATCH"}))
    config = SimulatorConfig(time_scale=SCALE, faults=faults, xml_tags="ignored")
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
        assert sorted(created_hostnames(sim)) == ["vm-001", "vm-002"]
        assert sim.state.faults["error_5xx"] >= 2
    for vm in report.vms:
        assert (vm.outcome, vm.category) == ("failed", "server_error")
        assert vm.error is not None
        assert vm.error.code in (
            "unhandled_exception",
            "service_unavailable",
        )
        assert vm.virtual_machine is not None  # it was built: the report says which
        assert vm.stopped_because == "the VM was built; setting its tags failed"
        assert vm.tags == ()
    assert json.loads(report.model_dump_json())["vms"][0]["tags"] == []


@pytest.mark.parametrize("api", ["default", "pessimistic"])
async def test_tags_are_added_as_a_union_keeping_those_set_by_hand(
    tmp_path: Path, api: str
) -> None:
    """The spec adds a tag on a rerun; a tag someone set by hand on the VM stays."""
    journal = tmp_path / "fleet.journal"
    async with run_simulator(_reading(api)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(vms(1, tags=("web",)), journal=journal)
        (vm,) = sim.state.vms_of(_org(sim, "acme"))
        vm.tags = ["web", "ci"]  # by hand, in the control panel
        async with Orchestrator(settings_for(sim)) as orch:
            again = await orch.run(vms(1, tags=("web", "public")), journal=journal)
        tagged = {vm.hostname: vm.tags for vm in sim.state.vms_of(_org(sim, "acme"))}
    assert [(row.outcome, row.reason) for row in again.vms] == [("skipped", "already_exists")]
    assert again.vms[0].tags is not None
    assert set(again.vms[0].tags) == {"web", "ci", "public"}
    assert set(tagged["vm-001"]) == {"web", "ci", "public"}


def _reading(api: str, **kw: Any) -> SimulatorConfig:
    if api == "pessimistic":
        return SimulatorConfig.pessimistic(time_scale=SCALE, **kw)
    return SimulatorConfig(time_scale=SCALE, **kw)


@pytest.mark.parametrize("api", ["default", "pessimistic"])
async def test_tags_whose_patch_answers_were_all_lost_are_read_back(api: str) -> None:
    """Every tag PATCH acts, then its connection breaks: the VM is read back, has its
    tags, and the row says so (succeeded, with the tags), never []."""
    requests = vms(2, tags=("web", "db"))
    faults = FaultConfig(reset_after_rate=1.0, methods=frozenset({"PATCH"}))
    async with run_simulator(_reading(api, faults=faults)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests, fleet="tagged")
        assert sim.state.faults["reset_after"] >= 2
        tagged = {vm.hostname: vm.tags for vm in sim.state.vms_of(_org(sim, "acme"))}
    assert [(vm.outcome, vm.tags) for vm in report.vms] == [("succeeded", ("web", "db"))] * 2
    assert tagged == {"vm-001": ["web", "db"], "vm-002": ["web", "db"]}


class _KeysRefused(RecordingTransport):
    """Answers the SSH key listing 403 ``scope_not_granted``, the rest as the simulator does."""

    async def send(self, request: ApiRequest) -> ApiResponse:
        if request.method == "GET" and request.path.endswith("/ssh_keys"):
            self.requests.append(request)
            body = {
                "error": {
                    "code": "scope_not_granted",
                    "description": "The API token does not have the scopes required",
                    "detail": {"scopes": ["ssh_keys"]},
                }
            }
            headers = {"content-type": "application/json"}
            return ApiResponse(status=403, headers=headers, body=json.dumps(body).encode())
        return await super().send(request)


async def test_keys_the_token_may_not_read_stop_the_whole_run_before_a_build() -> None:
    """The token lacks the scope to list SSH keys: found before the first build, the run
    stops whole (every VM not submitted, permission), and no VM is built, not even one
    that names no key (it was built, and the others failed one by one)."""
    requests = [*vms(1, prefix="plain"), *vms(2, ssh_keys=("deploy",))]
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        transport = _KeysRefused(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            report = await orch.run(requests)
            doomed = orch.current_run.doomed_run if orch.current_run else None
        assert created_hostnames(sim) == []
    assert not transport.posts()
    assert {(vm.outcome, vm.category, vm.reason) for vm in report.vms} == {
        ("failed", "permission", "not_submitted")
    }
    assert doomed is not None
    assert doomed[1].code == "scope_not_granted"
