"""Issue 23's readings of the API, each played by the simulator both ways (default and
pessimistic): what a run sends and reports must hold under either."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.katapult import AiohttpTransport, ApiRequest, ApiResponse
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


class _Sent(AiohttpTransport):
    """The real transport, remembering every request it sent."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.sent: list[ApiRequest] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        self.sent.append(request)
        return await super().send(request)


@pytest.mark.parametrize("reading", READINGS)
async def test_an_xml_build_naming_no_network_gets_the_default_network(reading: str) -> None:
    """A VM sent through build_from_spec without a network gets one interface on its data
    center's default network (read once per data center) and comes up with an address,
    even where an XML build without an interface would get none."""
    requests = [
        *vms(3, prefix="lon", name="web"),
        *vms(2, prefix="ams", data_center="nl-ams-01", name="web"),
    ]
    async with run_simulator(config_for(reading)) as sim:
        transport = _Sent(sim.url)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            report = await orch.run(requests)
        networks = {n.data_center.permalink: n.id for n in sim.state.catalogue.networks}
    assert {vm.outcome for vm in report.vms} == {"succeeded"}
    assert all(vm.virtual_machine and vm.virtual_machine.ip_addresses for vm in report.vms)
    reads = [r for r in transport.sent if r.path == "data_centers/_/default_network"]
    assert sorted(dict(r.params)["data_center[permalink]"] for r in reads) == [
        "nl-ams-01",
        "uk-lon-01",
    ]
    posts = [r for r in transport.sent if r.path.endswith("/build_from_spec")]
    assert len(posts) == 5
    for post in posts:
        xml = post.json["xml"]
        dc = "nl-ams-01" if "<Hostname>ams" in xml else "uk-lon-01"
        assert xml.count("<NetworkInterface>") == 1
        assert f"<Network>{networks[dc]}</Network>" in xml
        assert "IPAddressAllocation" not in xml  # type="new" only where a network is named


@pytest.mark.parametrize("reading", READINGS)
async def test_whether_annotations_are_copied_is_judged_once_the_build_is_complete(
    reading: str,
) -> None:
    """On an API that copies a build's annotations only at its end, the run still finds
    that they are copied (its VMs are verifiable by them), never "not copied" from a look
    at a VM still being built."""
    config = config_for(reading, copy_annotations=True, annotations_copied_at="complete")
    async with run_simulator(config) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            report = await orch.run(vms(4))
    assert {vm.outcome for vm in report.vms} == {"succeeded"}
    assert report.ownership is not None
    assert report.ownership.verifiable is True
    assert "once the build is complete" in (report.ownership.evidence or "")
