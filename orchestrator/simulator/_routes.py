"""The request pipeline of ``/core/v1/``, in the real server's order.

1. fault draw; proxy-level faults (``reset_before``, ``html_502``) strike here
2. route (Apia's route tree: a literal segment beats a ``:param``) - else
   ``404 route_not_found`` (before authentication, as in Apia)
3. authentication - ``400 missing_api_token`` / ``403 invalid_api_token``
4. rate limit of the token's fixed window (and the 429 burst schedule)
5. ``error_5xx`` fault (the action is not taken)
6. arguments (query, JSON body, path) and the endpoint
7. ``slow``, ``reset_after``, ``truncated_body`` and ``error_5xx_after``
   faults strike after acting

Requests refused at steps 2-3 do not spend budget; their rate-limit headers
show the configured token's window unchanged. Every answer but the proxy
faults carries ``X-Ratelimit-Permitted``, ``X-Ratelimit-Remaining`` and
``X-Request-Id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from aiohttp import web

from orchestrator.simulator import _endpoints as ep
from orchestrator.simulator import _vm_actions as actions
from orchestrator.simulator._args import Args, deep_merge, parse_json_body, parse_query
from orchestrator.simulator._errors import SimApiError, api_error, route_not_found
from orchestrator.simulator._faults import (
    HTML_502_BODY,
    Fault,
    FaultInjector,
    drop_connection,
    send_truncated,
)
from orchestrator.simulator._state import SimulatorState

__all__ = [
    "COMMON_ERRORS",
    "INJECTOR_KEY",
    "ROUTES",
    "STATE_KEY",
    "Route",
    "handle_api",
    "handle_state",
    "match",
]

STATE_KEY = web.AppKey("state", SimulatorState)
INJECTOR_KEY = web.AppKey("injector", FaultInjector)

_E = "CoreAPI/Endpoints"

#: the faults that strike an answer after its request acted
_LOST_AFTER_ACTING = frozenset(
    {Fault.SLOW, Fault.RESET_AFTER, Fault.TRUNCATED, Fault.ERROR_5XX_AFTER}
)


#: Errors any route may answer: the authenticator's, the rate limit, the
#: framework's argument errors and the server failing (``route_not_found``
#: comes before routing).
COMMON_ERRORS: frozenset[str] = frozenset(
    {
        "missing_api_token",
        "invalid_api_token",
        "unauthorized_network_for_api_token",
        "scope_not_granted",
        "rate_limit_reached",
        "invalid_argument",
        "missing_required_argument",
        "invalid_json_body",
        "unhandled_exception",
        "service_unavailable",
    }
)
_ORG = frozenset({"organization_not_found", "organization_suspended", "organization_not_activated"})
_VM = frozenset({"virtual_machine_not_found", "object_in_trash"})
_VM_TASK = frozenset({"permission_denied", "task_queueing_error"})


@dataclass(frozen=True, slots=True)
class Route:
    """One API route: method, path pattern, the schema's endpoint id, the handler.

    ``errors`` is the endpoint's own list of error codes (its potential errors
    and its lookups' in the server's schema); with :data:`COMMON_ERRORS` it
    is all the route may answer. ``None`` declares nothing and checks nothing.
    """

    method: str
    path: str
    endpoint_id: str
    handler: ep.Endpoint
    errors: frozenset[str] | None = None


ROUTES: tuple[Route, ...] = (
    Route(
        "GET", "data_centers", f"{_E}/DataCenters/ListEndpoint", ep.list_data_centers, frozenset()
    ),
    Route(
        "GET",
        "data_centers/:data_center/default_network",
        f"{_E}/DataCenters/DefaultNetworkEndpoint",
        ep.get_default_network,
        frozenset({"data_center_not_found"}),
    ),
    Route("GET", "zones", f"{_E}/Zones/ListEndpoint", ep.list_zones, frozenset()),
    Route(
        "GET",
        "virtual_machine_packages",
        f"{_E}/VirtualMachinePackages/ListEndpoint",
        ep.list_packages,
        _ORG,
    ),
    Route(
        "GET",
        "organizations/:organization",
        f"{_E}/Organizations/InfoEndpoint",
        ep.get_organization,
        _ORG,
    ),
    Route(
        "GET",
        "organizations/:organization/policy_limits",
        f"{_E}/Organizations/PolicyLimitsEndpoint",
        ep.get_policy_limits,
        _ORG,
    ),
    Route(
        "GET",
        "organizations/:organization/disk_templates",
        f"{_E}/DiskTemplates/ListEndpoint",
        ep.list_disk_templates,
        _ORG | {"operating_system_not_found"},
    ),
    Route(
        "GET",
        "organizations/:organization/available_networks",
        f"{_E}/Networks/ListEndpoint",
        ep.list_networks,
        _ORG,
    ),
    Route(
        "GET",
        "organizations/:organization/ssh_keys",
        f"{_E}/OrganizationSSHKeys/ListEndpoint",
        ep.list_ssh_keys,
        _ORG | {"permission_denied"},
    ),
    Route("GET", "organizations/:organization/tags", f"{_E}/Tags/ListEndpoint", ep.list_tags, _ORG),
    Route(
        "GET",
        "organizations/:organization/virtual_machines",
        f"{_E}/VirtualMachines/ListEndpoint",
        ep.list_virtual_machines,
        # validation_error: the annotation_filter="refused_422" reading's guess [inferred]
        _ORG | {"validation_error"},
    ),
    Route(
        "POST",
        "organizations/:organization/virtual_machines/build",
        f"{_E}/VirtualMachines/BuildEndpoint",
        ep.build_virtual_machine,
        _ORG
        | {
            "zone_not_found",
            "data_center_not_found",
            "package_not_found",
            "disk_template_not_found",
            "network_not_found",
            "permission_denied",
            "resource_creation_restricted",
            "validation_error",
            "location_required",
        },
    ),
    Route(
        "POST",
        "organizations/:organization/virtual_machines/build_from_spec",
        f"{_E}/VirtualMachines/BuildFromSpecEndpoint",
        ep.build_virtual_machine_from_spec,
        _ORG | {"permission_denied", "validation_error", "invalid_spec_xml"},
    ),
    Route(
        "GET",
        "virtual_machines/:virtual_machine",
        f"{_E}/VirtualMachines/InfoEndpoint",
        ep.get_virtual_machine,
        _VM,
    ),
    Route(
        "GET",
        "virtual_machines/builds/:virtual_machine_build",
        f"{_E}/VirtualMachineBuilds/InfoEndpoint",
        ep.get_build,
        frozenset({"build_not_found"}),
    ),
    Route(
        "GET", "tasks/:task", f"{_E}/Tasks/InfoEndpoint", ep.get_task, frozenset({"task_not_found"})
    ),
    Route(
        "POST",
        "virtual_machines/:virtual_machine/stop",
        f"{_E}/VirtualMachines/StopEndpoint",
        actions.stop_virtual_machine,
        _VM | _VM_TASK,
    ),
    Route(
        "POST",
        "virtual_machines/:virtual_machine/shutdown",
        f"{_E}/VirtualMachines/ShutdownEndpoint",
        actions.shutdown_virtual_machine,
        _VM | _VM_TASK,
    ),
    Route(
        "PATCH",
        "virtual_machines/:virtual_machine",
        f"{_E}/VirtualMachines/UpdateEndpoint",
        actions.update_virtual_machine,
        # the schema lists no validation_error here, but a rename to a taken or
        # invalid hostname must be refused somehow [inferred: as a build's is]
        _VM | {"validation_error"},
    ),
    Route(
        "DELETE",
        "virtual_machines/:virtual_machine",
        f"{_E}/VirtualMachines/DeleteEndpoint",
        actions.delete_virtual_machine,
        # deletion_restricted is not in this endpoint's schema list (which is not
        # complete); it is the delete_running="refuse" reading's guess [inferred]
        _VM | {"permission_denied", "deletion_restricted"},
    ),
    Route(
        "GET",
        "organizations/:organization/trash_objects",
        f"{_E}/TrashObjects/ListEndpoint",
        actions.list_trash_objects,
        _ORG,
    ),
    Route(
        "GET",
        "trash_objects/:trash_object",
        f"{_E}/TrashObjects/InfoEndpoint",
        actions.get_trash_object,
        frozenset({"trash_object_not_found"}),
    ),
    Route(
        "DELETE",
        "trash_objects/:trash_object",
        f"{_E}/TrashObjects/PurgeEndpoint",
        actions.purge_trash_object,
        frozenset({"trash_object_not_found", "permission_denied", "task_queueing_error"}),
    ),
)


def _split(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _build_tree(routes: tuple[Route, ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for route in routes:
        node = tree
        for part in _split(route.path):
            node = node.setdefault("?" if part.startswith(":") else part, {})
        node.setdefault("", []).append(route)
    return tree


_TREE = _build_tree(ROUTES)


def match(method: str, api_path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for ``method api_path`` and its path values, as Apia finds them."""
    parts = _split(api_path)
    node: dict[str, Any] | None = _TREE
    for part in parts:
        assert node is not None
        node = node.get(part) if part in node else node.get("?")
        if node is None:
            return None
    assert node is not None
    for route in node.get("", []):
        if route.method == method:
            values = {
                p[1:]: parts[i] for i, p in enumerate(_split(route.path)) if p.startswith(":")
            }
            return route, values
    return None


def _token(request: web.Request, expected: str, refused: Mapping[str, str]) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise api_error("missing_api_token")
    refusal = refused.get(token.strip())
    if refusal == "unauthorized_network_for_api_token":
        raise api_error(refusal, {"ip_address": request.remote or "127.0.0.1"})
    if token.strip() != expected or refusal is not None:
        raise api_error("invalid_api_token", {"details": None})
    return token.strip()


def _json_response(
    status: int, payload: Mapping[str, Any], headers: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers["Content-Type"] = "application/json"
    return body, headers


async def handle_api(request: web.Request) -> web.StreamResponse:
    """The one handler behind ``/core/v1/{tail}``: the whole pipeline above."""
    state = request.app[STATE_KEY]
    injector = request.app[INJECTOR_KEY]
    config = state.config
    faults = config.faults
    state.requests_total += 1
    now = state.advance()
    method = request.method.upper()
    api_path = request.match_info.get("tail", "")

    fault = injector.pick(faults, method)
    if fault is Fault.RESET_BEFORE:
        state.faults[fault.value] += 1
        return drop_connection(request)
    if fault is Fault.HTML_502:
        state.faults[fault.value] += 1
        state.count_response(502)
        return web.Response(
            status=502,
            body=HTML_502_BODY,
            headers={"Content-Type": "text/html", "Cache-Control": "no-cache"},
        )

    headers: dict[str, str] = {
        "X-Ratelimit-Permitted": str(config.permitted),
        "X-Ratelimit-Remaining": str(state.peek_rate_limit(config.token, now)),
        "X-Request-Id": state.request_id(),
    }
    burst = injector.in_burst(faults)
    try:
        found = match(method, api_path)
        if found is None:
            raise route_not_found(api_path, method)
        route, path_values = found
        token = _token(request, config.token, config.refused_tokens)
        if burst:
            state.faults["burst_429"] += 1
            headers["X-Ratelimit-Remaining"] = "0"
            raise _rate_limited(state, now, headers)
        allowed, remaining = state.hit_rate_limit(token, now)
        headers["X-Ratelimit-Remaining"] = str(remaining)
        if not allowed:
            raise _rate_limited(state, now, headers)
        if fault is Fault.ERROR_5XX:
            state.faults[fault.value] += 1
            raise _server_error(injector)
        body = await request.read()
        values = deep_merge(
            parse_query(request.query.items()),
            parse_json_body(request.headers.get("Content-Type", ""), body),
        )
        ctx = ep.Ctx(state, config, Args(values, path_values, route.endpoint_id), now)
        state.touched = None
        try:
            status, payload = route.handler(ctx)
        except SimApiError as error:
            _check_declared(route, error)
            raise
        headers["Cache-Control"] = "max-age=0, private, must-revalidate"
    except SimApiError as error:
        status, payload = error.status, error.body()
        headers["X-Api-Schema"] = "json-error"
        headers["Cache-Control"] = "no-cache"
    if state.touched is not None:
        vm_id, action, vm_state = state.touched
        state.touched = None
        lost = fault.value if fault in _LOST_AFTER_ACTING else None
        state.vm_actions.append(
            {"vm_id": vm_id, "action": action, "vm_state": vm_state, "status": status, "lost": lost}
        )
    if fault is Fault.ERROR_5XX_AFTER:
        # acted (or refused) as above, then answers a 5xx anyway
        state.faults[fault.value] += 1
        after = _server_error(injector)
        status, payload = after.status, after.body()
        headers["X-Api-Schema"] = "json-error"
        headers["Cache-Control"] = "no-cache"
    state.count_response(status)
    data, headers = _json_response(status, payload, headers)

    if fault is Fault.SLOW:
        state.faults[fault.value] += 1
        await anyio.sleep(faults.slow_seconds)
    elif fault is Fault.RESET_AFTER:
        state.faults[fault.value] += 1
        return drop_connection(request)
    elif fault is Fault.TRUNCATED:
        state.faults[fault.value] += 1
        return await send_truncated(request, status, headers, data)
    return web.Response(status=status, body=data, headers=headers)


def _server_error(injector: FaultInjector) -> SimApiError:
    """A JSON ``500 unhandled_exception`` or ``503 service_unavailable``, half each."""
    status = injector.error_5xx_status()
    return api_error("unhandled_exception" if status == 500 else "service_unavailable")


def _check_declared(route: Route, error: SimApiError) -> None:
    """A handler answering a code its endpoint does not list is a simulator bug."""
    if route.errors is not None and error.code not in route.errors | COMMON_ERRORS:
        raise AssertionError(
            f"{route.method} {route.path} answered {error.code!r}, which its endpoint "
            "does not list (Route.errors)"
        )


def _rate_limited(state: SimulatorState, now: float, headers: dict[str, str]) -> SimApiError:
    config = state.config
    if config.retry_after:
        real_seconds = (state.window_end(now) - now) / config.time_scale
        headers["Retry-After"] = str(max(1, math.ceil(real_seconds)))
    return api_error("rate_limit_reached", {"total_permitted": config.permitted})


async def handle_state(request: web.Request) -> web.Response:
    """``GET /_simulator/state``: no auth, not rate limited, not counted."""
    snapshot = request.app[STATE_KEY].snapshot()
    return web.Response(
        body=json.dumps(snapshot, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json"},
    )
