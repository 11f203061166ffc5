"""Every failure category a run can produce, checked against what the simulator did."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio
import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine.state.journal import read_journal
from orchestrator.errors import SpecError
from orchestrator.report import Report, write_report
from orchestrator.report._validate import validate_report_file
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator
from orchestrator.vm_request import Lookup

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


def sim_config(**kw: object) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=3), **kw)  # type: ignore[arg-type]


async def _valid(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    await anyio.to_thread.run_sync(write_report, report, path)
    await anyio.to_thread.run_sync(validate_report_file, path)


async def test_a_quota_known_before_the_run_is_refused_before_anything_is_built() -> None:
    """Past the organization's VM limit at the start: SpecError (quota), nothing built."""
    async with run_simulator(sim_config(vm_limit=3)) as sim:
        async with Orchestrator(settings_for(sim, max_in_flight=1)) as orch:
            with pytest.raises(SpecError) as caught:
                await orch.run(vms(6))
    [issue] = caught.value.issues
    assert issue.field == "quota"
    assert "has 0 of 3 VMs; building 6 more would exceed the limit by 3" in issue.message
    assert created_hostnames(sim) == []


async def test_a_quota_reached_mid_run_stops_the_organization(tmp_path: Path) -> None:
    """VMs created by someone else during the run use up the quota: the builds refused
    end failed/quota with the API's error."""
    async with run_simulator(sim_config(vm_limit=4)) as sim:

        def hook(event: ProvisionEvent) -> None:
            if event.kind == "submitted" and event.key == "vm-001":
                sim.state.add_existing_vm("acme", "other-01")
                sim.state.add_existing_vm("acme", "other-02")

        async with Orchestrator(settings_for(sim, max_in_flight=1), hooks=[hook]) as orch:
            report = await orch.run(vms(4))
    outcomes = [(vm.outcome, vm.category) for vm in report.vms]
    assert outcomes.count(("succeeded", None)) == 2
    assert outcomes.count(("failed", "quota")) == 2
    refused = [vm for vm in report.vms if vm.category == "quota"]
    assert any(vm.error and vm.error.code == "resource_creation_restricted" for vm in refused)
    assert len(created_hostnames(sim)) == 4  # two of ours, two of someone else's
    await _valid(report, tmp_path)


async def test_unknown_package_is_refused_before_anything_is_sent() -> None:
    """A lookup naming nothing is found before the first build: SpecError naming the
    package and its VMs, no POST (it was a row failing not_found per VM)."""
    requests = [dataclasses.replace(r, package=Lookup("permalink", "rock-999")) for r in vms(2)]
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            with pytest.raises(SpecError) as caught:
                await orch.run(requests)
    [issue] = caught.value.issues
    assert (issue.field, issue.hostname) == ("package", "vm-001, vm-002")
    assert issue.message == "no package 'rock-999'"
    assert created_hostnames(sim) == []
    assert sim.state.snapshot()["requests"]["by_status"].get("404") is None


async def test_api_validation_error_is_validation(tmp_path: Path) -> None:
    """A build the API refuses as invalid ends failed/validation, not retried."""
    long_name = "x" * 70
    request = dataclasses.replace(vms(1)[0], hostname=long_name, key=long_name)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run([request])
    (vm,) = report.vms
    assert (vm.outcome, vm.category, vm.attempts) == ("failed", "validation", 1)
    assert vm.error is not None
    assert vm.error.code == "validation_error"
    assert vm.error.http_status == 422
    await _valid(report, tmp_path)


async def test_persistent_5xx_on_build_gives_up_as_server_error(tmp_path: Path) -> None:
    """POSTs that always get a 5xx: reconciled, tried a few times, watched, then server_error."""
    faults = FaultConfig(error_5xx_rate=1.0, methods=frozenset({"POST"}))
    requests = vms(2)
    async with run_simulator(sim_config(faults=faults)) as sim:
        settings = settings_for(sim, build_timeout_seconds=200.0)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
    for vm in report.vms:
        assert (vm.outcome, vm.category) == ("failed", "server_error")
        assert vm.attempts == 8
        assert vm.stopped_because is not None
        assert vm.stopped_because.startswith("gave up after 8 uncertain POSTs")
    assert created_hostnames(sim) == []
    assert_exactly_once(report, requests, sim)
    await _valid(report, tmp_path)


async def test_unreachable_api_is_network(tmp_path: Path) -> None:
    """With the API unreachable, every VM ends failed/network and nothing is sent."""
    requests = vms(3)
    async with run_simulator(sim_config()) as sim:
        settings = settings_for(sim)
    # the simulator is gone: its port now refuses connections
    async with Orchestrator(settings) as orch:
        report = await orch.run(requests)
    assert {(vm.outcome, vm.category) for vm in report.vms} == {("failed", "network")}
    await _valid(report, tmp_path)


async def test_deadline_ends_the_run(tmp_path: Path) -> None:
    """At the deadline the run ends: nothing new is submitted, builds in flight are not
    waited for (they end cancelled/build_in_progress with their ids, and stay
    `submitted` in the journal for a rerun to follow), the rest end not_submitted."""
    requests = vms(12)
    journal = tmp_path / "run.journal"
    # builds far longer than the deadline, a build timeout longer still
    # (the budget leaves room for the checks and the fleet's listing before the first build)
    async with run_simulator(sim_config(rate_limit=10, build_seconds=100_000.0)) as sim:
        settings = settings_for(
            sim, max_in_flight=2, deadline_seconds=0.5, build_timeout_seconds=10_000_000.0
        )
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests, journal=journal)
    assert report.stopped_because == "deadline"
    assert report.interrupted
    assert {vm.outcome for vm in report.vms} == {"cancelled"}
    building = [vm for vm in report.vms if vm.reason == "build_in_progress"]
    assert building
    assert all(vm.build_id or vm.task_id for vm in building)
    created = set(created_hostnames(sim))
    unknown = {vm.hostname for vm in report.vms if vm.reason == "submission_outcome_unknown"}
    assert {vm.hostname for vm in building} <= created <= {vm.hostname for vm in building} | unknown
    assert {vm.reason for vm in report.vms} <= {
        "build_in_progress",
        "not_submitted",
        "submission_outcome_unknown",
    }
    entries = (await anyio.to_thread.run_sync(read_journal, journal)).entries
    states = {entry.key: entry.state for entry in entries}
    assert all(states[vm.key] == "submitted" for vm in building)
    assert_exactly_once(report, requests, sim)
    await _valid(report, tmp_path)


async def test_failure_budget_stops_submissions(tmp_path: Path) -> None:
    """With max_failures reached, the VMs not yet submitted end cancelled."""
    requests = vms(10)
    faults = FaultConfig(build_fail_rate=1.0)
    async with run_simulator(sim_config(faults=faults)) as sim:
        settings = settings_for(sim, max_in_flight=1, max_failures=2)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
    assert report.summary.failed == 2
    assert report.summary.cancelled == 8
    assert report.stopped_because == "max_failures"
    await _valid(report, tmp_path)


async def test_wait_until_started_waits_for_the_vm(tmp_path: Path) -> None:
    """With wait_until_started, success means the VM reached state started."""
    requests = vms(3)
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim, wait_until_started=True)) as orch:
            report = await orch.run(requests)
            states = [
                (await orch.client.get_vm(Lookup("id", vm.virtual_machine.id))).state
                for vm in report.vms
                if vm.virtual_machine
            ]
    assert report.summary.succeeded == 3
    assert states == ["started"] * 3
    await _valid(report, tmp_path)


async def test_a_budget_that_never_recovers_is_rate_limited(tmp_path: Path) -> None:
    """When every request is refused with 429, VMs end failed/rate_limited, none built."""
    faults = FaultConfig(burst_429_every=1, burst_429_length=1_000_000)
    requests = vms(2)
    async with run_simulator(sim_config(faults=faults)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
    assert {(vm.outcome, vm.category) for vm in report.vms} == {("failed", "rate_limited")}
    assert all(vm.error and vm.error.code == "rate_limit_reached" for vm in report.vms)
    assert created_hostnames(sim) == []
    await _valid(report, tmp_path)


async def test_a_429_storm_that_lets_requests_through_builds_every_vm() -> None:
    """Every other request refused with 429 and a queue for the budget longer than a
    build: every VM is built, none gives up after 2 or 3 POSTs ("the API refused every
    request"), and none twice."""
    faults = FaultConfig(burst_429_every=2, burst_429_length=1)
    requests = vms(30)
    async with run_simulator(sim_config(faults=faults, rate_limit=10)) as sim:
        # (a build timeout of 1200 simulated s is 3 real s here: a poll held back by the
        # storm and the budget on a loaded machine must not time a build out)
        settings = settings_for(sim, build_timeout_seconds=1200.0)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
    assert {(vm.outcome, vm.category) for vm in report.vms} == {("succeeded", None)}
    assert report.summary.requests.rate_limited > 0
    assert_exactly_once(report, requests, sim)


async def test_a_request_the_spec_xml_cannot_carry_is_invalid_spec(tmp_path: Path) -> None:
    """A library request with values build_from_spec cannot carry fails invalid_spec, unsent."""
    request = dataclasses.replace(vms(1)[0], cpu_cores=0)  # the spec loader forbids this
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run([request])
    (vm,) = report.vms
    assert (vm.outcome, vm.category, vm.attempts) == ("failed", "invalid_spec", 0)
    assert vm.error is not None
    assert "cpu_cores" in (vm.error.description or "")
    assert created_hostnames(sim) == []
    await _valid(report, tmp_path)
