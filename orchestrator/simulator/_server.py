"""Serving the simulator: the aiohttp application, an async context manager, ``serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from aiohttp import web

from orchestrator.simulator._config import SimulatorConfig
from orchestrator.simulator._faults import FaultInjector
from orchestrator.simulator._routes import INJECTOR_KEY, STATE_KEY, handle_api, handle_state
from orchestrator.simulator._state import SimulatorState

__all__ = ["RunningSimulator", "create_app", "run_simulator", "serve"]

#: Seconds a stopping server waits for requests in flight (slow faults) before cancelling them.
_SHUTDOWN_TIMEOUT = 0.25


def create_app(config: SimulatorConfig, state: SimulatorState | None = None) -> web.Application:
    """The simulator as an ``aiohttp.web`` application.

    Serves the API under ``/core/v1/`` and ``GET /_simulator/state``. A given
    ``state`` (e.g. one kept from a stopped server) adopts ``config`` as its
    policy but keeps its clock, catalogue and everything it remembers.
    """
    if state is None:
        state = SimulatorState(config)
    else:
        state.config = config
    app = web.Application()
    app[STATE_KEY] = state
    app[INJECTOR_KEY] = FaultInjector(config.seed)
    app.router.add_route("*", "/core/v1/{tail:.*}", handle_api)
    app.router.add_get("/_simulator/state", handle_state)
    return app


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulator listening on a socket.

    Attributes:
        url: the API base URL, e.g. ``http://127.0.0.1:54321/core/v1/``.
        state: everything it remembers (keep it to restart with the same state).
        config: its policy; change ``config.faults`` to change faults at runtime.
    """

    url: str
    state: SimulatorState
    config: SimulatorConfig

    @property
    def state_url(self) -> str:
        """The URL of ``/_simulator/state``."""
        return self.url.removesuffix("core/v1/") + "_simulator/state"


async def _start(
    config: SimulatorConfig, state: SimulatorState | None, host: str, port: int
) -> tuple[web.AppRunner, RunningSimulator]:
    app = create_app(config, state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
    except BaseException:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
        raise
    shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    url = f"http://{shown}:{bound_port}/core/v1/"
    return runner, RunningSimulator(url=url, state=app[STATE_KEY], config=config)


@asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None,
    *,
    state: SimulatorState | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[RunningSimulator]:
    """Run a simulator on ``host:port`` (0: any free port) for the ``async with`` block."""
    config = config or (state.config if state is not None else SimulatorConfig())
    runner, running = await _start(config, state, host, port)
    try:
        yield running
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


async def serve(
    config: SimulatorConfig,
    *,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; ``ready(url)`` is called once listening.

    For ``orchestrator simulate``: the caller handles SIGINT/SIGTERM by
    cancelling this coroutine (e.g. with anyio's signal receiver).
    """
    async with run_simulator(config, host=host, port=port) as running:
        if ready is not None:
            ready(running.url)
        await anyio.sleep_forever()
