"""The one HTTP seam: a small ``Transport`` protocol and its implementations.

``AiohttpTransport`` is the only module in the package that imports aiohttp,
and the only place where aiohttp's exceptions are translated into ours
(most specific first, always ``raise ... from exc``). ``MockTransport`` runs a
plain function ``ApiRequest -> ApiResponse`` in-process for unit tests.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from orchestrator.errors import ApiConnectError, ApiTimeout, ApiUnreachable, ConnectionLost

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "AiohttpTransport",
    "ApiRequest",
    "ApiResponse",
    "MockTransport",
    "Timeouts",
    "Transport",
]

#: Bodies larger than this are refused: a broken proxy must not exhaust memory.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request, as the API sees it.

    ``path`` is relative to the API base URL (``tasks/task_abc``); ``params``
    are already flattened to bracket-nested pairs; ``json`` is the body of a
    POST. ``headers`` holds the bearer token: never print a request's headers.
    """

    method: str
    path: str
    params: Sequence[tuple[str, str]] = ()
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """One response: status, headers (keys lower-cased) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name, or ``None``.

        Also finds a header whose key a hand-made response did not lower-case.
        """
        key = name.lower()
        value = self.headers.get(key)
        if value is None:
            value = next((v for k, v in self.headers.items() if k.lower() == key), None)
        return value


class Transport(Protocol):
    """Sends an :class:`ApiRequest` and returns the :class:`ApiResponse`.

    Raises only :class:`~orchestrator.errors.TransportError` subclasses.
    """

    async def send(self, request: ApiRequest) -> ApiResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request timeouts in seconds (connect, read between bytes, total)."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 60.0


Handler = Callable[[ApiRequest], "ApiResponse | Awaitable[ApiResponse]"]


class MockTransport:
    """A transport that answers every request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[ApiRequest] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result

    async def aclose(self) -> None:
        return None


class AiohttpTransport:
    """The real transport: one ``aiohttp.ClientSession`` with bounded pools and bodies."""

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        max_connections: int = 32,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeouts = timeouts or Timeouts()
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            t = self._timeouts
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=t.total, sock_connect=t.connect, sock_read=t.read
                ),
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
                ),
                raise_for_status=False,
                auto_decompress=True,
            )
            # aiohttp sends an idempotent request (GET, DELETE) once more, unseen, when a
            # kept-alive connection drops before its answer (RFC 9112, 9.3.1): a DELETE
            # would then reach the API twice for one journaled intent. The engine settles
            # every uncertain request itself (by looking), so that retry is off; the
            # attribute is the one aiohttp's own test client turns off.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def send(self, request: ApiRequest) -> ApiResponse:
        session = self._get_session()
        url = self._base_url + request.path.lstrip("/")
        method, path = request.method, "/" + request.path.lstrip("/")
        try:
            async with session.request(
                request.method,
                url,
                params=list(request.params) or None,
                json=request.json,
                headers=dict(request.headers),
                allow_redirects=False,
            ) as resp:
                body = await self._read_bounded(resp, method=method, path=path)
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return ApiResponse(status=resp.status, headers=headers, body=body)
        except aiohttp.ConnectionTimeoutError as exc:
            raise ApiTimeout(
                "timed out connecting", maybe_sent=False, method=method, path=path
            ) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            if _unknown_host(exc):
                raise ApiUnreachable(
                    f"cannot resolve the API host {exc.host}: {_os_reason(exc)} "
                    "(check KATAPULT_API_URL)",
                    method=method,
                    path=path,
                ) from exc
            raise ApiConnectError(
                f"cannot connect: {exc.os_error}", method=method, path=path
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise ApiUnreachable(
                f"TLS with the API at {exc.host}:{exc.port} failed: {_os_reason(exc)} "
                "(a certificate that does not verify, or a port that does not speak TLS; "
                "check KATAPULT_API_URL)",
                method=method,
                path=path,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ApiConnectError(
                f"cannot connect: {exc.os_error}", method=method, path=path
            ) from exc
        except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise ApiTimeout(
                "timed out waiting for the response", method=method, path=path
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise ConnectionLost("response body was cut short", method=method, path=path) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise ConnectionLost("server closed the connection", method=method, path=path) from exc
        except aiohttp.ClientOSError as exc:
            raise ConnectionLost(
                f"connection broken: {exc.strerror or exc}", method=method, path=path
            ) from exc
        except aiohttp.ClientResponseError as exc:
            raise ConnectionLost(
                f"malformed response: {exc.message}", method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionLost(f"{type(exc).__name__}", method=method, path=path) from exc

    async def _read_bounded(self, resp: aiohttp.ClientResponse, *, method: str, path: str) -> bytes:
        limit = self._max_body_bytes
        declared = resp.content_length
        if declared is not None and declared > limit:
            raise ConnectionLost(
                f"response body of {declared} bytes exceeds {limit}", method=method, path=path
            )
        if declared is not None:
            # the usual answer: its length said (the parser holds the body to it), read at once
            return await resp.content.readexactly(declared) if declared else b""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise ConnectionLost(
                    f"response body exceeds {limit} bytes", method=method, path=path
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # let aiohttp finish closing transports before the loop goes away
            await asyncio.sleep(0)


def _unknown_host(exc: aiohttp.ClientConnectorDNSError) -> bool:
    """The name does not exist (not a resolver that failed for now: EAI_AGAIN is retried)."""
    permanent = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    return exc.os_error.errno in permanent


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    reason = getattr(error, "reason", None) or error.strerror or str(error) or type(error).__name__
    return str(reason)
