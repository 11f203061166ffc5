"""Retrying GETs: the policy is a pure predicate, the mechanism is stamina's.

POSTs are never retried here: a build whose outcome is unknown is reconciled
by hostname (see ``_runner``), never blindly sent again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import stamina

from orchestrator.errors import (
    ApiError,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)

__all__ = ["is_retryable", "retry_get"]

T = TypeVar("T")


def is_retryable(exc: Exception) -> bool:
    """True for failures a repeated GET may overcome (429, 5xx, transport, garbage)."""
    if isinstance(exc, RateLimited | ServerError | TransportError | UnexpectedResponse):
        return True
    if isinstance(exc, ApiError):
        return exc.code is None and exc.http_status >= 500
    return False


async def retry_get(
    call: Callable[[], Awaitable[T]],
    *,
    deadline_seconds: float,
    wait_initial: float = 0.2,
    wait_max: float = 10.0,
) -> T:
    """Run a GET ``call`` until it succeeds, a non-retryable error, or the deadline.

    Backoff is exponential with jitter. 429s need no special wait: the rate
    budget already holds every request until the window resets.
    """
    async for attempt in stamina.retry_context(
        on=is_retryable,
        attempts=None,
        timeout=deadline_seconds,
        wait_initial=wait_initial,
        wait_max=wait_max,
        wait_jitter=wait_initial,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable")
