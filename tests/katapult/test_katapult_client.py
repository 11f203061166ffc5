"""KatapultClient over MockTransport: the seam, the endpoints, errors, the gate, counters."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from orchestrator import errors
from orchestrator.errors import (
    ApiConnectError,
    ApiError,
    ApiTimeout,
    AuthenticationError,
    ConfigError,
    ConnectionLost,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
    ValidationFailed,
)
from orchestrator.katapult import (
    ApiRequest,
    ApiResponse,
    KatapultClient,
    MockTransport,
    RateLimitInfo,
    build_spec_xml,
)
from orchestrator.vm_request import Lookup

from ._helpers import (
    API_URL,
    BUILD_CREATED,
    TASK,
    TOKEN,
    VM_SUMMARY,
    catalogue_handler,
    error_body,
    json_response,
    make_client,
    page_body,
)

pytestmark = pytest.mark.anyio

ORG = Lookup("sub_domain", "acme")
ROCK = Lookup("permalink", "rock-1")
LON = Lookup("permalink", "uk-lon-01")
BUILD_PATH = "/organizations/_/virtual_machines/build"


def _vm(n: int) -> dict[str, Any]:
    return {**VM_SUMMARY, "id": f"vm_{n:016d}", "hostname": f"web-{n}", "name": f"web-{n}"}


class RecordingGate:
    """A RequestGate that records every acquire and release."""

    def __init__(self) -> None:
        self.acquired: list[ApiRequest] = []
        self.released: list[tuple[ApiRequest, RateLimitInfo]] = []

    async def acquire(self, request: ApiRequest) -> None:
        self.acquired.append(request)

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
        self.released.append((request, info))

    def assert_balanced(self) -> None:
        assert [id(r) for r in self.acquired] == [id(r) for r, _ in self.released]


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://api.katapult.io/core/v1/", "https://api.katapult.io/core/v1/"),
        ("https://api.katapult.io/core/v1", "https://api.katapult.io/core/v1/"),
        ("http://127.0.0.1:8080/core/v1/", "http://127.0.0.1:8080/core/v1/"),
        ("http://127.5.6.7/core/v1/", "http://127.5.6.7/core/v1/"),
        ("http://[::1]:9000/core/v1/", "http://[::1]:9000/core/v1/"),
        ("http://localhost:8080/core/v1/", "http://localhost:8080/core/v1/"),
        ("http://LOCALHOST./core/v1/", "http://LOCALHOST./core/v1/"),
    ],
)
def test_accepts_https_and_loopback_http(url: str, normalized: str) -> None:
    """https:// anywhere and http:// to loopback are accepted (with a trailing slash)."""
    client = KatapultClient(api_url=url, token=TOKEN, transport=MockTransport(catalogue_handler))
    assert client.api_url == normalized


@pytest.mark.parametrize(
    "url",
    [
        "http://api.katapult.io/core/v1/",
        "http://10.0.0.1/core/v1/",
        "http://[::ffff:7f00:1]/core/v1/",
        "http://localhost.evil.example/core/v1/",
        "ftp://127.0.0.1/core/v1/",
        "api.katapult.io/core/v1/",
        "https:///core/v1/",
        "https://api.katapult.io/core/v1/?token=x",
        "https://api.katapult.io:99999/",
    ],
)
def test_refuses_cleartext_and_malformed_urls(url: str) -> None:
    """Plain http:// to a non-loopback host, other schemes and odd URLs are ConfigErrors."""
    with pytest.raises(ConfigError, match=r"katapult\.api_url"):
        KatapultClient(api_url=url, token=TOKEN, transport=MockTransport(catalogue_handler))


def test_url_with_credentials_is_refused_without_echoing_them() -> None:
    """Credentials in the URL are refused and never repeated in the message."""
    with pytest.raises(ConfigError) as caught:
        KatapultClient(api_url="https://me:hunter2@api.katapult.io/core/v1/", token=None)
    assert "hunter2" not in str(caught.value)


async def test_default_transport_is_aiohttp_and_closes() -> None:
    """Without a transport the client makes its own and closes it."""
    async with KatapultClient(api_url=API_URL, token=TOKEN) as client:
        assert type(client._transport).__name__ == "AiohttpTransport"


async def test_aclose_closes_the_transport() -> None:
    """Leaving the context closes the transport, also one passed in."""
    closed = []

    class Spy(MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async with KatapultClient(api_url=API_URL, token=TOKEN, transport=Spy(catalogue_handler)):
        pass
    assert closed == [True]


# ---------------------------------------------------------------- the seam


async def test_request_headers_and_encoding() -> None:
    """Bearer token, user agent, Accept; query in bracket form; no Content-Type on GET."""
    client, transport = make_client(lambda _: json_response(200, {"ok": True}))
    data = await client.request(
        "get", "/organizations/_", params={"organization": {"sub_domain": "acme"}, "page": 2}
    )
    assert data == {"ok": True}
    (request,) = transport.requests
    assert (request.method, request.path) == ("GET", "organizations/_")
    assert request.params == (("organization[sub_domain]", "acme"), ("page", "2"))
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("orchestrator/")
    assert request.headers["User-Agent"].endswith(" (+aiohttp)")
    assert "Content-Type" not in request.headers
    assert request.json is None


async def test_post_sends_json_with_content_type() -> None:
    """A body is sent as JSON with Content-Type application/json."""
    client, transport = make_client(lambda _: json_response(201, {"ok": True}))
    await client.request("POST", "x/y", json={"a": 1})
    (request,) = transport.requests
    assert request.json == {"a": 1}
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("token", [SecretStr(TOKEN), TOKEN])
async def test_token_as_secret_str_or_str(token: str | SecretStr) -> None:
    """The token may be a SecretStr or a str."""
    client, transport = make_client(lambda _: json_response(200, {}), token=token)
    await client.request("GET", "zones")
    assert transport.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_no_token_no_authorization_and_custom_user_agent() -> None:
    """Without a token no Authorization header is sent; the user agent can be set."""
    client, transport = make_client(
        lambda _: json_response(200, {}), token=None, user_agent="mine/1"
    )
    await client.request("GET", "zones")
    assert "Authorization" not in transport.requests[0].headers
    assert transport.requests[0].headers["User-Agent"] == "mine/1"


async def test_query_in_path_is_refused() -> None:
    """Query arguments belong in params; a '?' in the path is a programming error."""
    client, transport = make_client(catalogue_handler)
    with pytest.raises(ValueError, match="params"):
        await client.request("GET", "zones?page=2")
    assert transport.requests == []


# ---------------------------------------------------------------- builds


async def test_build_vm_body() -> None:
    """Lookups become objects, mappings become [{key, value}], None fields are left out."""
    client, transport = make_client(catalogue_handler)
    created = await client.build_vm(
        organization=ORG,
        package=ROCK,
        hostname="web-01",
        data_center=LON,
        disk_template=Lookup("permalink", "templates/ubuntu-22-04"),
        disk_template_options={"install_agent": "true"},
        annotations={"orchestrator.run": "r1"},
    )
    (request,) = transport.requests
    assert (request.method, request.path) == ("POST", "organizations/_/virtual_machines/build")
    assert request.json == {
        "organization": {"sub_domain": "acme"},
        "package": {"permalink": "rock-1"},
        "data_center": {"permalink": "uk-lon-01"},
        "disk_template": {"permalink": "templates/ubuntu-22-04"},
        "disk_template_options": [{"key": "install_agent", "value": "true"}],
        "hostname": "web-01",
        "annotations": [{"key": "orchestrator.run", "value": "r1"}],
    }
    assert request.params == ()
    assert created.build_id == "vmbuild_syAXTRFgVAXvVhTq"
    assert created.task.id == TASK["id"]


async def test_build_vm_minimal_body() -> None:
    """Only what was given is sent."""
    client, transport = make_client(catalogue_handler)
    await client.build_vm(organization=Lookup("id", "org_1"), package=ROCK, zone=Lookup("id", "z"))
    assert transport.requests[0].json == {
        "organization": {"id": "org_1"},
        "package": {"permalink": "rock-1"},
        "zone": {"id": "z"},
    }


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in BUILD_CREATED.items() if k != "virtual_machine_build"},
        {k: v for k, v in BUILD_CREATED.items() if k != "build"},
    ],
    ids=["only build (old servers)", "only virtual_machine_build"],
)
async def test_build_response_shapes(body: dict[str, Any]) -> None:
    """Either build key alone gives the build id."""
    client, _ = make_client(lambda _: json_response(201, body))
    created = await client.build_vm(organization=ORG, package=ROCK, data_center=LON)
    assert created.build_id == "vmbuild_syAXTRFgVAXvVhTq"
    assert created.build_state == "pending"


@pytest.mark.parametrize(
    "body",
    [
        {"task": BUILD_CREATED["task"]},
        {"build": BUILD_CREATED["build"]},
        {"task": {"name": "no id"}, "build": BUILD_CREATED["build"]},
    ],
)
async def test_build_response_without_build_or_task_is_unexpected(body: dict[str, Any]) -> None:
    """A 201 without a build id or task id is an UnexpectedResponse, not a KeyError."""
    client, _ = make_client(lambda _: json_response(201, body, {"x-request-id": "req-9"}))
    with pytest.raises(UnexpectedResponse) as caught:
        await client.build_vm(organization=ORG, package=ROCK, data_center=LON)
    exc = caught.value
    assert (exc.http_status, exc.code, exc.request_id) == (201, None, "req-9")
    assert exc.path == BUILD_PATH
    assert "CreatedBuild" in str(exc)
    assert exc.outcome_uncertain


async def test_build_from_spec_body() -> None:
    """build_from_spec sends the organization and the XML document."""
    client, transport = make_client(catalogue_handler)
    xml = build_spec_xml(hostname="web-01", package=ROCK, data_center=LON, cpu_cores=2)
    created = await client.build_vm_from_spec(organization=ORG, xml=xml)
    (request,) = transport.requests
    assert request.path == "organizations/_/virtual_machines/build_from_spec"
    assert request.json == {"organization": {"sub_domain": "acme"}, "xml": xml}
    assert created.hostname == "web-01"


# ---------------------------------------------------------------- polls and lookups


async def test_get_task_puts_id_in_path() -> None:
    """A task id goes in the path; anything odd goes in the query instead."""
    client, transport = make_client(catalogue_handler)
    task = await client.get_task("task_cl69PTf3pECcBv97")
    await client.get_task("task/../../zones")
    first, second = transport.requests
    assert (first.path, first.params) == ("tasks/task_cl69PTf3pECcBv97", ())
    assert (second.path, second.params) == ("tasks/_", (("task[id]", "task/../../zones"),))
    assert task.status == "pending"


async def test_get_build_and_vm_queries() -> None:
    """Builds and VMs are looked up through bracket query arguments."""
    client, transport = make_client(catalogue_handler)
    build = await client.get_build("vmbuild_1")
    vm = await client.get_vm(Lookup("fqdn", "web-01.acme.katapult.cloud"))
    await client.get_vm(Lookup("id", "vm_1"))
    assert [(r.path, r.params) for r in transport.requests] == [
        ("virtual_machines/builds/_", (("virtual_machine_build[id]", "vmbuild_1"),)),
        ("virtual_machines/_", (("virtual_machine[fqdn]", "web-01.acme.katapult.cloud"),)),
        ("virtual_machines/_", (("virtual_machine[id]", "vm_1"),)),
    ]
    assert (build.state, build.virtual_machine) == ("building", None)
    assert vm.state == "started"


async def test_vm_lookup_by_permalink_is_a_programming_error() -> None:
    """A VM cannot be looked up by permalink; nothing is sent."""
    client, transport = make_client(catalogue_handler)
    with pytest.raises(ValueError, match="virtual_machine"):
        await client.get_vm(Lookup("permalink", "web-01"))
    assert transport.requests == []


async def test_organization_policy_and_catalogue() -> None:
    """The organization, its limits and the catalogue lists parse."""
    client, transport = make_client(catalogue_handler)
    org = await client.get_organization(ORG)
    limits = await client.get_policy_limits(ORG)
    dcs = await client.list_data_centers()
    zones = await client.list_zones()
    packages = await client.list_packages()
    templates = await client.list_disk_templates(ORG)
    networks = await client.list_networks(ORG)
    assert org.infrastructure_domain == "acme.katapult.cloud"
    assert org.suspended is False
    assert limits.max_virtual_machines == 50
    assert limits.maximum_disk_size is not None
    assert limits.maximum_disk_size.unlimited
    assert [d.permalink for d in dcs] == ["uk-lon-01"]
    assert zones[0].data_center is not None
    assert zones[0].data_center.permalink == "uk-lon-01"
    assert [p.permalink for p in packages] == ["rock-3"]
    assert [t.permalink for t in templates] == ["templates/ubuntu-22-04"]
    assert networks[0].data_center is not None
    assert networks[0].data_center.permalink == "uk-lon-01"
    template_request = next(r for r in transport.requests if r.path.endswith("disk_templates"))
    assert ("include_universal", "true") in template_request.params


@pytest.mark.parametrize(
    "body",
    [{"zones": None}, {"zones": {"id": "x"}}, {}, {"zones": [{"name": "no id"}]}],
)
async def test_malformed_list_is_unexpected(body: dict[str, Any]) -> None:
    """A list answer without its list, or with an item lacking an id, is UnexpectedResponse."""
    client, _ = make_client(lambda _: json_response(200, body))
    with pytest.raises(UnexpectedResponse, match="zones"):
        await client.list_zones()


# ---------------------------------------------------------------- pagination


def _pager(
    pages: list[list[dict[str, Any]]],
    *,
    large_set: bool = False,
    server_per_page: int | None = None,
    key: str = "virtual_machines",
) -> Callable[[ApiRequest], ApiResponse]:
    def handler(request: ApiRequest) -> ApiResponse:
        params = dict(request.params)
        page, per_page = int(params["page"]), int(params["per_page"])
        items = pages[page - 1] if page <= len(pages) else []
        body = page_body(
            key,
            items,
            page=page,
            per_page=server_per_page or per_page,
            total_pages=None if large_set else len(pages),
            total=None if large_set else sum(map(len, pages)),
            large_set=large_set,
        )
        return json_response(200, body)

    return handler


async def _all_vms(client: KatapultClient, per_page: int) -> list[str]:
    return [vm.id async for vm in client.list_vms(ORG, per_page=per_page)]


async def test_list_vms_follows_total_pages() -> None:
    """Every page up to total_pages is fetched, in order, and no more."""
    pages = [[_vm(1), _vm(2)], [_vm(3), _vm(4)], [_vm(5)]]
    client, transport = make_client(_pager(pages))
    assert await _all_vms(client, 2) == [_vm(n)["id"] for n in range(1, 6)]
    assert [dict(r.params)["page"] for r in transport.requests] == ["1", "2", "3"]
    assert all(dict(r.params)["organization[sub_domain]"] == "acme" for r in transport.requests)


async def test_list_vms_last_page_full() -> None:
    """A full last page is the last when total_pages says so."""
    client, transport = make_client(_pager([[_vm(1), _vm(2)], [_vm(3), _vm(4)]]))
    assert len(await _all_vms(client, 2)) == 4
    assert len(transport.requests) == 2


@pytest.mark.parametrize(
    ("pages", "requests"),
    [
        ([[_vm(1), _vm(2)], [_vm(3)]], 2),  # short page ends it
        ([[_vm(1), _vm(2)], [_vm(3), _vm(4)]], 3),  # full pages: an empty one ends it
        ([], 1),
    ],
)
async def test_list_vms_large_set_with_null_totals(
    pages: list[list[dict[str, Any]]], requests: int
) -> None:
    """With large_set and null totals, a short or empty page is the last."""
    client, transport = make_client(_pager(pages, large_set=True))
    assert len(await _all_vms(client, 2)) == sum(map(len, pages))
    assert len(transport.requests) == requests


async def test_list_vms_large_set_uses_servers_page_size() -> None:
    """If the API caps per_page, a page of its size is not mistaken for a short one."""
    pages = [[_vm(1), _vm(2)], [_vm(3), _vm(4)], [_vm(5)]]
    client, transport = make_client(_pager(pages, large_set=True, server_per_page=2))
    assert len(await _all_vms(client, 100)) == 5
    assert len(transport.requests) == 3


async def test_list_vms_page_mismatch_is_unexpected() -> None:
    """An API that ignores the page argument cannot loop us forever."""
    client, _ = make_client(
        lambda _: json_response(
            200,
            page_body("virtual_machines", [_vm(1)], page=1, per_page=1, total_pages=None),
        )
    )
    with pytest.raises(UnexpectedResponse, match="asked for page 2"):
        await _all_vms(client, 1)


async def test_list_without_pagination_is_one_page() -> None:
    """An answer without a pagination object is the whole list."""
    client, transport = make_client(lambda _: json_response(200, {"virtual_machines": [_vm(1)]}))
    assert len(await _all_vms(client, 1)) == 1
    assert len(transport.requests) == 1


async def test_list_per_page_must_be_positive() -> None:
    """per_page below 1 is a programming error."""
    client, _ = make_client(catalogue_handler)
    with pytest.raises(ValueError, match="per_page"):
        await _all_vms(client, 0)


async def test_packages_and_templates_fetch_every_page() -> None:
    """list_packages and list_disk_templates return the items of all pages."""
    pkgs = [[{"id": f"vmpkg_{n}", "permalink": f"rock-{n}"}] for n in range(3)]
    client, transport = make_client(_pager(pkgs, key="virtual_machine_packages"))
    assert [p.id for p in await client.list_packages(per_page=1)] == [
        "vmpkg_0",
        "vmpkg_1",
        "vmpkg_2",
    ]
    tpls = [[{"id": f"dtpl_{n}"}] for n in range(2)]
    client, transport = make_client(_pager(tpls, key="disk_templates"))
    assert len(await client.list_disk_templates(ORG, per_page=1)) == 2
    assert len(transport.requests) == 2


# ---------------------------------------------------------------- errors

BUILD_ERRORS = [
    # code, status, class, category, detail
    ("organization_not_found", 404, NotFound, "not_found", {}),
    ("organization_suspended", 403, PermissionDenied, "permission", {}),
    ("organization_not_activated", 403, PermissionDenied, "permission", {}),
    ("zone_not_found", 404, NotFound, "not_found", {}),
    ("data_center_not_found", 404, NotFound, "not_found", {}),
    ("package_not_found", 404, NotFound, "not_found", {}),
    ("disk_template_not_found", 404, NotFound, "not_found", {}),
    ("network_not_found", 404, NotFound, "not_found", {}),
    ("permission_denied", 403, PermissionDenied, "permission", {"details": "no builds"}),
    (
        "resource_creation_restricted",
        403,
        PermissionDenied,
        "quota",
        {"errors": ["VM limit reached"]},
    ),
    ("validation_error", 422, ValidationFailed, "validation", {"errors": ["Hostname is taken"]}),
    ("location_required", 422, ValidationFailed, "validation", {}),
    ("missing_api_token", 400, AuthenticationError, "auth", {}),
    ("invalid_api_token", 403, AuthenticationError, "auth", {"details": "unknown token"}),
    ("scope_not_granted", 403, PermissionDenied, "permission", {"scopes": ["virtual_machines"]}),
    ("rate_limit_reached", 429, RateLimited, "rate_limited", {"total_permitted": 1000}),
    ("service_unavailable", 503, ServerError, "server_error", {}),
    ("invalid_argument", 400, InvalidRequest, "validation", {"issue": "missing_lookup_value"}),
    ("missing_required_argument", 400, InvalidRequest, "validation", {"argument": "package"}),
    ("invalid_json_body", 400, InvalidRequest, "validation", {}),
    ("route_not_found", 404, NotFound, "not_found", {}),
    ("unhandled_exception", 500, ServerError, "server_error", {}),
]


@pytest.mark.parametrize(
    ("code", "status", "cls", "category", "detail"),
    BUILD_ERRORS,
    ids=[e[0] for e in BUILD_ERRORS],
)
async def test_build_error_codes(
    code: str, status: int, cls: type[ApiError], category: str, detail: dict[str, Any]
) -> None:
    """Each error of the build endpoint raises its class with every envelope field."""
    description = f"Description of {code}"
    client, _ = make_client(
        lambda _: json_response(
            status, error_body(code, description, detail), {"X-Request-Id": "req-42"}
        )
    )
    with pytest.raises(cls) as caught:
        await client.build_vm(organization=ORG, package=ROCK, data_center=LON)
    exc = caught.value
    assert type(exc) is cls
    assert exc.category == category
    assert (exc.http_status, exc.code, exc.description, exc.detail) == (
        status,
        code,
        description,
        detail,
    )
    assert (exc.method, exc.path, exc.request_id) == ("POST", BUILD_PATH, "req-42")
    assert code in str(exc)
    assert "req-42" in str(exc)
    assert exc.outcome_uncertain == (status >= 500)
    assert errors.category_for(code, status) == category


async def test_invalid_spec_xml() -> None:
    """build_from_spec's 400 invalid_spec_xml is an InvalidRequest in the invalid_spec category."""
    client, _ = make_client(
        lambda _: json_response(
            400, error_body("invalid_spec_xml", "The spec XML is invalid", {"errors": "line 1"})
        )
    )
    with pytest.raises(InvalidRequest) as caught:
        await client.build_vm_from_spec(organization=ORG, xml="<nope")
    assert caught.value.category == "invalid_spec"
    assert caught.value.detail == {"errors": "line 1"}


async def test_flat_error_body_is_understood() -> None:
    """An error body in the OpenAPI file's flat form still gives the code."""
    client, _ = make_client(
        lambda _: json_response(404, {"code": "task_not_found", "description": "No task"})
    )
    with pytest.raises(NotFound) as caught:
        await client.get_task("task_x")
    assert (caught.value.code, caught.value.description) == ("task_not_found", "No task")


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({}, None),
        ({"Retry-After": "12"}, 12.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
    ],
)
async def test_429_with_and_without_retry_after(
    headers: dict[str, str], retry_after: float | None
) -> None:
    """A 429 is RateLimited, carries Retry-After if any, and is counted."""
    body = error_body(
        "rate_limit_reached",
        "You have reached the rate limit for this type of request",
        {"total_permitted": 1000},
    )
    client, _ = make_client(
        lambda _: json_response(429, body, {"x-ratelimit-remaining": "0", **headers})
    )
    with pytest.raises(RateLimited) as caught:
        await client.get_task("task_x")
    assert caught.value.retry_after == retry_after
    assert caught.value.category == "rate_limited"
    assert (client.requests_total, client.rate_limited_total) == (1, 1)


HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


async def test_html_502_from_a_proxy() -> None:
    """A non-JSON 502 is a ServerError without code, described by type and size."""
    client, _ = make_client(
        lambda _: ApiResponse(502, {"content-type": "text/html; charset=utf-8"}, HTML)
    )
    with pytest.raises(ServerError) as caught:
        await client.build_vm(organization=ORG, package=ROCK, data_center=LON)
    exc = caught.value
    assert exc.code is None
    assert exc.description == f"non-JSON body (text/html, {len(HTML)} bytes)"
    assert exc.category == "server_error"
    assert exc.outcome_uncertain
    assert exc.request_id is None
    assert "no_api_error_code" in str(exc)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "cls", "description"),
    [
        (404, b"", None, NotFound, "non-JSON body (no content type, 0 bytes)"),
        (500, b'{"error": {"co', "application/json", ServerError, "non-JSON body"),
        (500, b'{"message": "boom"}', "application/json", ServerError, "without an error code"),
        (403, b'"forbidden"', "application/json", PermissionDenied, "without an error code"),
    ],
)
async def test_error_bodies_that_are_not_the_envelope(
    status: int, body: bytes, content_type: str | None, cls: type[ApiError], description: str
) -> None:
    """Empty, truncated or foreign error bodies still raise the status's class, code None."""
    headers = {"content-type": content_type} if content_type else {}
    client, _ = make_client(lambda _: ApiResponse(status, headers, body))
    with pytest.raises(cls) as caught:
        await client.request("GET", "zones")
    assert caught.value.code is None
    assert caught.value.description is not None
    assert description in caught.value.description


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (200, b'{"task": {"id": "task_x", "sta', "non-JSON body"),
        (200, b"<html>maintenance</html>", "non-JSON body"),
        (200, b"[1, 2]", "not an object"),
        (200, b"", "non-JSON body"),
        (200, b'{"nothing": 1}', "Task"),
        (200, b'{"task": {"id": "task_x", "status": null}}', "status"),
        (302, b"", "unexpected HTTP status 302"),
    ],
)
async def test_success_status_with_bad_body_is_unexpected(
    status: int, body: bytes, match: str
) -> None:
    """A 2xx whose body is truncated, not JSON, not an object or not a task raises."""
    client, _ = make_client(lambda _: ApiResponse(status, {"content-type": "text/plain"}, body))
    with pytest.raises(UnexpectedResponse, match=match) as caught:
        await client.get_task("task_x")
    assert caught.value.http_status == status
    assert caught.value.path == "/tasks/task_x"


@pytest.mark.parametrize(
    "exc",
    [
        ApiConnectError("refused", method="GET", path="/zones"),
        ApiTimeout("slow", method="GET", path="/zones"),
        ConnectionLost("reset", method="GET", path="/zones"),
    ],
)
async def test_transport_errors_pass_through(exc: TransportError) -> None:
    """Transport errors reach the caller unchanged, counted, with the gate released."""

    def handler(_: ApiRequest) -> ApiResponse:
        raise exc

    gate = RecordingGate()
    client, _ = make_client(handler, gate=gate)
    with pytest.raises(type(exc)) as caught:
        await client.list_zones()
    assert caught.value is exc
    assert client.requests_total == 1
    gate.assert_balanced()
    assert gate.released[0][1] == RateLimitInfo(status=None)


# ---------------------------------------------------------------- gate and counters


async def test_gate_once_per_request_on_every_outcome() -> None:
    """acquire and release pair up for 2xx, 4xx, 429 and 5xx answers alike."""
    answers = iter(
        [
            json_response(200, {"task": TASK}),
            json_response(404, error_body("task_not_found")),
            json_response(429, error_body("rate_limit_reached"), {"x-ratelimit-remaining": "0"}),
            ApiResponse(502, {"content-type": "text/html"}, HTML),
            json_response(200, {"task": TASK}),
        ]
    )
    gate = RecordingGate()
    client, transport = make_client(lambda _: next(answers), gate=gate)
    for _ in range(5):
        with contextlib.suppress(ApiError):
            await client.get_task("task_x")
    gate.assert_balanced()
    assert [r for r, _ in gate.released] == transport.requests
    assert [info.status for _, info in gate.released] == [200, 404, 429, 502, 200]
    assert [info.remaining for _, info in gate.released] == [999, 999, 0, None, 999]
    assert (client.requests_total, client.rate_limited_total) == (5, 1)


async def test_gate_released_when_cancelled_in_flight() -> None:
    """A request cancelled while in flight still releases the gate, with status None."""
    entered = anyio.Event()

    async def hang(_: ApiRequest) -> ApiResponse:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    gate = RecordingGate()
    client, _ = make_client(hang, gate=gate)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.get_task, "task_x")
        await entered.wait()
        tg.cancel_scope.cancel()
    gate.assert_balanced()
    assert gate.released[0][1].status is None


async def test_gate_not_released_when_acquire_is_cancelled() -> None:
    """A request cancelled while waiting at the gate is neither sent nor released."""
    waiting = anyio.Event()

    class ClosedGate(RecordingGate):
        async def acquire(self, request: ApiRequest) -> None:
            waiting.set()
            await anyio.sleep_forever()

    gate = ClosedGate()
    client, transport = make_client(catalogue_handler, gate=gate)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.list_zones)
        await waiting.wait()
        tg.cancel_scope.cancel()
    assert gate.released == []
    assert transport.requests == []
    assert client.requests_total == 0


async def test_gate_paces_every_page() -> None:
    """Each page of a list passes the gate."""
    gate = RecordingGate()
    client, _ = make_client(_pager([[_vm(1)], [_vm(2)], [_vm(3)]]), gate=gate)
    assert len(await _all_vms(client, 1)) == 3
    assert len(gate.acquired) == 3
    gate.assert_balanced()


async def test_gate_gets_the_request_before_it_is_sent() -> None:
    """acquire sees the request before the transport does (it may delay it)."""
    order: list[str] = []

    class OrderGate(RecordingGate):
        async def acquire(self, request: ApiRequest) -> None:
            order.append("acquire")

        def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
            order.append("release")

    def handler(request: ApiRequest) -> ApiResponse:
        order.append("send")
        return catalogue_handler(request)

    client, _ = make_client(handler, gate=OrderGate())
    await client.list_zones()
    assert order == ["acquire", "send", "release"]


# ---------------------------------------------------------------- secrets


FAILURES: list[Callable[[ApiRequest], ApiResponse]] = [
    lambda _: json_response(403, error_body("invalid_api_token", "Bad token", {"details": "x"})),
    lambda _: json_response(400, error_body("missing_api_token", "No token")),
    lambda _: json_response(429, error_body("rate_limit_reached")),
    lambda _: ApiResponse(502, {"content-type": "text/html"}, HTML),
    lambda _: ApiResponse(200, {}, b"not json"),
    lambda _: json_response(201, {"task": {}}),
]


@pytest.mark.parametrize("handler", FAILURES)
async def test_token_never_in_exception_or_repr(
    handler: Callable[[ApiRequest], ApiResponse],
) -> None:
    """Neither the exception text nor any repr carries the token."""
    client, transport = make_client(handler)
    with pytest.raises(errors.OrchestratorError) as caught:
        await client.build_vm(organization=ORG, package=ROCK, data_center=LON)
    exc = caught.value
    for text in (str(exc), repr(exc), repr(exc.args), repr(client), repr(transport.requests[0])):
        assert TOKEN not in text
    assert TOKEN not in json.dumps(vars(exc), default=repr)


async def test_auth_errors() -> None:
    """400 missing_api_token and 403 invalid_api_token are AuthenticationErrors (category auth)."""
    for status, code in ((400, "missing_api_token"), (403, "invalid_api_token")):
        client, _ = make_client(lambda _, s=status, c=code: json_response(s, error_body(c)))  # type: ignore[misc]
        with pytest.raises(AuthenticationError) as caught:
            await client.list_zones()
        assert (caught.value.http_status, caught.value.category) == (status, "auth")
