"""Each injected fault has its observable effect, and acts (or not) as documented."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from orchestrator.simulator import FaultConfig, RunningSimulator, SimulatorConfig, SimulatorState
from orchestrator.simulator._faults import Fault, FaultInjector

from ._helpers import Api, build_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"


def created(state: SimulatorState) -> list[str]:
    return [vm["hostname"] for vm in state.snapshot()["virtual_machines"]]


@pytest.fixture
async def fresh_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that never reuses a connection (a dropped one must not leak)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


@pytest.fixture
def faulty(sim: RunningSimulator, fresh_session: aiohttp.ClientSession) -> Api:
    return Api(fresh_session, sim.url)


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(error_5xx_rate=1.0))])
async def test_5xx_is_json_and_takes_no_action(faulty: Api, state: SimulatorState) -> None:
    """error_5xx answers 500 unhandled_exception or 503 service_unavailable and builds nothing."""
    statuses = set()
    for n in range(12):
        reply = await faulty.post(BUILD, build_body(f"five-{n}"))
        statuses.add(reply.status)
        assert reply.headers["x-api-schema"] == "json-error"
        assert "x-ratelimit-remaining" in reply.headers
        expected = {
            500: ("unhandled_exception", None),
            503: (
                "service_unavailable",
                "The service is currently unavailable, please try again later",
            ),
        }
        error = reply.json["error"]
        assert (error["code"], error["description"]) == expected[reply.status]
        assert error["detail"] == {}
    assert statuses == {500, 503}
    assert created(state) == []
    assert state.snapshot()["faults"] == {"error_5xx": 12}


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(error_5xx_after_rate=1.0))])
async def test_5xx_after_acts_then_answers_json_5xx(faulty: Api, state: SimulatorState) -> None:
    """error_5xx_after accepts the build, then answers 500 or 503 in the API's envelope."""
    statuses = set()
    for n in range(8):
        reply = await faulty.post(BUILD, build_body(f"after-{n}"))
        statuses.add(reply.status)
        assert reply.headers["x-api-schema"] == "json-error"
        assert "x-ratelimit-remaining" in reply.headers
        assert reply.code == {500: "unhandled_exception", 503: "service_unavailable"}[reply.status]
    assert statuses == {500, 503}
    assert created(state) == [f"after-{n}" for n in range(8)]
    assert state.snapshot()["faults"] == {"error_5xx_after": 8}
    again = await faulty.post(BUILD, build_body("after-0"))  # refused (taken), still a 5xx
    assert again.status in (500, 503)
    assert state.snapshot()["hostname_taken_refusals"]["total"] == 1


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(html_502_rate=1.0))])
async def test_html_502_comes_from_a_proxy(faulty: Api, state: SimulatorState) -> None:
    """html_502 answers an HTML page without API headers, builds nothing, spends no budget."""
    reply = await faulty.post(BUILD, build_body("proxy"))
    assert reply.status == 502
    assert reply.headers["content-type"] == "text/html"
    assert b"502 Bad Gateway" in reply.raw
    assert "x-ratelimit-remaining" not in reply.headers
    state.config.faults = FaultConfig()
    reply = await faulty.get("zones")
    assert reply.headers["x-ratelimit-remaining"] == "999"
    assert created(state) == []


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(reset_before_rate=1.0))])
async def test_reset_before_acting_builds_nothing(faulty: Api, state: SimulatorState) -> None:
    """reset_before drops the connection and the VM does not exist."""
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await faulty.post(BUILD, build_body("never"))
    assert created(state) == []
    assert state.snapshot()["faults"] == {"reset_before": 1}


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(reset_after_rate=1.0))])
async def test_reset_after_acting_is_the_ambiguous_post(faulty: Api, state: SimulatorState) -> None:
    """reset_after drops the connection, yet the VM was created."""
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await faulty.post(BUILD, build_body("ghost"))
    assert created(state) == ["ghost"]


@pytest.mark.parametrize("config", [SimulatorConfig(faults=FaultConfig(truncated_body_rate=1.0))])
async def test_truncated_body_after_acting(faulty: Api, state: SimulatorState) -> None:
    """truncated_body cuts the answer short after the VM was created."""
    with pytest.raises(aiohttp.ClientPayloadError):
        await faulty.post(BUILD, build_body("half"))
    assert created(state) == ["half"]


@pytest.mark.parametrize(
    "config", [SimulatorConfig(faults=FaultConfig(slow_rate=1.0, slow_seconds=30.0))]
)
async def test_slow_answer_outlasts_a_read_timeout_after_acting(
    sim: RunningSimulator, state: SimulatorState
) -> None:
    """A slow answer makes the client time out, though the VM was created."""
    timeout = aiohttp.ClientTimeout(sock_read=0.1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await Api(session, sim.url).post(BUILD, build_body("slowpoke"))
    assert created(state) == ["slowpoke"]


@pytest.mark.parametrize(
    "config", [SimulatorConfig(faults=FaultConfig(burst_429_every=3, burst_429_length=2))]
)
async def test_burst_429_schedule(api: Api, state: SimulatorState) -> None:
    """After every 3 requests the next 2 get 429 with remaining 0, spending no budget."""
    statuses, remaining = [], []
    for _ in range(10):
        reply = await api.get("zones")
        statuses.append(reply.status)
        remaining.append(reply.headers["x-ratelimit-remaining"])
        if reply.status == 429:
            assert reply.code == "rate_limit_reached"
    assert statuses == [200, 200, 200, 429, 429] * 2
    assert remaining[3:5] == ["0", "0"]
    assert remaining[5] == "996"
    assert state.snapshot()["requests"]["rate_limited"] == 4


@pytest.mark.parametrize(
    "config",
    [SimulatorConfig(faults=FaultConfig(reset_before_rate=1.0, methods=frozenset({"post"})))],
)
async def test_faults_apply_only_to_their_methods(faulty: Api, state: SimulatorState) -> None:
    """With methods={POST}, GETs are untouched while POSTs meet the fault."""
    assert (await faulty.get("zones")).status == 200
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await faulty.post(BUILD, build_body("post-only"))


async def test_faults_can_change_while_running(faulty: Api, sim: RunningSimulator) -> None:
    """Changing config.faults on a running simulator takes effect at the next request."""
    assert (await faulty.get("zones")).status == 200
    sim.config.faults = FaultConfig(html_502_rate=1.0)
    assert (await faulty.get("zones")).status == 502
    sim.config.faults = FaultConfig()
    assert (await faulty.get("zones")).status == 200


def test_fault_draws_follow_the_seed_and_the_rates() -> None:
    """The same seed draws the same faults; the rates split the draws."""
    faults = FaultConfig(error_5xx_rate=0.2, reset_after_rate=0.3)

    def draws(seed: int) -> list[Fault]:
        injector = FaultInjector(seed)
        return [injector.pick(faults, "POST") for _ in range(2000)]

    first = draws(1)
    assert first == draws(1)
    assert first != draws(2)
    share = {f: first.count(f) / len(first) for f in set(first)}
    assert set(share) == {Fault.NONE, Fault.ERROR_5XX, Fault.RESET_AFTER}
    assert 0.15 < share[Fault.ERROR_5XX] < 0.25
    assert 0.25 < share[Fault.RESET_AFTER] < 0.35


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_5xx_rate": 1.5},
        {"slow_rate": -0.1},
        {"error_5xx_rate": 0.6, "reset_after_rate": 0.6},
        {"build_fail_rate": 0.7, "build_hang_rate": 0.7},
        {"burst_429_every": 0},
        {"slow_seconds": -1.0},
    ],
)
def test_fault_config_refuses_impossible_rates(kwargs: dict[str, float]) -> None:
    """Rates outside [0, 1], or exclusive rates adding past 1, are refused."""
    with pytest.raises(ValueError, match="must"):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_limit": 0},
        {"window_seconds": 0.0},
        {"time_scale": 0.0},
        {"build_seconds": -1.0},
        {"build_spread": 1.0},
        {"vm_limit": -1},
        {"per_page_default": 0},
    ],
)
def test_simulator_config_refuses_impossible_values(kwargs: dict[str, float]) -> None:
    """Nonsense policy values are refused when the config is made."""
    with pytest.raises(ValueError, match="must"):
        SimulatorConfig(**kwargs)  # type: ignore[arg-type]


def test_token_is_not_in_the_config_repr() -> None:
    """The API token never shows in a repr."""
    assert "secret-token" not in repr(SimulatorConfig(token="secret-token"))
