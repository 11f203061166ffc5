"""Retrying GETs: the policy is a pure predicate, the mechanism is stamina's.

POSTs are never retried here: a build whose outcome is unknown is reconciled
by hostname (see ``_runner``), never blindly sent again. Retries are logged in
the library's own format, bound to the run: the first retry of a request at
``info``, the next ones at ``debug`` (an outage does not flood the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import stamina
import structlog

from orchestrator._logging import get_logger
from orchestrator.errors import (
    ApiError,
    ApiUnreachable,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)

__all__ = ["is_retryable", "retry_args", "retry_get"]

if TYPE_CHECKING:
    from orchestrator.settings import EngineSettings

T = TypeVar("T")


def retry_args(settings: EngineSettings) -> dict[str, float]:
    """:func:`retry_get`'s keyword arguments for a run: GET retries back off on the
    same scale as polls (short under ``--simulate``)."""
    return {
        "deadline_seconds": settings.retry_deadline_seconds,
        "wait_initial": min(0.2, settings.poll_min_seconds),
        "wait_max": min(10.0, settings.poll_max_seconds),
    }


def is_retryable(exc: Exception) -> bool:
    """True for failures a repeated GET may overcome (429, 5xx, transport, garbage).

    Not an unreachable API (unknown host, TLS refused): no retry can mend the URL.
    """
    if isinstance(exc, ApiUnreachable):
        return False
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
    log: structlog.stdlib.BoundLogger | None = None,
) -> T:
    """Run a GET ``call`` until it succeeds, a non-retryable error, or the deadline.

    Backoff is exponential with jitter. 429s need no special wait: the rate
    budget already holds every request until the window resets. Retries are
    logged to ``log`` (the run's logger, with its run id).
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
            try:
                return await call()
            except Exception as exc:
                if is_retryable(exc):
                    logger = log or get_logger("orchestrator.engine")
                    record = logger.info if attempt.num == 1 else logger.debug
                    record(
                        "orchestrator.request.retrying",
                        attempt=attempt.num,
                        error=str(exc),
                        retry_for_seconds=deadline_seconds,
                    )
                raise
    raise AssertionError("unreachable")
