"""The library at its edges: one run at a time, `async with` required, counts that mean
what they say, a journal of another organization refused, a changed spec reported
(issue 16, items 2, 8, 9, 10)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import anyio
import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.errors import JournalError
from orchestrator.report import write_report
from orchestrator.report._validate import validate_report_file
from orchestrator.simulator import SimulatorConfig, run_simulator
from orchestrator.vm_request import Lookup

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


def sim_config(**kw: object) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=5), **kw)  # type: ignore[arg-type]


async def test_an_orchestrator_outside_async_with_fails_clearly() -> None:
    """run() without `async with` raises at once, saying how to use it; nothing is sent."""
    async with run_simulator(sim_config()) as sim:
        orch = Orchestrator(settings_for(sim))
        with pytest.raises(RuntimeError, match="async with"):
            await orch.run(vms(2))
        assert sim.state.snapshot()["requests"]["total"] == 0


async def test_a_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    """Two run() at once on one Orchestrator (or two for one organization): the second
    is refused with a clear error; the first builds each VM once and reports itself."""
    requests = vms(6)
    started = anyio.Event()

    def hook(event: ProvisionEvent) -> None:
        if event.kind == "submitting":
            started.set()

    refused: list[str] = []
    async with (
        run_simulator(sim_config()) as sim,
        Orchestrator(settings_for(sim), hooks=[hook]) as orch,
        Orchestrator(settings_for(sim)) as other,
    ):
        async with anyio.create_task_group() as tg:
            results = []

            async def first() -> None:
                results.append(await orch.run(requests, journal=tmp_path / "j"))

            tg.start_soon(first)
            await started.wait()
            for runner, journal in ((orch, tmp_path / "j2"), (other, None)):
                with pytest.raises(RuntimeError, match="run") as caught:
                    await runner.run(requests, journal=journal)
                refused.append(str(caught.value))
    assert "already in progress" in refused[0]
    assert "acme" in refused[1]
    (report,) = results
    assert not report.interrupted
    assert report.summary.succeeded == 6
    assert_exactly_once(report, requests, sim)


async def test_vms_never_sent_are_not_counted_as_maybe_existing() -> None:
    """Stopped before any POST went out: every VM is `not_submitted`, none
    `submission_outcome_unknown` ("submitted with no answer, they may exist")."""
    requests = vms(8)
    orch_ref: list[Orchestrator] = []

    def stop_at_first_submission(event: ProvisionEvent) -> None:
        if event.kind == "submitting":
            orch_ref[0].request_stop()

    async with (
        run_simulator(sim_config()) as sim,
        Orchestrator(settings_for(sim), hooks=[stop_at_first_submission]) as orch,
    ):
        orch_ref.append(orch)
        report = await orch.run(requests)
    assert created_hostnames(sim) == []
    assert {vm.reason for vm in report.vms} == {"not_submitted"}


async def test_a_journal_of_another_organization_is_refused_unless_rebound(
    tmp_path: Path,
) -> None:
    """The journal says web VMs were built in acme; the spec now puts them in another
    organization: refused (its records say nothing of that organization), no request
    sent for them; rebinding proceeds."""
    journal = tmp_path / "fleet.journal"
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(vms(3), journal=journal)
        moved = [dataclasses.replace(r, organization=Lookup("sub_domain", "newco")) for r in vms(3)]
        async with Orchestrator(settings_for(sim)) as orch:
            before = sim.state.snapshot()["requests"]["total"]
            with pytest.raises(JournalError, match="another organization") as refused:
                await orch.run(moved, journal=journal)
            assert "--journal-rebind" in str(refused.value)
            assert sim.state.snapshot()["requests"]["total"] == before
            report = await orch.run(moved, journal=journal, journal_rebind=True)
    assert len(report.vms) == 3


async def test_a_changed_spec_is_reported_and_logged_not_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Built with rock-1 in uk-lon-01; the spec now says rock-3 in nl-ams-01: the report's
    rows say so (spec_changed), a warning is logged, nothing is rebuilt."""
    journal = tmp_path / "fleet.journal"
    async with run_simulator(sim_config()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            first = await orch.run(vms(3), journal=journal)
        assert all(vm.spec_changed is None for vm in first.vms)
        changed = [
            dataclasses.replace(r, package=Lookup("permalink", "rock-3"))
            if r.key == "vm-002"
            else r
            for r in vms(3, data_center="nl-ams-01")
        ]
        caplog.set_level(logging.WARNING, logger="orchestrator")
        async with Orchestrator(settings_for(sim)) as orch:
            second = await orch.run(changed, journal=journal)
    assert sorted(created_hostnames(sim)) == ["vm-001", "vm-002", "vm-003"]
    assert [vm.outcome for vm in second.vms] == ["skipped"] * 3
    by_key = {vm.key: vm for vm in second.vms}
    vm2 = by_key["vm-002"].spec_changed
    assert vm2 is not None
    assert {(c.field, c.built, c.spec) for c in vm2} == {
        ("package", "rock-1", "rock-3"),
        ("location", "uk-lon-01", "nl-ams-01"),
    }
    vm1 = by_key["vm-001"].spec_changed
    assert vm1 is not None
    assert [(c.field, c.built, c.spec) for c in vm1] == [("location", "uk-lon-01", "nl-ams-01")]
    # through the package's own logging (the standard logger), never structlog's defaults
    warned = [
        (r, r.msg)
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "orchestrator.vm.spec_changed"
    ]
    assert sorted(event["key"] for _, event in warned) == ["vm-001", "vm-002", "vm-003"]
    assert {r.levelno for r, _ in warned} == {logging.WARNING}
    assert {r.name for r, _ in warned} == {"orchestrator.engine"}
    path = tmp_path / "report.json"
    await anyio.to_thread.run_sync(write_report, second, path)
    await anyio.to_thread.run_sync(validate_report_file, path)
