"""Reruns on a journal: finished VMs untouched, changed specs handled, nothing built twice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

from orchestrator.engine import Orchestrator
from orchestrator.engine.state.journal import FleetClaim, Journal
from orchestrator.errors import JournalError
from orchestrator.report import VmResult
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator
from tests.state_backends import StateRef

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


def sim_config() -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=5))


async def test_rerun_on_the_journal_touches_nothing(state: StateRef) -> None:
    """A second run of the same spec reuses the journal: no POST; each VM is looked at
    once (the API, not the journal, says it is still there) and is already there."""
    requests = vms(5)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            first = await orch.run(requests, **state.library())
        async with Orchestrator(settings_for(sim)) as orch:
            second = await orch.run(requests, **state.library())
    assert first.summary.succeeded == 5

    def vm_id(row: VmResult) -> str | None:
        return row.virtual_machine.id if row.virtual_machine else None

    assert [(v.key, v.outcome, v.reason, vm_id(v)) for v in second.vms] == [
        (v.key, "skipped", "already_exists", vm_id(v)) for v in first.vms
    ]
    # the organization lookup, the VM listing, one look at each VM, the listing for addresses
    assert second.summary.requests.total == 3 + 5
    assert_exactly_once(second, requests, sim)


async def test_rerun_without_journal_skips_existing(tmp_path: Path) -> None:
    """Without its journal, a rerun of a named fleet finds every VM its own and builds
    nothing (the API keeps annotations)."""
    requests = vms(4)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, fleet="web")
        async with Orchestrator(settings_for(sim)) as orch:
            second = await orch.run(requests, fleet="web")
    assert {(v.outcome, v.reason) for v in second.vms} == {("skipped", "already_exists")}
    assert all(v.virtual_machine for v in second.vms)
    assert len(created_hostnames(sim)) == 4


async def test_changed_spec_builds_new_and_reports_removed(state: StateRef) -> None:
    """New VMs of a changed spec are built; VMs it dropped are reported, never deleted."""
    old = vms(3)
    new = [*old[:2], *vms(2, prefix="new")]
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(old, **state.library())
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(new, **state.library())
    assert report.removed_from_spec == ["vm-003"]
    assert sorted(v.key for v in report.vms) == sorted(r.key for r in new)
    assert report.summary.succeeded == 2
    assert {(v.outcome, v.reason) for v in report.vms if v.key in ("vm-001", "vm-002")} == {
        ("skipped", "already_exists")
    }
    assert "vm-003" in created_hostnames(sim)
    snapshot = await anyio.to_thread.run_sync(state.read)
    assert {e.key for e in snapshot.entries} >= {"vm-003", "new-001", "new-002"}


async def test_retry_failed_rebuilds_only_the_selected(tmp_path: Path) -> None:
    """only_keys limits building to those VMs; the rest are reported, not built."""
    requests = vms(4)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests, only_keys={"vm-002"})
    by_key = {v.key: v for v in report.vms}
    assert by_key["vm-002"].outcome == "succeeded"
    assert {by_key[k].reason for k in ("vm-001", "vm-003", "vm-004")} == {"not_selected"}
    assert created_hostnames(sim) == ["vm-002"]


async def test_second_run_on_a_locked_journal_refuses(state: StateRef) -> None:
    """Two runs on one journal at once: the second refuses with a clear error naming the
    holder, and sends nothing."""
    requests = vms(2)
    async with run_simulator(sim_config()) as sim:
        async with (
            Orchestrator(settings_for(sim)) as first,
            Orchestrator(settings_for(sim)) as second,
        ):
            claim = FleetClaim(named=state.fleet, legacy="default")
            held = await Journal.open(state.journal, spec_sha256="x", run_id="other", fleet=claim)
            try:
                with pytest.raises(JournalError, match=r"(in use|being run).*run other"):
                    await second.run(requests, **state.library())
            finally:
                await held.close()
            assert created_hostnames(sim) == []
            report = await first.run(requests, **state.library())
    assert report.summary.succeeded == 2


async def test_a_timed_out_build_is_followed_again_not_resubmitted(state: StateRef) -> None:
    """A rerun on the journal polls a build that timed out; it never POSTs a second one."""
    requests = vms(3)
    config = dataclasses.replace(sim_config(), faults=FaultConfig(build_hang_rate=1.0))
    async with run_simulator(config) as sim:
        settings = settings_for(sim, build_timeout_seconds=120.0)
        async with Orchestrator(settings) as orch:
            first = await orch.run(requests, **state.library())
        async with Orchestrator(settings) as orch:
            second = await orch.run(requests, **state.library())
        snapshot = sim.state.snapshot()
    assert {(v.outcome, v.category) for v in first.vms} == {("failed", "timeout")}
    assert {(v.outcome, v.category) for v in second.vms} == {("failed", "timeout")}
    assert [v.build_id for v in second.vms] == [v.build_id for v in first.vms]
    assert len(snapshot["virtual_machines"]) == 3
