"""Fault injection: which fault meets a request, and how a connection is broken.

One seeded draw per API request picks at most one per-request fault (their
rates are exclusive slices of [0, 1)); the 429 burst schedule is a separate
counter over every API request. Where each fault strikes in the request
pipeline (before handling, after rate limiting, after acting) is decided by
the dispatcher in ``_routes``.
"""

from __future__ import annotations

import enum
import random

from aiohttp import web

from orchestrator.simulator._config import FaultConfig

__all__ = ["HTML_502_BODY", "Fault", "FaultInjector", "drop_connection", "send_truncated"]

HTML_502_BODY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class Fault(enum.Enum):
    """The per-request faults (``NONE`` for a healthy request)."""

    NONE = "none"
    RESET_BEFORE = "reset_before"
    HTML_502 = "html_502"
    ERROR_5XX = "error_5xx"
    SLOW = "slow"
    RESET_AFTER = "reset_after"
    TRUNCATED = "truncated_body"
    ERROR_5XX_AFTER = "error_5xx_after"


class FaultInjector:
    """Draws faults for requests from a RNG seeded once per server."""

    __slots__ = ("_count", "_rng")

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"faults/{seed}")
        self._count = 0

    def pick(self, faults: FaultConfig, method: str) -> Fault:
        """The fault (or ``NONE``) for one request with this method."""
        if method.upper() not in faults.methods or faults.request_fault_total() <= 0:
            return Fault.NONE
        draw = self._rng.random()
        for fault, rate in (
            (Fault.RESET_BEFORE, faults.reset_before_rate),
            (Fault.HTML_502, faults.html_502_rate),
            (Fault.ERROR_5XX, faults.error_5xx_rate),
            (Fault.SLOW, faults.slow_rate),
            (Fault.RESET_AFTER, faults.reset_after_rate),
            (Fault.TRUNCATED, faults.truncated_body_rate),
            (Fault.ERROR_5XX_AFTER, faults.error_5xx_after_rate),
        ):
            if draw < rate:
                return fault
            draw -= rate
        return Fault.NONE

    def in_burst(self, faults: FaultConfig) -> bool:
        """Count one API request; True when the 429 schedule refuses it."""
        index = self._count
        self._count += 1
        every = faults.burst_429_every
        if every is None or faults.burst_429_length <= 0:
            return False
        return index % (every + faults.burst_429_length) >= every

    def error_5xx_status(self) -> int:
        """500 or 503, half each."""
        return 500 if self._rng.random() < 0.5 else 503


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without answering; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=500)


async def send_truncated(
    request: web.Request, status: int, headers: dict[str, str], body: bytes
) -> web.StreamResponse:
    """Send headers announcing all of ``body``, then half of it, then close."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        transport.close()
    return response
