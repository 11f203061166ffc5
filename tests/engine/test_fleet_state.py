"""One truth per fleet: what the API holds decides, never a stale journal or a file name.

Each test is a case found by trying the tools as a user (or an attacker) would, judged
only by what the simulator holds afterwards. Every one runs against the default
simulator (annotations copied) and the pessimistic one (annotations not copied,
hostnames taken only with the VM record, duplicates accepted, failed builds leave
their VM).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import stamina

from orchestrator import load_spec
from orchestrator.engine import Orchestrator, ProvisionEvent
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from orchestrator.engine.state.fleet_lock import FleetLock
from orchestrator.errors import JournalError
from orchestrator.simulator import FaultConfig, RunningSimulator, SimulatorConfig, run_simulator
from orchestrator.spec import Spec, parse_spec

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio

#: POSTs whose connection breaks, or that get a 5xx, after the server acted (the fault
#: matrix's faults that test exactly-once): every build below is sent through them
POST_FAULTS = FaultConfig(
    reset_after_rate=0.3, error_5xx_after_rate=0.2, methods=frozenset({"POST"})
)
READINGS = {
    "default": lambda **kw: SimulatorConfig(time_scale=SCALE, seed=7, **kw),
    "pessimistic": lambda **kw: SimulatorConfig.pessimistic(time_scale=SCALE, seed=7, **kw),
    "pessimistic-faulted": lambda **kw: SimulatorConfig.pessimistic(
        time_scale=SCALE, seed=7, **{"faults": POST_FAULTS, **kw}
    ),
}


@pytest.fixture(autouse=True)
def _instant_get_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=10):
        yield


@pytest.fixture(params=sorted(READINGS))
def reading(request: pytest.FixtureRequest) -> Any:
    return READINGS[request.param]


def live(sim: RunningSimulator) -> dict[str, list[dict[str, Any]]]:
    """hostname -> every VM the simulator holds with it (the trash included)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for vm in sim.state.snapshot()["virtual_machines"]:
        out.setdefault(vm["hostname"], []).append(vm)
    return out


def standing(sim: RunningSimulator) -> set[str]:
    """Hostnames with a VM that is not in the trash."""
    return {h for h, found in live(sim).items() if any(not vm["in_trash"] for vm in found)}


def another_tools_vm(sim: RunningSimulator, hostname: str, fleet: str | None = None) -> str:
    vm_id = sim.state.add_existing_vm("acme", hostname)
    if fleet is not None:
        record = sim.state.vm_by_id(vm_id)
        assert record is not None
        record.annotations = [
            {"key": VM_KEY, "value": hostname},
            {"key": FLEET_KEY, "value": fleet},
        ]
    return vm_id


async def test_destroy_never_deletes_what_it_refused_however_often_it_runs(
    tmp_path: Path, reading: Any
) -> None:
    """web-04 (no annotations) and web-05 (another fleet's): refused by the first destroy,
    and by the second, and with --purge: a destroy's own rows are never proof of ownership."""
    requests = vms(5, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests[:3], journal=journal)
        another_tools_vm(sim, "web-004")
        another_tools_vm(sim, "web-005", fleet="other")
        reports = []
        for purge in (False, False, True, True):
            async with Orchestrator(settings_for(sim)) as orch:
                reports.append(await orch.destroy(requests, journal=journal, purge=purge))
        left = standing(sim)
    assert built.summary.succeeded == 3
    for report in reports:
        by_key = {vm.key: vm for vm in report.vms}
        assert (by_key["web-004"].outcome, by_key["web-004"].reason) == ("failed", "not_ours")
        assert (by_key["web-005"].outcome, by_key["web-005"].reason) == ("failed", "not_ours")
    assert left == {"web-004", "web-005"}


async def test_vms_that_existed_before_the_fleet_are_never_adopted_or_deleted(
    tmp_path: Path, reading: Any
) -> None:
    """Another team's web-001 and web-002 exist; our spec lists web-001..004."""
    requests = vms(4, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(reading()) as sim:
        theirs = {another_tools_vm(sim, "web-001"), another_tools_vm(sim, "web-002")}
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(requests, journal=journal)
            again = await orch.run(requests, journal=journal)
            gone = await orch.destroy(requests, journal=journal, purge=True)
        left = live(sim)
    for report in (built, again):
        by_key = {vm.key: vm for vm in report.vms}
        for key in ("web-001", "web-002"):
            assert by_key[key].outcome in ("skipped", "failed")
            assert by_key[key].reason in ("not_ours", "hostname_taken")
    by_key = {vm.key: vm for vm in gone.vms}
    assert by_key["web-001"].reason == by_key["web-002"].reason == "not_ours"
    assert {vm["id"] for h in ("web-001", "web-002") for vm in left[h]} == theirs
    assert not any(vm["in_trash"] for h in ("web-001", "web-002") for vm in left[h])
    assert "web-003" not in left
    assert "web-004" not in left


async def spec_at(path: Path) -> Spec:
    return await anyio.to_thread.run_sync(load_spec, path)


async def spec_file(folder: Path, package: str, hostnames: str, fleet: str | None = None) -> Path:
    return await anyio.to_thread.run_sync(_spec_file, folder, package, hostnames, fleet)


def _spec_file(folder: Path, package: str, hostnames: str, fleet: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "web.toml"
    named = f'fleet = "{fleet}"\n' if fleet else ""
    path.write_text(
        f"{named}[defaults]\norganization = 'acme'\ndata_center = 'uk-lon-01'\n"
        f"package = '{package}'\ndisk_template = 'templates/ubuntu-22-04'\n"
        f"[[vms]]\nhostname = '{hostnames}'\ncount = 2\nstart = 1\n"
    )
    return path


async def test_two_specs_of_the_same_file_name_never_touch_each_others_vms(
    tmp_path: Path, reading: Any
) -> None:
    """alice/web.toml and bob/web.toml, one organization, overlapping hostnames: bob's run
    and destroy leave alice's VMs alone, whether or not the API copies annotations."""
    alice = await spec_at(await spec_file(tmp_path / "alice", "rock-1", "app-{index}"))
    bob = await spec_at(await spec_file(tmp_path / "bob", "rock-3", "app-{index}"))
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(alice, journal=tmp_path / "alice" / "j")
        alices = {vm.virtual_machine.id for vm in built.vms if vm.virtual_machine}
        async with Orchestrator(settings_for(sim)) as orch:
            bobs_run = await orch.run(bob, journal=tmp_path / "bob" / "j")
            bobs_destroy = await orch.destroy(bob, journal=tmp_path / "bob" / "j", purge=True)
        left = {vm["id"] for found in live(sim).values() for vm in found if not vm["in_trash"]}
    assert built.summary.succeeded == 2
    assert {vm.outcome for vm in bobs_run.vms} <= {"skipped", "failed"}
    assert {vm.reason for vm in bobs_destroy.vms} == {"not_ours"}
    assert alices <= left


async def test_specs_parsed_from_text_are_fleets_of_their_own(reading: Any) -> None:
    """Two library specs from text, no journal: neither deletes the other's VMs."""
    text = (
        "[defaults]\norganization = 'acme'\ndata_center = 'uk-lon-01'\npackage = 'rock-1'\n"
        "disk_template = 'templates/ubuntu-22-04'\n[[vms]]\nhostname = 'lib-1'\n"
    )
    first = parse_spec(text, source="<text>", fmt="toml")
    second = parse_spec(text, source="<text>", fmt="toml")
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(first)
            gone = await orch.destroy(second)
        left = standing(sim)
    assert built.summary.succeeded == 1
    assert built.ownership is not None
    assert built.ownership.fleet != "default"
    assert {vm.reason for vm in gone.vms} == {"not_ours"}
    assert left == {"lib-1"}


async def test_a_named_fleet_survives_renaming_its_spec_and_losing_its_journal(
    tmp_path: Path,
) -> None:
    """fleet = "prod": renamed spec file, new journal: its VMs are still its own (the API
    keeps annotations), skipped by run and deleted by destroy."""
    path = await spec_file(tmp_path / "a", "rock-1", "prod-{index}", fleet="prod")
    async with run_simulator(READINGS["default"]()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(await spec_at(path), journal=tmp_path / "a" / "j")
        renamed = await anyio.Path(path).rename(tmp_path / "a" / "renamed.toml")
        spec = await spec_at(Path(renamed))
        async with Orchestrator(settings_for(sim)) as orch:
            again = await orch.run(spec, journal=tmp_path / "new.journal")
            gone = await orch.destroy(spec, journal=tmp_path / "other.journal")
        left = standing(sim)
    assert built.summary.succeeded == 2
    assert {(vm.outcome, vm.reason) for vm in again.vms} == {("skipped", "already_exists")}
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "deleted")}
    assert left == set()


async def test_a_journal_of_another_fleet_is_refused(tmp_path: Path) -> None:
    prod = await spec_at(await spec_file(tmp_path / "a", "rock-1", "prod-{index}", "prod"))
    staging = await spec_at(await spec_file(tmp_path / "b", "rock-1", "prod-{index}", "staging"))
    journal = tmp_path / "j"
    async with run_simulator(READINGS["default"]()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(prod, journal=journal)
            with pytest.raises(JournalError, match="fleet 'prod', not 'staging'"):
                await orch.run(staging, journal=journal)
            with pytest.raises(JournalError, match="fleet 'prod', not 'staging'"):
                await orch.destroy(staging, journal=journal)
        left = standing(sim)
    assert left == {"prod-1", "prod-2"}


async def test_after_destroy_purge_the_same_journal_builds_the_fleet_again(
    tmp_path: Path, reading: Any
) -> None:
    requests = vms(3)
    journal = tmp_path / "j"
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal)
            await orch.destroy(requests, journal=journal, purge=True)
            assert standing(sim) == set()
            again = await orch.run(requests, journal=journal)
        left = standing(sim)
    assert {vm.outcome for vm in again.vms} == {"succeeded"}
    assert left == {r.hostname for r in requests}


async def test_after_destroy_without_purge_the_rerun_names_the_trash(
    tmp_path: Path, reading: Any
) -> None:
    requests = vms(2)
    journal = tmp_path / "j"
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal)
            await orch.destroy(requests, journal=journal)
            again = await orch.run(requests, journal=journal)
        left = standing(sim)
    for vm in again.vms:
        assert (vm.outcome, vm.reason) == ("failed", "held_by_trash")
        assert vm.error is not None
        assert "destroy --purge" in (vm.error.description or "")
    assert left == set()


async def test_a_healthy_vm_is_never_failed_for_an_old_failed_row(
    tmp_path: Path, reading: Any
) -> None:
    """Run (some builds fail) → rebuilt by another run of the same fleet → the next plain
    run on the first journal sees them healthy: skipped, exit 0, never failed forever."""
    requests = vms(6)
    first, second = tmp_path / "first.journal", tmp_path / "second.journal"
    async with run_simulator(reading(faults=FaultConfig(build_fail_rate=0.5))) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            one = await orch.run(requests, journal=first, fleet="web")
        failed = {vm.key for vm in one.vms if vm.outcome == "failed"}
        assert failed
        sim.config.faults = FaultConfig()
        # the failed builds' VMs (if the reading leaves them) are deleted by hand
        for vm in sim.state.snapshot()["virtual_machines"]:
            if vm["hostname"] in failed:
                sim.state.trash_vm(vm["id"])
                record = sim.state.vm_by_id(vm["id"])
                assert record is not None
                sim.state.purge_vm(record, sim.state.now())
        sim.state.advance(sim.state.now() + 3600)
        async with Orchestrator(settings_for(sim)) as orch:
            two = await orch.run(requests, journal=second, fleet="web", only_keys=failed)
            three = await orch.run(requests, journal=first, fleet="web")
    assert {vm.outcome for vm in two.vms if vm.key in failed} == {"succeeded"}
    assert {vm.outcome for vm in three.vms} == {"skipped"}
    assert three.summary.failed == 0


async def test_destroy_follows_builds_left_in_flight_and_deletes_their_vms(
    tmp_path: Path, reading: Any
) -> None:
    """A run stopped with builds in flight (its deadline): destroy waits for their VMs and
    deletes them; nothing of the fleet is left, and nothing is reported absent early."""
    requests = vms(4)
    journal = tmp_path / "j"
    async with run_simulator(reading()) as sim:
        holder: list[Orchestrator] = []
        submitted: set[str] = set()

        def stop_when_all_sent(event: ProvisionEvent) -> None:
            if event.kind == "submitted":
                submitted.add(event.key)
                if len(submitted) == len(requests):
                    holder[0].request_stop("deadline")

        async with Orchestrator(settings_for(sim), hooks=[stop_when_all_sent]) as orch:
            holder.append(orch)
            stopped = await orch.run(requests, journal=journal)
        async with Orchestrator(settings_for(sim)) as orch:
            gone = await orch.destroy(requests, journal=journal, purge=True)
            twice = await orch.destroy(requests, journal=journal, purge=True)
        left = live(sim)
    assert {vm.reason for vm in stopped.vms} == {"build_in_progress"}
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "purged")}
    assert {(vm.outcome, vm.reason) for vm in twice.vms} == {("skipped", "absent")}
    assert left == {}


async def test_run_and_destroy_share_one_journal_each_for_what_it_means(
    tmp_path: Path, reading: Any
) -> None:
    """The run's journal given to destroy deletes the fleet (not "all succeeded, nothing
    done"); the destroy's journal given to run builds it again."""
    requests = vms(3)
    journal = tmp_path / "j"
    async with run_simulator(reading()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal)
            gone = await orch.destroy(requests, journal=journal, purge=True)
            after_destroy = standing(sim)
            built = await orch.run(requests, journal=journal)
        left = standing(sim)
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "purged")}
    assert after_destroy == set()
    assert {vm.outcome for vm in built.vms} == {"succeeded"}
    assert left == {r.hostname for r in requests}


async def test_two_orchestrators_started_together_never_build_twice(reading: Any) -> None:
    """Same spec, two Orchestrators of one process started at once, on an API that accepts
    duplicate hostnames: one of them refuses; no hostname is built twice."""
    requests = vms(20)
    config = dataclasses.replace(reading(), duplicate_hostnames="accept")
    outcomes: list[str] = []
    async with run_simulator(config) as sim:

        async def one() -> None:
            async with Orchestrator(settings_for(sim)) as orch:
                try:
                    await orch.run(requests)
                    outcomes.append("ran")
                except RuntimeError:
                    outcomes.append("refused")

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
        snapshot = sim.state.snapshot()
        created = [vm["hostname"] for vm in snapshot["virtual_machines"]]
    if config.faults == POST_FAULTS:
        assert sum(snapshot["faults"].values()) > 0, "the faults never struck"
    assert sorted(outcomes) == ["ran", "refused"]
    assert len(created) == len(set(created)) == 20


async def test_a_fleet_runs_once_at_a_time_whichever_journal_each_run_keeps(
    tmp_path: Path,
) -> None:
    """A run of fleet "web" holds the fleet's machine-wide lock (here taken as another
    process would): a run or destroy of "web" with another journal is refused before
    anything is sent; another fleet is not held up."""
    requests = vms(2)
    async with run_simulator(READINGS["default"]()) as sim:
        settings = settings_for(sim)
        api = settings.katapult.api_url
        holder = {"pid": 4242, "run_id": "nightly", "started_at": "2026-12-07T02:00:00"}
        lock = await anyio.to_thread.run_sync(FleetLock.acquire, api, {"acme"}, "web", holder)
        try:
            async with Orchestrator(settings) as orch:
                with pytest.raises(JournalError, match=r"fleet 'web' is being run.*pid 4242"):
                    await orch.run(requests, journal=tmp_path / "a", fleet="web")
                with pytest.raises(JournalError, match="fleet 'web' is being run"):
                    await orch.destroy(requests, fleet="web")
                other = await orch.run(requests, journal=tmp_path / "b", fleet="db")
        finally:
            lock.release()
        created = [vm["hostname"] for vm in sim.state.snapshot()["virtual_machines"]]
    assert other.summary.succeeded == 2
    assert sorted(created) == ["vm-001", "vm-002"]  # built once, by fleet "db" alone


async def test_two_unnamed_specs_never_share_a_journal(tmp_path: Path) -> None:
    """alice.toml and bob.toml (unnamed) in one folder, one journal: bob's run and destroy
    are refused (bob would take alice's identity); --fleet with alice's identity (a rename)
    is accepted."""
    alice = await spec_at(await spec_file(tmp_path / "a", "rock-1", "app-{index}"))
    bob = dataclasses.replace(
        await spec_at(await spec_file(tmp_path / "b", "rock-3", "app-{index}")),
        path=str(tmp_path / "a" / "bob.toml"),
    )
    journal = tmp_path / "a" / "report.json.journal"
    async with run_simulator(READINGS["default"]()) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            built = await orch.run(alice, journal=journal)
            with pytest.raises(JournalError, match="made from spec 'web', not 'bob'"):
                await orch.run(bob, journal=journal)
            with pytest.raises(JournalError, match="made from spec 'web', not 'bob'"):
                await orch.destroy(bob, journal=journal)
            assert built.ownership is not None
            renamed = await orch.run(bob, journal=journal, fleet=built.ownership.fleet)
        left = standing(sim)
    assert {(vm.outcome, vm.reason) for vm in renamed.vms} == {("skipped", "already_exists")}
    assert left == {"app-1", "app-2"}
