"""Serving: restarts keep the state, ``serve()`` starts and stops, the public API."""

from __future__ import annotations

import aiohttp
import anyio
import pytest
from aiohttp.test_utils import TestServer

import orchestrator.simulator as simulator
from orchestrator.simulator import SimulatorConfig, SimulatorState, create_app, run_simulator, serve

from ._helpers import Api, FakeClock, build_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"


async def test_state_survives_a_restart(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """A new server on the same state knows the builds, VMs and hostnames of the old one."""
    config = SimulatorConfig(build_spread=0.0)
    state = SimulatorState(config, clock=clock)
    async with run_simulator(config, state=state) as first:
        created = (await Api(session, first.url).post(BUILD, build_body("survivor"))).json
    clock.advance(60)
    async with run_simulator(config, state=state) as second:
        api = Api(session, second.url)
        build = await api.get(f"virtual_machines/builds/{created['virtual_machine_build']['id']}")
        assert build.json["virtual_machine_build"]["state"] == "complete"
        again = await api.post(BUILD, build_body("survivor"))
        assert again.status == 422
        assert second.state is state
    snapshot = state.snapshot()
    assert [vm["hostname"] for vm in snapshot["virtual_machines"]] == ["survivor"]
    assert snapshot["requests"]["total"] == 3


async def test_serve_calls_ready_and_stops_when_cancelled(session: aiohttp.ClientSession) -> None:
    """serve() listens, calls ready(url) once, answers, and stops cleanly on cancel."""
    urls: list[str] = []
    listening = anyio.Event()

    def ready(url: str) -> None:
        urls.append(url)
        listening.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(SimulatorConfig(), host="127.0.0.1", port=0, ready=ready))
        await listening.wait()
        [url] = urls
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/core/v1/")
        assert (await Api(session, url).get("zones")).status == 200
        tg.cancel_scope.cancel()
    with pytest.raises(aiohttp.ClientConnectionError):
        await Api(session, url).get("zones")


async def test_create_app_runs_under_a_test_server(session: aiohttp.ClientSession) -> None:
    """The application works in aiohttp's TestServer (the same app the CLI serves)."""
    app = create_app(SimulatorConfig(token="other"))
    async with TestServer(app, host="127.0.0.1") as server:
        api = Api(session, str(server.make_url("/core/v1/")), token="other")
        assert (await api.get("zones")).status == 200
        async with session.get(server.make_url("/_simulator/state")) as resp:
            assert (await resp.json())["requests"]["total"] == 1


async def test_state_url(session: aiohttp.ClientSession) -> None:
    """RunningSimulator.state_url points at /_simulator/state."""
    async with run_simulator() as sim:
        assert sim.state_url == sim.url.replace("core/v1/", "_simulator/state")
        async with session.get(sim.state_url) as resp:
            assert set(await resp.json()) >= {"virtual_machines", "requests", "duplicates"}


def test_public_api_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the public names."""
    names = simulator.__all__
    assert names == sorted(names)
    public = {n for n in vars(simulator) if not n.startswith("_")}
    modules = {"annotations"}
    assert public - modules - set(names) == set()
    assert all(hasattr(simulator, n) for n in names)
