"""The API goes away mid-run and comes back (same state, same port): the run rides through."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from anyio.abc import TaskStatus

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.errors import ApiConnectError, TransportError
from orchestrator.katapult import AiohttpTransport, ApiRequest, ApiResponse
from orchestrator.simulator import RunningSimulator, SimulatorConfig, run_simulator
from tests.state_backends import StateRef

from ._harness import settings_for, sim_config
from ._invariants import check_journal, check_server, spec_requests, write_and_check

pytestmark = pytest.mark.anyio

#: how long the API is away, in real seconds (80 simulated seconds at this scale)
OUTAGE = 0.2


class Restarts:
    """Serves a simulator, stops it on request, and starts it again on the same port."""

    def __init__(self, config: SimulatorConfig, times: int) -> None:
        self.config = config
        self.times = times
        self.stop = anyio.Event()
        self.restarted = 0

    async def serve(self, *, task_status: TaskStatus[RunningSimulator]) -> None:
        """Serve; each time ``stop`` is set, go away for :data:`OUTAGE` and come back."""
        async with run_simulator(self.config) as sim:
            task_status.started(sim)
            await self.stop.wait()
        port = urlsplit(sim.url).port
        assert port is not None
        for restart in range(1, self.times + 1):
            await anyio.sleep(OUTAGE)  # the outage itself: nobody listens on the port
            self.stop = anyio.Event()
            async with run_simulator(self.config, state=sim.state, port=port):
                self.restarted = restart
                if restart == self.times:
                    await anyio.sleep_forever()
                await self.stop.wait()


class CountingTransport(AiohttpTransport):
    """The real transport, counting the transport errors (refused, reset) it raised."""

    errors: int = 0

    async def send(self, request: ApiRequest) -> ApiResponse:
        try:
            return await super().send(request)
        except TransportError:
            self.errors += 1
            raise


@pytest.mark.parametrize("times", [1, 2], ids=["once", "twice"])
async def test_run_rides_through_simulator_restarts(
    times: int, tmp_path: Path, state: StateRef
) -> None:
    """The simulator restarted mid-run (state kept): every VM once, all succeed, none twice.

    The rate limit spreads the POSTs over the run, so the outage meets POSTs
    (refused or reset) and polls alike.
    """
    n = 20
    requests = spec_requests(n)
    server = Restarts(sim_config(rate_limit=10), times)
    submitted: list[str] = []
    after_restart: list[ProvisionEvent] = []

    def hook(event: ProvisionEvent) -> None:
        if event.kind == "submitted":
            submitted.append(event.key)
            # stop the API after every few submissions, while builds are in flight
            if len(submitted) in (4, 10)[:times]:
                server.stop.set()
        if server.restarted:
            after_restart.append(event)

    async with anyio.create_task_group() as tg:
        sim = await tg.start(server.serve)
        # a refused POST is retried 5 times with backoff from poll_min_seconds
        # (20 simulated s: 0.375 real s at least), longer than the outage
        settings = settings_for(sim.url, sim.config.token, poll_min_seconds=20.0)
        transport = CountingTransport(sim.url)
        async with Orchestrator(settings, hooks=[hook], transport=transport) as orch:
            report = await orch.run(requests, **state.library())
        tg.cancel_scope.cancel()
    snapshot = sim.state.snapshot()
    assert server.restarted == times
    assert transport.errors > 0, "the client never met the outage"
    assert any(e.kind == "submitted" for e in after_restart), "no build went out after a restart"
    check_server(report, [r.key for r in requests], snapshot)
    await anyio.to_thread.run_sync(lambda: write_and_check(report, tmp_path))
    await anyio.to_thread.run_sync(lambda: check_journal(state.read(), report))


class RefusesPosts(AiohttpTransport):
    """The real transport, but the first ``refusals`` POSTs find nobody listening."""

    def __init__(self, url: str, refusals: int) -> None:
        super().__init__(url)
        self.refusals = refusals

    async def send(self, request: ApiRequest) -> ApiResponse:
        if request.method == "POST" and self.refusals > 0:
            self.refusals -= 1
            raise ApiConnectError("cannot connect: connection refused", method="POST")
        return await super().send(request)


async def test_a_vm_rides_through_refused_connections(tmp_path: Path) -> None:
    """Five refused connections in a row (an API restarting) do not fail the VM."""
    async with run_simulator(sim_config()) as sim:
        settings = settings_for(sim.url, sim.config.token)
        transport = RefusesPosts(sim.url, refusals=5)
        async with Orchestrator(settings, transport=transport) as orch:
            report = await orch.run(spec_requests(1))
        snapshot = sim.state.snapshot()
    check_server(report, ["vm-001"], snapshot)
