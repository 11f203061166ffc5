"""Every error code each endpoint we call can return is known, and the simulator keeps to them.

The lists come from the server's own schema (``apia-schema-core-v1.json``):
an endpoint's ``potential_errors``, its arguments' lookups' errors, and the
authenticator's and framework's errors that any endpoint can answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import (
    CATEGORY_BY_CODE,
    ORG_STOPPING_CODES,
    RUN_STOPPING_CODES,
    AuthenticationError,
    api_error_for,
    category_for,
)
from orchestrator.katapult import KatapultClient
from orchestrator.simulator._routes import COMMON_ERRORS, ROUTES

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "apia-schema-core-v1.json").read_text("utf-8")
)
OBJECTS: dict[str, dict[str, Any]] = {
    o["value"]["id"]: o for o in SCHEMA["objects"] if "id" in o.get("value", {})
}
_E = "CoreAPI/Endpoints/"

#: the endpoints the client calls (KatapultClient method -> schema endpoint)
CLIENT_ENDPOINTS = {
    "build_vm": "VirtualMachines/BuildEndpoint",
    "build_vm_from_spec": "VirtualMachines/BuildFromSpecEndpoint",
    "get_task": "Tasks/InfoEndpoint",
    "get_build": "VirtualMachineBuilds/InfoEndpoint",
    "get_vm": "VirtualMachines/InfoEndpoint",
    "set_vm_tags": "VirtualMachines/UpdateEndpoint",
    "stop_vm": "VirtualMachines/StopEndpoint",
    "delete_vm": "VirtualMachines/DeleteEndpoint",
    "get_trash_object": "TrashObjects/InfoEndpoint",
    "purge_trash_object": "TrashObjects/PurgeEndpoint",
    "list_vms": "VirtualMachines/ListEndpoint",
    "vm_list_page": "VirtualMachines/ListEndpoint",
    "get_default_network": "DataCenters/DefaultNetworkEndpoint",
    "get_organization": "Organizations/InfoEndpoint",
    "get_policy_limits": "Organizations/PolicyLimitsEndpoint",
    "list_ssh_keys": "OrganizationSSHKeys/ListEndpoint",
    "list_tags": "Tags/ListEndpoint",
    "list_data_centers": "DataCenters/ListEndpoint",
    "list_zones": "Zones/ListEndpoint",
    "list_packages": "VirtualMachinePackages/ListEndpoint",
    "list_disk_templates": "DiskTemplates/ListEndpoint",
    "list_networks": "Networks/ListEndpoint",
}

#: errors any endpoint can answer: the authenticator's, the rate limit, scopes,
#: and the framework's (not in the schema: Apia's own)
ANY_ENDPOINT = {
    "missing_api_token",
    "invalid_api_token",
    "unauthorized_network_for_api_token",
    "rate_limit_reached",
    "scope_not_granted",
    "invalid_argument",
    "missing_required_argument",
    "invalid_json_body",
    "route_not_found",
    "unhandled_exception",
    "service_unavailable",
}


#: codes the simulator answers where the schema lists none [inferred], each with why
INFERRED_EXTRA: dict[str, set[str]] = {
    # renaming a VM to a taken or invalid hostname must be refused somehow
    "VirtualMachines/UpdateEndpoint": {"validation_error"},
    # deleting a running VM may be refused (the schema's lists are not complete; the
    # simulator's delete_running="refuse" reading guesses deletion_restricted)
    "VirtualMachines/DeleteEndpoint": {"deletion_restricted"},
    # the VM list may refuse its annotation filter (the simulator's annotation_filter=
    # "refused_422" reading guesses validation_error)
    "VirtualMachines/ListEndpoint": {"validation_error"},
}


def _code(error_id: str) -> str:
    code: str = OBJECTS[error_id]["value"]["code"]
    return code


def _argument_errors(set_id: str, seen: set[str]) -> set[str]:
    value = OBJECTS[set_id]["value"]
    codes = {_code(e) for e in value.get("potential_errors") or []}
    for argument in value.get("arguments", []):
        kind = argument["type"]
        sets = ("argument_set", "lookup_argument_set")
        if kind in OBJECTS and kind not in seen and OBJECTS[kind]["type"] in sets:
            seen.add(kind)
            codes |= _argument_errors(kind, seen)
    return codes


def endpoint_errors(endpoint: str) -> set[str]:
    """The codes the schema lists for ``endpoint`` and its arguments."""
    value = OBJECTS[_E + endpoint]["value"]
    codes = {_code(e) for e in value["potential_errors"]}
    return codes | _argument_errors(value["argument_set"]["id"], set())


def test_the_authenticator_errors_are_what_we_stop_the_run_for() -> None:
    """Every authenticator error in the schema is a token failure that stops the run."""
    authenticator = {
        o["value"]["code"]
        for o in SCHEMA["objects"]
        if o["type"] == "error" and o["value"]["id"].startswith("CoreAPI/Authenticator/")
    }
    assert authenticator == {
        "missing_api_token",
        "invalid_api_token",
        "unauthorized_network_for_api_token",
    }
    assert authenticator <= RUN_STOPPING_CODES
    assert "invalid_capabilities_token" in RUN_STOPPING_CODES  # the OpenAPI file's
    for code in RUN_STOPPING_CODES - {"scope_not_granted"}:
        assert category_for(code, 403) == "auth"


@pytest.mark.parametrize(
    "code", ["unauthorized_network_for_api_token", "invalid_capabilities_token"]
)
def test_token_failures_are_authentication_errors(code: str) -> None:
    """A 403 for the token's network or capabilities is an auth error (exit 3), not a VM's."""
    error = api_error_for(http_status=403, code=code)
    assert isinstance(error, AuthenticationError)
    assert error.category == "auth"


def test_codes_in_neither_schema_are_gone_or_marked_as_guesses() -> None:
    """``expired_api_token`` is gone; ``hostname_taken`` stays, marked as a guess."""
    openapi = (Path(__file__).parent.parent / "fixtures" / "openapi-core-v1.json").read_text()
    in_schemas = {o["value"]["code"] for o in SCHEMA["objects"] if o["type"] == "error"}
    unknown = {c for c in CATEGORY_BY_CODE if c not in in_schemas and f'"{c}"' not in openapi}
    framework = {"invalid_argument", "missing_required_argument", "invalid_json_body"}
    framework |= {"route_not_found", "unhandled_exception", "service_unavailable"}
    assert unknown - framework == {"hostname_taken"}
    lines = (Path(__file__).parents[2] / "orchestrator" / "errors.py").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith('"hostname_taken"'))
    assert any("GUESS" in line for line in lines[at - 2 : at])


def test_every_endpoint_the_client_calls_is_listed_here() -> None:
    """A new client method must say its endpoint, so its codes get checked too."""
    public = {
        name
        for name in vars(KatapultClient)
        if not name.startswith("_") and name not in ("request", "aclose", "api_url")
    }
    assert public == set(CLIENT_ENDPOINTS)


@pytest.mark.parametrize("method", sorted(CLIENT_ENDPOINTS))
def test_every_code_an_endpoint_we_call_can_return_has_a_category(method: str) -> None:
    """Each code of the endpoint's list (and any endpoint's) is in the category table."""
    assert hasattr(KatapultClient, method)
    codes = endpoint_errors(CLIENT_ENDPOINTS[method]) | (ANY_ENDPOINT - {"route_not_found"})
    missing = sorted(c for c in codes if c not in CATEGORY_BY_CODE)
    assert not missing, f"{method}: no category for {missing}"


def test_what_stops_an_organization_is_about_the_organization() -> None:
    """Org-stopping codes come from the organization lookup or the build endpoints only."""
    org_lookup = _argument_errors("CoreAPI/ArgumentSets/OrganizationLookup", set())
    builds = endpoint_errors("VirtualMachines/BuildEndpoint")
    builds |= endpoint_errors("VirtualMachines/BuildFromSpecEndpoint")
    assert org_lookup | builds >= ORG_STOPPING_CODES
    # permission_denied of the SSH key listing is not about building: the run
    # only ever dooms an organization for an error of a build or org lookup
    assert "permission_denied" in endpoint_errors("OrganizationSSHKeys/ListEndpoint")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_simulator_route_declares_its_endpoints_own_errors(route: Any) -> None:
    """A route's ``errors`` are exactly what the schema lets its endpoint answer.

    (The simulator implements the lookups it has: GPU types and VM groups are
    not part of it.) The dispatcher refuses to answer an undeclared code.
    """
    assert route.errors is not None, "declare the endpoint's errors on its Route"
    endpoint = route.endpoint_id.removeprefix(_E)
    allowed = endpoint_errors(endpoint) | INFERRED_EXTRA.get(endpoint, set())
    assert route.errors <= allowed, sorted(route.errors - allowed)
    not_simulated = {"gpu_type_not_found", "virtual_machine_group_not_found"}
    assert allowed - not_simulated <= route.errors | COMMON_ERRORS, sorted(
        allowed - not_simulated - route.errors
    )
