"""Every error path: exact status, code, envelope, description and headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from orchestrator.simulator import RunningSimulator, SimulatorConfig, SimulatorState

from ._helpers import SPEC_XML, Api, FakeClock, Reply, apia_errors, build_body, spec_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"
SPEC = "organizations/_/virtual_machines/build_from_spec"

#: The Apia framework's own texts (not in the server schema).
FRAMEWORK = {
    "invalid_json_body": (400, "The JSON body provided with this request is invalid"),
    "unhandled_exception": (500, None),
    "service_unavailable": (503, "The service is currently unavailable, please try again later"),
}


def assert_error(reply: Reply, status: int, code: str) -> Any:
    """The envelope, status, code, documented description and headers of an error."""
    assert reply.status == status, reply.raw
    assert reply.headers["x-api-schema"] == "json-error"
    assert reply.headers["content-type"] == "application/json"
    assert "x-ratelimit-permitted" in reply.headers
    assert "x-ratelimit-remaining" in reply.headers
    assert "x-request-id" in reply.headers
    body = reply.json
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "description", "detail"}
    assert body["error"]["code"] == code
    known = apia_errors().get(code) or FRAMEWORK.get(code)
    if known is not None:
        assert (status, body["error"]["description"]) == known
    return body["error"]["detail"]


@dataclass
class Case:
    """One request that must fail."""

    method: str
    path: str
    status: int
    code: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    detail: Any = None  # compared when not None
    issue: str | None = None


CASES: dict[str, Case] = {
    "unknown-route": Case("GET", "nope/nothing", 404, "route_not_found"),
    "wrong-method": Case("DELETE", "tasks/task_x", 404, "route_not_found"),
    "builds-without-id": Case("GET", "virtual_machines/builds", 404, "route_not_found"),
    "empty-lookup": Case(
        "POST",
        BUILD,
        400,
        "invalid_argument",
        body=build_body(organization={}),
        issue="missing_lookup_value",
    ),
    "two-key-lookup": Case(
        "POST",
        BUILD,
        400,
        "invalid_argument",
        body=build_body(organization={"sub_domain": "acme", "id": "org_x"}),
        issue="ambiguous_lookup_values",
    ),
    "merged-query-and-body-lookup": Case(
        "POST",
        BUILD,
        400,
        "invalid_argument",
        params={"organization[id]": "org_x"},
        body=build_body(),
        issue="ambiguous_lookup_values",
    ),
    "lookup-not-an-object": Case(
        "POST",
        BUILD,
        400,
        "invalid_argument",
        body=build_body(organization="acme"),
        issue="object_expected",
    ),
    "empty-query-lookup": Case(
        "GET",
        "tasks/_",
        400,
        "invalid_argument",
        params={"task[]": "x"},
        issue="object_expected",
    ),
    "missing-package": Case(
        "POST",
        BUILD,
        400,
        "missing_required_argument",
        body=build_body(package=None),
        detail={"path": ["package"], "argument": {"name": "package", "description": None}},
    ),
    "null-package": Case(
        "POST",
        BUILD,
        400,
        "missing_required_argument",
        body={**build_body(), "package": None},
    ),
    "missing-xml": Case(
        "POST",
        SPEC,
        400,
        "missing_required_argument",
        body={"organization": {"sub_domain": "acme"}},
    ),
    "no-location": Case(
        "POST",
        BUILD,
        422,
        "location_required",
        body=build_body(data_center=None),
        detail={},
    ),
    "unknown-org": Case(
        "POST",
        BUILD,
        404,
        "organization_not_found",
        body=build_body(organization={"sub_domain": "nope"}),
        detail={},
    ),
    "org-by-name-in-path": Case("GET", "organizations/acme", 404, "organization_not_found"),
    "placeholder-without-args": Case("GET", "organizations/_", 404, "organization_not_found"),
    "suspended-org": Case(
        "POST",
        BUILD,
        403,
        "organization_suspended",
        body=build_body(organization={"sub_domain": "frozen"}),
    ),
    "suspended-org-lookup": Case(
        "GET",
        "organizations/_",
        403,
        "organization_suspended",
        params={"organization[sub_domain]": "frozen"},
    ),
    "not-activated-org": Case(
        "POST",
        BUILD,
        403,
        "organization_not_activated",
        body=build_body(organization={"sub_domain": "newco"}),
    ),
    "unknown-zone": Case(
        "POST",
        BUILD,
        404,
        "zone_not_found",
        body=build_body(zone={"permalink": "nope"}),
    ),
    "unknown-data-center": Case(
        "POST",
        BUILD,
        404,
        "data_center_not_found",
        body=build_body(data_center={"permalink": "nope"}),
    ),
    "unknown-package": Case(
        "POST",
        BUILD,
        404,
        "package_not_found",
        body=build_body(package={"permalink": "rock-99"}),
    ),
    "unknown-template": Case(
        "POST",
        BUILD,
        404,
        "disk_template_not_found",
        body=build_body(disk_template={"permalink": "templates/nope"}),
    ),
    "unknown-network": Case(
        "POST",
        BUILD,
        404,
        "network_not_found",
        body=build_body(network={"id": "netw_nope"}),
    ),
    "null-lookup-value": Case(
        "POST",
        BUILD,
        404,
        "package_not_found",
        body=build_body(package={"id": None}),
    ),
    "zone-outside-data-center": Case(
        "POST",
        BUILD,
        422,
        "validation_error",
        body=build_body(zone={"permalink": "ams-zone-1"}),
    ),
    "network-outside-data-center": Case(
        "POST",
        BUILD,
        422,
        "validation_error",
        body=build_body(network={"permalink": "us-nyc-01-public"}),
    ),
    "unknown-task": Case("GET", "tasks/task_nope", 404, "task_not_found", detail={}),
    "unknown-build": Case(
        "GET",
        "virtual_machines/builds/_",
        404,
        "build_not_found",
        params={"virtual_machine_build[id]": "vmbuild_nope"},
    ),
    "unknown-vm-id": Case("GET", "virtual_machines/vm_nope", 404, "virtual_machine_not_found"),
    "unknown-vm-fqdn": Case(
        "GET",
        "virtual_machines/_",
        404,
        "virtual_machine_not_found",
        params={"virtual_machine[fqdn]": "ghost.acme.katapult.cloud"},
    ),
    "hostname-too-long": Case(
        "POST",
        BUILD,
        422,
        "validation_error",
        body=build_body("a" * 64),
        detail={"errors": ["Hostname is too long (maximum is 63 characters)"]},
    ),
    "hostname-not-a-label": Case(
        "POST",
        BUILD,
        422,
        "validation_error",
        body=build_body("web_01"),
        detail={"errors": ["Hostname is invalid"]},
    ),
    "hostname-leading-dash": Case(
        "POST",
        BUILD,
        422,
        "validation_error",
        body=build_body("-web"),
    ),
    "bad-xml": Case(
        "POST",
        SPEC,
        400,
        "invalid_spec_xml",
        body={"organization": {"sub_domain": "acme"}, "xml": "<VirtualMachineSpec><oops>"},
    ),
    "wrong-xml-root": Case(
        "POST",
        SPEC,
        400,
        "invalid_spec_xml",
        body={"organization": {"sub_domain": "acme"}, "xml": "<Spec/>"},
    ),
    "xml-unknown-package": Case(
        "POST",
        SPEC,
        400,
        "invalid_spec_xml",
        body={
            "organization": {"sub_domain": "acme"},
            "xml": SPEC_XML.format(hostname="x", name="x").replace(">rock-3<", ">rock-99<"),
        },
    ),
    "xml-without-location": Case(
        "POST",
        SPEC,
        400,
        "invalid_spec_xml",
        body={"organization": {"sub_domain": "acme"}, "xml": "<VirtualMachineSpec/>"},
    ),
    "xml-suspended-org": Case(
        "POST",
        SPEC,
        403,
        "organization_suspended",
        body={**spec_body(), "organization": {"sub_domain": "frozen"}},
    ),
    "bad-page": Case(
        "GET",
        "organizations/_/virtual_machines",
        400,
        "invalid_argument",
        params={"organization[sub_domain]": "acme", "page": "two"},
        issue="invalid_scalar",
    ),
    "bad-boolean": Case(
        "GET",
        "organizations/_/disk_templates",
        400,
        "invalid_argument",
        params={"organization[sub_domain]": "acme", "include_universal": "maybe"},
        issue="invalid_scalar",
    ),
    "unknown-operating-system": Case(
        "GET",
        "organizations/_/disk_templates",
        404,
        "operating_system_not_found",
        params={"organization[sub_domain]": "acme", "operating_system[id]": "os_nope"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_error_answer(api: Api, case: Case) -> None:
    """The request fails with the API's status, code, envelope and headers."""
    reply = await api.request(
        case.method, case.path, params=case.params or None, json_body=case.body
    )
    detail = assert_error(reply, case.status, case.code)
    if case.detail is not None:
        assert detail == case.detail
    if case.issue is not None:
        assert detail["issue"] == case.issue
        assert detail["path"]
        assert detail["argument"]["name"] == detail["path"][-1]
    if case.code == "invalid_spec_xml":
        assert isinstance(detail["errors"], str)
    if case.code == "route_not_found":
        assert reply.json["error"]["description"] == (
            f"No route matches '{case.path}' for {case.method}"
        )


async def test_invalid_argument_detail_is_apia_shaped(api: Api) -> None:
    """invalid_argument names the argument and explains the issue as Apia does."""
    reply = await api.post(BUILD, build_body(organization={}))
    assert reply.json["error"]["description"] == "The 'organization' argument is invalid"
    assert reply.detail == {
        "path": ["organization"],
        "index": None,
        "issue": "missing_lookup_value",
        "issue_description": (
            "A value for a lookup argument set has not been provided but at least one value "
            "is required."
        ),
        "errors": [],
        "argument": {
            "id": "CoreAPI/Endpoints/VirtualMachines/BuildEndpoint/BaseArgumentSet/"
            "OrganizationArgument",
            "name": "organization",
            "description": None,
        },
    }


async def test_bad_json_body(api: Api) -> None:
    """A body sent as JSON that does not parse gets 400 invalid_json_body."""
    reply = await api.request(
        "POST", BUILD, data=b'{"organization": ', headers={"Content-Type": "application/json"}
    )
    detail = assert_error(reply, 400, "invalid_json_body")
    assert isinstance(detail["details"], str)


async def test_body_without_json_content_type_is_not_read(api: Api) -> None:
    """Like Apia, a body is read only when its Content-Type says JSON."""
    reply = await api.request(
        "POST",
        BUILD,
        data=b'{"package": {"permalink": "rock-3"}}',
        params={"organization[sub_domain]": "acme"},
        headers={"Content-Type": "text/plain"},
    )
    assert_error(reply, 400, "missing_required_argument")


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [(None, 400, "missing_api_token"), ("wrong", 403, "invalid_api_token")],
)
async def test_authentication_errors(
    sim: RunningSimulator, session: aiohttp.ClientSession, token: str | None, status: int, code: str
) -> None:
    """A missing token is 400 and a wrong one 403 (never 401), spending no budget."""
    api = Api(session, sim.url, token)
    for path in ("zones", BUILD):
        reply = await api.request("GET" if path == "zones" else "POST", path, json_body={})
        assert_error(reply, status, code)
        assert reply.headers["x-ratelimit-remaining"] == "1000"
    assert sim.state.snapshot()["virtual_machines"] == []


async def test_non_bearer_authorization_is_a_missing_token(api: Api) -> None:
    """An Authorization header that is not a bearer token counts as no token."""
    reply = await api.request("GET", "zones", headers={"Authorization": "Basic c2ltOnRva2Vu"})
    assert_error(reply, 400, "missing_api_token")


async def test_route_is_checked_before_authentication(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    """As in Apia, an unknown route is 404 even without a token."""
    reply = await Api(session, sim.url, None).get("nope")
    assert_error(reply, 404, "route_not_found")


@pytest.mark.parametrize("hostname", ["taken", "TAKEN", "in-trash"])
async def test_taken_hostname_is_refused(api: Api, state: SimulatorState, hostname: str) -> None:
    """A hostname used in the organization (any case, trash included) is refused with 422."""
    state.add_existing_vm("acme", "taken")
    state.add_existing_vm("acme", "in-trash", in_trash=True)
    reply = await api.post(BUILD, build_body(hostname))
    detail = assert_error(reply, 422, "validation_error")
    assert detail == {"errors": ["Hostname has already been taken"]}
    snapshot = state.snapshot()
    assert snapshot["hostname_taken_refusals"]["total"] == 1
    assert snapshot["duplicates"] == []


async def test_taken_hostname_is_refused_while_the_first_build_runs(api: Api) -> None:
    """A second POST of the same hostname is refused even before the first VM exists."""
    assert (await api.post(BUILD, build_body("twice"))).status == 201
    reply = await api.post(SPEC, spec_body("twice"))
    assert_error(reply, 422, "validation_error")


async def test_same_hostname_in_another_organization_is_free(
    api: Api, state: SimulatorState
) -> None:
    """Hostnames are unique per organization only."""
    state.add_existing_vm("frozen", "web-01")
    assert (await api.post(BUILD, build_body("web-01"))).status == 201


@pytest.mark.parametrize("lookup", ["id", "fqdn"])
async def test_vm_in_trash_is_406(api: Api, state: SimulatorState, lookup: str) -> None:
    """A VM in the trash is found but refused with 406 object_in_trash and its trash object."""
    vm_id = state.add_existing_vm("acme", "binned", in_trash=True)
    value = vm_id if lookup == "id" else "binned.acme.katapult.cloud"
    reply = await api.get("virtual_machines/_", **{f"virtual_machine[{lookup}]": value})
    detail = assert_error(reply, 406, "object_in_trash")
    trash = detail["trash_object"]
    assert (trash["object_id"], trash["object_type"]) == (vm_id, "VirtualMachine")
    assert trash["id"].startswith("trsh_")
    assert isinstance(trash["keep_until"], int)
    listing = await api.get(
        "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme"}
    )
    assert listing.json["virtual_machines"] == []


async def test_vm_limit_is_403_resource_creation_restricted(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Reaching the policy limit of VMs refuses builds with 403 and detail.errors."""
    from orchestrator.simulator import run_simulator

    config = SimulatorConfig(vm_limit=2)
    state = SimulatorState(config, clock=clock)
    state.add_existing_vm("acme", "old")
    async with run_simulator(config, state=state) as sim:
        api = Api(session, sim.url)
        assert (await api.post(BUILD, build_body("new-1"))).status == 201
        reply = await api.post(BUILD, build_body("new-2"))
        detail = assert_error(reply, 403, "resource_creation_restricted")
        assert detail["errors"]
        assert all(isinstance(e, str) for e in detail["errors"])
        limits = await api.get(
            "organizations/_/policy_limits", **{"organization[sub_domain]": "acme"}
        )
        assert limits.json["policy_limits"]["maximum_virtual_machines"] == {
            "value": 2,
            "unlimited": False,
        }


async def test_failed_build_frees_its_hostname(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Once a build has failed, its hostname may be built again."""
    from orchestrator.simulator import FaultConfig, run_simulator

    config = SimulatorConfig(build_spread=0.0, faults=FaultConfig(build_fail_rate=1.0))
    async with run_simulator(config, state=SimulatorState(config, clock=clock)) as sim:
        api = Api(session, sim.url)
        assert (await api.post(BUILD, build_body("retry-me"))).status == 201
        assert_error(await api.post(BUILD, build_body("retry-me")), 422, "validation_error")
        clock.advance(20)
        config.faults = FaultConfig()
        assert (await api.post(BUILD, build_body("retry-me"))).status == 201
        snapshot = sim.state.snapshot()
    assert [vm["hostname"] for vm in snapshot["virtual_machines"]] == ["retry-me"]
    assert [b["hostname"] for b in snapshot["failed_builds"]] == ["retry-me"]
    assert snapshot["duplicates"] == []
