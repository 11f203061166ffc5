"""The engine end to end: real aiohttp client, simulator on 127.0.0.1, real journal."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.errors import ConfigError, SpecError
from orchestrator.report import write_report
from orchestrator.report._validate import validate_report_file
from orchestrator.settings import load_settings
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


def sim_config(**kw: object) -> SimulatorConfig:
    base = SimulatorConfig(time_scale=SCALE, seed=7)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


async def test_builds_every_vm_within_the_rate_limit(tmp_path: Path) -> None:
    """60 VMs against a tight rate limit all succeed, with zero 429s and zero duplicates."""
    requests = vms(60)
    async with (
        run_simulator(sim_config(rate_limit=40)) as sim,
        Orchestrator(settings_for(sim)) as orch,
    ):
        report = await orch.run(requests, journal=tmp_path / "j.sqlite")
    assert report.summary.succeeded == 60
    assert report.summary.requests.rate_limited == 0
    assert sim.state.snapshot()["requests"]["rate_limited"] == 0
    assert_exactly_once(report, requests, sim)
    path = tmp_path / "report.json"
    await anyio.to_thread.run_sync(write_report, report, path)
    await anyio.to_thread.run_sync(validate_report_file, path)


async def test_existing_hostnames_are_skipped_not_rebuilt() -> None:
    """A hostname held by a VM this fleet did not build ends skipped/not_ours with its VM
    id: never rebuilt, never adopted (nor tagged, inventoried or deleted later)."""
    requests = vms(4)
    async with run_simulator(sim_config()) as sim:
        existing_id = sim.state.add_existing_vm("acme", "vm-002")
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
    by_key = {vm.key: vm for vm in report.vms}
    assert by_key["vm-002"].outcome == "skipped"
    assert by_key["vm-002"].reason == "not_ours"
    assert by_key["vm-002"].virtual_machine is not None
    assert by_key["vm-002"].virtual_machine.id == existing_id
    assert report.summary.succeeded == 3
    assert created_hostnames(sim).count("vm-002") == 1


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(error_5xx_rate=0.25),
        FaultConfig(html_502_rate=0.25),
        FaultConfig(reset_after_rate=0.25),
        FaultConfig(reset_before_rate=0.25),
        FaultConfig(truncated_body_rate=0.25),
        FaultConfig(burst_429_every=15, burst_429_length=3),
        FaultConfig(
            error_5xx_rate=0.1,
            html_502_rate=0.05,
            reset_after_rate=0.1,
            reset_before_rate=0.05,
            truncated_body_rate=0.05,
        ),
    ],
    ids=["5xx", "html502", "reset-after", "reset-before", "truncated", "429-burst", "mixed"],
)
async def test_every_vm_ends_exactly_once_under_faults(faults: FaultConfig, tmp_path: Path) -> None:
    """With each fault switched on, each VM ends once and no hostname is created twice."""
    requests = vms(25)
    async with (
        run_simulator(sim_config(faults=faults)) as sim,
        Orchestrator(settings_for(sim)) as orch,
    ):
        report = await orch.run(requests, journal=tmp_path / "j.sqlite")
    assert_exactly_once(report, requests, sim)
    assert report.summary.succeeded == 25, [
        (vm.hostname, vm.category, vm.error) for vm in report.vms if vm.outcome != "succeeded"
    ]


async def test_failed_builds_are_reported_as_build_failed() -> None:
    """Builds that fail end failed/build_failed; the others still succeed."""
    requests = vms(20)
    async with (
        run_simulator(sim_config(faults=FaultConfig(build_fail_rate=0.3))) as sim,
        Orchestrator(settings_for(sim)) as orch,
    ):
        report = await orch.run(requests)
    failed = [vm for vm in report.vms if vm.outcome == "failed"]
    assert failed, "the seed should fail some builds"
    assert all(vm.category == "build_failed" and vm.build_id for vm in failed)
    assert report.summary.succeeded + len(failed) == 20
    assert_exactly_once(report, requests, sim)


async def test_builds_that_never_finish_time_out() -> None:
    """A build that never finishes ends failed/timeout, with its ids kept."""
    requests = vms(10)
    async with run_simulator(sim_config(faults=FaultConfig(build_hang_rate=0.3))) as sim:
        settings = settings_for(sim, build_timeout_seconds=200.0)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
    timed_out = [vm for vm in report.vms if vm.category == "timeout"]
    assert timed_out
    assert all(vm.task_id and vm.build_id for vm in timed_out)
    assert_exactly_once(report, requests, sim)


async def test_invalid_token_stops_the_whole_run() -> None:
    """A bad token fails every VM with category auth, without a storm of requests."""
    requests = vms(30)
    async with run_simulator(sim_config()) as sim:
        settings = settings_for(sim)
        settings = settings.model_copy(
            update={
                "katapult": settings.katapult.model_copy(
                    update={"api_token": SecretStr("wrong-token")}
                )
            }
        )
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
            run = orch.current_run
    assert run is not None
    assert run.doomed_run is not None
    assert {vm.outcome for vm in report.vms} == {"failed"}
    assert {vm.category for vm in report.vms} == {"auth"}
    assert report.summary.requests.total < 10
    assert created_hostnames(sim) == []


@pytest.mark.parametrize("with_references", [False, True], ids=["plain", "keys and tags"])
async def test_a_token_refused_for_its_network_stops_the_whole_run(with_references: bool) -> None:
    """``unauthorized_network_for_api_token`` is a token failure: the run stops, as auth.

    With SSH keys and tags to check first, the refusal comes at that check
    already, and the run ends the same way: nothing sent, every VM ``auth``.
    """
    extra: dict[str, Any] = {"ssh_keys": ("deploy",), "tags": ("web",)} if with_references else {}
    requests = vms(30, **extra)
    config = sim_config()
    config.refused_tokens = {config.token: "unauthorized_network_for_api_token"}
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
            run = orch.current_run
    assert run is not None
    assert run.doomed_run is not None
    assert run.doomed_run[1].code == "unauthorized_network_for_api_token"
    assert {vm.category for vm in report.vms} == {"auth"}
    assert {vm.error.code for vm in report.vms if vm.error} == {
        "unauthorized_network_for_api_token"
    }
    assert report.summary.requests.total < 10
    assert created_hostnames(sim) == []


async def test_a_suspended_organization_is_refused_before_anything_is_built() -> None:
    """A suspended organization is known before the first build: the run raises SpecError
    naming it and its VMs (as plan does), and builds nothing, not even elsewhere."""
    requests = vms(3) + vms(3, prefix="frz", organization="frozen")
    async with run_simulator(sim_config()) as sim, Orchestrator(settings_for(sim)) as orch:
        with pytest.raises(SpecError) as caught:
            await orch.run(requests)
    [issue] = caught.value.issues
    assert issue.field == "organization"
    assert issue.hostname == "frz-001, frz-002, frz-003"
    assert "suspended" in issue.message
    assert created_hostnames(sim) == []


async def test_hostname_taken_by_someone_else_is_a_conflict() -> None:
    """A hostname created by someone else after the run began ends failed/conflict."""
    requests = vms(3)
    async with run_simulator(sim_config()) as sim:

        def hook(event: ProvisionEvent) -> None:
            if event.kind == "submitted" and event.key == "vm-001":
                sim.state.add_existing_vm("acme", "vm-003")

        async with Orchestrator(settings_for(sim, max_in_flight=1), hooks=[hook]) as orch:
            report = await orch.run(requests)
    by_key = {vm.key: vm for vm in report.vms}
    assert by_key["vm-003"].outcome == "failed"
    assert by_key["vm-003"].category == "conflict"
    assert created_hostnames(sim).count("vm-003") == 1


async def test_stop_then_resume_from_the_journal(tmp_path: Path) -> None:
    """A stopped run reports the rest cancelled; a rerun on its journal finishes them once."""
    requests = vms(30)
    journal = tmp_path / "run.journal"
    async with run_simulator(sim_config(rate_limit=30)) as sim:
        settings = settings_for(sim, max_in_flight=5)
        holder: list[Orchestrator] = []
        submitted = 0

        def hook(event: ProvisionEvent) -> None:
            nonlocal submitted
            if event.kind == "submitted":
                submitted += 1
                if submitted == 8:
                    holder[0].request_stop()

        async with Orchestrator(settings, hooks=[hook]) as orch:
            holder.append(orch)
            first = await orch.run(requests, journal=journal)
        assert first.interrupted
        assert first.summary.cancelled > 0
        cancelled = [vm for vm in first.vms if vm.outcome == "cancelled"]
        assert all(vm.category == "cancelled" and vm.reason for vm in cancelled)
        assert {vm.key for vm in first.vms} == {r.key for r in requests}

        async with Orchestrator(settings) as orch:
            second = await orch.run(requests, journal=journal)
    done_before = {vm.key for vm in first.vms if vm.outcome == "succeeded"}
    assert second.summary.succeeded == 30 - len(done_before)
    assert {vm.key for vm in second.vms if vm.outcome == "skipped"} == done_before
    assert_exactly_once(second, requests, sim)


async def test_events_stream_reports_each_final_outcome_once() -> None:
    """The event stream carries exactly one final event per VM."""
    requests = vms(8)
    async with run_simulator(sim_config()) as sim, Orchestrator(settings_for(sim)) as orch:
        with orch.events() as stream:
            await orch.run(requests)
            await orch.aclose()
            finals = [e.key async for e in stream if e.kind in ("succeeded", "failed", "skipped")]
    assert sorted(finals) == sorted(r.key for r in requests)


async def test_max_in_flight_holds_and_each_vm_gives_its_place_back_when_it_ends() -> None:
    """With ``max_in_flight`` set, never more VMs are between their first POST and their
    end; a VM's place is given back when it ends (not when its POST returns), and every
    VM gets one: the run finishes."""
    requests = vms(12)
    in_flight = peak = 0

    def hook(event: ProvisionEvent) -> None:
        nonlocal in_flight, peak
        if event.kind == "submitting" and event.attempt == 1:
            in_flight += 1
            peak = max(peak, in_flight)
        elif event.kind in ("succeeded", "failed", "cancelled"):
            in_flight -= 1

    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim, max_in_flight=3), hooks=[hook]) as orch:
            with anyio.fail_after(60):  # a place never given back would hang the run
                report = await orch.run(requests)
            stats = orch.statistics()  # after the run: the run keeps its counts, not its VMs
        assert_exactly_once(report, requests, sim)
    assert report.summary.succeeded == 12
    assert peak == 3
    assert stats is not None
    assert stats.total == 12
    assert stats.succeeded == 12


def test_an_orchestrator_without_a_token_is_a_config_error() -> None:
    """No token: ConfigError at once, as the CLI refuses, instead of unauthenticated requests."""
    settings = load_settings(environ={})
    with pytest.raises(ConfigError, match="KATAPULT_API_KEY"):
        Orchestrator(settings)
