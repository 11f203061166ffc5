"""AiohttpTransport over real sockets on 127.0.0.1: what arrives, and how failures map.

A tiny aiohttp.web app in aiohttp's TestServer plays the API. Synchronization
is by events only; timeouts are short (0.2 s) so failures come quickly.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.engine._retry import is_retryable
from orchestrator.errors import (
    ApiConnectError,
    ApiTimeout,
    ApiUnreachable,
    ConnectionLost,
    NotFound,
)
from orchestrator.katapult import (
    AiohttpTransport,
    ApiRequest,
    KatapultClient,
    RateLimitInfo,
    Timeouts,
)
from orchestrator.vm_request import Lookup

from ._helpers import BUILD_CREATED, TOKEN

pytestmark = pytest.mark.anyio

SHORT = Timeouts(connect=0.2, read=0.2, total=10.0)
LIMIT = 1024


@dataclass
class FakeApi:
    """What the fake API saw, and the events its handlers wait on."""

    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _app(api: FakeApi) -> web.Application:
    async def record(request: web.Request) -> None:
        api.seen.append(request)
        api.bodies.append(await request.read())
        api.received.set()

    async def ok(request: web.Request) -> web.StreamResponse:
        await record(request)
        status = 201 if request.method == "POST" else 200
        return web.json_response(
            BUILD_CREATED,
            status=status,
            headers={"X-RateLimit-Permitted": "200", "X-Ratelimit-Remaining": "17"},
        )

    async def not_found(request: web.Request) -> web.StreamResponse:
        await record(request)
        body = {"error": {"code": "task_not_found", "description": "No task", "detail": {}}}
        return web.json_response(body, status=404, headers={"X-Request-Id": "req-404"})

    async def hang(request: web.Request) -> web.StreamResponse:
        await record(request)
        await api.release.wait()  # never set while the client waits: provokes the read timeout
        return web.json_response({})

    async def cut(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b'{"task": {"id": "task_')
        assert request.transport is not None
        request.transport.close()  # the connection dies mid-body
        return response

    async def drop(request: web.Request) -> web.StreamResponse:
        await record(request)
        assert request.transport is not None
        request.transport.close()  # acted (say), then the connection drops: no answer
        return web.Response()

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(body=b"x" * (LIMIT * 4), content_type="application/json")

    async def endless(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()  # chunked, no Content-Length
        response.content_type = "application/json"
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            while True:  # until the client gives up: it must, or the test times out
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            return response

    app = web.Application()
    app.router.add_route("*", "/core/v1/tasks/task_404", not_found)
    app.router.add_route("*", "/core/v1/tasks/task_hang", hang)
    app.router.add_route("*", "/core/v1/tasks/task_cut", cut)
    app.router.add_route("*", "/core/v1/tasks/task_big", big)
    app.router.add_route("*", "/core/v1/tasks/task_endless", endless)
    app.router.add_route("DELETE", "/core/v1/virtual_machines/_", drop)
    app.router.add_route("*", "/core/v1/{tail:.*}", ok)
    return app


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakeApi, str]]:
    """The fake API on 127.0.0.1 and its base URL."""
    api = FakeApi()
    server = TestServer(_app(api), host="127.0.0.1")
    await server.start_server()
    try:
        yield api, str(server.make_url("/core/v1/"))
    finally:
        api.release.set()
        await server.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/core/v1/"


class Gate:
    """Records the status each request was released with."""

    def __init__(self) -> None:
        self.acquired = 0
        self.released: list[RateLimitInfo] = []

    async def acquire(self, request: ApiRequest) -> None:
        self.acquired += 1

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
        self.released.append(info)


async def test_get_arrives_with_headers_and_bracket_query(fake_api: tuple[FakeApi, str]) -> None:
    """A GET reaches the server with the bearer token, user agent and bracket query."""
    api, url = fake_api
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT) as client:
        data = await client.request(
            "GET", "organizations/_", params={"organization": {"sub_domain": "acme"}, "page": 2}
        )
    assert data["hostname"] == "web-01"
    (request,) = api.seen
    assert request.path == "/core/v1/organizations/_"
    assert list(request.query.items()) == [("organization[sub_domain]", "acme"), ("page", "2")]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("orchestrator/")
    assert request.headers["Accept"] == "application/json"
    assert api.bodies == [b""]


async def test_post_arrives_as_json_and_rate_headers_are_read(
    fake_api: tuple[FakeApi, str],
) -> None:
    """A build POST arrives as a JSON body; the answer's rate headers reach the gate."""
    api, url = fake_api
    gate = Gate()
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT, gate=gate) as client:
        created = await client.build_vm(
            organization=Lookup("sub_domain", "acme"),
            package=Lookup("permalink", "rock-1"),
            data_center=Lookup("permalink", "uk-lon-01"),
            hostname="web-01",
        )
    assert created.build_id == "vmbuild_syAXTRFgVAXvVhTq"
    (request,) = api.seen
    assert request.method == "POST"
    assert request.path == "/core/v1/organizations/_/virtual_machines/build"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(api.bodies[0]) == {
        "organization": {"sub_domain": "acme"},
        "package": {"permalink": "rock-1"},
        "data_center": {"permalink": "uk-lon-01"},
        "hostname": "web-01",
    }
    assert gate.released == [RateLimitInfo(status=201, permitted=200, remaining=17)]


async def test_error_envelope_over_the_wire(fake_api: tuple[FakeApi, str]) -> None:
    """A real 404 envelope becomes NotFound with the request id."""
    _, url = fake_api
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT) as client:
        with pytest.raises(NotFound) as caught:
            await client.get_task("task_404")
    assert (caught.value.code, caught.value.request_id) == ("task_not_found", "req-404")
    assert caught.value.path == "/tasks/task_404"


async def test_read_timeout_after_the_server_got_the_request(
    fake_api: tuple[FakeApi, str],
) -> None:
    """No answer within the read timeout is ApiTimeout(maybe_sent=True); the gate is released."""
    api, url = fake_api
    gate = Gate()
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT, gate=gate) as client:
        with pytest.raises(ApiTimeout) as caught:
            await client.get_task("task_hang")
    assert api.received.is_set()
    assert caught.value.maybe_sent is True
    assert caught.value.category == "timeout"
    assert caught.value.path == "/tasks/task_hang"
    assert gate.released == [RateLimitInfo(status=None)]


async def test_connection_refused(refused_url: str) -> None:
    """A refused connection is ApiConnectError: surely not sent; the gate is released."""
    gate = Gate()
    async with KatapultClient(
        api_url=refused_url, token=TOKEN, timeouts=SHORT, gate=gate
    ) as client:
        with pytest.raises(ApiConnectError) as caught:
            await client.build_vm(
                organization=Lookup("sub_domain", "acme"),
                package=Lookup("permalink", "rock-1"),
                zone=Lookup("permalink", "lon-zone-1"),
            )
    assert caught.value.maybe_sent is False
    assert caught.value.category == "network"
    assert TOKEN not in str(caught.value)
    assert (gate.acquired, gate.released) == (1, [RateLimitInfo(status=None)])
    assert client.requests_total == 1


async def test_tls_to_a_plain_http_port_is_unreachable_at_once(
    fake_api: tuple[FakeApi, str],
) -> None:
    """https:// to a port that speaks plain HTTP is ApiUnreachable (never sent, not
    retryable), naming the host, the port and the likely cause."""
    api, url = fake_api
    tls_url = url.replace("http://", "https://")
    async with KatapultClient(api_url=tls_url, token=TOKEN, timeouts=SHORT) as client:
        with pytest.raises(ApiUnreachable) as caught:
            await client.get_task("task_abc")
    assert not api.received.is_set()
    assert caught.value.maybe_sent is False
    assert "TLS with the API at 127.0.0.1:" in str(caught.value)
    assert "does not speak TLS" in str(caught.value)
    assert not is_retryable(caught.value)


@pytest.mark.parametrize(
    ("errno", "expected"),
    [(socket.EAI_NONAME, ApiUnreachable), (socket.EAI_AGAIN, ApiConnectError)],
    ids=["unknown-host", "resolver-failing-for-now"],
)
async def test_a_host_that_does_not_resolve_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, errno: int, expected: type[Exception]
) -> None:
    """A name that does not exist is ApiUnreachable (not retried); a resolver failing for
    now (EAI_AGAIN) stays a retryable ApiConnectError."""

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(errno, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = "https://api.example.invalid/core/v1/"
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT) as client:
        with pytest.raises(ApiConnectError) as caught:
            await client.get_task("task_abc")
    assert type(caught.value) is expected
    assert is_retryable(caught.value) is (expected is ApiConnectError)
    if expected is ApiUnreachable:
        assert "cannot resolve the API host api.example.invalid" in str(caught.value)


async def test_connection_closed_mid_response(fake_api: tuple[FakeApi, str]) -> None:
    """A body cut short by the server closing the connection is ConnectionLost (maybe sent)."""
    api, url = fake_api
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT) as client:
        with pytest.raises(ConnectionLost) as caught:
            await client.get_task("task_cut")
    assert api.received.is_set()
    assert caught.value.maybe_sent is True
    assert caught.value.path == "/tasks/task_cut"


async def test_a_delete_whose_kept_alive_connection_drops_is_sent_once(
    fake_api: tuple[FakeApi, str],
) -> None:
    """aiohttp would send an idempotent request once more, unseen, when a kept-alive
    connection drops before its answer: the client turns that off, so a DELETE reaches
    the API once per call and the engine learns its outcome was uncertain."""
    api, url = fake_api
    async with KatapultClient(api_url=url, token=TOKEN, timeouts=SHORT) as client:
        await client.get_task("task_ok")  # a connection kept alive for the DELETE
        with pytest.raises(ConnectionLost) as caught:
            await client.delete_vm("vm_1")
    deletes = [r for r in api.seen if r.method == "DELETE"]
    assert len(deletes) == 1
    assert caught.value.maybe_sent is True


@pytest.mark.parametrize("task", ["task_big", "task_endless"])
async def test_body_over_the_limit_is_refused(fake_api: tuple[FakeApi, str], task: str) -> None:
    """A body over max_body_bytes (declared or streamed without end) is refused, not buffered."""
    _, url = fake_api
    transport = AiohttpTransport(url, timeouts=SHORT, max_body_bytes=LIMIT)
    async with KatapultClient(api_url=url, token=TOKEN, transport=transport) as client:
        with pytest.raises(ConnectionLost, match=f"exceeds {LIMIT}") as caught:
            await client.get_task(task)
    assert caught.value.path == f"/tasks/{task}"
