"""``Orchestrator.destroy``: only this fleet's VMs, exactly once, through the same conductor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import stamina

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _instant_get_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=10):
        yield


def sim_config(**kw: object) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=7), **kw)  # type: ignore[arg-type]


def live(sim_snapshot: dict[str, object]) -> dict[str, dict[str, object]]:
    out = {}
    for vm in sim_snapshot["virtual_machines"]:  # type: ignore[attr-defined]
        out[vm["hostname"]] = vm
    return out


async def test_destroy_deletes_this_fleets_vms_and_leaves_others(tmp_path: Path) -> None:
    """Built VMs go to the trash; a VM of another fleet with a spec hostname is untouched."""
    requests = vms(4)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests[:3], spec_path="web.toml", fleet="web")
        foreign = sim.state.add_existing_vm("acme", requests[3].hostname)
        record = sim.state.vm_by_id(foreign)
        assert record is not None
        record.annotations = [{"key": VM_KEY, "value": "vm-004"}, {"key": FLEET_KEY, "value": "x"}]
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, spec_path="web.toml", fleet="web")
        state = live(sim.state.snapshot())
    assert built.summary.succeeded == 3
    assert gone.operation == "delete"
    by_key = {vm.key: vm for vm in gone.vms}
    for vm in requests[:3]:
        row = by_key[vm.key]
        assert (row.outcome, row.reason) == ("succeeded", "deleted")
        assert state[vm.hostname]["in_trash"] is True
    assert (by_key["vm-004"].outcome, by_key["vm-004"].category) == ("failed", "conflict")
    assert by_key["vm-004"].reason == "not_ours"
    assert state["vm-004"]["in_trash"] is False


async def test_destroy_with_purge_frees_the_hostnames(tmp_path: Path) -> None:
    """--purge: the VMs leave the trash, so the same spec can be built again at once."""
    requests = vms(3)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, fleet="web")
            gone = await orch.destroy(requests, purge=True, fleet="web")
            again = await orch.run(requests, fleet="web")
        snapshot = sim.state.snapshot()
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "purged")}
    assert {vm.outcome for vm in again.vms} == {"succeeded"}
    assert snapshot["duplicates"] == []


async def test_destroy_twice_and_of_nothing_is_skipped_absent(tmp_path: Path) -> None:
    """A second destroy finds nothing of ours to delete; a never-built spec neither."""
    requests = vms(2)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            nothing = await orch.destroy(requests, fleet="web")
            await orch.run(requests, fleet="web")
            await orch.destroy(requests, purge=True, fleet="web")
            twice = await orch.destroy(requests, purge=True, fleet="web")
    assert {(vm.outcome, vm.reason) for vm in nothing.vms} == {("skipped", "absent")}
    assert {(vm.outcome, vm.reason) for vm in twice.vms} == {("skipped", "absent")}


async def test_without_annotations_only_the_build_journal_proves_ownership(tmp_path: Path) -> None:
    """An API that keeps no annotations: VMs the build journal names are deleted, others not."""
    requests = vms(3)
    build_journal = tmp_path / "build.journal"
    async with run_simulator(sim_config(copy_annotations=False)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests[:2], journal=build_journal)
        sim.state.add_existing_vm("acme", requests[2].hostname)
        async with Orchestrator(settings_for(sim)) as orch:
            blind = await orch.destroy(requests)
            informed = await orch.destroy(requests, journal=build_journal)
        state = live(sim.state.snapshot())
    assert {(vm.outcome, vm.category) for vm in blind.vms} == {("failed", "conflict")}
    by_key = {vm.key: vm for vm in informed.vms}
    assert by_key["vm-001"].outcome == by_key["vm-002"].outcome == "succeeded"
    assert (by_key["vm-003"].outcome, by_key["vm-003"].reason) == ("failed", "not_ours")
    assert state["vm-003"]["in_trash"] is False


async def test_uncertain_deletes_are_settled_by_looking_the_vm_up(tmp_path: Path) -> None:
    """DELETEs whose connection broke after the server acted: each VM ends deleted, once."""
    requests = vms(8)
    faults = FaultConfig(
        reset_after_rate=0.5, error_5xx_after_rate=0.3, methods=frozenset({"DELETE"})
    )
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=tmp_path / "d")
        sim.config.faults = faults
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, journal=tmp_path / "d")
        snapshot = sim.state.snapshot()
    assert snapshot["faults"].get("reset_after", 0) + snapshot["faults"].get("error_5xx_after", 0)
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "deleted")}
    assert all(vm["in_trash"] for vm in snapshot["virtual_machines"])


async def test_stop_during_destroy_then_resume_on_its_journal(tmp_path: Path) -> None:
    """Stopped at its first DELETE (Ctrl-C): the rest cancelled; the rerun finishes, once each."""
    requests = vms(6)
    journal = tmp_path / "d.journal"
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal)
        holder: list[Orchestrator] = []

        def stop_at_first_delete(event: ProvisionEvent) -> None:
            if event.kind == "submitting":
                holder[0].request_stop()

        settings = settings_for(sim, max_in_flight=1)
        async with Orchestrator(settings, hooks=[stop_at_first_delete]) as orch:
            holder.append(orch)
            stopped = await orch.destroy(requests, journal=journal)
        async with Orchestrator(settings_for(sim)) as orch:
            resumed = await orch.destroy(requests, journal=journal)
        snapshot = sim.state.snapshot()
    assert stopped.interrupted
    assert "cancelled" in {vm.outcome for vm in stopped.vms}
    assert {vm.outcome for vm in resumed.vms} == {"succeeded"}
    assert all(vm["in_trash"] for vm in snapshot["virtual_machines"])


async def test_a_vm_trashed_by_someone_else_is_purged_and_a_gone_one_is_absent(
    tmp_path: Path,
) -> None:
    """Known from the build journal: one already in the trash is purged, one already purged
    (the purge of something gone) ends skipped/absent."""
    requests = vms(2)
    build_journal = tmp_path / "build.journal"
    async with run_simulator(sim_config(copy_annotations=False)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests, journal=build_journal)
        ids = {vm.key: vm.virtual_machine.id for vm in built.vms if vm.virtual_machine}
        sim.state.trash_vm(ids["vm-001"])
        sim.state.trash_vm(ids["vm-002"])
        vm2 = sim.state.vm_by_id(ids["vm-002"])
        assert vm2 is not None
        sim.state.purge_vm(vm2, sim.state.now())
        sim.state.advance(sim.state.now() + 3600)
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, journal=build_journal, purge=True)
        snapshot = sim.state.snapshot()
    by_key = {vm.key: vm for vm in gone.vms}
    assert (by_key["vm-001"].outcome, by_key["vm-001"].reason) == ("succeeded", "purged")
    assert (by_key["vm-002"].outcome, by_key["vm-002"].reason) == ("skipped", "absent")
    assert snapshot["virtual_machines"] == []


@pytest.mark.parametrize("delete_running", ["accept", "refuse"])
async def test_a_running_vm_is_stopped_once_before_its_delete(
    tmp_path: Path, delete_running: str
) -> None:
    """As the official clients do: a started VM gets one stop, is waited for until it is
    stopped, and only then deleted; on an API that refuses to delete a running VM
    (409 deletion_restricted, its reason in detail.errors) nothing is refused at all."""
    requests = vms(3)
    journal = tmp_path / "j"
    config = sim_config(delete_running=delete_running, vm_start_seconds=0.0)
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim, wait_until_started=True)) as orch:
            built = await orch.run(requests, journal=journal)
        assert {vm.virtual_machine.state for vm in built.vms if vm.virtual_machine} == {"started"}
        before = sim.state.snapshot()["requests"]["by_status"]
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, journal=journal)
        after = sim.state.snapshot()["requests"]["by_status"]
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "deleted")}
    assert after.get("409", 0) == before.get("409", 0)  # never refused: stopped first
    assert "delete_running" not in {r.name for r in gone.readings}  # never met
    assert all(vm["in_trash"] for vm in live(sim.state.snapshot()).values())


async def test_a_delete_refused_as_running_is_followed_by_a_stop_then_the_delete(
    tmp_path: Path,
) -> None:
    """A VM seen stopped, then started by someone else just before the DELETE: the refusal
    (409 deletion_restricted, "must be stopped" only in detail.errors) is read, the VM
    stopped, and the DELETE sent again once it is stopped."""
    requests = vms(1)
    journal = tmp_path / "j"
    config = sim_config(delete_running="refuse", vm_start_seconds=0.0, stop_seconds=0.0)
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim, wait_until_started=True)) as orch:
            built = await orch.run(requests, journal=journal)
        vm_id = built.vms[0].virtual_machine.id if built.vms[0].virtual_machine else ""
        record = sim.state.vm_by_id(vm_id)
        assert record is not None
        sim.state.stop_vm(record, "stop", sim.state.now())  # stopped by hand

        started: list[bool] = []

        def started_again_before_the_delete(event: ProvisionEvent) -> None:
            if event.kind == "submitting" and not started:
                started.append(True)
                record.power = None  # someone starts it: the DELETE now is refused

        async with Orchestrator(settings_for(sim), hooks=[started_again_before_the_delete]) as orch:
            gone = await orch.destroy(requests, journal=journal)
        statuses = sim.state.snapshot()["requests"]["by_status"]
        in_trash = record.trash is not None
    assert statuses.get("409") == 1  # the one refusal, then a stop and a DELETE that took
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "deleted")}
    assert gone.vms[0].attempts == 2
    assert in_trash
    refusal = {r.name: r for r in gone.readings}["delete_running"]
    assert refusal.value == "refused"
    assert refusal.evidence is not None
    assert "409 deletion_restricted" in refusal.evidence
    assert "must be stopped" in refusal.evidence


async def test_another_fleets_annotated_vm_does_not_disown_ours_on_an_api_that_keeps_none(
    tmp_path: Path,
) -> None:
    """On an API that copies no annotations, a VM of another fleet carrying its annotations
    (set by hand) is looked at first: it makes the run believe annotations are kept, yet
    the fleet's own VMs, which show none, are still proven ours by the journal (this very
    VM created by this fleet's build) and deleted; the other fleet's VM is untouched."""
    requests = vms(4)
    journal = tmp_path / "j"
    async with run_simulator(SimulatorConfig.pessimistic(time_scale=SCALE, seed=7)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests[1:], journal=journal, fleet="web")
        foreign = sim.state.add_existing_vm("acme", requests[0].hostname)
        record = sim.state.vm_by_id(foreign)
        assert record is not None
        record.annotations = [{"key": VM_KEY, "value": "vm-001"}, {"key": FLEET_KEY, "value": "x"}]
        async with Orchestrator(settings_for(sim, max_in_flight=1)) as orch:
            gone = await orch.destroy(requests, journal=journal, fleet="web")
    by_key = {vm.key: vm for vm in gone.vms}
    assert (by_key["vm-001"].outcome, by_key["vm-001"].reason) == ("failed", "not_ours")
    assert record.trash is None
    for key in ("vm-002", "vm-003", "vm-004"):
        assert (by_key[key].outcome, by_key[key].reason) == ("succeeded", "deleted")
