"""Event streams: ``events()`` lasts as long as the orchestrator, ``run_events()`` one run."""

from __future__ import annotations

import dataclasses
import gc

import anyio
import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine._gc import YOUNG_THRESHOLD
from orchestrator.simulator import SimulatorConfig, run_simulator

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio

FINAL = {"succeeded", "failed", "skipped", "cancelled"}


async def _drain(stream: anyio.abc.ObjectReceiveStream[ProvisionEvent]) -> list[ProvisionEvent]:
    async with stream:
        return [event async for event in stream]


async def test_run_events_end_when_the_run_ends() -> None:
    """A run_events() stream ends with its run, the orchestrator still open; the next
    stream follows the next run only."""
    config = dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=7))
    async with run_simulator(config) as sim, Orchestrator(settings_for(sim)) as orch:
        seen: dict[str, list[ProvisionEvent]] = {}

        async def follow(name: str) -> None:
            seen[name] = await _drain(orch.run_events())

        for name, requests in (("first", vms(3, prefix="a")), ("second", vms(2, prefix="b"))):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow, name)  # subscribes before the run starts
                await anyio.wait_all_tasks_blocked()
                await orch.run(requests)
            # the task group ended: the stream ended although orch is still open
        first = {e.hostname for e in seen["first"] if e.kind in FINAL}
        second = {e.hostname for e in seen["second"] if e.kind in FINAL}
    assert first == {"a-001", "a-002", "a-003"}
    assert second == {"b-001", "b-002"}
    assert not {e.hostname for e in seen["second"]} & first


async def test_a_run_collects_garbage_less_often_and_restores_the_thresholds() -> None:
    """During a run the youngest generation's threshold is raised (fewer collections of a
    heap that holds every VM); when the run ends the process has its own thresholds back."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    during: list[tuple[int, int, int]] = []
    try:
        config = SimulatorConfig(time_scale=SCALE, seed=7)
        hook = lambda event: during.append(gc.get_threshold())  # noqa: E731
        async with (
            run_simulator(config) as sim,
            Orchestrator(settings_for(sim), hooks=[hook]) as orch,
        ):
            report = await orch.run(vms(3))
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*saved)
    assert report.summary.succeeded == 3
    assert during
    assert set(during) == {(YOUNG_THRESHOLD, 10, 10)}
    assert after == (700, 10, 10)
