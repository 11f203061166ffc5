"""Every recorded real response of the endpoints we use parses into the typed models.

Each recorded answer is replayed through the client (MockTransport), so the
whole path is exercised: the request the client builds (compared with the
recorded one where the two agree on the path form), the headers, the JSON
and the models.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from orchestrator.errors import NotFound
from orchestrator.katapult import ApiRequest, ApiResponse, RateLimitInfo
from orchestrator.vm_request import Lookup

from ._helpers import load_recording, make_client

CASSETTES = ("vm-build-from-spec-minimal.yaml", "vm-list-paginated.yaml", "vm-get-by-fqdn.yaml")
PREFIX = "/core/v1/"


def _interactions() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name in CASSETTES:
        for index, interaction in enumerate(load_recording(name)):
            out.append((f"{name.removesuffix('.yaml')}#{index}", interaction))
    return out


ALL = _interactions()


def _path(interaction: dict[str, Any]) -> str:
    url: str = interaction["request"]["url"]
    return urlsplit(url).path.removeprefix(PREFIX)


def _query(interaction: dict[str, Any]) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(interaction["request"]["url"]).query)


def _select(method: str, path: str) -> list[dict[str, Any]]:
    return [
        interaction
        for _, interaction in ALL
        if interaction["request"]["method"] == method
        and _path(interaction) == path
        and interaction["response"]["code"] < 400
    ]


def _ids(interactions: list[dict[str, Any]]) -> list[str]:
    by_identity = {id(interaction): ident for ident, interaction in ALL}
    return [by_identity[id(interaction)] for interaction in interactions]


def _replay(interaction: dict[str, Any]) -> ApiResponse:
    response = interaction["response"]
    headers = {key.lower(): values[0] for key, values in response["headers"].items()}
    return ApiResponse(status=response["code"], headers=headers, body=response["body"].encode())


def _body(interaction: dict[str, Any]) -> Any:
    return json.loads(interaction["response"]["body"])


BUILD_FROM_SPEC = _select("POST", "organizations/organization/virtual_machines/build_from_spec")
BUILDS = _select("GET", "virtual_machines/builds/virtual_machine_build")
TASKS = _select("GET", "tasks/task")
VMS = _select("GET", "virtual_machines/virtual_machine")
VM_LISTS = _select("GET", "organizations/organization/virtual_machines")
ERRORS = [interaction for _, interaction in ALL if interaction["response"]["code"] >= 400]


def test_every_endpoint_we_use_is_recorded() -> None:
    """The selections are not empty, so the parse tests below really run."""
    assert len(BUILD_FROM_SPEC) == 4
    assert len(BUILDS) >= 10
    assert len(TASKS) >= 8
    assert len(VMS) >= 10
    assert any("virtual_machine[fqdn]" in dict(_query(i)) for i in VMS)
    assert len(VM_LISTS) == 3
    assert len(ERRORS) >= 10
    assert {i["response"]["code"] for i in ERRORS} == {404}


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", BUILD_FROM_SPEC, ids=_ids(BUILD_FROM_SPEC))
async def test_recorded_build_from_spec_parses(interaction: dict[str, Any]) -> None:
    """A recorded 201 of build_from_spec parses, and our request body equals the recorded one."""
    client, transport = make_client(lambda _: _replay(interaction))
    recorded = json.loads(interaction["request"]["body"])
    created = await client.build_vm_from_spec(
        organization=Lookup("sub_domain", recorded["organization"]["sub_domain"]),
        xml=recorded["xml"],
    )
    raw = _body(interaction)
    assert created.task.id == raw["task"]["id"]
    assert created.task.status == "pending"
    assert created.build_id == raw["virtual_machine_build"]["id"] == raw["build"]["id"]
    assert created.build_state == "pending"
    assert created.hostname == raw["hostname"]
    assert transport.requests[0].json == recorded


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", BUILDS, ids=_ids(BUILDS))
async def test_recorded_builds_parse(interaction: dict[str, Any]) -> None:
    """A recorded build poll parses; our query is the recorded one."""
    client, transport = make_client(lambda _: _replay(interaction))
    query = _query(interaction)
    build = await client.get_build(dict(query)["virtual_machine_build[id]"])
    raw = _body(interaction)["virtual_machine_build"]
    assert build.id == raw["id"]
    assert build.state == raw["state"]
    assert build.created_at == raw["created_at"]
    assert build.spec_xml == raw["spec_xml"]
    if raw["virtual_machine"] is None:
        assert build.virtual_machine is None
    else:
        assert build.virtual_machine is not None
        assert build.virtual_machine.id == raw["virtual_machine"]["id"]
        assert build.virtual_machine.fqdn == raw["virtual_machine"]["fqdn"]
        assert build.virtual_machine.state == raw["virtual_machine"]["state"]
    assert list(transport.requests[0].params) == query


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", TASKS, ids=_ids(TASKS))
async def test_recorded_tasks_parse(interaction: dict[str, Any]) -> None:
    """A recorded task poll parses with its timestamps and progress."""
    client, transport = make_client(lambda _: _replay(interaction))
    task_id = dict(_query(interaction))["task[id]"]
    task = await client.get_task(task_id)
    raw = _body(interaction)["task"]
    assert (task.id, task.name, task.status) == (raw["id"], raw["name"], raw["status"])
    assert (task.created_at, task.started_at, task.finished_at, task.progress) == (
        raw["created_at"],
        raw["started_at"],
        raw["finished_at"],
        raw["progress"],
    )
    assert task.is_finished == (raw["status"] == "completed")
    assert transport.requests[0].path == f"tasks/{task_id}"


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", VMS, ids=_ids(VMS))
async def test_recorded_vms_parse(interaction: dict[str, Any]) -> None:
    """A recorded VM lookup (by id or fqdn) parses; our query is the recorded one."""
    client, transport = make_client(lambda _: _replay(interaction))
    ((name, value),) = _query(interaction)
    key = name.removeprefix("virtual_machine[").removesuffix("]")
    assert key in ("id", "fqdn")
    vm = await client.get_vm(Lookup(key, value))  # type: ignore[arg-type]
    raw = _body(interaction)["virtual_machine"]
    assert (vm.id, vm.hostname, vm.fqdn, vm.state) == (
        raw["id"],
        raw["hostname"],
        raw["fqdn"],
        raw["state"],
    )
    assert vm.created_at == raw["created_at"]
    assert vm.zone is not None
    assert vm.zone.permalink == raw["zone"]["permalink"]
    assert vm.organization is not None
    assert vm.organization.infrastructure_domain == raw["organization"]["infrastructure_domain"]
    assert [ip.address for ip in vm.ip_addresses] == [ip["address"] for ip in raw["ip_addresses"]]
    assert list(transport.requests[0].params) == [(name, value)]


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", VM_LISTS, ids=_ids(VM_LISTS))
async def test_recorded_vm_list_pages_parse(interaction: dict[str, Any]) -> None:
    """A recorded VM list page parses into summaries; our query is the recorded one."""
    client, transport = make_client(lambda _: _replay(interaction))
    query = dict(_query(interaction))
    vms = [
        vm
        async for vm in client.list_vms(
            Lookup("sub_domain", query["organization[sub_domain]"]),
            per_page=int(query["per_page"]),
        )
    ]
    raw = _body(interaction)
    assert [vm.id for vm in vms] == [vm["id"] for vm in raw["virtual_machines"]]
    assert [vm.hostname for vm in vms] == [vm["hostname"] for vm in raw["virtual_machines"]]
    assert all(vm.zone is not None and vm.package is not None for vm in vms)
    assert len(transport.requests) == 1  # total_pages 1: no second request
    assert sorted(transport.requests[0].params) == sorted(_query(interaction))


@pytest.mark.anyio
@pytest.mark.parametrize("interaction", ERRORS, ids=_ids(ERRORS))
async def test_recorded_errors_raise_not_found(interaction: dict[str, Any]) -> None:
    """A recorded 404 envelope becomes NotFound with code, description and request id."""

    def handler(request: ApiRequest) -> ApiResponse:
        return _replay(interaction)

    client, _ = make_client(handler)
    with pytest.raises(NotFound) as caught:
        await client.request("GET", _path(interaction), params=dict(_query(interaction)))
    raw = _body(interaction)["error"]
    exc = caught.value
    assert exc.http_status == 404
    assert exc.code == raw["code"]
    assert exc.description == raw["description"]
    assert exc.detail == {}
    assert exc.request_id == interaction["response"]["headers"]["X-Request-Id"][0]
    assert exc.category == "not_found"
    assert f"{exc.code} - " in str(exc)
    assert f"(request id {exc.request_id})" in str(exc)


@pytest.mark.parametrize(("ident", "interaction"), ALL, ids=[ident for ident, _ in ALL])
def test_recorded_rate_limit_headers_parse(ident: str, interaction: dict[str, Any]) -> None:
    """Every recorded response carries usable X-Ratelimit-* headers and no Retry-After."""
    info = RateLimitInfo.from_response(_replay(interaction))
    assert info.status == interaction["response"]["code"]
    assert info.permitted == 1000
    assert info.remaining is not None
    assert 0 <= info.remaining < 1000
    assert info.retry_after is None
