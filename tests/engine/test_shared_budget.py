"""A run beside another client of the same token, against the simulator over loopback.

The neighbour is a real aiohttp client sending GETs with the run's token at a
steady share of every window; the simulator counts both in one window, as the
API does. The run must leave the neighbour what it spends, see it in its
statistics and report, and keep to ``budget_share`` when one is set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import anyio
import pytest

from orchestrator._simulated import simulated_settings
from orchestrator.engine import Orchestrator
from orchestrator.settings import load_settings
from orchestrator.simulator import RunningSimulator, SimulatorConfig, run_simulator

from .conftest import SCALE, assert_exactly_once, vms

pytestmark = pytest.mark.anyio

#: a slower clock than the other engine tests (a window lasts 2 s), so that a loaded
#: machine's loop lag is small beside a window: the simulator, the neighbour and the run
#: share this process's loop, and a lagging loop makes the neighbour's spend per window
#: waver, which no client can foresee
_SCALE = SCALE / 40 * 3
_PERMITTED = 60


@dataclass
class _Neighbour:
    per_window: int
    sent: int = 0
    refused: int = 0
    #: set once a window's worth was sent: the neighbour was there first
    settled: anyio.Event = field(default_factory=anyio.Event)


@asynccontextmanager
async def neighbour(sim: RunningSimulator, share: float) -> AsyncIterator[_Neighbour]:
    """Another client of the token: ``share`` of every window as evenly spaced GETs."""
    counts = _Neighbour(per_window=round(share * _PERMITTED))
    window = sim.config.window_seconds / _SCALE
    gap = window / counts.per_window
    headers = {"Authorization": f"Bearer {sim.config.token}"}

    async def get(session: aiohttp.ClientSession) -> None:
        counts.sent += 1
        async with session.get(sim.url + "zones") as resp:
            await resp.read()
            counts.refused += resp.status == 429
        if counts.sent >= counts.per_window:
            counts.settled.set()

    async def spend(session: aiohttp.ClientSession) -> None:
        async with anyio.create_task_group() as tg:
            start = anyio.current_time()
            k = 0
            while True:
                # pacing on a schedule (the neighbour's own rhythm), not a wait for an
                # event; slots a busy loop made it miss are skipped, not sent in a burst
                k = max(k + 1, math.ceil((anyio.current_time() - start) / gap))
                await anyio.sleep(max(0.0, start + k * gap - anyio.current_time()))
                tg.start_soon(get, session)

    async with aiohttp.ClientSession(headers=headers) as session, anyio.create_task_group() as tg:
        tg.start_soon(spend, session)
        yield counts
        tg.cancel_scope.cancel()


def _config() -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=_SCALE, seed=11), rate_limit=_PERMITTED)


async def test_a_run_leaves_another_client_of_the_token_what_it_spends() -> None:
    """A neighbour spending 60% of every window: the run builds every VM once with no
    429, learns what the neighbour spends, shows it per window in its report, and leaves
    it what it spends. (The rates themselves, on virtual time, are in
    tests/engine_units/test_budget.py; at full scale in ``python -m benchmarks
    shared-budget``: here the loop is shared with the simulator and a loaded machine's
    lag may cost the neighbour a few requests.)"""
    requests = vms(40)
    async with run_simulator(_config()) as sim:
        settings = simulated_settings(load_settings(environ={}), sim.url, sim.config.token, _SCALE)
        async with neighbour(sim, 0.6) as other, Orchestrator(settings) as orch:
            await other.settled.wait()
            report = await orch.run(requests)
            stats = orch.budget_statistics()
        assert_exactly_once(report, requests, sim)
    assert report.summary.succeeded == 40
    # issue 25's target beside a neighbour is at most 1% of this run's requests refused;
    # in a run this small that is one: a neighbour on this loop wavers by a request or two
    # a window, and about one run in ten here takes a single 429 (the benchmark's runs at
    # full scale see none)
    requests_made = report.summary.requests
    assert requests_made.rate_limited <= max(1, 0.01 * requests_made.total)
    # what the budget learned of the neighbour: about 60% of every window
    assert stats.others_expected is not None
    assert 0.4 * _PERMITTED <= stats.others_expected <= 0.8 * _PERMITTED
    assert stats.recent_windows
    assert all(w.ours + w.others <= _PERMITTED for w in stats.recent_windows)
    # the report shows the neighbour beside the run's own requests
    assert report.budget is not None
    others = [w.others for w in report.budget.windows if w.others is not None]
    assert others
    assert max(others) >= 0.4 * _PERMITTED
    # a run that took what the neighbour was about to use would cost it some 15% of its
    # requests (the code before issue 25 did, at 60%, in the benchmark)
    assert other.sent > 0
    assert other.refused <= 0.06 * other.sent


async def test_a_budget_share_caps_the_run_whatever_is_left() -> None:
    """budget_share=0.25 beside a neighbour at 25%: half the budget is free, yet the run
    sends at most a quarter of P in any window (its own count of the window)."""
    requests = vms(20)
    async with run_simulator(_config()) as sim:
        base = load_settings(environ={}, overrides={"engine.budget_share": 0.25})
        settings = simulated_settings(base, sim.url, sim.config.token, _SCALE)
        async with neighbour(sim, 0.25) as other, Orchestrator(settings) as orch:
            await other.settled.wait()
            report = await orch.run(requests)
            stats = orch.budget_statistics()
        assert_exactly_once(report, requests, sim)
    assert report.summary.succeeded == 20
    assert stats.budget_share == 0.25
    cap = math.floor(0.25 * _PERMITTED)
    assert stats.recent_windows
    assert all(w.ours <= cap for w in stats.recent_windows)
    assert orch.budget_statistics().window_requests <= cap
