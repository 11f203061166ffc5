"""Our engine against a simulator URL, with its traffic recorded and its in-flight count sampled."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from benchmarks._probe import RecordingTransport
from orchestrator._simulated import simulated_settings
from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.katapult import AiohttpTransport, Timeouts
from orchestrator.report import Report
from orchestrator.settings import Settings, load_settings
from orchestrator.vm_request import Lookup, VmRequest

__all__ = [
    "TOKEN",
    "EngineRun",
    "Timeline",
    "engine_settings",
    "learned_build_seconds",
    "make_requests",
    "run_engine",
]

#: the simulator's default token
TOKEN = "sim-token"  # noqa: S105 - the simulator's fixed demo token, not a secret


def make_requests(n: int, *, prefix: str = "bench") -> list[VmRequest]:
    """``n`` plain VMs ``bench-00001`` ... in ``acme`` / ``uk-lon-01``.

    They share their lookups, as the VMs the spec loader reads do.
    """
    organization = Lookup("sub_domain", "acme")
    package = Lookup("permalink", "rock-1")
    data_center = Lookup("permalink", "uk-lon-01")
    disk_template = Lookup("permalink", "templates/ubuntu-22-04")
    return [
        VmRequest(
            key=f"{prefix}-{i:05d}",
            hostname=f"{prefix}-{i:05d}",
            organization=organization,
            package=package,
            data_center=data_center,
            disk_template=disk_template,
            entry_index=i - 1,
        )
        for i in range(1, n + 1)
    ]


def engine_settings(url: str, scale: float, **engine: Any) -> Settings:
    """Default settings (plus ``engine`` overrides, in real-API seconds) scaled like the clock."""
    base = load_settings(environ={}, overrides={f"engine.{k}": v for k, v in engine.items()})
    return simulated_settings(base, url, TOKEN, scale)


class Timeline:
    """A progress hook keeping, per VM, when it began submitting, was submitted, ended."""

    def __init__(self) -> None:
        self.submitting: dict[str, float] = {}
        self.submitted: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def __call__(self, event: ProvisionEvent, /) -> None:
        """Record ``event``'s time in the matching table (first one wins)."""
        if event.kind == "submitting":
            self.submitting.setdefault(event.key, event.at)
        elif event.kind in ("submitted", "adopted"):
            self.submitted.setdefault(event.key, event.at)
        elif event.kind in ("succeeded", "failed", "cancelled", "skipped"):
            self.ended.setdefault(event.key, event.at)

    def mean_submit_wait(self) -> float:
        """Mean seconds from a VM's first ``submitting`` to its 201 (budget wait + POST)."""
        waits = [self.submitted[k] - t for k, t in self.submitting.items() if k in self.submitted]
        return sum(waits) / len(waits) if waits else 0.0

    def mean_build_watch(self) -> float:
        """Mean seconds from a VM's 201 to its final outcome (build + poll lag)."""
        spans = [self.ended[k] - t for k, t in self.submitted.items() if k in self.ended]
        return sum(spans) / len(spans) if spans else 0.0


def learned_build_seconds(orch: Orchestrator) -> float | None:
    """The build duration the engine currently expects (its poll scheduler's model).

    Reads private state, for diagnosis only: None when it is not reachable.
    """
    run: Any = orch.current_run
    try:
        track = next(iter(run._tracks.values()))
        return float(run._scheduler.durations.expected(track.group))
    except (AttributeError, StopIteration, TypeError):
        return None


@dataclass(slots=True)
class EngineRun:
    """One run of the engine: its report, wall time, traffic and samples of its state.

    ``in_flight_samples`` are VMs submitting or building, ``limit_samples``
    the engine's in-flight limit at the same instants; ``learned_samples``
    the build duration the engine expected at each sample (real seconds).
    ``max_in_flight`` is the user's cap (None: sized by the engine).
    """

    report: Report
    wall: float
    exchanges: list[Any] = field(default_factory=list)
    in_flight_samples: list[int] = field(default_factory=list)
    learned_samples: list[float] = field(default_factory=list)
    limit_samples: list[int] = field(default_factory=list)
    max_in_flight: int | None = None
    timeline: Timeline = field(default_factory=Timeline)
    #: real seconds uncertain POSTs waited before their hostname was looked up again
    reconcile_wait_seconds: float = 0.0


async def run_engine(
    url: str,
    requests: list[VmRequest],
    *,
    scale: float,
    journal: Path | str | None = None,
    fleet: str | None = None,
    sample_every: float = 0.05,
    **engine: Any,
) -> EngineRun:
    """Run ``requests`` through :class:`Orchestrator` against the simulator at ``url``."""
    settings = engine_settings(url, scale, **engine)
    eng = settings.engine
    transport = RecordingTransport(
        AiohttpTransport(
            settings.katapult.api_url,
            timeouts=Timeouts(
                connect=eng.connect_timeout_seconds,
                read=eng.read_timeout_seconds,
                total=eng.connect_timeout_seconds + eng.read_timeout_seconds,
            ),
        )
    )
    samples: list[int] = []
    limits: list[int] = []
    learned: list[float] = []
    timeline = Timeline()
    async with Orchestrator(settings, transport=transport, hooks=[timeline]) as orch:

        async def sample() -> None:
            while True:
                stats = orch.statistics()
                if stats is not None:
                    samples.append(stats.submitting + stats.building)
                    limits.append(stats.in_flight_limit)
                    expected = learned_build_seconds(orch)
                    if expected is not None:
                        learned.append(expected)
                await anyio.sleep(sample_every)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            started = time.monotonic()
            report = await orch.run(requests, journal=journal, fleet=fleet)
            wall = time.monotonic() - started
            tg.cancel_scope.cancel()
        done = orch.current_run
        waited = done.reconcile_wait_seconds if done is not None else 0.0
    return EngineRun(
        report=report,
        wall=wall,
        exchanges=list(transport.exchanges),
        in_flight_samples=samples,
        learned_samples=learned,
        limit_samples=limits,
        max_in_flight=eng.max_in_flight,
        timeline=timeline,
        reconcile_wait_seconds=waited,
    )
