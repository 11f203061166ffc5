"""Addresses: after a run, one VM list per organization fills in every built VM's IPs."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine._addresses import add_addresses
from orchestrator.katapult import KatapultClient
from orchestrator.report import Outcome, VmRef, VmResult
from orchestrator.simulator import SimulatorConfig, run_simulator
from orchestrator.simulator._config import VmListPerPage
from orchestrator.vm_request import Lookup

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio

ACME = Lookup("sub_domain", "acme")


def sim_config(**kw: object) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=3), **kw)  # type: ignore[arg-type]


def _row(key: str, vm_id: str | None, outcome: Outcome = "succeeded") -> VmResult:
    ref = VmRef(id=vm_id, fqdn=None) if vm_id is not None else None
    extra = {"reason": "already_exists"} if outcome == "skipped" else {}
    return VmResult(key=key, hostname=key, outcome=outcome, virtual_machine=ref, **extra)


async def test_a_run_reports_each_built_and_existing_vms_addresses() -> None:
    """Succeeded and already-existing VMs carry the addresses and data center the API shows."""
    requests = [*vms(3, prefix="lon"), *vms(2, prefix="ams", data_center="nl-ams-01")]
    async with run_simulator(sim_config()) as sim:
        sim.state.add_existing_vm("acme", "lon-002", zone="lon-zone-1")
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
            by_key = {vm.key: vm for vm in report.vms}
            assert by_key["lon-002"].outcome == "skipped"
            for vm in report.vms:
                assert vm.virtual_machine is not None, vm.key
                shown = await orch.client.get_vm(Lookup("id", vm.virtual_machine.id))
                assert vm.virtual_machine.ip_addresses == [ip.address for ip in shown.ip_addresses]
                assert vm.virtual_machine.ip_addresses, vm.key
                expected = "nl-ams-01" if vm.key.startswith("ams") else "uk-lon-01"
                assert vm.virtual_machine.data_center == expected
                assert vm.virtual_machine.fqdn == f"{vm.key}.acme.katapult.cloud"


@pytest.mark.parametrize(
    ("listed", "reading", "requests"),
    [
        (1, "max_200", 1),
        (200, "max_200", 1),
        (201, "max_200", 2),
        (450, "max_200", 3),
        (250, "unlimited", 2),  # asked 200 a page, whatever more the API would take
        (250, "capped_100", 3),  # answered 100 a page: walked at the API's size
        (250, "max_100", 4),  # 200 refused once, then 100 a page
    ],
)
async def test_addresses_cost_one_request_per_page_of_the_vm_list(
    listed: int, reading: VmListPerPage, requests: int
) -> None:
    """N VMs cost one list request per page (200 VMs, or the API's size), not one GET per
    VM; rows without a VM cost none; every VM's addresses are found on every reading."""
    config = dataclasses.replace(sim_config(), vm_list_per_page=reading)
    async with run_simulator(config) as sim:
        ids = [sim.state.add_existing_vm("acme", f"x-{i:03d}") for i in range(listed)]
        results = [_row(f"x-{i:03d}", vm_id) for i, vm_id in enumerate(ids)]
        results.append(_row("never-built", None, outcome="skipped"))
        orgs = {r.key: ACME for r in results}
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            filled = await add_addresses(client, results, orgs, deadline_seconds=5)
            assert client.requests_total == requests
    assert [r.key for r in filled] == [r.key for r in results]
    assert filled[-1] == results[-1]
    assert all(r.virtual_machine and r.virtual_machine.ip_addresses for r in filled[:-1])
    addresses = {r.virtual_machine.ip_addresses[0] for r in filled[:-1] if r.virtual_machine}
    assert len(addresses) == listed


async def test_nothing_to_fill_sends_nothing() -> None:
    """A run that built nothing (every VM failed before a build) lists no organization."""
    async with run_simulator(sim_config()) as sim:
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            rows = [_row("a", None, outcome="skipped")]
            assert await add_addresses(client, rows, {"a": ACME}, deadline_seconds=5) == rows
            assert client.requests_total == 0


async def test_a_vm_gone_from_the_list_keeps_its_row_as_it_was() -> None:
    """A VM deleted since the run (not in the list) keeps its id and gets no addresses."""
    async with run_simulator(sim_config()) as sim:
        there = sim.state.add_existing_vm("acme", "there")
        rows = [_row("there", there), _row("gone", "vm_0000000000000000")]
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            filled = await add_addresses(
                client, rows, {"there": ACME, "gone": ACME}, deadline_seconds=5
            )
    assert filled[0].virtual_machine is not None
    assert filled[0].virtual_machine.ip_addresses
    assert filled[1] == rows[1]


@pytest.mark.parametrize("failure", ["wrong-token", "unreachable"])
async def test_a_list_that_cannot_be_read_leaves_rows_and_warns(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused token or an API gone leaves every row as it was, with one warning, no raise."""
    caplog.set_level(logging.WARNING, logger="orchestrator")
    async with run_simulator(sim_config()) as sim:
        rows = [_row("a", sim.state.add_existing_vm("acme", "a"))]
        if failure == "wrong-token":
            async with KatapultClient(api_url=sim.url, token="not-the-token") as client:
                filled = await add_addresses(client, rows, {"a": ACME}, deadline_seconds=1)
    if failure == "unreachable":  # the simulator has stopped: connections are refused
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            filled = await add_addresses(client, rows, {"a": ACME}, deadline_seconds=1)
    assert filled == rows
    warnings = [
        r for r in caplog.records if r.getMessage().startswith("orchestrator.addresses.unavailable")
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "organization=acme" in warnings[0].getMessage()
    assert "not-the-token" not in warnings[0].getMessage()


async def test_a_stopped_run_does_not_spend_requests_on_addresses() -> None:
    """After request_stop (Ctrl-C) the report is made at once: no VM list for addresses."""
    requests = vms(10)
    async with run_simulator(sim_config(rate_limit=20)) as sim:
        holder: list[Orchestrator] = []

        def hook(event: ProvisionEvent) -> None:
            if event.kind == "succeeded":
                holder[0].request_stop()

        async with Orchestrator(settings_for(sim, max_in_flight=2), hooks=[hook]) as orch:
            holder.append(orch)
            report = await orch.run(requests)
    assert report.interrupted
    built = [vm for vm in report.vms if vm.virtual_machine is not None]
    assert built
    assert all(vm.virtual_machine.ip_addresses == [] for vm in built if vm.virtual_machine)
