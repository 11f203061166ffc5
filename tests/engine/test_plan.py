"""``make_plan``: lookups resolved, existing hostnames found, quota checked, nothing built."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent, make_plan
from orchestrator.simulator import SimulatorConfig, run_simulator
from orchestrator.vm_request import Lookup

from .conftest import SCALE, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio


async def test_plan_finds_what_to_build_and_what_exists() -> None:
    """Existing hostnames are listed apart; the rest is to build; nothing is POSTed."""
    requests = vms(4)
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        existing = sim.state.add_existing_vm("acme", "vm-001")
        async with Orchestrator(settings_for(sim)) as orch:
            plan = await make_plan(
                orch.client, requests, permitted=lambda: orch.budget_statistics().permitted
            )
        assert created_hostnames(sim) == ["vm-001"]
    assert [r.key for r, _ in plan.existing] == ["vm-001"]
    assert plan.existing[0][1] == existing
    assert [r.key for r in plan.to_build] == ["vm-002", "vm-003", "vm-004"]
    assert not plan.problems
    assert plan.permitted == 1000
    assert plan.estimated_requests >= 6
    assert plan.estimated_seconds is not None
    assert plan.has_changes
    assert not plan.has_errors


async def test_plan_reports_every_lookup_that_names_nothing() -> None:
    """Unknown package, template, network and organization each become a problem."""
    base = vms(2)
    requests = [
        dataclasses.replace(base[0], package=Lookup("permalink", "rock-99")),
        dataclasses.replace(
            base[1],
            disk_template=Lookup("permalink", "templates/nope"),
            network=Lookup("permalink", "mars-public"),
        ),
        *vms(1, prefix="ghost", organization="no-such-org"),
    ]
    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            plan = await make_plan(orch.client, requests)
    found = {(p.field, p.value) for p in plan.problems}
    assert found == {
        ("package", "rock-99"),
        ("disk_template", "templates/nope"),
        ("network", "mars-public"),
        ("organization", "no-such-org"),
    }
    by_field = {p.field: p for p in plan.problems}
    assert by_field["package"].hostnames == ("vm-001",)
    assert plan.has_errors


async def test_plan_checks_quota() -> None:
    """Building more VMs than the policy limit allows is a problem before any POST."""
    requests = vms(5)
    async with run_simulator(SimulatorConfig(time_scale=SCALE, vm_limit=3)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            plan = await make_plan(orch.client, requests)
    assert [p.field for p in plan.problems] == ["quota"]
    assert "exceed the limit by 2" in plan.problems[0].message


async def test_per_data_center_cap_is_respected() -> None:
    """max_in_flight_per_data_center bounds the builds in flight in each data center."""
    requests = vms(4) + vms(4, prefix="ams", data_center="nl-ams-01")
    in_flight: dict[str, int] = {"uk-lon-01": 0, "nl-ams-01": 0}
    peak: dict[str, int] = dict(in_flight)
    location = {r.key: r.location for r in requests}

    def hook(event: ProvisionEvent) -> None:
        dc = location[event.key]
        if event.kind == "submitting" and event.attempt == 1:
            in_flight[dc] += 1
            peak[dc] = max(peak[dc], in_flight[dc])
        elif event.kind in ("succeeded", "failed", "cancelled"):
            in_flight[dc] -= 1

    async with run_simulator(SimulatorConfig(time_scale=SCALE)) as sim:
        settings = settings_for(sim, max_in_flight_per_data_center=1)
        async with Orchestrator(settings, hooks=[hook]) as orch:
            report = await orch.run(requests)
    assert report.summary.succeeded == 8
    assert peak == {"uk-lon-01": 1, "nl-ams-01": 1}
