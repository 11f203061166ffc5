"""Issue 23's readings of the API, each played by the simulator both ways (default and
pessimistic): what a run sends and reports must hold under either."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.simulator import SimulatorConfig, run_simulator

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio

READINGS = ["default", "pessimistic"]


def config_for(reading: str, **kw: Any) -> SimulatorConfig:
    """The default or the pessimistic simulator, scaled for tests, with ``kw`` on top."""
    base = SimulatorConfig(time_scale=SCALE, seed=5)
    if reading == "pessimistic":
        base = SimulatorConfig.pessimistic(time_scale=SCALE, seed=5)
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize("legacy", [False, True], ids=["current-server", "older-server"])
@pytest.mark.parametrize("reading", READINGS)
async def test_builds_are_followed_whichever_key_names_the_build(
    reading: str, legacy: bool
) -> None:
    """A build answered under the older ``build`` key alone is polled to its end."""
    requests = vms(3)
    async with run_simulator(config_for(reading, legacy_build_key=legacy)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(requests)
    assert [vm.outcome for vm in report.vms] == ["succeeded"] * 3
    assert all(vm.build_id and vm.build_id.startswith("vmbuild_") for vm in report.vms)


@pytest.mark.parametrize("reading", READINGS)
async def test_destroy_reports_the_addresses_each_vm_had(reading: str, tmp_path: Any) -> None:
    """Each deleted (and purged) VM's row names the addresses it had: IPs a build allocated
    may outlive a purge (unconfirmed), and the report is where to check them."""
    requests = vms(2)
    journal = tmp_path / "fleet.journal"
    async with run_simulator(config_for(reading)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests, journal=journal, fleet="web")
            addresses = {
                vm.key: vm.virtual_machine.ip_addresses
                for vm in built.vms
                if vm.virtual_machine is not None
            }
            destroyed = await orch.destroy(requests, journal=journal, purge=True, fleet="web")
    assert len(addresses) == 2
    assert all(addresses.values())
    for row in destroyed.vms:
        assert (row.outcome, row.reason) == ("succeeded", "purged")
        assert row.virtual_machine is not None
        assert row.virtual_machine.ip_addresses == addresses[row.key]
        assert row.virtual_machine.data_center == "uk-lon-01"
