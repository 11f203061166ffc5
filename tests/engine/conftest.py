"""Engine integration fixtures: the real client against the simulator over loopback."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import stamina

from orchestrator._simulated import simulated_settings
from orchestrator.settings import Settings, load_settings
from orchestrator.simulator import RunningSimulator
from orchestrator.vm_request import Lookup, VmRequest

#: simulated seconds per real second in these tests: a 40 s build takes 0.1 s
SCALE = 400.0


@pytest.fixture(autouse=True)
def _fast_retries() -> Iterator[None]:
    """GET retries happen, but without waiting (stamina's testing mode)."""
    with stamina.set_testing(True, attempts=10):
        yield


def settings_for(sim: RunningSimulator, **engine: Any) -> Settings:
    """Settings pointed at ``sim`` with every duration scaled like its clock."""
    base = load_settings(environ={}, overrides={f"engine.{k}": v for k, v in engine.items()})
    return simulated_settings(base, sim.url, sim.config.token, SCALE)


def vms(
    n: int,
    *,
    prefix: str = "vm",
    organization: str = "acme",
    data_center: str = "uk-lon-01",
    **extra: Any,
) -> list[VmRequest]:
    """``n`` plain VM requests ``prefix-001`` ... in one organization."""
    out = []
    for i in range(1, n + 1):
        hostname = f"{prefix}-{i:03d}"
        out.append(
            VmRequest(
                key=hostname,
                hostname=hostname,
                organization=Lookup("sub_domain", organization),
                package=Lookup("permalink", "rock-1"),
                data_center=Lookup("permalink", data_center),
                disk_template=Lookup("permalink", "templates/ubuntu-22-04"),
                entry_index=i - 1,
                **extra,
            )
        )
    return out


def created_hostnames(sim: RunningSimulator) -> list[str]:
    """Every hostname the simulator really created (with repeats, if any)."""
    snapshot = sim.state.snapshot()
    return [vm["hostname"] for vm in snapshot["virtual_machines"]]


def assert_exactly_once(report: Any, requests: Sequence[VmRequest], sim: RunningSimulator) -> None:
    """Every VM in the report once; no hostname created twice on the server."""
    keys = [vm.key for vm in report.vms]
    assert sorted(keys) == sorted(r.key for r in requests)
    created = created_hostnames(sim)
    assert len(created) == len(set(created)), "a hostname was created twice"
    for vm in report.vms:
        if vm.outcome == "succeeded":
            assert vm.hostname in created
            assert vm.virtual_machine is not None
    assert report.summary.total == len(requests)
