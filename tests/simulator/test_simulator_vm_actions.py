"""Stop, shutdown, delete to the trash, purge: life cycle, errors, faults and recorded shapes."""

from __future__ import annotations

from typing import Any

import aiohttp
import jsonschema
import pytest

from orchestrator.simulator import FaultConfig, RunningSimulator, SimulatorConfig, SimulatorState

from ._helpers import (
    Api,
    FakeClock,
    Reply,
    build_body,
    recorded,
    recorded_request,
    request_schema,
    response_schema,
    shape_diff,
)
from .test_simulator_errors import assert_error

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"
VM = "virtual_machines/virtual_machine"
TRASH = "trash_objects/trash_object"
MINIMAL = "vm-build-from-spec-minimal.yaml"


async def built_vm(api: Api, clock: FakeClock, hostname: str = "web-01") -> dict[str, Any]:
    """A VM built and started (the build's own view of it)."""
    created = (await api.post(BUILD, build_body(hostname))).json
    clock.advance(60)
    reply = await api.get(f"virtual_machines/builds/{created['virtual_machine_build']['id']}")
    return dict(reply.json["virtual_machine_build"]["virtual_machine"])


async def vm_state(api: Api, vm_id: str) -> str:
    reply = await api.get(VM, **{"virtual_machine[id]": vm_id})
    assert reply.status == 200, reply.raw
    return str(reply.json["virtual_machine"]["state"])


async def task_of(api: Api, task_id: str) -> dict[str, Any]:
    reply = await api.get(f"tasks/{task_id}")
    assert reply.status == 200, reply.raw
    return dict(reply.json["task"])


async def delete(api: Api, path: str, body: Any) -> Reply:
    return await api.request("DELETE", path, json_body=body)


def assert_shape(expected: Any, actual: Any) -> None:
    assert shape_diff(expected, actual) == []


# ------------------------------------------------------------------ life cycle


async def test_stop_delete_purge_life_cycle(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """stop -> stopped; delete -> trash (name held, 406); purge -> gone (404, name free)."""
    vm = await built_vm(api, clock)
    vm_id, fqdn = vm["id"], vm["fqdn"]
    assert await vm_state(api, vm_id) == "started"

    stop = await api.post(f"{VM}/stop", {"virtual_machine": {"id": vm_id}})
    assert stop.status == 200
    assert stop.json == {
        "task": {"id": stop.json["task"]["id"], "name": "Stop virtual machine", "status": "pending"}
    }
    task_id = stop.json["task"]["id"]
    seen = []
    for step in (10.0, 8.0, 5.0):
        seen.append(((await task_of(api, task_id))["status"], await vm_state(api, vm_id)))
        clock.advance(step)
    seen.append(((await task_of(api, task_id))["status"], await vm_state(api, vm_id)))
    # polled at +0, +10, +18 and +23 s of a 20 s stop task (pending for 17 s)
    assert seen == [
        ("pending", "started"),
        ("pending", "started"),
        ("running", "stopping"),
        ("completed", "stopped"),
    ]

    deleted = await delete(api, VM, {"virtual_machine": {"id": vm_id}})
    assert deleted.status == 200, deleted.raw
    trash = deleted.json["trash_object"]
    assert (trash["object_id"], trash["object_type"]) == (vm_id, "VirtualMachine")
    assert trash["keep_until"] == int(clock.now) + 48 * 3600
    assert deleted.json["virtual_machine"]["id"] == vm_id
    for params in ({"virtual_machine[id]": vm_id}, {"virtual_machine[fqdn]": fqdn}):
        detail = assert_error(await api.get(VM, **params), 406, "object_in_trash")
        assert detail == {"trash_object": trash}
    listing = await api.get(
        "organizations/_/virtual_machines", **{"organization[sub_domain]": "acme"}
    )
    assert listing.json["virtual_machines"] == []
    for params in ({"trash_object[id]": trash["id"]}, {"trash_object[object_id]": vm_id}):
        assert (await api.get(TRASH, **params)).json == {"trash_object": trash}
    binned = await api.get("organizations/_/trash_objects", **{"organization[sub_domain]": "acme"})
    assert binned.json["trash_objects"] == [trash]
    assert binned.json["pagination"]["total"] == 1
    taken = await api.post(BUILD, build_body("web-01"))
    assert assert_error(taken, 422, "validation_error")["errors"] == [
        "Hostname has already been taken"
    ]
    assert [vm["in_trash"] for vm in state.snapshot()["virtual_machines"]] == [True]

    purge = await delete(api, TRASH, {"trash_object": {"id": trash["id"]}})
    assert purge.status == 200, purge.raw
    purge_task = purge.json["task"]
    assert (purge_task["name"], purge_task["status"]) == ("Purge items from trash", "pending")
    assert (await api.get(TRASH, **{"trash_object[id]": trash["id"]})).status == 200
    clock.advance(2)
    assert (await task_of(api, purge_task["id"]))["status"] in ("pending", "running")
    assert_error(await api.get(VM, **{"virtual_machine[id]": vm_id}), 406, "object_in_trash")
    clock.advance(5)
    assert (await task_of(api, purge_task["id"]))["status"] == "completed"
    assert_error(
        await api.get(TRASH, **{"trash_object[id]": trash["id"]}), 404, "trash_object_not_found"
    )
    assert_error(
        await api.get(TRASH, **{"trash_object[object_id]": vm_id}), 404, "trash_object_not_found"
    )
    assert_error(
        await api.get(VM, **{"virtual_machine[id]": vm_id}), 404, "virtual_machine_not_found"
    )
    assert_error(
        await api.get(VM, **{"virtual_machine[fqdn]": fqdn}), 404, "virtual_machine_not_found"
    )
    again = await delete(api, TRASH, {"trash_object": {"id": trash["id"]}})
    assert_error(again, 404, "trash_object_not_found")
    gone = await delete(api, VM, {"virtual_machine": {"id": vm_id}})
    assert_error(gone, 404, "virtual_machine_not_found")
    binned = await api.get("organizations/_/trash_objects", **{"organization[sub_domain]": "acme"})
    assert binned.json["trash_objects"] == []

    rebuilt = await built_vm(api, clock)  # the hostname is free again
    snapshot = state.snapshot()
    assert [v["id"] for v in snapshot["purged_vms"]] == [vm_id]
    assert [v["id"] for v in snapshot["virtual_machines"]] == [rebuilt["id"]]
    assert snapshot["duplicates"] == []


async def test_shutdown_goes_through_shutting_down(api: Api, clock: FakeClock) -> None:
    """shutdown queues "Shutdown virtual machine"; the VM is shutting_down, then stopped."""
    vm_id = (await built_vm(api, clock))["id"]
    reply = await api.post(f"{VM}/shutdown", {"virtual_machine": {"id": vm_id}})
    assert reply.status == 200
    assert reply.json["task"]["name"] == "Shutdown virtual machine"
    clock.advance(18)
    assert await vm_state(api, vm_id) == "shutting_down"
    clock.advance(3)
    assert await vm_state(api, vm_id) == "stopped"
    assert (await task_of(api, reply.json["task"]["id"]))["status"] == "completed"


async def test_stopping_a_stopped_vm_keeps_it_stopped(api: Api, clock: FakeClock) -> None:
    """A second stop of a stopped VM queues a task; the VM stays stopped throughout."""
    vm_id = (await built_vm(api, clock))["id"]
    await api.post(f"{VM}/stop", {"virtual_machine": {"id": vm_id}})
    clock.advance(25)
    again = await api.post(f"{VM}/stop", {"virtual_machine": {"id": vm_id}})
    assert again.status == 200
    for _ in range(3):
        assert await vm_state(api, vm_id) == "stopped"
        clock.advance(9)


async def test_the_trash_purges_by_itself_after_48_hours(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """A VM left in the trash is purged at keep_until: then its hostname is free."""
    vm_id = (await built_vm(api, clock, "old"))["id"]
    trash = (await delete(api, VM, {"virtual_machine": {"id": vm_id}})).json["trash_object"]
    clock.now = trash["keep_until"] - 1
    assert_error(await api.get(VM, **{"virtual_machine[id]": vm_id}), 406, "object_in_trash")
    clock.advance(1)
    assert_error(
        await api.get(VM, **{"virtual_machine[id]": vm_id}), 404, "virtual_machine_not_found"
    )
    assert [v["id"] for v in state.snapshot()["purged_vms"]] == [vm_id]


async def test_a_running_vm_can_be_deleted_without_a_stop(api: Api, clock: FakeClock) -> None:
    """The schema documents no refusal for a running VM: it goes to the trash as it is."""
    vm_id = (await built_vm(api, clock))["id"]
    reply = await delete(api, VM, {"virtual_machine": {"id": vm_id}})
    assert reply.status == 200
    assert reply.json["virtual_machine"]["state"] == "started"


@pytest.mark.parametrize(
    "config",
    [
        SimulatorConfig(
            build_spread=0.0, failed_build_leaves_vm=True, faults=FaultConfig(build_fail_rate=1.0)
        )
    ],
)
async def test_a_failed_vm_left_behind_is_deleted_and_purged(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """A VM a failed build left is deleted and purged like any other; then its name is free."""
    created = (await api.post(BUILD, build_body("broken"))).json
    clock.advance(60)
    info = await api.get(f"virtual_machines/builds/{created['virtual_machine_build']['id']}")
    vm = info.json["virtual_machine_build"]["virtual_machine"]
    assert vm["state"] == "failed"
    trash = (await delete(api, VM, {"virtual_machine": {"id": vm["id"]}})).json["trash_object"]
    await delete(api, TRASH, {"trash_object": {"id": trash["id"]}})
    clock.advance(10)
    assert state.snapshot()["failed_vms"] == []
    info = await api.get(f"virtual_machines/builds/{created['virtual_machine_build']['id']}")
    assert info.json["virtual_machine_build"]["virtual_machine"] is None
    assert (await api.post(BUILD, build_body("broken"))).status == 201


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, duplicate_hostnames="accept")]
)
async def test_deleting_one_of_two_duplicates_keeps_the_other(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """Duplicates accepted: deleting the oldest leaves the newer, which the fqdn now names."""
    await api.post(BUILD, build_body("twin"))
    await api.post(BUILD, build_body("twin"))
    clock.advance(60)
    first, second = (v["id"] for v in state.snapshot()["virtual_machines"])
    assert (await delete(api, VM, {"virtual_machine": {"id": first}})).status == 200
    assert await vm_state(api, second) == "started"
    by_fqdn = await api.get(VM, **{"virtual_machine[fqdn]": "twin.acme.katapult.cloud"})
    assert by_fqdn.json["virtual_machine"]["id"] == second  # the oldest outside the trash
    assert (await delete(api, VM, {"virtual_machine": {"id": second}})).status == 200
    by_fqdn = await api.get(VM, **{"virtual_machine[fqdn]": "twin.acme.katapult.cloud"})
    assert by_fqdn.json["error"]["detail"]["trash_object"]["object_id"] == first


# ----------------------------------------------------------------------- update


async def patch(api: Api, vm_id: str, properties: Any, **more: Any) -> Reply:
    body = {"virtual_machine": {"id": vm_id}, "properties": properties, **more}
    return await api.request("PATCH", VM, json_body=body)


async def test_update_matches_the_recording_and_the_openapi(api: Api, clock: FakeClock) -> None:
    """PATCH with tag_names answers the recorded shape; the VM carries the new tags."""
    vm_id = (await built_vm(api, clock))["id"]
    body = {"properties": {"tag_names": ["public", "web"]}, "virtual_machine": {"id": vm_id}}
    jsonschema.validate(body, request_schema("/virtual_machines/virtual_machine", "patch"))
    reply = await patch(api, vm_id, body["properties"])
    status, _, expected = recorded("vm-get-by-fqdn.yaml", 11)
    assert reply.status == status
    assert_shape(expected, reply.json)
    jsonschema.validate(
        reply.json, response_schema("/virtual_machines/virtual_machine", "patch", strict=False)
    )
    assert reply.json["virtual_machine"]["tag_names"] == ["public", "web"]


async def test_rename_frees_the_old_hostname_at_once(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """A new hostname moves the fqdn; the old name can be built again while the VM is binned."""
    vm_id = (await built_vm(api, clock, "web-01"))["id"]
    reply = await patch(api, vm_id, {"hostname": "Web-01-Old", "name": "retired"})
    assert reply.status == 200, reply.raw
    renamed = reply.json["virtual_machine"]
    assert (renamed["hostname"], renamed["name"]) == ("web-01-old", "retired")
    assert renamed["fqdn"] == "web-01-old.acme.katapult.cloud"
    old = await api.get(VM, **{"virtual_machine[fqdn]": "web-01.acme.katapult.cloud"})
    assert_error(old, 404, "virtual_machine_not_found")
    assert (await delete(api, VM, {"virtual_machine": {"id": vm_id}})).status == 200
    assert (await api.post(BUILD, build_body("web-01"))).status == 201
    again = await api.post(BUILD, build_body("web-01-old"))  # the trash holds the new name
    assert_error(again, 422, "validation_error")
    snapshot = state.snapshot()
    assert [v["hostname"] for v in snapshot["virtual_machines"]] == ["web-01-old", "web-01"]
    assert snapshot["duplicates"] == []


@pytest.mark.parametrize(
    ("duplicates", "status"), [("refuse", 422), ("accept", 200)], ids=["refuse", "accept"]
)
async def test_rename_to_a_taken_hostname(
    sim: RunningSimulator, api: Api, clock: FakeClock, duplicates: Any, status: int
) -> None:
    """Renaming onto a taken hostname follows the duplicate_hostnames reading."""
    sim.config.duplicate_hostnames = duplicates
    await built_vm(api, clock, "taken")
    vm_id = (await built_vm(api, clock, "other"))["id"]
    reply = await patch(api, vm_id, {"hostname": "taken"})
    assert reply.status == status, reply.raw
    if status == 422:
        assert reply.json["error"]["detail"] == {"errors": ["Hostname has already been taken"]}


async def test_update_replaces_annotations(api: Api, clock: FakeClock) -> None:
    """annotations given with PATCH replace the VM's; the VM list filters on them."""
    vm_id = (await built_vm(api, clock))["id"]
    mine = [{"key": "owner", "value": "fleet"}]
    reply = await patch(api, vm_id, {}, annotations=mine)
    assert reply.json["annotations"] == mine
    listing = await api.get(
        "organizations/_/virtual_machines",
        **{
            "organization[sub_domain]": "acme",
            "annotations[][key]": "owner",
            "annotations[][value]": "fleet",
        },
    )
    assert [v["id"] for v in listing.json["virtual_machines"]] == [vm_id]
    assert (await patch(api, vm_id, {"name": "kept"})).json["annotations"] == mine


async def test_update_errors(api: Api, clock: FakeClock, state: SimulatorState) -> None:
    """Missing or malformed properties, bad hostnames, unknown and trashed VMs."""
    vm_id = (await built_vm(api, clock))["id"]
    no_props = await api.request("PATCH", VM, json_body={"virtual_machine": {"id": vm_id}})
    assert_error(no_props, 400, "missing_required_argument")
    assert_error(await patch(api, vm_id, "web"), 400, "invalid_argument")
    assert_error(await patch(api, vm_id, {"tag_names": "web"}), 400, "invalid_argument")
    bad = await patch(api, vm_id, {"hostname": "not_valid"})
    assert assert_error(bad, 422, "validation_error") == {"errors": ["Hostname is invalid"]}
    assert_error(await patch(api, "vm_nope", {}), 404, "virtual_machine_not_found")
    binned = state.add_existing_vm("acme", "binned", in_trash=True)
    assert_error(await patch(api, binned, {"name": "x"}), 406, "object_in_trash")


# ---------------------------------------------------------------------- errors


async def test_action_errors(api: Api, clock: FakeClock, state: SimulatorState) -> None:
    """Unknown, trashed and missing lookups get the schema's errors on every action."""
    unknown = {"virtual_machine": {"id": "vm_nope"}}
    assert_error(await api.post(f"{VM}/stop", unknown), 404, "virtual_machine_not_found")
    assert_error(await api.post(f"{VM}/shutdown", unknown), 404, "virtual_machine_not_found")
    assert_error(await delete(api, VM, unknown), 404, "virtual_machine_not_found")
    # a placeholder segment without the lookup stands for an id that names nothing
    assert_error(await delete(api, VM, {}), 404, "virtual_machine_not_found")
    assert_error(await api.post(f"{VM}/stop", {}), 404, "virtual_machine_not_found")
    detail = assert_error(await delete(api, VM, {"virtual_machine": {}}), 400, "invalid_argument")
    assert detail["issue"] == "missing_lookup_value"
    binned = state.add_existing_vm("acme", "binned", in_trash=True)
    trashed = {"virtual_machine": {"id": binned}}
    assert_error(await api.post(f"{VM}/stop", trashed), 406, "object_in_trash")
    assert_error(await delete(api, VM, trashed), 406, "object_in_trash")
    nothing = {"trash_object": {"id": "trsh_nope"}}
    assert_error(await delete(api, TRASH, nothing), 404, "trash_object_not_found")
    assert_error(await delete(api, TRASH, {}), 404, "trash_object_not_found")
    both = {"trash_object": {"id": "trsh_x", "object_id": binned}}
    assert assert_error(await delete(api, TRASH, both), 400, "invalid_argument")["issue"] == (
        "ambiguous_lookup_values"
    )
    assert_error(
        await api.get(TRASH, **{"trash_object[id]": "trsh_nope"}), 404, "trash_object_not_found"
    )
    frozen = await api.get(
        "organizations/_/trash_objects", **{"organization[sub_domain]": "frozen"}
    )
    assert_error(frozen, 403, "organization_suspended")


@pytest.mark.parametrize("config", [SimulatorConfig(rate_limit=2, build_spread=0.0)])
async def test_actions_spend_the_rate_budget(api: Api, state: SimulatorState) -> None:
    """DELETE and the power actions are counted against the window like every request."""
    vm_id = state.add_existing_vm("acme", "old")
    first = await api.post(f"{VM}/stop", {"virtual_machine": {"id": vm_id}})
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert (await delete(api, VM, {"virtual_machine": {"id": vm_id}})).status == 200
    limited = await delete(api, VM, {"virtual_machine": {"id": vm_id}})
    assert assert_error(limited, 429, "rate_limit_reached") == {"total_permitted": 2}


@pytest.fixture
async def fresh_session() -> Any:
    """A session that never reuses a connection (a dropped one must not leak)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def test_faults_strike_deletes_too(
    sim: RunningSimulator, state: SimulatorState, fresh_session: aiohttp.ClientSession
) -> None:
    """A DELETE meets the faults: a 5xx before acting trashes nothing, a reset after acting does."""
    api = Api(fresh_session, sim.url)
    vm_id = state.add_existing_vm("acme", "target")
    sim.config.faults = FaultConfig(error_5xx_rate=1.0)
    assert (await delete(api, VM, {"virtual_machine": {"id": vm_id}})).status in (500, 503)
    assert [v["in_trash"] for v in state.snapshot()["virtual_machines"]] == [False]
    sim.config.faults = FaultConfig(reset_after_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await delete(api, VM, {"virtual_machine": {"id": vm_id}})
    assert [v["in_trash"] for v in state.snapshot()["virtual_machines"]] == [True]
    sim.config.faults = FaultConfig(error_5xx_after_rate=1.0)
    trash_id = state.trash_object("object_id", vm_id).trash.id  # type: ignore[union-attr]
    assert (await delete(api, TRASH, {"trash_object": {"id": trash_id}})).status in (500, 503)
    faults = state.snapshot()["faults"]
    # aiohttp itself re-sends an idempotent DELETE once when the server disconnects
    assert (faults["error_5xx"], faults["error_5xx_after"]) == (1, 1)
    assert faults["reset_after"] in (1, 2)
    assert state.trash_object("id", trash_id) is not None  # the purge is queued


# ----------------------------------------------------------------- conformance


async def test_answers_match_the_recording_and_the_openapi(api: Api, clock: FakeClock) -> None:
    """stop, its task, delete, purge and the trash object have the recorded, documented shapes."""
    vm_id = (await built_vm(api, clock))["id"]
    body = {"virtual_machine": {"id": vm_id}}
    assert shape_diff(recorded_request(MINIMAL, 26), body) == []
    jsonschema.validate(body, request_schema("/virtual_machines/virtual_machine/stop", "post"))
    stop = await api.post(f"{VM}/stop", body)
    status, _, expected = recorded(MINIMAL, 26)
    assert stop.status == status
    assert_shape(expected, stop.json)
    jsonschema.validate(
        stop.json, response_schema("/virtual_machines/virtual_machine/stop", "post", strict=True)
    )
    for index, seconds in ((27, 0.0), (30, 25.0)):
        clock.advance(seconds)
        task = await api.get("tasks/task", **{"task[id]": stop.json["task"]["id"]})
        status, _, expected = recorded(MINIMAL, index)
        assert task.status == status
        assert_shape(expected, task.json)
        assert task.json["task"]["status"] == expected["task"]["status"]
        assert task.json["task"]["name"] == expected["task"]["name"]

    jsonschema.validate(body, request_schema("/virtual_machines/virtual_machine", "delete"))
    deleted = await delete(api, VM, body)
    status, headers, expected = recorded(MINIMAL, 32)
    assert deleted.status == status
    assert_shape(expected, deleted.json)
    jsonschema.validate(
        deleted.json, response_schema("/virtual_machines/virtual_machine", "delete", strict=False)
    )
    assert deleted.json["virtual_machine"]["state"] == expected["virtual_machine"]["state"]
    assert deleted.headers["cache-control"] == headers["cache-control"]

    trash_body = {"trash_object": {"id": deleted.json["trash_object"]["id"]}}
    jsonschema.validate(trash_body, request_schema("/trash_objects/trash_object", "delete"))
    purge = await delete(api, TRASH, trash_body)
    status, _, expected = recorded(MINIMAL, 34)
    assert purge.status == status
    assert_shape(expected, purge.json)
    assert purge.json["task"]["name"] == expected["task"]["name"]
    jsonschema.validate(
        purge.json, response_schema("/trash_objects/trash_object", "delete", strict=True)
    )
    info = await api.get(TRASH, **{"trash_object[id]": trash_body["trash_object"]["id"]})
    status, _, expected = recorded(MINIMAL, 35)
    assert (info.status, info.json) == (status, {"trash_object": deleted.json["trash_object"]})
    assert_shape(expected, info.json)
    jsonschema.validate(
        info.json, response_schema("/trash_objects/trash_object", "get", strict=True)
    )
    clock.advance(6)
    for index, path, params in (
        (36, TRASH, {"trash_object[id]": trash_body["trash_object"]["id"]}),
        (38, VM, {"virtual_machine[id]": vm_id}),
        (39, TRASH, {"trash_object[object_id]": vm_id}),
    ):
        reply = await api.get(path, **params)
        status, _, expected = recorded(MINIMAL, index)
        assert (reply.status, reply.json) == (status, expected)


async def test_trash_list_matches_the_openapi(api: Api, state: SimulatorState) -> None:
    """The organization's trash list has the documented pagination and trash objects."""
    state.add_existing_vm("acme", "bin-1", in_trash=True)
    state.add_existing_vm("acme", "bin-2", in_trash=True)
    reply = await api.get(
        "organizations/organization/trash_objects",
        **{"organization[sub_domain]": "acme", "per_page": "1", "page": "2"},
    )
    assert reply.status == 200
    jsonschema.validate(
        reply.json,
        response_schema("/organizations/organization/trash_objects", "get", strict=True),
    )
    assert reply.json["pagination"]["total"] == 2
    [item] = reply.json["trash_objects"]
    assert item["object_id"] == state.trash_of(state.catalogue.org_by("sub_domain", "acme"))[1].id  # type: ignore[arg-type]
