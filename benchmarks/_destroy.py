"""The ``destroy`` scenario: destroying a fleet of running VMs at the real API's budget.

``destroy`` does what the official clients do to a running VM: one stop
(``POST virtual_machines/_/stop``), waits for the VM to be ``stopped``, then
``DELETE virtual_machines/_`` (issue 23). Measured here with P = 1000 requests
per 60 s window and the recorded 20 s stop: N = 1,000 started VMs of one fleet
(built by ``run``, waited for until ``started``) in an organization that also
holds another fleet's VMs; the simulator refuses to delete a VM that is not
stopped (``--delete-running refuse``), so a DELETE sent too early would show.

The bound the budget implies: each VM needs at least four requests (a look
at its state and owner, its stop, one look that sees it stopped, its DELETE),
so N VMs take at least 4N/P windows, plus one stop's duration. (Without the
first look, which the official provider also makes when it refreshes its
state: 3N/P.) Then a second destroy of the same spec (a
no-op: everything is in the trash). Correctness, against the simulator's own
record (``vm_actions``: every stop and DELETE that reached a VM): every VM of
the fleet deleted exactly once, never while running; nothing of the other
fleet touched.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._engine import engine_settings, make_requests
from benchmarks._results import ScenarioResult
from benchmarks._scenarios import SPREAD, WINDOW
from benchmarks._sim import SimParams, SimulatorProcess
from orchestrator.engine import Orchestrator
from orchestrator.katapult import AiohttpTransport, ApiRequest, ApiResponse
from orchestrator.report import Report
from orchestrator.vm_request import VmRequest

if TYPE_CHECKING:
    from benchmarks._scenarios import Context

__all__ = ["MAX_DESTROY_RATIO", "destroy"]

#: target: wall time within this factor of the budget's bound (as for builds)
MAX_DESTROY_RATIO = 1.15
_PERMITTED = 1000
_BUILD = 40.0
#: the recorded stop task (17 s pending, 3 s running)
_STOP = 20.0
#: requests each VM needs at the least: a look (state, owner), its stop, a look that sees
#: it stopped, its DELETE
_FLOOR_PER_VM = 4
_FLEET = "bench-fleet"


class _Counting(AiohttpTransport):
    """The real transport, counting requests by what they are for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.kinds: Counter[str] = Counter()

    async def send(self, request: ApiRequest) -> ApiResponse:
        path = request.path
        if request.method == "POST" and path.endswith("/stop"):
            kind = "stop"
        elif request.method == "DELETE":
            kind = "delete"
        elif path.startswith("virtual_machines/"):
            kind = "vm_look"
        elif path.startswith("tasks/"):
            kind = "task_poll"
        elif path == "organizations/_/virtual_machines":
            kind = "vm_list"
        else:
            kind = "other"
        self.kinds[kind] += 1
        return await super().send(request)


async def _destroy(
    url: str, requests: list[VmRequest], scale: float, journal: Path
) -> tuple[Report, float, Counter[str]]:
    transport = _Counting(engine_settings(url, scale).katapult.api_url)
    async with Orchestrator(engine_settings(url, scale), transport=transport) as orch:
        started = time.monotonic()
        report = await orch.destroy(requests, journal=journal, fleet=_FLEET)
        wall = time.monotonic() - started
    return report, wall, transport.kinds


def _checks(
    result: ScenarioResult, state: dict[str, Any], ours: dict[str, str], report: Report
) -> None:
    actions = state["vm_actions"]
    deleted = Counter(a["vm_id"] for a in actions if a["action"] == "delete" and a["status"] == 200)
    mine = set(ours.values())
    trashed = {vm["id"] for vm in state["virtual_machines"] if vm["in_trash"]}
    touched = {a["vm_id"] for a in actions}
    result.checks["every VM of the fleet deleted exactly once"] = (
        set(deleted) == mine and set(deleted.values()) == {1} and trashed == mine
    )
    result.checks["no DELETE of a VM that was not stopped"] = all(
        a["vm_state"] == "stopped" for a in actions if a["action"] == "delete"
    )
    result.checks["nothing of the other fleet touched"] = touched <= mine and trashed <= mine
    result.checks["one report row per VM, each deleted"] = len(report.vms) == len(ours) and all(
        (vm.outcome, vm.reason) == ("succeeded", "deleted") for vm in report.vms
    )


async def destroy(ctx: Context) -> ScenarioResult:
    """N started VMs destroyed (stop, wait, DELETE) beside another fleet's; then a no-op."""
    s = ctx.sizes
    n, others, scale = s.destroy_n, s.destroy_others, s.real_scale
    result = ScenarioResult(
        "destroy",
        f"N={n:,} started VMs of one fleet in organization acme, beside {others:,} VMs of "
        f"another fleet; P={_PERMITTED} requests per 60 s window, stops of {_STOP:g} s, "
        f"a DELETE of a VM not stopped refused; time scale {scale:g} (a window lasts "
        f"{WINDOW / scale:g} s); default settings, the fleet's journal; then the same "
        "destroy again (a no-op)",
    )
    params = SimParams(
        time_scale=scale,
        rate_limit=_PERMITTED,
        build_seconds=_BUILD,
        build_spread=SPREAD,
        seed=43,
        readings={
            "existing-vms": others,
            "existing-vms-fleet": "other-team",
            "delete-running": "refuse",
            "stop-seconds": _STOP,
        },
    )
    requests = make_requests(n, prefix="doomed")
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        journal = Path(tmp) / "fleet.journal"
        async with SimulatorProcess(params) as sim:
            started = time.monotonic()
            settings = engine_settings(sim.url, scale, wait_until_started=True)
            async with Orchestrator(settings) as orch:
                built = await orch.run(requests, journal=journal, fleet=_FLEET)
            built_wall = time.monotonic() - started
            ours = {vm.key: vm.virtual_machine.id for vm in built.vms if vm.virtual_machine}
            report, wall, kinds = await _destroy(sim.url, requests, scale, journal)
            state = await sim.state()
            again, again_wall, again_kinds = await _destroy(sim.url, requests, scale, journal)
    result.checks["the fleet was built and running"] = len(ours) == n and all(
        vm.outcome == "succeeded" for vm in built.vms
    )
    _checks(result, state, ours, report)
    result.checks["the second destroy deletes nothing"] = all(
        (vm.outcome, vm.reason) == ("skipped", "in_trash") for vm in again.vms
    )
    window = WINDOW / scale
    floor = _FLOOR_PER_VM * n / _PERMITTED * window + _STOP / scale
    total = report.summary.requests.total
    ratio = wall / floor
    result.add(
        f"wall time / lower bound ({_FLOOR_PER_VM}N/P windows + one stop)",
        f"{ratio:.2f}x ({wall:.1f} s vs {floor:.1f} s real; {wall / window:.1f} windows)",
        f"<= {MAX_DESTROY_RATIO}x",
        ratio <= MAX_DESTROY_RATIO,
    )
    per_kind = ", ".join(f"{kind} {count / n:.3f}" for kind, count in sorted(kinds.items()))
    result.add("requests per VM", f"{total / n:.3f} ({total} requests: {per_kind} per VM)")
    result.add(
        "429s",
        str(report.summary.requests.rate_limited),
        "0",
        report.summary.requests.rate_limited == 0,
    )
    noop = again.summary.requests.total
    result.add(
        f"no-op destroy of the same {n:,} VMs",
        f"{noop} requests ({noop / n:.3f} per VM; "
        f"{', '.join(f'{k} {c}' for k, c in sorted(again_kinds.items()))}), {again_wall:.1f} s",
    )
    result.notes.append(
        f"readings found by the destroy: "
        f"{', '.join(f'{r.name} {r.value}' for r in report.readings) or 'none'}; "
        f"building the fleet took {built_wall:.1f} s ({built.summary.requests.total} "
        "requests, waited until every VM was started)."
    )
    result.data = {
        "n": n,
        "others": others,
        "wall": wall,
        "floor": floor,
        "ratio": ratio,
        "requests": total,
        "requests_per_vm": total / n,
        "by_kind": dict(kinds),
        "noop_requests": noop,
        "noop_by_kind": dict(again_kinds),
        "rate_limited": report.summary.requests.rate_limited,
    }
    return result
