"""The transport's safety rails: TLS only (loopback excepted), no redirects, bounded answers."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketStream
from pydantic import BaseModel

from orchestrator.errors import ApiTimeout, ConfigError, ConnectionLost, UnexpectedResponse
from orchestrator.katapult import AiohttpTransport, KatapultClient, Timeouts
from orchestrator.settings import ENV_VARS, Settings, load_settings
from orchestrator.vm_request import Lookup

TOKEN = "transport-test-token"
ACME = Lookup("sub_domain", "acme")

REFUSED = [
    "http://example.com/core/v1/",
    "http://10.0.0.1/core/v1/",
    "http://192.168.1.10:8080/",
    "http://0.0.0.0:8080/",
    "http://[::]:8080/",
    "http://127.0.0.1.nip.io/",
    "http://localhost.example.com/",
    "http://api.katapult.io/core/v1/",
    "HTTP://EXAMPLE.COM/",
    "ftp://127.0.0.1/",
    "file:///etc/passwd",
    "ws://127.0.0.1/",
    "//example.com/",
    "http://user:pass@127.0.0.1/",
]
ALLOWED = [
    "https://api.katapult.io/core/v1/",
    "http://127.0.0.1:8080/core/v1/",
    "http://127.5.6.7/core/v1/",
    "http://localhost:8080/core/v1/",
    "http://[::1]:8080/core/v1/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_settings_refuse_cleartext_or_odd_api_urls(url: str) -> None:
    """KATAPULT_API_URL must be https://, or http:// to a loopback address only."""
    with pytest.raises(ConfigError, match=r"katapult\.api_url"):
        load_settings(environ={"KATAPULT_API_URL": url})


@pytest.mark.parametrize("url", REFUSED)
def test_client_refuses_cleartext_or_odd_api_urls(url: str) -> None:
    """The client checks the URL too, for library users who bypass the settings."""
    with pytest.raises(ConfigError):
        KatapultClient(api_url=url, token=TOKEN)


@pytest.mark.parametrize("url", ALLOWED)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    """https:// anywhere and http:// to 127.0.0.0/8, ::1 or localhost are accepted by both."""
    assert load_settings(environ={"KATAPULT_API_URL": url}).katapult.api_url.endswith("/")
    assert KatapultClient(api_url=url, token=TOKEN).api_url.endswith("/")


_TLS_OFF = re.compile(r"verify|insecure|ssl|tls|cert|ca_?bundle|ca_?file|skip", re.IGNORECASE)


def _field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _field_names(annotation, f"{prefix}{name}.")
    return names


def test_there_is_no_way_to_turn_tls_verification_off() -> None:
    """No setting, env var or client/transport parameter can disable TLS or its checks."""
    names = _field_names(Settings) + list(ENV_VARS) + [n for v in ENV_VARS.values() for n in v]
    for cls in (KatapultClient, AiohttpTransport):
        names += list(inspect.signature(cls.__init__).parameters)
    offending = [n for n in names if _TLS_OFF.search(n)]
    assert offending == []
    assert "katapult.api_url" in names  # the walk did see the settings


# --------------------------------------------------------------- raw HTTP servers

Handler = Callable[[SocketStream], Awaitable[None]]


async def _read_head(stream: SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive()
        data += chunk
    return data


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server on 127.0.0.1 answering each connection with ``handler``.

    Yields the API URL and the list of request heads it received.
    """
    heads: list[bytes] = []

    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                heads.append(await _read_head(stream))
                await handler(stream)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield f"http://127.0.0.1:{port}/core/v1/", heads
        finally:
            tg.cancel_scope.cancel()


def _head(*lines: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *lines]) + "\r\n\r\n").encode()


async def endless_chunked_body(stream: SocketStream) -> None:
    """A 200 whose chunked body never ends."""
    await stream.send(_head("Content-Type: application/json", "Transfer-Encoding: chunked"))
    chunk = b"x" * 65536
    while True:
        await stream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))


async def endless_unframed_body(stream: SocketStream) -> None:
    """A 200 without length or chunking: the body runs until the connection closes (never)."""
    await stream.send(_head("Content-Type: application/json", "Connection: close"))
    while True:
        await stream.send(b"[" * 65536)


async def huge_declared_body(stream: SocketStream) -> None:
    """A 200 announcing 10 GB."""
    await stream.send(_head("Content-Type: application/json", "Content-Length: 10000000000"))
    await stream.send(b'{"organization": ')
    await anyio.sleep_forever()


async def endless_header(stream: SocketStream) -> None:
    """A status line, then one header line that never ends."""
    await stream.send(b"HTTP/1.1 200 OK\r\nX-Padding: ")
    while True:
        await stream.send(b"a" * 65536)


async def endless_header_lines(stream: SocketStream) -> None:
    """A status line, then header lines that never end."""
    await stream.send(b"HTTP/1.1 200 OK\r\n")
    while True:
        await stream.send(b"X-Padding: a\r\n" * 4096)


async def drip_body(stream: SocketStream) -> None:
    """A 200 whose body arrives one byte at a time, forever: never a read timeout."""
    await stream.send(_head("Content-Type: application/json", "Content-Length: 1000000"))
    while True:
        await stream.send(b" ")
        await anyio.sleep(0.02)  # the server's pace: slower than any sane API, faster than idle


HOSTILE: dict[str, tuple[Handler, type[Exception], str]] = {
    "endless-chunked-body": (endless_chunked_body, ConnectionLost, "exceeds"),
    "endless-unframed-body": (endless_unframed_body, ConnectionLost, "exceeds"),
    "huge-content-length": (huge_declared_body, ConnectionLost, "exceeds"),
    "endless-header": (endless_header, ConnectionLost, ""),
    "endless-header-lines": (endless_header_lines, ConnectionLost, ""),
    "drip-feed-body": (drip_body, ApiTimeout, "timed out"),
}


@pytest.mark.parametrize(("handler", "error", "text"), HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.anyio
async def test_hostile_answers_end_in_a_clean_error(
    handler: Handler, error: type[Exception], text: str
) -> None:
    """A huge, endless or drip-fed answer ends in one of our errors, within bounds."""
    async with raw_server(handler) as (url, _):
        timeouts = Timeouts(connect=1.0, read=1.0, total=1.5)
        async with KatapultClient(api_url=url, token=TOKEN, timeouts=timeouts) as client:
            with anyio.fail_after(20), pytest.raises(error, match=text or None) as caught:
                await client.get_organization(ACME)
    assert TOKEN not in str(caught.value)


@pytest.mark.anyio
async def test_redirects_are_not_followed() -> None:
    """A redirect is an error, never followed: the token is not sent to another server."""

    async def nothing(stream: SocketStream) -> None:
        """Say nothing (nobody should ever connect here)."""

    async with raw_server(nothing) as (elsewhere, elsewhere_heads):

        async def redirect(stream: SocketStream) -> None:
            await stream.send(
                f"HTTP/1.1 302 Found\r\nLocation: {elsewhere}organizations/_\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )

        async with raw_server(redirect) as (url, heads):
            async with KatapultClient(api_url=url, token=TOKEN) as client:
                with pytest.raises(UnexpectedResponse, match="302"):
                    await client.get_organization(ACME)
    assert len(heads) == 1
    assert f"Bearer {TOKEN}".encode() in heads[0]
    assert elsewhere_heads == []
