"""The requests the client builds are valid for the API's own OpenAPI description.

POST bodies are validated with jsonschema against the operation's request
schema ($refs resolved inside the file). The file never forbids extra keys, so
a copy of it is made strict (``additionalProperties: false`` on every object
with ``properties``) to catch a misspelled argument. For GETs, every query
parameter name must be one the operation declares.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema  # no stubs installed
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7

from orchestrator.katapult import KatapultClient, build_spec_xml
from orchestrator.vm_request import Lookup

from ._helpers import catalogue_handler, make_client

SPEC_URI = "urn:katapult:core-v1-openapi"
SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "openapi-core-v1.json").read_text("utf-8")
)

# our placeholder segment `_` stands where the OpenAPI file writes the object's name
PLACEHOLDER_NAMES = {
    "organizations": "organization",
    "virtual_machines": "virtual_machine",
    "builds": "virtual_machine_build",
    "tasks": "task",
}


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, DRAFT7.create_resource(_strict(copy.deepcopy(SPEC)))
)


def _openapi_path(path: str) -> str:
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if i and (segment == "_" or segments[i - 1] == "tasks"):
            segments[i] = PLACEHOLDER_NAMES[segments[i - 1]]
    return "/" + "/".join(segments)


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _body_validator(path: str) -> jsonschema.Draft7Validator:
    ref = _pointer(
        "#", "paths", _openapi_path(path), "post", "requestBody", "content", "application/json"
    )
    return jsonschema.Draft7Validator({"$ref": f"{SPEC_URI}{ref}/schema"}, registry=REGISTRY)


ORG = Lookup("sub_domain", "acme")

BUILD_CALLS: dict[str, Callable[[KatapultClient], Awaitable[Any]]] = {
    "minimal": lambda c: c.build_vm(
        organization=ORG, package=Lookup("permalink", "rock-1"), zone=Lookup("permalink", "z")
    ),
    "everything": lambda c: c.build_vm(
        organization=Lookup("id", "org_eodfyqFF3YWb2OFC"),
        package=Lookup("id", "vmpkg_Eh5LYVKScVHpj7sM"),
        hostname="web-01",
        zone=Lookup("permalink", "lon-zone-1"),
        data_center=Lookup("permalink", "uk-lon-01"),
        disk_template=Lookup("permalink", "templates/ubuntu-22-04"),
        disk_template_options={"install_agent": "true", "timezone": "UTC"},
        network=Lookup("permalink", "uk-lon-01-public"),
        annotations={"orchestrator.run": "r1", "orchestrator.key": "web-01"},
    ),
    "from spec": lambda c: c.build_vm_from_spec(
        organization=ORG,
        xml=build_spec_xml(hostname="web-01", package=Lookup("permalink", "rock-3")),
    ),
    "from spec with annotations": lambda c: c.build_vm_from_spec(
        organization=ORG,
        xml=build_spec_xml(
            hostname="web-01",
            package=Lookup("permalink", "rock-3"),
            ssh_keys=["key_uk6wLQYdApzutwlL"],
            tags=["web"],
            cpu_cores=2,
            memory_gb=4,
        ),
        annotations={"orchestrator.run": "r1"},
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("call", BUILD_CALLS.values(), ids=BUILD_CALLS.keys())
async def test_build_bodies_match_request_schema(
    call: Callable[[KatapultClient], Awaitable[Any]],
) -> None:
    """Every build body the client sends validates against the operation's schema."""
    client, transport = make_client(catalogue_handler)
    await call(client)
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.params == ()
    _body_validator(request.path).validate(request.json)


def _patch_validator(path: str) -> jsonschema.Draft7Validator:
    ref = _pointer(
        "#", "paths", _openapi_path(path), "patch", "requestBody", "content", "application/json"
    )
    return jsonschema.Draft7Validator({"$ref": f"{SPEC_URI}{ref}/schema"}, registry=REGISTRY)


@pytest.mark.anyio
async def test_tag_patch_body_matches_request_schema() -> None:
    """``PATCH virtual_machines/_`` with ``properties.tag_names`` is what the schema takes."""
    client, transport = make_client(catalogue_handler)
    await client.set_vm_tags(Lookup("id", "vm_K6GMJjtLaemzopxP"), ["web", "public"])
    (request,) = transport.requests
    assert request.method == "PATCH"
    assert request.params == ()
    validator = _patch_validator(request.path)
    validator.validate(request.json)
    assert not validator.is_valid({**request.json, "properties": {"tags": ["web"]}})


def test_strict_schema_catches_a_misspelled_argument() -> None:
    """The strict copy rejects unknown keys, so the body test above has teeth."""
    validator = _body_validator("organizations/_/virtual_machines/build")
    good = {"organization": {"sub_domain": "acme"}, "package": {"permalink": "rock-1"}}
    validator.validate(good)
    for bad in (
        {**good, "host_name": "x"},
        {**good, "package": {"perma_link": "rock-1"}},
        {**good, "annotations": {"k": "v"}},
        {"organization": {"sub_domain": "acme"}},
    ):
        assert not validator.is_valid(bad)


GET_CALLS: dict[str, Callable[[KatapultClient], Awaitable[Any]]] = {
    "task": lambda c: c.get_task("task_cl69PTf3pECcBv97"),
    "task odd id": lambda c: c.get_task("task/../x"),
    "build": lambda c: c.get_build("vmbuild_syAXTRFgVAXvVhTq"),
    "vm by id": lambda c: c.get_vm(Lookup("id", "vm_K6GMJjtLaemzopxP")),
    "vm by fqdn": lambda c: c.get_vm(Lookup("fqdn", "web-01.acme.katapult.cloud")),
    "vm list": lambda c: _drain(c.list_vms(ORG)),
    "organization": lambda c: c.get_organization(ORG),
    "organization by id": lambda c: c.get_organization(Lookup("id", "org_eodfyqFF3YWb2OFC")),
    "policy limits": lambda c: c.get_policy_limits(ORG),
    "data centers": lambda c: c.list_data_centers(),
    "zones": lambda c: c.list_zones(),
    "packages": lambda c: c.list_packages(),
    "disk templates": lambda c: c.list_disk_templates(ORG),
    "networks": lambda c: c.list_networks(ORG),
    "ssh keys": lambda c: c.list_ssh_keys(ORG),
    "tags": lambda c: c.list_tags(ORG),
}


async def _drain(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.mark.anyio
@pytest.mark.parametrize("call", GET_CALLS.values(), ids=GET_CALLS.keys())
async def test_get_query_parameters_are_declared(
    call: Callable[[KatapultClient], Awaitable[Any]],
) -> None:
    """Every GET goes to a documented path with only documented query parameters."""
    client, transport = make_client(catalogue_handler)
    await call(client)
    assert transport.requests
    for request in transport.requests:
        assert request.method == "GET"
        assert request.json is None
        path = _openapi_path(request.path)
        assert path in SPEC["paths"], path
        declared = {
            p["name"]
            for p in SPEC["paths"][path]["get"].get("parameters", [])
            if p["in"] == "query"
        }
        assert {name for name, _ in request.params} <= declared
