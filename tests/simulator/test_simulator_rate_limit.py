"""The fixed per-token rate window: headers, 429s, window resets, Retry-After."""

from __future__ import annotations

import aiohttp
import pytest

from orchestrator.simulator import RunningSimulator, SimulatorConfig, SimulatorState

from ._helpers import EPOCH, Api, FakeClock, build_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=5)])
async def test_exhausting_the_window_gives_429(api: Api, state: SimulatorState) -> None:
    """Remaining counts down on every answer; past the limit comes 429 with the permitted total."""
    remaining = []
    for _ in range(5):
        reply = await api.get("zones")
        assert reply.status == 200
        assert reply.headers["x-ratelimit-permitted"] == "5"
        remaining.append(int(reply.headers["x-ratelimit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    reply = await api.post(BUILD, build_body("refused"))
    assert reply.status == 429
    assert reply.json == {
        "error": {
            "code": "rate_limit_reached",
            "description": "You have reached the rate limit for this type of request",
            "detail": {"total_permitted": 5},
        }
    }
    assert reply.headers["x-ratelimit-remaining"] == "0"
    assert reply.headers["x-ratelimit-permitted"] == "5"
    assert reply.headers["x-api-schema"] == "json-error"
    assert "retry-after" not in reply.headers
    snapshot = state.snapshot()
    assert snapshot["requests"] == {
        "total": 6,
        "rate_limited": 1,
        "by_status": {"200": 5, "429": 1},
    }
    assert snapshot["virtual_machines"] == []


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=3)])
async def test_next_window_resets_the_budget(api: Api, clock: FakeClock) -> None:
    """Windows are aligned to multiples of window_seconds: the budget returns at the boundary."""
    clock.advance(58)
    for _ in range(3):
        assert (await api.get("zones")).status == 200
    assert (await api.get("zones")).status == 429
    clock.advance(1.5)
    assert (await api.get("zones")).status == 429
    clock.advance(0.5)
    reply = await api.get("zones")
    assert reply.status == 200
    assert reply.headers["x-ratelimit-remaining"] == "2"


@pytest.mark.parametrize(
    ("time_scale", "expected"),
    [(1.0, "15"), (10.0, "2"), (1000.0, "1")],
)
async def test_retry_after_when_configured(
    session: aiohttp.ClientSession, time_scale: float, expected: str
) -> None:
    """With retry_after, 429s say how many real seconds remain in the window (rounded up)."""
    from orchestrator.simulator import run_simulator

    clock = FakeClock(EPOCH + 45)
    config = SimulatorConfig(rate_limit=1, retry_after=True, time_scale=time_scale)
    async with run_simulator(config, state=SimulatorState(config, clock=clock)) as sim:
        api = Api(session, sim.url)
        assert "retry-after" not in (await api.get("zones")).headers
        reply = await api.get("zones")
    assert reply.status == 429
    assert reply.headers["retry-after"] == expected


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=None)])
async def test_unlimited_still_sends_the_headers(api: Api) -> None:
    """Without a limit, answers still carry the headers (permitted 1000000)."""
    for _ in range(3):
        reply = await api.get("zones")
        assert reply.status == 200
        assert reply.headers["x-ratelimit-permitted"] == "1000000"
    assert reply.headers["x-ratelimit-remaining"] == "999997"


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=4)])
async def test_every_kind_of_request_spends_the_same_budget(api: Api) -> None:
    """Builds, polls, lookups and error answers after authentication share one window."""
    task_id = (await api.post(BUILD, build_body("one"))).json["task"]["id"]
    await api.get(f"tasks/{task_id}")
    not_found = await api.get("tasks/task_nope")
    assert not_found.status == 404
    assert not_found.headers["x-ratelimit-remaining"] == "1"
    assert (await api.get("data_centers")).headers["x-ratelimit-remaining"] == "0"
    assert (await api.get(f"tasks/{task_id}")).status == 429


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=1)])
async def test_state_endpoint_needs_no_token_and_spends_nothing(
    sim: RunningSimulator, session: aiohttp.ClientSession, api: Api
) -> None:
    """GET /_simulator/state is outside the API: no auth, no budget, not counted."""
    for _ in range(3):
        async with session.get(sim.state_url) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["requests"]["total"] == 0
    assert (await api.get("zones")).status == 200
