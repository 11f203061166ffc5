"""The simulator's answers have the recorded (and documented) shapes, statuses and headers."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from orchestrator.simulator import SimulatorState

from ._helpers import (
    Api,
    FakeClock,
    build_body,
    recorded,
    recorded_request,
    request_schema,
    response_schema,
    shape_diff,
    spec_body,
)

pytestmark = pytest.mark.anyio

MINIMAL = "vm-build-from-spec-minimal.yaml"
LISTING = "vm-list-paginated.yaml"
BY_FQDN = "vm-get-by-fqdn.yaml"

BUILD_PATH = "/organizations/organization/virtual_machines/build"
SPEC_PATH = "/organizations/organization/virtual_machines/build_from_spec"


def assert_api_headers(headers: dict[str, str]) -> None:
    """The headers every API answer carries."""
    assert headers["content-type"] == "application/json"
    assert int(headers["x-ratelimit-permitted"]) > 0
    assert int(headers["x-ratelimit-remaining"]) >= 0
    assert len(headers["x-request-id"]) == 36


def assert_matches(expected: Any, actual: Any) -> None:
    """Same key sets recursively and same JSON types."""
    assert shape_diff(expected, actual) == []


def validate(instance: Any, path: str, method: str = "get", *, strict: bool = True) -> None:
    """Valid against the OpenAPI success schema of ``method path``."""
    jsonschema.validate(instance, response_schema(path, method, strict=strict))


async def start_build(api: Api, hostname: str = "web-01") -> dict[str, Any]:
    reply = await api.post("organizations/_/virtual_machines/build", build_body(hostname))
    assert reply.status == 201, reply.raw
    return dict(reply.json)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("organizations/_/virtual_machines/build", build_body("web-01")),
        (
            "organizations/_/virtual_machines/build",
            build_body("web-01", annotations=[{"key": "owner", "value": "ops"}]),
        ),
        ("organizations/organization/virtual_machines/build_from_spec", spec_body("web-01")),
    ],
    ids=["build", "build-annotations", "build-from-spec"],
)
async def test_build_answer_matches_the_recording(api: Api, path: str, body: Any) -> None:
    """A build POST answers 201 with the recorded keys, both build keys and the hostname."""
    openapi_path = "/" + path.replace("/_/", "/organization/")
    jsonschema.validate(body, request_schema(openapi_path, "post"))
    reply = await api.post(path, body)
    status, headers, expected = recorded(MINIMAL, 4)
    assert reply.status == status == 201
    assert_matches(expected, reply.json)
    validate(reply.json, openapi_path, "post")
    assert reply.json["build"] == reply.json["virtual_machine_build"]
    assert reply.json["hostname"] == "web-01"
    assert reply.json["task"]["status"] == "pending"
    assert reply.json["annotations"] == body.get("annotations", [])
    assert_api_headers(reply.headers)
    assert set(headers) >= {"x-ratelimit-permitted", "x-ratelimit-remaining", "x-request-id"}


def test_recorded_spec_request_is_valid_against_the_openapi() -> None:
    """The recorded build_from_spec request satisfies the OpenAPI request schema."""
    jsonschema.validate(recorded_request(MINIMAL, 4), request_schema(SPEC_PATH, "post"))


@pytest.mark.parametrize(
    ("seconds", "index", "build_state", "vm_state"),
    [
        (8.0, 5, "building", None),
        (24.0, 7, "building", "stopped"),
        (41.0, 9, "complete", "starting"),
    ],
    ids=["building", "building-with-vm", "complete"],
)
async def test_build_info_matches_the_recording(
    api: Api,
    clock: FakeClock,
    seconds: float,
    index: int,
    build_state: str,
    vm_state: str | None,
) -> None:
    """A build polled at the recorded moments shows the recorded state and shape."""
    build_id = (await start_build(api))["virtual_machine_build"]["id"]
    clock.advance(seconds)
    reply = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    status, _, expected = recorded(MINIMAL, index)
    assert reply.status == status
    assert_matches(expected, reply.json)
    validate(reply.json, "/virtual_machines/builds/virtual_machine_build")
    build = reply.json["virtual_machine_build"]
    assert build["state"] == expected["virtual_machine_build"]["state"] == build_state
    vm = build["virtual_machine"]
    assert (vm and vm["state"]) == vm_state
    if vm is not None:
        assert vm["fqdn"] == "web-01.acme.katapult.cloud"
    assert "<Hostname>web-01</Hostname>" in build["spec_xml"]
    assert_api_headers(reply.headers)


@pytest.mark.parametrize(
    ("seconds", "index", "status"),
    [(0.5, 37, "pending"), (10.0, 51, "running"), (41.0, 40, "completed")],
)
async def test_task_matches_the_recording(
    api: Api, clock: FakeClock, seconds: float, index: int, status: str
) -> None:
    """The build's task goes pending, running, completed with the recorded fields."""
    task_id = (await start_build(api))["task"]["id"]
    clock.advance(seconds)
    reply = await api.get(f"tasks/{task_id}")
    code, _, expected = recorded(LISTING, index)
    assert reply.status == code
    assert_matches(expected, reply.json)
    validate(reply.json, "/tasks/task")
    task = reply.json["task"]
    assert task["status"] == expected["task"]["status"] == status
    assert task["name"] == "Build virtual machine"
    assert (task["started_at"] is None) == (status == "pending")
    assert (task["finished_at"] is None) == (status != "completed")


@pytest.mark.parametrize(
    ("seconds", "index", "vm_state"),
    [(41.0, 10, "starting"), (50.0, 11, "started")],
)
async def test_vm_by_id_matches_the_recording(
    api: Api, clock: FakeClock, seconds: float, index: int, vm_state: str
) -> None:
    """A built VM looked up by id has the recorded keys, and starts after its build."""
    build = await start_build(api)
    clock.advance(seconds)
    info = await api.get(f"virtual_machines/builds/{build['virtual_machine_build']['id']}")
    vm_id = info.json["virtual_machine_build"]["virtual_machine"]["id"]
    reply = await api.get("virtual_machines/virtual_machine", **{"virtual_machine[id]": vm_id})
    status, _, expected = recorded(MINIMAL, index)
    assert reply.status == status
    assert_matches(expected, reply.json)
    validate(reply.json, "/virtual_machines/virtual_machine", strict=False)
    assert reply.json["virtual_machine"]["state"] == expected["virtual_machine"]["state"]
    assert reply.json["virtual_machine"]["state"] == vm_state


async def test_vm_by_fqdn_matches_the_recording(api: Api, clock: FakeClock) -> None:
    """A VM built from a spec is found by fqdn with the recorded keys and the spec's fields."""
    reply = await api.post("organizations/_/virtual_machines/build_from_spec", spec_body("Web-02"))
    assert reply.status == 201
    assert reply.json["hostname"] == "web-02"
    clock.advance(60)
    reply = await api.get(
        "virtual_machines/_", **{"virtual_machine[fqdn]": "web-02.acme.katapult.cloud"}
    )
    status, _, expected = recorded(BY_FQDN, 18)
    assert reply.status == status
    assert_matches(expected, reply.json)
    validate(reply.json, "/virtual_machines/virtual_machine", strict=False)
    vm = reply.json["virtual_machine"]
    assert (vm["name"], vm["description"], vm["tag_names"]) == ("Spec 01", "A web server.", ["web"])
    assert vm["state"] == "started"


async def test_vm_list_matches_the_recording(api: Api, clock: FakeClock) -> None:
    """The organization's VM list has the recorded pagination object and item keys."""
    await start_build(api, "first")
    await start_build(api, "second")
    clock.advance(60)
    reply = await api.get(
        "organizations/organization/virtual_machines",
        **{"organization[sub_domain]": "acme", "page": "1", "per_page": "100"},
    )
    status, _, expected = recorded(LISTING, 31)
    assert reply.status == status
    assert_matches(expected, reply.json)
    validate(reply.json, "/organizations/organization/virtual_machines")
    assert reply.json["pagination"] == expected["pagination"]
    assert [vm["hostname"] for vm in reply.json["virtual_machines"]] == ["first", "second"]


async def test_not_found_matches_the_recording(api: Api) -> None:
    """An unknown VM gets the recorded error body, status and headers."""
    reply = await api.get("virtual_machines/virtual_machine", **{"virtual_machine[id]": "vm_x"})
    status, headers, expected = recorded(MINIMAL, 38)
    assert reply.status == status == 404
    assert reply.json == expected
    assert reply.headers["x-api-schema"] == headers["x-api-schema"] == "json-error"
    assert_api_headers(reply.headers)


@pytest.mark.parametrize(
    ("path", "params", "openapi_path", "key"),
    [
        ("data_centers", {}, "/data_centers", "data_centers"),
        ("zones", {}, "/zones", "zones"),
        ("virtual_machine_packages", {}, "/virtual_machine_packages", "virtual_machine_packages"),
        (
            "organizations/_",
            {"organization[sub_domain]": "acme"},
            "/organizations/organization",
            "organization",
        ),
        (
            "organizations/_/policy_limits",
            {"organization[sub_domain]": "acme"},
            "/organizations/organization/policy_limits",
            "policy_limits",
        ),
        (
            "organizations/_/disk_templates",
            {"organization[sub_domain]": "acme", "include_universal": "true"},
            "/organizations/organization/disk_templates",
            "disk_templates",
        ),
        (
            "organizations/_/available_networks",
            {"organization[sub_domain]": "acme"},
            "/organizations/organization/available_networks",
            "networks",
        ),
    ],
)
async def test_catalogue_answers_match_the_openapi(
    api: Api, path: str, params: dict[str, str], openapi_path: str, key: str
) -> None:
    """Catalogue endpoints answer 200 with only keys the OpenAPI file documents."""
    reply = await api.get(path, **params)
    assert reply.status == 200, reply.raw
    # the recorded organization (nested in a VM) has a "uuid" the OpenAPI file lacks
    validate(reply.json, openapi_path, strict=key != "organization")
    assert reply.json[key]
    assert_api_headers(reply.headers)


async def test_catalogue_is_the_interfaces_one(api: Api, state: SimulatorState) -> None:
    """The seeded names are those INTERFACES.md fixes, with prefixed 16-character ids."""
    dcs = (await api.get("data_centers")).json["data_centers"]
    zones = (await api.get("zones")).json["zones"]
    packages = (await api.get("virtual_machine_packages")).json["virtual_machine_packages"]
    templates = (
        await api.get(
            "organizations/_/disk_templates",
            **{"organization[sub_domain]": "acme", "include_universal": "1"},
        )
    ).json["disk_templates"]
    networks = (
        await api.get("organizations/_/available_networks", **{"organization[sub_domain]": "acme"})
    ).json["networks"]
    assert [d["permalink"] for d in dcs] == ["uk-lon-01", "nl-ams-01", "us-nyc-01"]
    assert [z["permalink"] for z in zones] == ["lon-zone-1", "ams-zone-1", "nyc-zone-1"]
    assert [z["data_center"]["permalink"] for z in zones] == [d["permalink"] for d in dcs]
    assert [p["permalink"] for p in packages] == ["rock-1", "rock-3", "rock-6"]
    assert [t["permalink"] for t in templates] == [
        "templates/ubuntu-22-04",
        "templates/debian-12",
        "templates/rocky-9",
    ]
    assert [n["permalink"] for n in networks] == [
        "uk-lon-01-public",
        "nl-ams-01-public",
        "us-nyc-01-public",
    ]
    prefixes = {"loc": dcs, "zone": zones, "vmpkg": packages, "dtpl": templates, "netw": networks}
    for prefix, items in prefixes.items():
        for item in items:
            head, _, tail = item["id"].partition("_")
            assert head == prefix
            assert len(tail) == 16
            assert tail.isalnum()
    org = (await api.get("organizations/_", **{"organization[sub_domain]": "acme"})).json
    assert org["organization"]["infrastructure_domain"] == "acme.katapult.cloud"
    assert org["organization"]["id"] == state.catalogue.org_by("sub_domain", "acme").id  # type: ignore[union-attr]


async def test_universal_templates_need_include_universal(api: Api) -> None:
    """Like the real API, the universal templates are listed only on request."""
    reply = await api.get("organizations/_/disk_templates", **{"organization[sub_domain]": "acme"})
    assert reply.status == 200
    assert reply.json["disk_templates"] == []
    assert reply.json["pagination"]["total"] == 0


def test_catalogue_ids_follow_the_seed() -> None:
    """The same seed gives the same ids; another seed gives others."""
    from orchestrator.simulator import SimulatorConfig

    def ids(seed: int) -> list[str]:
        cat = SimulatorState(SimulatorConfig(seed=seed), clock=FakeClock()).catalogue
        return [o.id for o in cat.organizations] + [z.id for z in cat.zones]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)


async def test_default_network_matches_the_recording(api: Api) -> None:
    """A data center's default network has the recorded keys (the recording's first answer)."""
    reply = await api.get(
        "data_centers/data_center/default_network", **{"data_center[permalink]": "uk-lon-01"}
    )
    status, _, expected = recorded(MINIMAL, 0)
    assert reply.status == status
    assert_api_headers(reply.headers)
    assert_matches(expected, reply.json)
    validate(reply.json, "/data_centers/data_center/default_network")
    assert reply.json["network"]["permalink"] == "uk-lon-01-public"
    missing = await api.get("data_centers/_/default_network", **{"data_center[permalink]": "nope"})
    assert (missing.status, missing.json["error"]["code"]) == (404, "data_center_not_found")
