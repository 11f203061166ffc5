"""The floor of the overhead scenario: a minimal client's two requests per VM, in plain aiohttp.

What no engine built on aiohttp can go below: one ``aiohttp.ClientSession``
with the connector and timeouts the engine's transport uses, sending each VM's
build POST (the same body: lookups, hostname and the ownership annotations)
and then GETting its build until it is complete (once, when the build is as
quick as in the overhead scenario), with as many VMs in flight as the engine
allows itself without a rate limit. Every answer's body is read and decoded
from JSON, as any client must. No journal, no budget, no retry, no report:
the engine's CPU per VM divided by this one's is the engine's cost, on the
same host, in the same benchmark run.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
import anyio

from benchmarks._engine import TOKEN
from orchestrator.engine._concurrency import in_flight_for
from orchestrator.engine._ownership import ownership_annotations
from orchestrator.katapult._lookups import lookup_arg
from orchestrator.settings import Settings
from orchestrator.vm_request import VmRequest

__all__ = ["FLOOR_FLEET", "floor_in_flight", "run_floor"]

#: the fleet named in the floor's annotations (as long as an unnamed fleet's id)
FLOOR_FLEET = "overhead-0123456789ab"


def floor_in_flight() -> int:
    """The engine's in-flight limit without a rate limit (its ceiling)."""
    return in_flight_for(permitted=10**9, window_seconds=1.0, flight_seconds=1.0)


def _body(req: VmRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organization": lookup_arg("organization", req.organization),
        "package": lookup_arg("package", req.package),
    }
    if req.data_center is not None:
        body["data_center"] = lookup_arg("data_center", req.data_center)
    if req.disk_template is not None:
        body["disk_template"] = lookup_arg("disk_template", req.disk_template)
    body["hostname"] = req.hostname
    annotations = ownership_annotations(req.key, FLOOR_FLEET)
    body["annotations"] = [{"key": k, "value": v} for k, v in annotations.items()]
    return body


async def run_floor(
    settings: Settings, requests: list[VmRequest], *, build_seconds: float
) -> Counter[str]:
    """Build every VM of ``requests`` with two plain requests; the requests sent by kind.

    ``build_seconds`` (real) is how long the client waits after a 201 before
    its poll, as a client that knows the build time would.
    """
    engine = settings.engine
    base = settings.katapult.api_url
    headers = {
        "User-Agent": "orchestrator-floor (+aiohttp)",
        "Accept": "application/json",
        "Authorization": f"Bearer {TOKEN}",
    }
    sent: Counter[str] = Counter()
    limiter = anyio.CapacityLimiter(floor_in_flight())
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=engine.connect_timeout_seconds + engine.read_timeout_seconds,
            sock_connect=engine.connect_timeout_seconds,
            sock_read=engine.read_timeout_seconds,
        ),
        # the engine's transport's connector (orchestrator.katapult._transport)
        connector=aiohttp.TCPConnector(limit=32, ttl_dns_cache=300, enable_cleanup_closed=True),
        raise_for_status=False,
    )
    post_url = base + "organizations/_/virtual_machines/build"
    poll_url = base + "virtual_machines/builds/_"

    async def one(i: int, req: VmRequest) -> None:
        try:
            async with session.post(post_url, json=_body(req), headers=headers) as resp:
                created = json.loads(await resp.read())
            sent["post"] += 1
            build = created["virtual_machine_build"]["id"]
            params = {"virtual_machine_build[id]": build}
            while True:
                await anyio.sleep(build_seconds)
                async with session.get(poll_url, params=params, headers=headers) as resp:
                    state = json.loads(await resp.read())["virtual_machine_build"]["state"]
                sent["poll"] += 1
                if state in ("complete", "failed"):
                    sent[state] += 1
                    return
        finally:
            limiter.release_on_behalf_of(i)

    async with session, anyio.create_task_group() as tg:
        for i, req in enumerate(requests):
            await limiter.acquire_on_behalf_of(i)
            tg.start_soon(one, i, req)
    return sent
