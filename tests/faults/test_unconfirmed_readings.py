"""Exactly-once on every reading of the API that nobody has confirmed (issue 13).

The simulator plays each unconfirmed reading (``SimulatorConfig``: when a
hostname is taken, when the VM record appears, whether a duplicate hostname is
refused, what a failed build leaves, whether annotations are copied) and the
most pessimistic combination of all of them. These tests run the real client
against it with POSTs that fail *after* the server acted, and check against
what the server really holds: no hostname built twice, every VM of the spec
reported exactly once, and no VM whose build failed reported as built or
skipped - on the first run, on a rerun with the journal and on one without.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import stamina

from orchestrator.engine import Orchestrator
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from orchestrator.report import Report
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator
from orchestrator.vm_request import VmRequest

from ._harness import SCALE, settings_for
from ._invariants import check_report_file, spec_requests

pytestmark = pytest.mark.anyio

#: POSTs fail after the server acted: dropped connections and 5xx answers
POST_FAULTS = FaultConfig(
    reset_after_rate=0.08,
    error_5xx_after_rate=0.07,
    build_fail_rate=0.1,
    methods=frozenset({"POST"}),
)


@pytest.fixture(autouse=True)
def _instant_get_retries() -> Iterator[None]:
    """GET retries happen, but without waiting (stamina's testing mode)."""
    with stamina.set_testing(True, attempts=10):
        yield


def pessimistic(seed: int = 5, **kw: Any) -> SimulatorConfig:
    """The pessimistic simulator at the fault suite's time scale."""
    return SimulatorConfig.pessimistic(time_scale=SCALE, seed=seed, **kw)


async def run_once(
    url: str,
    token: str,
    requests: Sequence[VmRequest],
    journal: Path | None,
    **engine: Any,
) -> Report:
    settings = settings_for(url, token, **engine)
    async with Orchestrator(settings) as orch:
        # a named fleet: a rerun without its journal is still the same fleet
        return await orch.run(
            requests, journal=journal, spec_path="specs/fleet.toml", fleet="fleet"
        )


def server_by_hostname(snapshot: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for vm in snapshot["virtual_machines"]:
        out.setdefault(vm["hostname"].lower(), []).append(vm)
    return out


def check_truthful(report: Report, keys: Sequence[str], snapshot: Mapping[str, Any]) -> None:
    """Nothing doubled, nothing lost, no failed VM reported built or skipped."""
    seen = Counter(vm.key for vm in report.vms)
    assert set(seen) == set(keys), f"report keys differ: {set(seen) ^ set(keys)}"
    assert max(seen.values()) == 1, f"keys twice in the report: {seen.most_common(3)}"
    assert snapshot["duplicates"] == [], f"hostnames built twice: {snapshot['duplicates']}"
    server = server_by_hostname(snapshot)
    for vm in report.vms:
        held = server.get(vm.key, [])
        assert len(held) <= 1, f"{vm.key} is held by {len(held)} VMs"
        record = held[0] if held else None
        if vm.outcome in ("succeeded", "skipped"):
            assert record is not None, f"{vm.key} {vm.outcome} but the server has no VM"
            assert record["vm_state"] != "failed", f"{vm.key} is failed but reported {vm.outcome}"
            assert vm.virtual_machine is not None
            assert vm.virtual_machine.id == record["id"], f"{vm.key}: wrong VM id"
        elif vm.category == "build_failed" and record is not None:
            # a failed build that left its VM: reported with that VM, to be deleted
            assert vm.virtual_machine is not None
            assert vm.virtual_machine.id == record["id"]
        if record is not None and record["vm_state"] == "failed":
            assert (vm.outcome, vm.category) == ("failed", "build_failed"), vm


async def test_pessimistic_api_run_and_both_reruns_build_nothing_twice(tmp_path: Path) -> None:
    """Several hundred VMs against every pessimistic reading plus POST faults after acting.

    A first run, a rerun on the same journal and a rerun without it: 0
    duplicate VMs, every VM reported exactly once, no failed VM reported as
    built or skipped, and the reruns send no POST for a VM whose build failed.
    """
    requests = spec_requests(300)
    keys = [r.key for r in requests]
    journal = tmp_path / "fleet.journal"
    config = pessimistic(faults=POST_FAULTS)
    async with run_simulator(config) as sim:
        token = sim.config.token
        first = await run_once(sim.url, token, requests, journal, build_timeout_seconds=600)
        snap1 = sim.state.snapshot()
        check_truthful(first, keys, snap1)
        assert snap1["faults"].get("reset_after", 0) > 0
        assert snap1["faults"].get("error_5xx_after", 0) > 0
        assert snap1["failed_vms"], "no failed build left its VM: the reading was not exercised"
        assert first.ownership is not None
        assert first.ownership.verifiable is False  # the pessimistic API drops annotations
        await anyio.to_thread.run_sync(lambda: check_report_file(first, tmp_path / "r.json"))

        # reruns: no more faults, so every VM not failed must now end built
        sim.config.faults = FaultConfig()
        failed_hosts = {vm["hostname"] for vm in snap1["failed_vms"]}
        before = len(snap1["virtual_machines"])
        with_journal = await run_once(sim.url, token, requests, journal)
        snap2 = sim.state.snapshot()
        check_truthful(with_journal, keys, snap2)
        without = await run_once(sim.url, token, requests, None)
        snap3 = sim.state.snapshot()
        check_truthful(without, keys, snap3)

    for report in (with_journal, without):
        by_key = {vm.key: vm for vm in report.vms}
        for host in failed_hosts:
            vm = by_key[host]
            assert (vm.outcome, vm.category) == ("failed", "build_failed")
            assert vm.error is not None
            assert "delete it before it can be rebuilt" in (vm.error.description or "")
        assert all(vm.outcome != "cancelled" for vm in report.vms)
    # only hostnames with no VM at all were built again
    rebuilt = len(snap3["virtual_machines"]) - before
    freed = {vm.key for vm in first.vms if vm.outcome == "failed"} - failed_hosts
    assert rebuilt <= len(freed)


READINGS: dict[str, dict[str, Any]] = {
    "taken-at-vm-record": {"hostname_taken_at": "vm_record", "vm_record_at": (0.3, 0.95)},
    "duplicates-accepted": {"duplicate_hostnames": "accept", "vm_record_at": (0.3, 0.95)},
    "failed-builds-leave-vms": {"failed_build_leaves_vm": True},
    "annotations-dropped": {"copy_annotations": False},
}


@pytest.mark.parametrize("reading", READINGS.values(), ids=READINGS.keys())
async def test_each_reading_alone_builds_nothing_twice(
    reading: dict[str, Any], tmp_path: Path
) -> None:
    """Each unconfirmed reading alone, with POST faults after acting: nothing doubled."""
    requests = spec_requests(60)
    keys = [r.key for r in requests]
    config = SimulatorConfig(time_scale=SCALE, seed=3, faults=POST_FAULTS, **reading)
    async with run_simulator(config) as sim:
        report = await run_once(sim.url, sim.config.token, requests, tmp_path / "j")
        check_truthful(report, keys, sim.state.snapshot())
        rerun = await run_once(sim.url, sim.config.token, requests, None)
        check_truthful(rerun, keys, sim.state.snapshot())


async def test_ownership_is_verified_when_the_api_keeps_annotations(tmp_path: Path) -> None:
    """Annotations copied: the report says ownership was verifiable; each VM carries ours."""
    requests = spec_requests(5)
    async with run_simulator(SimulatorConfig(time_scale=SCALE, copy_annotations=True)) as sim:
        report = await run_once(sim.url, sim.config.token, requests, None)
        assert report.ownership is not None
        assert report.ownership.fleet == "fleet"
        assert report.ownership.verifiable is True
        for vm in report.vms:
            assert vm.outcome == "succeeded"
            assert vm.virtual_machine is not None
            record = sim.state.vm_by_id(vm.virtual_machine.id)
            assert record is not None
            pairs = {a["key"]: a["value"] for a in record.annotations}
            assert pairs[VM_KEY] == vm.key
            assert pairs[FLEET_KEY] == "fleet"


async def test_a_vm_of_another_fleet_is_a_conflict_never_skipped(tmp_path: Path) -> None:
    """A hostname held by a VM whose annotations name another fleet: conflict, untouched."""
    requests = spec_requests(3)
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        vm_id = sim.state.add_existing_vm("acme", "vm-002")
        record = sim.state.vm_by_id(vm_id)
        assert record is not None
        record.annotations = [{"key": VM_KEY, "value": "vm-002"}, {"key": FLEET_KEY, "value": "x"}]
        report = await run_once(sim.url, sim.config.token, requests, None)
    by_key = {vm.key: vm for vm in report.vms}
    assert (by_key["vm-002"].outcome, by_key["vm-002"].category) == ("failed", "conflict")
    assert by_key["vm-001"].outcome == by_key["vm-003"].outcome == "succeeded"
    assert report.ownership is not None
    assert report.ownership.verifiable is True


async def test_a_vm_of_ours_found_without_a_journal_is_not_rebuilt(tmp_path: Path) -> None:
    """Our own VM (by its annotations), found without a journal, is skipped, never rebuilt."""
    requests = spec_requests(2)
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        first = await run_once(sim.url, sim.config.token, requests, None)
        second = await run_once(sim.url, sim.config.token, requests, None)
        assert len(sim.state.snapshot()["virtual_machines"]) == 2
    assert [vm.outcome for vm in first.vms] == ["succeeded", "succeeded"]
    assert [(vm.outcome, vm.reason) for vm in second.vms] == [("skipped", "already_exists")] * 2
    assert second.ownership is not None
    assert second.ownership.verifiable is True
