"""The simulator and ``orchestrator run`` as real processes, for SIGKILL and leak tests.

Synchronous on purpose: these tests drive processes (start, read stderr line
by line, ``kill -9``), which needs no event loop of the test's own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from orchestrator.simulator import simulate_argv, url_from_line

__all__ = [
    "Killed",
    "SimProcess",
    "count",
    "engine_env",
    "log_events",
    "orchestrator_argv",
    "run_to_end",
    "run_until",
    "write_spec",
]

#: seconds a process may take to start and print its first line
_START_TIMEOUT = 30.0


class SimProcess:
    """``with SimProcess(time_scale=..., faults={...}) as sim:`` runs ``orchestrator simulate``.

    ``sim.url`` comes from its ``listening on`` line (it binds a free port);
    :meth:`state` reads ``/_simulator/state``. Leaving the block stops it.
    """

    def __init__(
        self,
        *,
        time_scale: float,
        token: str = "sim-token",  # noqa: S107 - the simulator's default
        seed: int = 1,
        options: Mapping[str, object] | None = None,
    ) -> None:
        self.time_scale = time_scale
        self.token = token
        argv = simulate_argv(
            time_scale=time_scale, seed=seed, options={"token": token, **(options or {})}
        )
        self._argv = argv
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode()
        url = url_from_line(line)
        if url is None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def state(self) -> dict[str, Any]:
        """``GET /_simulator/state``: what was really created."""
        url = self.url.removesuffix("core/v1/") + "_simulator/state"
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback http
            data: dict[str, Any] = json.load(resp)
        return data


def engine_env(sim: SimProcess, **extra: str) -> dict[str, str]:
    """The environment of a run against ``sim``: its URL and token, durations scaled.

    Every inherited ``KATAPULT_*``/``ORCHESTRATOR_*`` variable is dropped.
    """
    scale = sim.time_scale
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KATAPULT_", "ORCHESTRATOR_"))}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "KATAPULT_API_URL": sim.url,
            "KATAPULT_API_KEY": sim.token,
            "ORCHESTRATOR_RATE_WINDOW_SECONDS": f"{60 / scale:g}",
            "ORCHESTRATOR_POLL_MIN_SECONDS": f"{5 / scale:g}",
            "ORCHESTRATOR_POLL_MAX_SECONDS": f"{60 / scale:g}",
            "ORCHESTRATOR_EXPECTED_BUILD_SECONDS": f"{45 / scale:g}",
            "ORCHESTRATOR_BUILD_TIMEOUT_SECONDS": f"{1200 / scale:g}",
        }
    )
    env.update(extra)
    return env


def write_spec(path: Path, prefix: str, count: int) -> list[str]:
    """A TOML spec of ``count`` VMs ``prefix-001``...; returns their hostnames."""
    path.write_text(
        "[defaults]\n"
        'organization = "acme"\n'
        'data_center = "uk-lon-01"\n'
        'package = "rock-1"\n'
        'disk_template = "templates/ubuntu-22-04"\n\n'
        "[[vms]]\n"
        f'hostname = "{prefix}-{{index:03d}}"\n'
        f"count = {count}\n",
        encoding="utf-8",
    )
    return [f"{prefix}-{i:03d}" for i in range(1, count + 1)]


def orchestrator_argv(
    spec: Path, out: Path, *extra: str, state: Sequence[str] | None = None
) -> list[str]:
    """``python -m orchestrator run SPEC`` with journal and report in ``out``, JSON logs
    (``state``: the flags of another state than ``out/run.journal``)."""
    return [
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(spec),
        *(state if state is not None else ["--journal", str(out / "run.journal")]),
        "--report",
        str(out / "report.json"),
        "--log-format",
        "json",
        "--no-progress",
        *extra,
    ]


def log_events(lines: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The JSON log records among ``lines`` (anything else is skipped)."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


@dataclass
class Killed:
    """A run killed with SIGKILL: the lines it logged before, and whether it got there."""

    lines: list[str] = field(default_factory=list)
    reached: bool = False
    returncode: int | None = None

    def events(self) -> list[str]:
        """The ``event`` names it logged, in order."""
        return [str(r.get("event")) for r in log_events(self.lines)]


def run_until(
    argv: Sequence[str],
    env: Mapping[str, str],
    when: Callable[[list[str]], bool],
    cwd: Path,
    *,
    umask: int = -1,
) -> Killed:
    """Start ``argv``; SIGKILL it as soon as ``when(stderr lines so far)`` is true.

    ``reached`` is false when the process ended before the point was reached.
    ``umask`` (when not -1) is the child's umask.
    """
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dict(env),
        cwd=cwd,
        umask=umask,
    )
    killed = Killed()
    assert process.stderr is not None
    try:
        for raw in process.stderr:
            killed.lines.append(raw.decode(errors="replace"))
            if when(killed.lines):
                process.send_signal(signal.SIGKILL)
                killed.reached = True
                break
    finally:
        killed.returncode = process.wait(timeout=30)
        process.stderr.close()
    return killed


def run_to_end(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, *, umask: int = -1
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end; stdout and stderr captured as text."""
    return subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        umask=umask,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def count(event: str, at_least: int) -> Callable[[list[str]], bool]:
    """A kill point: ``event`` (e.g. ``orchestrator.vm.submitted``) logged ``at_least`` times.

    Works for both log formats: the event name is matched as a word in each line.
    """
    pattern = re.compile(rf"(?<![\w.]){re.escape(event)}(?![\w.])")

    def reached(lines: list[str]) -> bool:
        return sum(1 for line in lines if pattern.search(line)) >= at_least

    return reached
