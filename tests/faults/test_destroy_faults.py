"""The fault matrix, for ``destroy`` of a fleet whose VMs are running (issue 23).

Each case builds a fleet with its faults off and waits until every VM is
``started``, then turns one fault kind on and destroys the fleet: a stop per
VM, its task waited for, the DELETE, the polls - with the simulator playing
both readings of a DELETE of a running VM (``delete_running`` accepted or
refused) on the default API and the pessimistic one. Checked against what the
simulator really did (``snapshot["vm_actions"]``: every stop and DELETE that
reached its VM, with the fault that struck its answer):

* never a VM touched (stopped or deleted) that is not the fleet's: neither
  another fleet's VM holding a hostname of the spec, nor any bystander of the
  organization;
* every VM of the spec in the report exactly once; each of the fleet's VMs
  ``deleted`` exactly when the server has it in the trash, or ``failed`` with
  an error that says why;
* no stop or DELETE repeated blindly: a VM's second stop (or DELETE) follows
  one whose answer was lost after it acted, or a DELETE the API refused;
  every DELETE is of a stopped VM (so ``delete_running="refuse"`` never
  refuses one), and none is sent to a VM already in the trash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import stamina

from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine.state.journal import read_journal
from orchestrator.report import Report
from orchestrator.simulator import FaultConfig, run_simulator
from tests.engine.test_fleet_state import another_tools_vm

from ._harness import APIS, settings_for, sim_config
from ._invariants import spec_requests, write_and_check
from .test_fault_matrix import CASES, Case

pytestmark = pytest.mark.anyio

#: the fleet's VMs; two more hostnames of the spec are held by VMs that are not its own
N = 12
FLEET = "web"
#: the last destroy's events (for the messages of failed assertions)
EVENTS: list[ProvisionEvent] = []
#: VMs of the organization outside the spec (never to be touched)
BYSTANDERS = 30

DESTROY_CASES: dict[str, Case] = {
    **CASES,
    "5xx-after-acting": Case(FaultConfig(error_5xx_after_rate=0.3), ("error_5xx_after",)),
}


@pytest.fixture(autouse=True)
def _instant_get_retries() -> Iterator[None]:
    """GET retries happen, but without waiting (stamina's testing mode)."""
    with stamina.set_testing(True, attempts=10):
        yield


def check_no_blind_repeat(actions: Sequence[Mapping[str, Any]]) -> None:
    """Per VM, in order: a stop or DELETE after the first follows a lost answer (of a stop,
    or of a DELETE) or a refused DELETE; every DELETE is of a stopped VM."""
    by_vm: dict[str, list[Mapping[str, Any]]] = {}
    for action in actions:
        by_vm.setdefault(action["vm_id"], []).append(action)
    for vm_id, done in by_vm.items():
        for i, action in enumerate(done):
            before = done[:i]
            if action["action"] == "delete":
                assert action["vm_state"] == "stopped", f"{vm_id}: DELETE while {action}"
            same = [a for a in before if a["action"] == action["action"]]
            if not same:
                continue
            last = same[-1]
            refused = any(a["action"] == "delete" and a["status"] >= 400 for a in before)
            assert last["lost"] is not None or last["status"] >= 400 or refused, (
                f"{vm_id}: {action['action']} sent again after an answer that was not lost: {done}"
            )


def check_delete_rows(journal: Path, report: Report) -> None:
    """The journal's delete rows agree with the report: every VM a DELETE was sent for
    has its row, finished with the report's outcome; none left intent or uncertain."""
    rows = {e.key: e for e in read_journal(journal).deletes}
    for vm in report.vms:
        row = rows.get(vm.key)
        if vm.reason == "deleted":
            assert row is not None, f"{vm.key} deleted, but no delete row"
        if row is None:
            continue
        assert row.state not in ("intent", "uncertain"), f"{vm.key} left {row.state}"
        if row.state == "finished":
            assert row.result is not None
            assert row.result.outcome == vm.outcome, f"{vm.key}: journal {row.result.outcome}"


def check_destroy(
    report: Report,
    keys: Sequence[str],
    snapshot: Mapping[str, Any],
    *,
    ours: Mapping[str, str],
    foreign: Mapping[str, str],
) -> None:
    """The invariants of the module's docstring, against the server's record."""
    seen = Counter(vm.key for vm in report.vms)
    assert set(seen) == set(keys), f"report keys differ: {set(seen) ^ set(keys)}"
    assert max(seen.values()) == 1, f"keys twice in the report: {seen.most_common(3)}"
    by_id = {vm["id"]: vm for vm in snapshot["virtual_machines"]}
    actions = snapshot["vm_actions"]
    touched = {a["vm_id"] for a in actions}
    assert touched <= set(ours.values()), f"touched VMs not ours: {touched - set(ours.values())}"
    for vm in snapshot["virtual_machines"]:
        if vm["id"] not in ours.values():
            assert not vm["in_trash"], f"{vm['hostname']} ({vm['id']}) is not ours, yet trashed"
    by_key = {vm.key: vm for vm in report.vms}
    for key in foreign:
        row = by_key[key]
        assert (row.outcome, row.category, row.reason) == ("failed", "conflict", "not_ours")
    for key, vm_id in ours.items():
        row, server = by_key[key], by_id[vm_id]
        if server["in_trash"]:
            assert (row.outcome, row.reason) == ("succeeded", "deleted"), f"{key}: {row}"
        else:
            assert row.outcome == "failed", f"{key} is not in the trash, yet {row.outcome}"
            assert row.error is not None
            assert row.error.description, f"{key} failed without saying why"
    check_no_blind_repeat(actions)


async def destroy_under(
    case: Case, api: str, delete_running: str, tmp_path: Path
) -> tuple[Report, dict[str, Any], dict[str, str], dict[str, str], Counter[str]]:
    """Build the fleet (no faults), wait until it runs, then destroy it under ``case``."""
    EVENTS.clear()
    built_requests = spec_requests(N)
    requests = spec_requests(N + 2)
    journal = tmp_path / "web.journal"
    config = sim_config(
        api=api,
        delete_running=delete_running,
        existing_vms=BYSTANDERS,
        vm_start_seconds=0.0,
        **dict(case.sim),
    )
    async with run_simulator(config) as sim:
        settings = settings_for(sim.url, sim.config.token, wait_until_started=True)
        async with Orchestrator(settings) as orch:
            built = await orch.run(built_requests, journal=journal, fleet=FLEET)
        assert {vm.outcome for vm in built.vms} == {"succeeded"}
        ours = {vm.key: vm.virtual_machine.id for vm in built.vms if vm.virtual_machine}
        assert len(ours) == N
        foreign = {
            requests[N].key: another_tools_vm(sim, requests[N].hostname, "another-fleet"),
            requests[N + 1].key: another_tools_vm(sim, requests[N + 1].hostname),
        }
        before = Counter(sim.state.snapshot()["faults"])
        sim.config.faults = case.faults
        settings = settings_for(sim.url, sim.config.token, **dict(case.engine))
        async with Orchestrator(settings, hooks=[EVENTS.append]) as orch:
            report = await orch.destroy(requests, journal=journal, fleet=FLEET)
        sim.config.faults = FaultConfig()
        snapshot = sim.state.snapshot()
    assert not report.interrupted, report.stopped_because
    await anyio.to_thread.run_sync(lambda: write_and_check(report, tmp_path))
    await anyio.to_thread.run_sync(lambda: check_delete_rows(journal, report))
    struck = Counter(snapshot["faults"])
    struck.subtract(before)
    return report, snapshot, ours, foreign, struck


@pytest.mark.parametrize("delete_running", ["accept", "refuse"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("case", DESTROY_CASES.values(), ids=DESTROY_CASES.keys())
async def test_destroying_running_vms_under_a_fault_touches_only_ours_once(
    case: Case, api: str, delete_running: str, tmp_path: Path
) -> None:
    """Each fault kind while a running fleet is stopped and deleted: only the fleet's VMs
    touched, each ends deleted or failed with a reason, no stop or DELETE blindly
    repeated, and the fault really struck the stops, DELETEs or polls."""
    report, snapshot, ours, foreign, struck = await destroy_under(
        case, api, delete_running, tmp_path
    )
    keys = [*ours, *foreign]
    check_destroy(report, keys, snapshot, ours=ours, foreign=foreign)
    for fault in case.struck:
        assert struck[fault] > 0, f"fault {fault} never struck during the destroy"
    if case.rate_limited:
        assert report.summary.requests.rate_limited > 0
    stopped = {a["vm_id"] for a in snapshot["vm_actions"] if a["action"] == "stop"}
    for key, vm_id in ours.items():
        if vm_id in stopped:
            continue
        # every VM ran: each was stopped, unless each of its stops was lost on the way
        row = next(vm for vm in report.vms if vm.key == key)
        assert row.error is not None, [(e.kind, e.message) for e in EVENTS if e.key == key]
        assert (row.outcome, row.error.code) == ("failed", "not_stopped")
    deleted = sum(1 for vm in report.vms if vm.reason == "deleted")
    assert deleted >= N - 2, f"only {deleted} of {N} deleted under {case.faults}"
    assert "delete_running" not in {r.name for r in report.readings}  # stopped first


def test_the_check_catches_a_blind_repeat() -> None:
    """The no-blind-repeat check fails on a second stop after a stop that was answered,
    and on a DELETE of a VM that was not stopped; it passes after a lost answer."""
    stop = {"vm_id": "vm_1", "action": "stop", "vm_state": "started", "status": 200}
    delete = {"vm_id": "vm_1", "action": "delete", "vm_state": "stopped", "status": 200}
    check_no_blind_repeat([{**stop, "lost": "reset_after"}, {**stop, "lost": None}, delete])
    with pytest.raises(AssertionError, match="sent again"):
        check_no_blind_repeat([{**stop, "lost": None}, {**stop, "lost": None}])
    with pytest.raises(AssertionError, match="DELETE while"):
        check_no_blind_repeat([{**delete, "vm_state": "started", "lost": None}])


@pytest.mark.parametrize("api", APIS)
async def test_stops_whose_answers_are_all_lost_are_each_sent_once(
    api: str, tmp_path: Path
) -> None:
    """Every stop acts, then its connection drops: a stop still pending shows the VM
    started, so it is looked at again a stop's time later, never sent again at once;
    each VM gets one stop, and is deleted once stopped."""
    case = Case(FaultConfig(reset_after_rate=1.0, methods=frozenset({"POST"})))
    report, snapshot, ours, foreign, _ = await destroy_under(case, api, "refuse", tmp_path)
    check_destroy(report, [*ours, *foreign], snapshot, ours=ours, foreign=foreign)
    stops = Counter(a["vm_id"] for a in snapshot["vm_actions"] if a["action"] == "stop")
    assert stops == Counter(ours.values())  # one each
    assert all(a["lost"] == "reset_after" for a in snapshot["vm_actions"] if a["action"] == "stop")
    assert {(vm.outcome, vm.reason) for vm in report.vms if vm.key in ours} == {
        ("succeeded", "deleted")
    }


async def test_stops_that_never_arrive_end_failed_with_a_reason(tmp_path: Path) -> None:
    """Every stop is dropped before it arrives: each VM is stopped again only once a
    stop's time showed it still running, four times, never deleted while it runs, and
    ends failed (``not_stopped``) saying why."""
    case = Case(FaultConfig(reset_before_rate=1.0, methods=frozenset({"POST"})))
    report, snapshot, ours, foreign, _ = await destroy_under(case, "default", "refuse", tmp_path)
    check_destroy(report, [*ours, *foreign], snapshot, ours=ours, foreign=foreign)
    assert snapshot["vm_actions"] == []  # nothing reached a VM: no stop, no DELETE
    for key in ours:
        row = next(vm for vm in report.vms if vm.key == key)
        assert row.error is not None
        assert (row.outcome, row.error.code) == ("failed", "not_stopped")
        assert row.error.description
        assert "still started after 4 stops" in row.error.description
    assert snapshot["faults"]["reset_before"] == 4 * N
