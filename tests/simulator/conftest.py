"""Fixtures of the simulator tests: a fake clock, a running simulator, a raw client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from orchestrator.simulator import RunningSimulator, SimulatorConfig, SimulatorState, run_simulator

from ._helpers import Api, FakeClock


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp needs asyncio."""
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """Simulated time that moves only when a test advances it."""
    return FakeClock()


@pytest.fixture
def config() -> SimulatorConfig:
    """The default policy with fixed 40 s builds (tests change fields as they need)."""
    return SimulatorConfig(build_spread=0.0)


@pytest.fixture
def state(config: SimulatorConfig, clock: FakeClock) -> SimulatorState:
    """A fresh state on the fake clock."""
    return SimulatorState(config, clock=clock)


@pytest.fixture
async def sim(config: SimulatorConfig, state: SimulatorState) -> AsyncIterator[RunningSimulator]:
    """A simulator on 127.0.0.1 with the fake clock."""
    async with run_simulator(config, state=state) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(sim: RunningSimulator, session: aiohttp.ClientSession) -> Api:
    """Raw requests to ``sim`` with the right token."""
    return Api(session, sim.url)
