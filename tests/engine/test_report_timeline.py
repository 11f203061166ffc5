"""What a run's report gives the HTML report: per-VM times, package and location, and the
rate budget per window."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator._simulated import simulated_settings
from orchestrator.engine import Orchestrator
from orchestrator.settings import load_settings
from orchestrator.simulator import SimulatorConfig, run_simulator

from .conftest import SCALE, vms

pytestmark = pytest.mark.anyio


async def test_a_run_records_each_vms_times_and_the_budget_per_window() -> None:
    """Submitted <= first seen <= finished for each VM built; windows add up to the requests."""
    requests = vms(40)
    # a slower clock than the other engine tests (a window lasts 0.6 s, not 0.15 s): a
    # loaded machine's event-loop lag is then small beside a window. The simulator's
    # windows do not lie on the wall clock's multiples of 0.6 s: the report must place
    # them by the resets it saw, never on that belief (which once put 16 of this run's
    # own requests among "others" on a loaded CI machine)
    scale = SCALE / 4
    config = dataclasses.replace(SimulatorConfig(time_scale=scale, seed=7), rate_limit=30)
    async with run_simulator(config) as sim:
        base = load_settings(environ={})
        settings = simulated_settings(base, sim.url, sim.config.token, scale)
        async with Orchestrator(settings) as orch:
            report = await orch.run(requests)
    assert report.schema_version == 2
    assert report.summary.succeeded == 40
    for vm in report.vms:
        assert (vm.package, vm.location) == ("rock-1", "uk-lon-01")
        assert vm.submitted_at is not None
        assert vm.first_seen_at is not None
        assert vm.finished_at is not None
        assert vm.submitted_at <= vm.first_seen_at <= vm.finished_at
    budget = report.budget
    assert budget is not None
    assert budget.window_seconds == settings.engine.rate_window_seconds
    assert len(budget.windows) >= 2  # 40 VMs at 30 requests a window
    assert sum(w.requests for w in budget.windows) == report.summary.requests.total
    starts = [w.started_at for w in budget.windows]
    assert starts == sorted(starts)
    for window in budget.windows:
        assert window.permitted == 30
        assert window.used is None or window.used <= 30
        assert window.others in (None, 0)  # nobody else spends this token
