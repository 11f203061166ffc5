"""What every response says about the rate budget, and the gate every request passes.

The client awaits :meth:`RequestGate.acquire` before sending a request and
calls :meth:`RequestGate.release` exactly once afterwards with the
:class:`RateLimitInfo` of the outcome. The engine's rate budget implements the
gate; the client knows nothing of budgets.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from orchestrator.katapult._transport import ApiRequest, ApiResponse

__all__ = ["ON_SENT", "RateLimitInfo", "RequestGate"]

#: Called (in the sending task) the moment a request passed the gate and goes on the
#: wire: what tells "never sent" (still waiting for the budget) from "sent, no answer".
ON_SENT: ContextVar[Callable[[], None] | None] = ContextVar("orchestrator_on_sent", default=None)

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The rate-limit facts of one request's outcome.

    ``status`` is ``None`` when the request got no HTTP answer (a transport
    error or a cancellation); the other fields are ``None`` when the response
    lacked the header or its value was not usable.
    """

    status: int | None
    permitted: int | None = None
    remaining: int | None = None
    retry_after: float | None = None

    @classmethod
    def from_response(cls, resp: ApiResponse, *, now: float | None = None) -> RateLimitInfo:
        """Read ``X-Ratelimit-Permitted``/``-Remaining`` and ``Retry-After`` (any case).

        ``Retry-After`` may be seconds or an HTTP date (then measured from
        ``now``, default the wall clock); a date in the past gives ``0.0``.
        """
        return cls(
            status=resp.status,
            permitted=_non_negative_int(resp.header("x-ratelimit-permitted")),
            remaining=_non_negative_int(resp.header("x-ratelimit-remaining")),
            retry_after=parse_retry_after(resp.header("retry-after"), now=now),
        )


def _non_negative_int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if _DIGITS.fullmatch(value) else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if absent or unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    is_date = False
    try:
        seconds = float(value)
    except ValueError:
        is_date = True
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means "-0000"
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    if seconds < 0 and not is_date:
        return None  # delta-seconds are digits: a negative delay is nonsense
    return max(0.0, seconds)


class RequestGate(Protocol):
    """Paces requests: awaited before each one, told how each one ended.

    ``release`` is called exactly once for each ``acquire`` that returned,
    whatever the outcome: any HTTP status, a transport error (``status``
    ``None``), or a cancellation while the request was in flight. An
    ``acquire`` that raised or was cancelled is not released.
    """

    async def acquire(self, request: ApiRequest) -> None:
        """Wait until ``request`` may be sent."""
        ...

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
        """Record how ``request`` ended (must not block or raise)."""
        ...
