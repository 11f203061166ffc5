"""Running the engine in-process against the simulator, and collecting what it did."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from orchestrator._simulated import simulated_settings
from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.report import Report
from orchestrator.settings import Settings, load_settings
from orchestrator.simulator import RunningSimulator, SimulatorConfig
from orchestrator.vm_request import VmRequest
from tests.state_backends import StateRef

from ._invariants import check_journal, write_and_check

__all__ = ["APIS", "SCALE", "Outcome", "run_engine", "settings_for", "sim_config"]

#: simulated seconds per real second: a 40 s build takes 0.1 s, a 60 s window 0.15 s
SCALE = 400.0


#: the APIs every fault case runs against: the readings we guessed, and the
#: most pessimistic combination of the unconfirmed ones (SimulatorConfig.pessimistic)
APIS = ("default", "pessimistic")


def sim_config(seed: int = 11, *, api: str = "default", **kw: Any) -> SimulatorConfig:
    """A simulator policy at :data:`SCALE` with ``kw`` replaced (``api``: see :data:`APIS`)."""
    base = (
        SimulatorConfig.pessimistic(time_scale=SCALE, seed=seed)
        if api == "pessimistic"
        else SimulatorConfig(time_scale=SCALE, seed=seed)
    )
    return dataclasses.replace(base, **kw)


def settings_for(url: str, token: str, **engine: Any) -> Settings:
    """Settings pointed at a simulator, simulated durations scaled like its clock.

    ``engine`` overrides are given in simulated seconds except the request
    timeouts (``*_timeout_seconds`` other than the build's), which are real.
    """
    base = load_settings(environ={}, overrides={f"engine.{k}": v for k, v in engine.items()})
    return simulated_settings(base, url, token, SCALE)


@dataclass
class Outcome:
    """What one run did: its report, the server's state after it, its events."""

    report: Report
    snapshot: dict[str, Any]
    events: list[ProvisionEvent] = field(default_factory=list)

    def kinds(self) -> Counter[str]:
        """How many events of each kind the run emitted."""
        return Counter(e.kind for e in self.events)


async def run_engine(
    sim: RunningSimulator,
    requests: Sequence[VmRequest],
    tmp_path: Path,
    *,
    state: StateRef | None = None,
    forbidden: Sequence[str] = (),
    **engine: Any,
) -> Outcome:
    """Run ``requests`` with a journal (``state``: in either backend; default, a file in
    ``tmp_path``), then check the report file and the journal."""
    events: list[ProvisionEvent] = []
    state = state or StateRef("sqlite", tmp_path / "run.journal", None)
    settings = settings_for(sim.url, sim.config.token, **engine)
    async with Orchestrator(settings, hooks=[events.append]) as orch:
        report = await orch.run(requests, **state.library())
    assert not report.interrupted, report.stopped_because
    await anyio.to_thread.run_sync(lambda: write_and_check(report, tmp_path, forbidden=forbidden))
    await anyio.to_thread.run_sync(lambda: check_journal(state.read(), report))
    return Outcome(report=report, snapshot=sim.state.snapshot(), events=events)
