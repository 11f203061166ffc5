"""The simulator in its own process: start it, read its URL, ask what it created, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
from anyio.abc import Process

from orchestrator.simulator import simulate_argv, url_from_line

__all__ = ["SimParams", "SimulatorProcess"]

#: a rate limit so high that it never binds (the CLI has no "unlimited")
UNLIMITED = 1_000_000_000
_START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class SimParams:
    """Options of ``orchestrator simulate`` for one scenario (durations in simulated seconds).

    ``faults`` maps a fault option without its leading dashes (``fault-5xx``)
    to its rate.
    """

    time_scale: float
    rate_limit: int = UNLIMITED
    window_seconds: float = 60.0
    build_seconds: float = 40.0
    build_spread: float = 0.25
    seed: int = 1
    faults: Mapping[str, float] = field(default_factory=dict)
    #: reading options of ``orchestrator simulate`` (``pessimistic``: True is a flag)
    readings: Mapping[str, object] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The command line that starts this simulator on a free loopback port."""
        options: dict[str, object] = {
            "rate-limit": self.rate_limit,
            "window-seconds": self.window_seconds,
            "build-seconds": self.build_seconds,
            "build-spread": self.build_spread,
        }
        options.update(sorted(self.faults.items()))
        options.update(self.readings)
        return simulate_argv(time_scale=self.time_scale, seed=self.seed, options=options)


class SimulatorProcess:
    """``async with SimulatorProcess(params) as sim:`` runs ``orchestrator simulate``.

    ``sim.url`` is the API URL from its ``listening on`` line; :meth:`state`
    fetches ``/_simulator/state``; :meth:`cpu_seconds` reads the process's CPU
    time so far (Linux ``/proc``). Leaving the block sends SIGTERM (SIGKILL if
    it lingers).
    """

    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.url = ""
        self._process: Process | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop

    @property
    def state_url(self) -> str:
        """The URL of ``GET /_simulator/state``."""
        return self.url.removesuffix("core/v1/") + "_simulator/state"

    @property
    def pid(self) -> int | None:
        """The simulator's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def __aenter__(self) -> Self:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = await anyio.open_process(
            self.params.argv(), env=env, stdin=subprocess.DEVNULL, stderr=self._stderr
        )
        self._process = process
        try:
            self.url = await self._read_url(process)
        except Exception as exc:
            tail = self._stderr_tail()
            await self._stop()
            raise RuntimeError(f"the simulator did not start: {tail}") from exc
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _read_url(self, process: Process) -> str:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(_START_TIMEOUT):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
        line = buffer.split(b"\n", 1)[0].decode()
        url = url_from_line(line)
        if url is None:
            raise RuntimeError(f"unexpected first line from the simulator: {line!r}")
        return url

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()
        self._stderr.close()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace")

    async def state(self) -> dict[str, Any]:
        """What the simulator really created, and its request counters."""
        async with aiohttp.ClientSession() as session, session.get(self.state_url) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds the simulator used so far (None off Linux)."""
        if self._process is None:
            return None
        try:
            with open(f"/proc/{self._process.pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
