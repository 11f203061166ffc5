"""A comparator that drives the simulator the way the official Terraform provider does.

Written from the provider's documented behaviour (see
``/work/shared/katapult/README.md``), not from its code, with aiohttp directly
(not our engine):

* at most ``parallelism`` builds in flight (Terraform's default parallelism, 10);
* each build is polled 2 s after its POST, again at 5 s, then every 10 s,
  until ``complete`` (``failed`` ends it as an error);
* every request, POSTs included, is retried on 429, 5xx and connection errors
  with exponential backoff from 1 s (doubling, at most 2 min, ``Retry-After``
  honoured when present), 10 tries in all;
* no rate budget, no reconciliation.

Every duration is divided by the time scale, like the simulator's clock. The
provider then also polls each VM until it is ``started``; this comparator
stops at the build's ``complete`` (as our engine does by default), which can
only flatter it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio

from orchestrator.vm_request import VmRequest

__all__ = ["BaselineRun", "run_baseline"]

_TRIES = 10
_BACKOFF_START = 1.0
_BACKOFF_MAX = 120.0
#: seconds slept before each poll: 2 s after the POST, 3 more (5 s), then 10 s each
_POLL_GAPS = (2.0, 3.0)
_POLL_EVERY = 10.0
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(slots=True)
class BaselineRun:
    """What the comparator did: wall time, requests by kind, 429s and outcomes."""

    wall: float
    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class _GaveUp(Exception):
    """A request still failed after every try."""


class _Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, scale: float) -> None:
        self._session = session
        self._base = base
        self._scale = scale
        self.requests: Counter[str] = Counter()
        self.rate_limited = 0

    async def call(
        self, kind: str, method: str, path: str, *, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        delay = _BACKOFF_START
        for attempt in range(1, _TRIES + 1):
            self.requests[kind] += 1
            wait: float | None = None
            try:
                async with self._session.request(
                    method, self._base + path, params=params, json=body
                ) as resp:
                    if resp.status not in _RETRYABLE_STATUSES:
                        resp.raise_for_status()
                        data: dict[str, Any] = await resp.json()
                        return data
                    if resp.status == 429:
                        self.rate_limited += 1
                    retry_after = resp.headers.get("Retry-After")
                    if retry_after is not None and retry_after.isdigit():
                        wait = float(retry_after)  # already real seconds
            except aiohttp.ClientResponseError:
                raise
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt == _TRIES:
                break
            await anyio.sleep(wait if wait is not None else delay / self._scale)
            delay = min(delay * 2, _BACKOFF_MAX)
        raise _GaveUp(f"{method} {path}: gave up after {_TRIES} tries")


async def run_baseline(
    url: str,
    token: str,
    requests: list[VmRequest],
    *,
    scale: float,
    parallelism: int = 10,
) -> BaselineRun:
    """Build every VM of ``requests`` the provider's way; one outcome per VM."""
    outcomes: Counter[str] = Counter()
    limiter = anyio.CapacityLimiter(parallelism)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=parallelism * 2)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        client = _Client(session, url, scale)

        async def build(req: VmRequest) -> None:
            async with limiter:
                try:
                    outcomes[await _build_one(client, req, scale)] += 1
                except (_GaveUp, aiohttp.ClientResponseError):
                    outcomes["error"] += 1

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for req in requests:
                tg.start_soon(build, req)
        wall = time.monotonic() - started
    return BaselineRun(
        wall=wall, requests=client.requests, rate_limited=client.rate_limited, outcomes=outcomes
    )


async def _build_one(client: _Client, req: VmRequest, scale: float) -> str:
    body: dict[str, Any] = {
        "organization": req.organization.as_arg(),
        "package": req.package.as_arg(),
        "hostname": req.hostname,
    }
    if req.data_center is not None:
        body["data_center"] = req.data_center.as_arg()
    if req.disk_template is not None:
        body["disk_template"] = req.disk_template.as_arg()
    created = await client.call("post", "POST", "organizations/_/virtual_machines/build", body=body)
    build = created.get("virtual_machine_build") or created["build"]
    params = {"virtual_machine_build[id]": build["id"]}
    polls = 0
    while True:
        gap = _POLL_GAPS[polls] if polls < len(_POLL_GAPS) else _POLL_EVERY
        await anyio.sleep(gap / scale)
        polls += 1
        data = await client.call("poll", "GET", "virtual_machines/builds/_", params=params)
        state = data["virtual_machine_build"]["state"]
        if state == "complete":
            return "succeeded"
        if state == "failed":
            return "failed"
