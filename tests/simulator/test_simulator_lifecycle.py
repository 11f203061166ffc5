"""Builds, tasks and VMs move through their recorded life cycles in simulated time."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from orchestrator.simulator import (
    FaultConfig,
    ScaledClock,
    SimulatorConfig,
    SimulatorState,
    run_simulator,
)

from ._helpers import Api, FakeClock, build_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


async def poll(api: Api, build_id: str, task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    build = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    task = await api.get("tasks/_", **{"task[id]": task_id})
    return build.json["virtual_machine_build"], task.json["task"]


async def test_successful_build_life_cycle(api: Api, clock: FakeClock) -> None:
    """pending -> building -> building with a stopped VM -> complete/starting -> started."""
    created = (await api.post(BUILD, build_body("life"))).json
    build_id, task_id = created["virtual_machine_build"]["id"], created["task"]["id"]
    fqdn = "life.acme.katapult.cloud"
    seen = []
    progress = []
    for step in (0.5, 8.0, 10.0, 10.0, 12.0, 1.0, 4.0):
        build, task = await poll(api, build_id, task_id)
        vm = build["virtual_machine"]
        by_fqdn = await api.get("virtual_machines/_", **{"virtual_machine[fqdn]": fqdn})
        assert (by_fqdn.status == 200) == (vm is not None)
        seen.append((build["state"], task["status"], vm and vm["state"]))
        progress.append(task["progress"])
        clock.advance(step)
    # polled at +0, +0.5, +8.5, +18.5, +28.5, +40.5, +41.5 simulated seconds of a 40 s build
    assert seen == [
        ("pending", "pending", None),
        ("pending", "pending", None),
        ("building", "running", None),
        ("building", "running", "stopped"),
        ("building", "running", "stopped"),
        ("complete", "completed", "starting"),
        ("complete", "completed", "starting"),
    ]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] == 100
    build, task = await poll(api, build_id, task_id)
    assert build["virtual_machine"]["state"] == "started"
    assert task["started_at"] <= task["finished_at"]
    assert task["finished_at"] - task["created_at"] == 40


async def test_vm_is_counted_from_the_post_and_visible_from_its_build(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """/_simulator/state counts the VM at once; the API shows it once the build has it."""
    created = (await api.post(BUILD, build_body("early"))).json
    [entry] = state.snapshot()["virtual_machines"]
    assert entry["hostname"] == "early"
    assert entry["build_id"] == created["virtual_machine_build"]["id"]
    assert entry["organization"] == "acme"
    assert entry["visible"] is False
    assert (await api.get(f"virtual_machines/{entry['id']}")).status == 404
    listing = await api.get(
        "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme"}
    )
    assert listing.json["virtual_machines"] == []
    clock.advance(20)
    assert (await api.get(f"virtual_machines/{entry['id']}")).status == 200
    listing = await api.get(
        "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme"}
    )
    assert [vm["id"] for vm in listing.json["virtual_machines"]] == [entry["id"]]
    assert state.snapshot()["virtual_machines"][0]["visible"] is True


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, faults=FaultConfig(build_fail_rate=1.0))]
)
async def test_failed_build(api: Api, clock: FakeClock, state: SimulatorState) -> None:
    """A failing build ends with task and build failed, no VM, and leaves the VM count."""
    created = (await api.post(BUILD, build_body("doomed"))).json
    ids = created["virtual_machine_build"]["id"], created["task"]["id"]
    clock.advance(10)
    build, task = await poll(api, *ids)
    assert (build["state"], task["status"]) == ("building", "running")
    clock.advance(10)
    build, task = await poll(api, *ids)
    assert (build["state"], task["status"], build["virtual_machine"]) == ("failed", "failed", None)
    assert task["finished_at"] is not None
    clock.advance(100)
    build, _ = await poll(api, *ids)
    assert build["state"] == "failed"
    snapshot = state.snapshot()
    assert snapshot["virtual_machines"] == []
    assert [b["build_state"] for b in snapshot["failed_builds"]] == ["failed"]


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, faults=FaultConfig(build_hang_rate=1.0))]
)
async def test_hanging_build(api: Api, clock: FakeClock) -> None:
    """A hanging build gets its VM and then stays building forever."""
    created = (await api.post(BUILD, build_body("stuck"))).json
    ids = created["virtual_machine_build"]["id"], created["task"]["id"]
    clock.advance(3600)
    build, task = await poll(api, *ids)
    assert (build["state"], task["status"]) == ("building", "running")
    assert build["virtual_machine"]["state"] == "stopped"
    assert task["finished_at"] is None
    assert task["progress"] < 100


@pytest.mark.parametrize("hostname", [None, ""])
async def test_server_picks_a_hostname_when_none_is_given(
    api: Api, clock: FakeClock, hostname: str | None
) -> None:
    """Without a hostname the server picks a random valid one and answers it."""
    body = build_body(None)
    if hostname is not None:
        body["hostname"] = hostname
    first = (await api.post(BUILD, body)).json["hostname"]
    second = (await api.post(BUILD, body)).json["hostname"]
    assert first != second
    assert LABEL.match(first)
    assert LABEL.match(second)
    clock.advance(60)
    reply = await api.get(
        "virtual_machines/_", **{"virtual_machine[fqdn]": f"{first}.acme.katapult.cloud"}
    )
    assert reply.json["virtual_machine"]["hostname"] == first


async def test_hostnames_are_lower_cased(api: Api) -> None:
    """The server lower-cases the hostname it was given."""
    assert (await api.post(BUILD, build_body("Web-UPPER"))).json["hostname"] == "web-upper"


async def test_vm_list_pagination(api: Api, clock: FakeClock, state: SimulatorState) -> None:
    """Pages slice the list in creation order; the last page is short, past it is empty."""
    for n in range(65):
        state.add_existing_vm("acme", f"vm-{n:03d}")
    pages = []
    for page in (1, 2, 3, 4):
        reply = await api.get(
            "organizations/_/virtual_machines",
            **{"organization[sub_domain]": "acme", "page": str(page)},
        )
        pages.append(reply.json)
    assert [len(p["virtual_machines"]) for p in pages] == [30, 30, 5, 0]
    assert pages[0]["pagination"] == {
        "current_page": 1,
        "total_pages": 3,
        "total": 65,
        "per_page": 30,
        "large_set": False,
    }
    names = [vm["hostname"] for p in pages for vm in p["virtual_machines"]]
    assert names == [f"vm-{n:03d}" for n in range(65)]


@pytest.mark.parametrize("config", [SimulatorConfig(large_set_threshold=5)])
async def test_large_set_has_no_totals(api: Api, state: SimulatorState) -> None:
    """Past the large-set threshold, large_set is true and the totals are null."""
    for n in range(6):
        state.add_existing_vm("acme", f"big-{n}")
    reply = await api.get(
        "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme", "per_page": "4"}
    )
    assert reply.json["pagination"] == {
        "current_page": 1,
        "total_pages": None,
        "total": None,
        "per_page": 4,
        "large_set": True,
    }


async def test_path_forms(api: Api, state: SimulatorState) -> None:
    """Ids work in the path; placeholders take the lookup from the args; args beat the path."""
    task_id = (await api.post(BUILD, build_body("paths"))).json["task"]["id"]
    org_id = state.catalogue.org_by("sub_domain", "acme").id  # type: ignore[union-attr]
    for path, params in [
        (f"tasks/{task_id}", {}),
        ("tasks/_", {"task[id]": task_id}),
        ("tasks/task", {"task[id]": task_id}),
        ("tasks/task_wrong", {"task[id]": task_id}),
    ]:
        reply = await api.get(path, **params)
        assert reply.status == 200, (path, reply.raw)
        assert reply.json["task"]["id"] == task_id
    assert (await api.get(f"organizations/{org_id}")).json["organization"]["sub_domain"] == "acme"
    reply = await api.get(f"organizations/{org_id}/virtual_machines")
    assert reply.status == 200


async def test_post_args_merge_body_over_query(api: Api) -> None:
    """Query args of a POST count, and the JSON body wins over them."""
    body = build_body("merged")
    del body["organization"]
    reply = await api.post(BUILD, body, **{"organization[sub_domain]": "acme"})
    assert reply.status == 201
    reply = await api.post(
        BUILD, build_body("merged-2"), **{"organization[sub_domain]": "frozen", "hostname": "q"}
    )
    assert reply.status == 201
    assert reply.json["hostname"] == "merged-2"


async def test_zone_and_network_are_honoured(api: Api, clock: FakeClock) -> None:
    """A zone alone places the VM there; a given network must match its data center."""
    body = build_body("in-ams", data_center=None, zone={"permalink": "ams-zone-1"})
    body["network"] = {"permalink": "nl-ams-01-public"}
    assert (await api.post(BUILD, body)).status == 201
    clock.advance(60)
    vm = (
        await api.get(
            "virtual_machines/_", **{"virtual_machine[fqdn]": "in-ams.acme.katapult.cloud"}
        )
    ).json["virtual_machine"]
    assert vm["zone"]["permalink"] == "ams-zone-1"
    assert vm["ip_addresses"][0]["network"]["permalink"] == "nl-ams-01-public"


def test_build_durations_are_drawn_per_build_within_the_spread() -> None:
    """Each build draws its duration uniformly within build_seconds * (1 +/- spread)."""
    clock = FakeClock()
    config = SimulatorConfig(build_seconds=40.0, build_spread=0.25, seed=3)
    state = SimulatorState(config, clock=clock)
    org = state.catalogue.org_by("sub_domain", "acme")
    zone = state.catalogue.zones[0]
    assert org is not None
    durations = []
    for n in range(200):
        build = state.create_build(
            org=org,
            zone=zone,
            network=state.catalogue.default_network(zone.data_center),
            package=state.catalogue.packages[0],
            cpu_cores=None,
            memory_in_gb=None,
            hostname=f"d-{n}",
            name=None,
            description=None,
            tags=[],
            annotations=[],
            spec_xml=lambda h: h,
            now=clock(),
        )
        durations.append(build.duration)
    assert all(30.0 <= d <= 50.0 for d in durations)
    assert len(set(durations)) == 200
    assert min(durations) < 33
    assert max(durations) > 47


def test_ten_thousand_builds_are_computed_lazily() -> None:
    """10,000 builds need no background work: state is computed when asked."""
    clock = FakeClock()
    state = SimulatorState(SimulatorConfig(build_spread=0.0), clock=clock)
    org = state.catalogue.org_by("sub_domain", "acme")
    assert org is not None
    zone = state.catalogue.zones[0]
    network = state.catalogue.default_network(zone.data_center)
    for n in range(10_000):
        state.create_build(
            org=org,
            zone=zone,
            network=network,
            package=state.catalogue.packages[0],
            cpu_cores=None,
            memory_in_gb=None,
            hostname=f"n-{n}",
            name=None,
            description=None,
            tags=[],
            annotations=[],
            spec_xml=lambda h: h,
            now=clock(),
        )
    assert state.vms_of(org) == []
    clock.advance(41)
    state.advance()
    assert len(state.vms_of(org)) == 10_000
    assert state.vm_by_fqdn("n-9999.acme.katapult.cloud") is not None
    assert len(state.snapshot()["virtual_machines"]) == 10_000


def test_scaled_clock_runs_time_scale_times_faster() -> None:
    """Simulated time is the epoch plus real elapsed time times the scale."""
    real = [100.0]
    clock = ScaledClock(50.0, epoch=1000.0, monotonic=lambda: real[0])
    assert clock() == 1000.0
    real[0] += 0.5
    assert clock() == 1025.0
    assert clock.time_scale == 50.0


async def test_time_scale_makes_builds_finish_fast(session: aiohttp.ClientSession) -> None:
    """With a huge time scale a 40 s build is complete by the next request."""
    async with run_simulator(SimulatorConfig(time_scale=1e6)) as sim:
        api = Api(session, sim.url)
        build_id = (await api.post(BUILD, build_body("fast"))).json["virtual_machine_build"]["id"]
        reply = await api.get(f"virtual_machines/builds/{build_id}")
        assert reply.json["virtual_machine_build"]["state"] == "complete"


async def test_vm_list_filters_by_annotations(api: Api, clock: FakeClock) -> None:
    """Annotations given to a build stick to its VM and filter the VM list."""
    tagged = build_body("tagged", annotations=[{"key": "run", "value": "r1"}])
    assert (await api.post(BUILD, tagged)).status == 201
    assert (await api.post(BUILD, build_body("plain"))).status == 201
    clock.advance(60)
    for params, expected in [
        ({"annotations[][key]": "run", "annotations[][value]": "r1"}, ["tagged"]),
        ({"annotations[][key]": "run"}, ["tagged"]),
        ({"annotations[][key]": "run", "annotations[][value]": "r2"}, []),
        ({}, ["tagged", "plain"]),
    ]:
        reply = await api.get(
            "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme", **params}
        )
        assert [vm["hostname"] for vm in reply.json["virtual_machines"]] == expected
    vm = await api.get(
        "virtual_machines/_", **{"virtual_machine[fqdn]": "tagged.acme.katapult.cloud"}
    )
    assert vm.json["annotations"] == [{"key": "run", "value": "r1"}]
