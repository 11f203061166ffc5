"""Helpers of the CLI tests: simulators (in a thread or a process), subprocesses, specs, reports.

Time is scaled: every simulator runs :data:`TIME_SCALE` times faster than real
time, and :data:`FAST_ENV` scales the orchestrator's durations alike, so a
40 s build takes 0.4 s. Waits on subprocesses are bounded and read lines from
their pipes; nothing sleeps to synchronize.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from orchestrator.report import ApiInfo, Report, RequestCounts, SpecInfo, VmResult, write_report
from orchestrator.simulator import (
    FaultConfig,
    RunningSimulator,
    ScaledClock,
    SimulatorConfig,
    SimulatorState,
    run_simulator,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = ROOT / "specs" / "example.toml"
EXAMPLE_HOSTNAMES = ["web-01", "web-02", "web-03", "db-01", "db-02"]

#: Simulated seconds per real second, for every simulator of these tests.
TIME_SCALE = 100.0

#: The orchestrator's durations, scaled like the simulators' clocks.
FAST_ENV = {
    "ORCHESTRATOR_RATE_WINDOW_SECONDS": str(60 / TIME_SCALE),
    "ORCHESTRATOR_POLL_MIN_SECONDS": str(5 / TIME_SCALE),
    "ORCHESTRATOR_POLL_MAX_SECONDS": str(60 / TIME_SCALE),
    "ORCHESTRATOR_EXPECTED_BUILD_SECONDS": str(45 / TIME_SCALE),
    "ORCHESTRATOR_BUILD_TIMEOUT_SECONDS": str(1200 / TIME_SCALE),
}

#: A bounded wait for things that take well under a second when all is well.
WAIT = 30.0

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal control sequences."""
    return _ANSI.sub("", text)


# ------------------------------------------------------------------ spec files


def write_spec(path: Path, prefix: str, count: int = 3, **defaults: str) -> list[str]:
    """Write a TOML spec of ``count`` VMs named ``{prefix}-01``...; return their hostnames."""
    values = {
        "organization": "acme",
        "data_center": "uk-lon-01",
        "package": "rock-1",
        "disk_template": "templates/ubuntu-22-04",
        **defaults,
    }
    lines = ["[defaults]", *(f'{key} = "{value}"' for key, value in values.items())]
    lines += ["", "[[vms]]", f'hostname = "{prefix}-{{index:02d}}"', f"count = {count}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return [f"{prefix}-{index:02d}" for index in range(1, count + 1)]


# --------------------------------------------------------------------- reports


def make_report(path: Path, outcomes: Mapping[str, str]) -> Report:
    """Write a valid report whose VMs have the given outcomes (hostname -> outcome)."""
    now = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    vms = []
    for hostname, outcome in outcomes.items():
        fields: dict[str, Any] = {}
        if outcome == "failed":
            fields = {"category": "build_failed"}
        elif outcome == "cancelled":
            fields = {"category": "cancelled", "reason": "not_submitted"}
        elif outcome == "skipped":
            fields = {"reason": "already_exists"}
        vms.append(VmResult(key=hostname, hostname=hostname, outcome=outcome, **fields))
    report = Report.build(
        run_id="r" + str(len(outcomes)),
        started_at=now,
        finished_at=now + timedelta(seconds=30),
        spec=SpecInfo(path="fleet.toml", sha256="0" * 64),
        api=ApiInfo(url="https://api.katapult.io/core/v1/", organization="acme"),
        vms=vms,
        requests=RequestCounts(total=len(vms) * 2),
    )
    write_report(report, path)
    return report


# ------------------------------------------------------- a simulator in a thread


class JumpClock:
    """Simulated time at :data:`TIME_SCALE`, which a test can jump forward."""

    def __init__(self) -> None:
        self._scaled = ScaledClock(TIME_SCALE)
        self.offset = 0.0

    def __call__(self) -> float:
        return self._scaled() + self.offset


@dataclass
class ThreadSimulator:
    """A simulator serving from an event loop in another thread of the test process."""

    portal: BlockingPortal
    running: RunningSimulator
    clock: JumpClock

    @property
    def url(self) -> str:
        """The API base URL."""
        return self.running.url

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for an orchestrator run against this simulator."""
        return {
            "KATAPULT_API_URL": self.url,
            "KATAPULT_API_KEY": token if token is not None else self.running.config.token,
            **FAST_ENV,
        }

    def hostnames(self) -> list[str]:
        """The hostname of every VM the simulator really created (with repeats)."""
        snapshot = self.portal.call(self.running.state.snapshot)
        return [vm["hostname"] for vm in snapshot["virtual_machines"]]

    def jump(self, seconds: float) -> None:
        """Move simulated time forward (every build due by then is finished)."""
        self.clock.offset += seconds


@contextmanager
def thread_simulator(
    *, faults: FaultConfig | None = None, **config: Any
) -> Iterator[ThreadSimulator]:
    """Run a simulator at :data:`TIME_SCALE` in a thread for the ``with`` block."""
    settings = SimulatorConfig(time_scale=TIME_SCALE, faults=faults or FaultConfig(), **config)
    clock = JumpClock()
    state = SimulatorState(settings, clock=clock)
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(run_simulator(settings, state=state)) as running,
    ):
        yield ThreadSimulator(portal, running, clock)


# ----------------------------------------------------------------- subprocesses


def orchestrator_command(*args: str) -> list[str]:
    """``python -m orchestrator ARGS`` with this interpreter."""
    return [sys.executable, "-m", "orchestrator", *args]


def clean_environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment without any KATAPULT_* or ORCHESTRATOR_*, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KATAPULT_", "ORCHESTRATOR_")) and key != "COLUMNS"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_orchestrator(
    *args: str, cwd: Path, env: Mapping[str, str] = {}, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchestrator ARGS`` to completion (bounded) in ``cwd``."""
    return subprocess.run(
        orchestrator_command(*args),
        cwd=cwd,
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Lines:
    """The lines of a pipe, read by a thread, waited for with a bound."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self._queue.put(line)
        self._queue.put(None)

    def _next(self, deadline: float) -> str | None:
        remaining = deadline - time.monotonic()
        if self._ended:
            return None
        try:
            line = self._queue.get(timeout=max(remaining, 0.0))
        except queue.Empty:
            raise AssertionError("timed out; the lines so far:\n" + "".join(self.seen)) from None
        if line is None:
            self._ended = True
            return None
        self.seen.append(line)
        return line

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """The next line for which ``predicate`` holds (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next(deadline)
            if line is None:
                raise AssertionError("the stream ended; it said:\n" + "".join(self.seen))
            if predicate(line):
                return line

    def rest(self, timeout: float = WAIT) -> str:
        """Everything the stream says until it ends (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._next(deadline) is not None:
            pass
        return "".join(self.seen)


@dataclass
class Process:
    """A running ``python -m orchestrator`` with its stdout and stderr lines."""

    popen: subprocess.Popen[str]
    stdout: Lines
    stderr: Lines

    def stop(self, signum: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        """Send ``signum`` if still running and wait (bounded) for the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        return self.popen.wait(timeout=timeout)


@contextmanager
def orchestrator_process(*args: str, cwd: Path, env: Mapping[str, str] = {}) -> Iterator[Process]:
    """Start ``python -m orchestrator ARGS``; kill it at the end if it still runs."""
    popen = subprocess.Popen(
        orchestrator_command(*args),
        cwd=cwd,
        env=clean_environ(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert popen.stdout is not None
    assert popen.stderr is not None
    process = Process(popen, Lines(popen.stdout), Lines(popen.stderr))
    try:
        yield process
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=WAIT)
        popen.stdout.close()
        popen.stderr.close()


@dataclass
class StandaloneSimulator:
    """``orchestrator simulate`` running in its own process."""

    process: Process
    url: str
    token: str

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for an orchestrator run against this simulator."""
        return {
            "KATAPULT_API_URL": self.url,
            "KATAPULT_API_KEY": token if token is not None else self.token,
            **FAST_ENV,
        }

    def state(self) -> dict[str, Any]:
        """``GET /_simulator/state``."""
        state_url = self.url.removesuffix("core/v1/") + "_simulator/state"
        with urllib.request.urlopen(state_url, timeout=WAIT) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def hostnames(self) -> list[str]:
        """The hostname of every VM the simulator really created (with repeats)."""
        return [vm["hostname"] for vm in self.state()["virtual_machines"]]


@contextmanager
def standalone_simulator(
    *options: str,
    cwd: Path,
    token: str = "sim-token",  # noqa: S107 - the simulator's default
) -> Iterator[StandaloneSimulator]:
    """Run ``orchestrator simulate --port 0`` at :data:`TIME_SCALE` for the ``with`` block."""
    args = ["simulate", "--port", "0", "--time-scale", str(TIME_SCALE), "--token", token]
    with orchestrator_process(*args, *options, cwd=cwd) as process:
        line = process.stdout.wait_for(lambda text: text.startswith("listening on "))
        yield StandaloneSimulator(process, line.split()[-1], token)
        assert process.stop(signal.SIGTERM) == 0


# ---------------------------------------------------------------------- terminals


def run_in_pty(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] = {},
    columns: int = 120,
    timeout: float = WAIT,
) -> tuple[int, str]:
    """Run ``python -m orchestrator ARGS`` on a pseudo-terminal; its exit code and screen bytes.

    stdin, stdout and stderr are all the terminal, as for a user at a shell.
    """
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    popen = subprocess.Popen(
        orchestrator_command(*args),
        cwd=cwd,
        env=clean_environ({"TERM": "xterm-256color", **env}),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                text = b"".join(chunks).decode("utf-8", "replace")
                raise AssertionError(f"no end of output within {timeout}s:\n{text}")
            ready, _, _ = select.select([master], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process on the terminal closed it
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if popen.poll() is None:
            popen.kill()
        code = popen.wait(timeout=WAIT)
    return code, b"".join(chunks).decode("utf-8", "replace")
