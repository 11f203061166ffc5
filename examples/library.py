"""The README's library example, runnable: ``python examples/library.py [SPEC]``.

Without ``KATAPULT_API_KEY`` in the environment it starts the Katapult
simulator in-process (no account, no network) and provisions the spec
(``specs/example.toml`` by default) against it; with the variable set, it uses
the real API exactly as ``orchestrator run`` would (so try the simulator first).

It shows the three ways to follow a run: ``hooks`` (called for every event),
``run_events()`` (an async stream of the same events, ending with the run) and
the final report. Logging is the standard library's: here warnings and up.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import SecretStr

from orchestrator import (
    EngineSettings,
    KatapultSettings,
    Orchestrator,
    ProvisionEvent,
    Report,
    Settings,
    Spec,
    load_settings,
    load_spec,
)
from orchestrator.simulator import SimulatorConfig, run_simulator

#: Simulated seconds per real second: a 40 s build takes 0.8 s.
TIME_SCALE = 50.0

#: Events that end a VM's story.
FINAL = ("succeeded", "failed", "skipped", "cancelled")


def simulated(url: str, token: str) -> Settings:
    """Settings for the simulator: its URL and token, and every duration scaled like its clock."""
    defaults = EngineSettings()
    return load_settings(
        katapult=KatapultSettings(api_url=url, api_token=SecretStr(token)),
        engine=EngineSettings(
            rate_window_seconds=defaults.rate_window_seconds / TIME_SCALE,
            poll_min_seconds=defaults.poll_min_seconds / TIME_SCALE,
            poll_max_seconds=defaults.poll_max_seconds / TIME_SCALE,
            expected_build_seconds=defaults.expected_build_seconds / TIME_SCALE,
            build_timeout_seconds=defaults.build_timeout_seconds / TIME_SCALE,
        ),
    )


async def print_events(events: MemoryObjectReceiveStream[ProvisionEvent]) -> None:
    """Print each VM's final event; the stream ends when the run ends."""
    async with events:
        async for event in events:
            if event.kind in FINAL:
                detail = event.vm_id or event.message or ""
                print(f"  {event.hostname:<12} {event.kind:<10} {detail}", flush=True)


async def provision(settings: Settings, spec: Spec, counts: Counter[str]) -> Report:
    """Run ``spec`` with a hook and an event stream; return the report."""

    def hook(event: ProvisionEvent) -> None:
        counts[event.kind] += 1

    # the run's event stream ends with the run: the task group waits for
    # print_events to drain it, before the orchestrator closes
    async with Orchestrator(settings, hooks=[hook]) as orch, anyio.create_task_group() as tg:
        tg.start_soon(print_events, orch.run_events())
        # a real run would pass journal="fleet.journal" to be resumable
        report = await orch.run(spec, journal=None)
    return report  # noqa: RET504 - returned once print_events has drained the stream


async def main(spec: Spec) -> int:
    """Provision ``spec`` against the simulator (or the real API); 0 if every VM is fine."""
    counts: Counter[str] = Counter()
    if os.environ.get("KATAPULT_API_KEY"):
        report = await provision(load_settings(), spec, counts)
    else:
        async with run_simulator(SimulatorConfig(time_scale=TIME_SCALE)) as sim:
            print(f"simulator listening on {sim.url}", flush=True)
            report = await provision(simulated(sim.url, sim.config.token), spec, counts)
    summary = report.summary
    print(
        f"summary: {summary.total} total, {summary.succeeded} succeeded, {summary.failed} failed, "
        f"{summary.skipped} skipped, {summary.cancelled} cancelled; "
        f"{summary.requests.total} requests"
    )
    print("events seen: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())))
    return 1 if summary.failed or summary.cancelled else 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "specs" / "example.toml"
    path = sys.argv[1] if len(sys.argv) > 1 else str(default)
    # read the spec before the event loop starts: load_spec reads the file synchronously
    # the library logs through the standard logging module; the application chooses
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    sys.exit(anyio.run(main, load_spec(path)))
