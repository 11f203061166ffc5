"""Each unconfirmed reading of the real API can be played both ways, alone or all at once."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.simulator import FaultConfig, SimulatorConfig, SimulatorState

from ._helpers import Api, FakeClock, build_body, spec_body

pytestmark = pytest.mark.anyio

BUILD = "organizations/_/virtual_machines/build"
SPEC = "organizations/_/virtual_machines/build_from_spec"
ACME = {"organization[sub_domain]": "acme", "per_page": "100"}


async def build(api: Api, hostname: str, **over: Any) -> dict[str, Any]:
    reply = await api.post(BUILD, build_body(hostname, **over))
    assert reply.status == 201, reply.raw
    return dict(reply.json)


async def build_info(api: Api, created: dict[str, Any]) -> dict[str, Any]:
    build_id = created["build"]["id"]  # (an older server's answer has only this key)
    reply = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    return dict(reply.json.get("virtual_machine_build") or reply.json["build"])


async def listed(api: Api, **params: str) -> list[dict[str, Any]]:
    reply = await api.get("organizations/_/virtual_machines", **ACME, **params)
    assert reply.status == 200, reply.raw
    return list(reply.json["virtual_machines"])


async def by_fqdn(api: Api, hostname: str) -> Any:
    return await api.get(
        "virtual_machines/_", **{"virtual_machine[fqdn]": f"{hostname}.acme.katapult.cloud"}
    )


# ------------------------------------------------------------------ the config


def test_defaults_are_todays_readings() -> None:
    """Without options the simulator plays the readings it always played (and, since
    issue 23, refuses VM list pages above Apia's default maximum of 200)."""
    assert SimulatorConfig().readings() == {
        "hostname_taken_at": "post",
        "vm_record_at": [0.45, 0.45],
        "duplicate_hostnames": "refuse",
        "failed_build_leaves_vm": False,
        "copy_annotations": True,
        "trash_holds_hostname": True,
        "delete_running": "accept",
        "annotations_copied_at": "vm_record",
        "annotation_filter": "honoured",
        "xml_without_interface": "default_network",
        "legacy_build_key": False,
        "xml_tags": "applied",
        # not played before issue 23 (any page size was answered): Apia's default
        "vm_list_per_page": "max_200",
    }


def test_pessimistic_sets_every_reading_and_takes_overrides() -> None:
    """pessimistic() is the hardest combination; keyword arguments override any field."""
    config = SimulatorConfig.pessimistic(seed=7, copy_annotations=True)
    assert config.readings() == {
        "hostname_taken_at": "vm_record",
        "vm_record_at": [0.30, 0.95],
        "duplicate_hostnames": "accept",
        "failed_build_leaves_vm": True,
        "copy_annotations": True,
        "trash_holds_hostname": True,
        "delete_running": "refuse",
        "annotations_copied_at": "complete",
        "annotation_filter": "ignored",
        "xml_without_interface": "no_address",
        "legacy_build_key": True,
        "xml_tags": "ignored",
        "vm_list_per_page": "max_100",
    }
    assert config.seed == 7
    assert SimulatorConfig.pessimistic().copy_annotations is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"vm_record_at": (0.5, 0.4)}, "vm_record_at"),
        ({"vm_record_at": (0.0, 0.5)}, "vm_record_at"),
        ({"vm_record_at": (0.5, 1.5)}, "vm_record_at"),
        ({"hostname_taken_at": "later"}, "hostname_taken_at"),
        ({"duplicate_hostnames": "maybe"}, "duplicate_hostnames"),
        ({"annotations_copied_at": "later"}, "annotations_copied_at"),
        ({"annotation_filter": "sometimes"}, "annotation_filter"),
        ({"vm_list_per_page": "max_50"}, "vm_list_per_page"),
        ({"xml_without_interface": "none"}, "xml_without_interface"),
        ({"xml_tags": "sometimes"}, "xml_tags"),
    ],
)
def test_bad_readings_are_refused(fields: dict[str, Any], message: str) -> None:
    """A reading outside its documented values is a ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**fields)


def test_5xx_after_counts_in_the_sum_of_rates() -> None:
    """error_5xx_after_rate is a per-request fault: the rates still add up to at most 1."""
    assert FaultConfig(error_5xx_after_rate=0.4, error_5xx_rate=0.6).request_fault_total() == 1.0
    with pytest.raises(ValueError, match="add up to at most 1"):
        FaultConfig(error_5xx_after_rate=0.5, error_5xx_rate=0.6)
    with pytest.raises(ValueError, match="error_5xx_after_rate"):
        FaultConfig(error_5xx_after_rate=1.5)


# ------------------------------------------------------------ hostname_taken_at


async def test_taken_at_post_refuses_a_second_post_at_once(api: Api, state: SimulatorState) -> None:
    """Default reading: the hostname is taken by the accepted POST, before any VM exists."""
    await build(api, "once")
    again = await api.post(BUILD, build_body("once"))
    assert (again.status, again.json["error"]["code"]) == (422, "validation_error")
    assert again.json["error"]["detail"]["errors"] == ["Hostname has already been taken"]
    assert state.snapshot()["hostname_taken_refusals"]["total"] == 1


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, hostname_taken_at="vm_record")]
)
async def test_taken_at_vm_record_accepts_until_the_record_then_fails_the_loser(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """Taken only at the VM record: a second POST before it is accepted; its build fails then."""
    first = await build(api, "race")
    clock.advance(5)
    second = await build(api, "race")  # the first has no VM record yet: accepted
    clock.advance(15)  # the first's VM record (at 18 s) exists; the second's is due at 23 s
    third = await api.post(BUILD, build_body("race"))
    assert third.status == 422
    clock.advance(5)
    lost = await build_info(api, second)
    assert (lost["state"], lost["virtual_machine"]) == ("failed", None)
    task = await api.get(f"tasks/{second['task']['id']}")
    assert task.json["task"]["status"] == "failed"
    clock.advance(40)
    won = await build_info(api, first)
    assert won["state"] == "complete"
    assert [vm["hostname"] for vm in await listed(api)] == ["race"]
    snapshot = state.snapshot()
    assert snapshot["duplicates"] == []
    assert snapshot["hostname_taken_refusals"]["total"] == 1
    assert snapshot["hostname_taken_refusals"]["builds_failed"] == 1
    assert [b["build_id"] for b in snapshot["failed_builds"]] == [second["build"]["id"]]


# ----------------------------------------------------------------- vm_record_at


async def first_seen(api: Api, clock: FakeClock, hostnames: list[str]) -> dict[str, float]:
    """Simulated seconds after the POSTs at which each VM first shows in the VM list."""
    seen: dict[str, float] = {}
    for second in range(42):
        for vm in await listed(api):
            seen.setdefault(vm["hostname"], float(second))
        clock.advance(1)
    assert set(seen) == set(hostnames)
    return seen


@pytest.mark.parametrize("config", [SimulatorConfig(build_spread=0.0, vm_record_at=(0.2, 0.2))])
async def test_vm_record_at_a_fixed_point(api: Api, clock: FakeClock) -> None:
    """lo == hi: every VM record appears at that fraction of the build (8 s of 40 s)."""
    names = [f"fixed-{n}" for n in range(5)]
    for name in names:
        await build(api, name)
    assert set((await first_seen(api, clock, names)).values()) == {8.0}


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, vm_record_at=(0.30, 0.95), seed=3)]
)
async def test_vm_record_at_a_range_is_drawn_per_build(api: Api, clock: FakeClock) -> None:
    """lo < hi: each build draws its VM record's moment within [lo, hi] of its duration."""
    names = [f"spread-{n:02d}" for n in range(20)]
    for name in names:
        await build(api, name)
    seen = await first_seen(api, clock, names)
    assert all(12.0 <= at <= 39.0 for at in seen.values()), seen
    assert min(seen.values()) < 20.0 < 30.0 < max(seen.values())


# ---------------------------------------------------------- duplicate_hostnames


@pytest.mark.parametrize(
    "config", [SimulatorConfig(build_spread=0.0, duplicate_hostnames="accept")]
)
async def test_duplicates_accepted_leave_two_vms(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """accept: a taken hostname is built again; both VMs are listed, fqdn gives the oldest."""
    first = await build(api, "twin")
    clock.advance(10)
    second = await build(api, "Twin")
    clock.advance(60)
    vms = await listed(api)
    assert [vm["hostname"] for vm in vms] == ["twin", "twin"]
    ids = [(await build_info(api, c))["virtual_machine"]["id"] for c in (first, second)]
    assert [vm["id"] for vm in vms] == ids
    found = await by_fqdn(api, "twin")
    assert found.json["virtual_machine"]["id"] == ids[0]
    snapshot = state.snapshot()
    assert snapshot["duplicates"] == [{"organization": "acme", "hostname": "twin", "count": 2}]
    assert snapshot["hostname_taken_refusals"]["total"] == 0


@pytest.mark.parametrize(
    "config", [SimulatorConfig.pessimistic(build_spread=0.0, vm_record_at=(0.5, 0.5))]
)
async def test_duplicates_accepted_with_the_name_taken_at_the_record(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """Pessimistic: two POSTs for one hostname both end complete, two VMs with that name."""
    created = [await build(api, "dup"), await build(api, "dup")]
    clock.advance(60)
    assert [(await build_info(api, c))["state"] for c in created] == ["complete", "complete"]
    assert state.snapshot()["duplicates"] == [
        {"organization": "acme", "hostname": "dup", "count": 2}
    ]


# ------------------------------------------------------- failed_build_leaves_vm


@pytest.mark.parametrize(
    "config",
    [
        SimulatorConfig(
            build_spread=0.0,
            failed_build_leaves_vm=True,
            faults=FaultConfig(build_fail_rate=1.0),
        )
    ],
)
async def test_a_failed_build_leaves_its_vm_failed_and_holding_the_name(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """The VM record appears, then the build fails after it: VM state failed, name held."""
    created = await build(api, "broken")
    clock.advance(19)  # the VM record exists at 18 s; the failure comes later
    info = await build_info(api, created)
    assert (info["state"], info["virtual_machine"]["state"]) == ("building", "stopped")
    clock.advance(30)
    info = await build_info(api, created)
    assert (info["state"], info["virtual_machine"]["state"]) == ("failed", "failed")
    task = await api.get(f"tasks/{created['task']['id']}")
    assert task.json["task"]["status"] == "failed"
    found = await by_fqdn(api, "broken")
    assert (found.status, found.json["virtual_machine"]["state"]) == (200, "failed")
    assert [vm["hostname"] for vm in await listed(api)] == ["broken"]
    again = await api.post(BUILD, build_body("broken"))
    assert again.status == 422
    snapshot = state.snapshot()
    [failed_vm] = snapshot["failed_vms"]
    assert failed_vm["id"] == info["virtual_machine"]["id"]
    assert (failed_vm["build_state"], failed_vm["vm_state"]) == ("failed", "failed")
    assert [b["id"] for b in snapshot["failed_builds"]] == [failed_vm["id"]]
    assert [vm["id"] for vm in snapshot["virtual_machines"]] == [failed_vm["id"]]


@pytest.mark.parametrize(
    "config",
    [
        SimulatorConfig(
            build_spread=0.0, vm_record_at=(0.2, 0.2), faults=FaultConfig(build_fail_rate=1.0)
        )
    ],
)
async def test_a_failed_build_that_leaves_nothing_removes_its_early_vm(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """Default reading: a VM record that appeared before the failure is removed with it."""
    created = await build(api, "gone")
    clock.advance(10)  # the VM record at 8 s; the failure at 16 s
    assert (await by_fqdn(api, "gone")).status == 200
    clock.advance(10)
    info = await build_info(api, created)
    assert (info["state"], info["virtual_machine"]) == ("failed", None)
    assert (await by_fqdn(api, "gone")).status == 404
    assert await listed(api) == []
    assert (await api.post(BUILD, build_body("gone"))).status == 201  # the name is free again
    snapshot = state.snapshot()
    assert snapshot["failed_vms"] == []
    assert [b["build_id"] for b in snapshot["failed_builds"]] == [created["build"]["id"]]


# ------------------------------------------------------------- copy_annotations


ANNOTATIONS = [{"key": "orchestrator/key", "value": "web-01"}]
FILTER = {"annotations[][key]": "orchestrator/key", "annotations[][value]": "web-01"}


@pytest.mark.parametrize("copy", [True, False], ids=["copied", "not-copied"])
@pytest.mark.parametrize("endpoint", ["build", "build_from_spec"])
async def test_annotations_are_copied_onto_the_vm_or_not(
    sim: Any, api: Api, clock: FakeClock, copy: bool, endpoint: str
) -> None:
    """copy_annotations decides the VM's annotations and the list filter; builds keep theirs."""
    sim.config.copy_annotations = copy
    if endpoint == "build":
        reply = await api.post(BUILD, build_body("web-01", annotations=ANNOTATIONS))
    else:
        reply = await api.post(SPEC, {**spec_body("web-01"), "annotations": ANNOTATIONS})
    assert reply.status == 201
    assert reply.json["annotations"] == ANNOTATIONS
    clock.advance(60)
    build_id = reply.json["virtual_machine_build"]["id"]
    info = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    assert info.json["annotations"] == ANNOTATIONS
    vm = await by_fqdn(api, "web-01")
    assert vm.json["annotations"] == (ANNOTATIONS if copy else [])
    assert [v["hostname"] for v in await listed(api, **FILTER)] == (["web-01"] if copy else [])


# --------------------------------------------------------- trash_holds_hostname


@pytest.mark.parametrize("holds", [True, False], ids=["trash-holds", "trash-frees"])
async def test_the_trash_holds_the_hostname_or_not(
    sim: Any, api: Api, clock: FakeClock, state: SimulatorState, holds: bool
) -> None:
    """trash_holds_hostname decides whether a trashed VM's hostname can be built again."""
    sim.config.trash_holds_hostname = holds
    binned = state.add_existing_vm("acme", "recycled", in_trash=True)
    reply = await api.post(BUILD, build_body("recycled"))
    assert reply.status == (422 if holds else 201), reply.raw
    clock.advance(60)
    found = await by_fqdn(api, "recycled")
    if holds:
        assert found.status == 406
    else:  # the VM outside the trash is the one an fqdn names
        assert found.status == 200
        assert found.json["virtual_machine"]["id"] != binned
        assert state.snapshot()["duplicates"] == [
            {"organization": "acme", "hostname": "recycled", "count": 2}
        ]


# ----------------------------------------------------------- annotations_copied_at


@pytest.mark.parametrize("at", ["vm_record", "complete"])
async def test_annotations_show_with_the_vm_record_or_at_the_builds_end(
    sim: Any, api: Api, clock: FakeClock, at: str
) -> None:
    """annotations_copied_at decides whether a VM still being built shows its annotations."""
    sim.config.annotations_copied_at = at
    reply = await api.post(BUILD, build_body("web-01", annotations=ANNOTATIONS))
    assert reply.status == 201
    clock.advance(25)  # past the VM record (45% of ~40 s), before the end
    early = await by_fqdn(api, "web-01")
    assert early.status == 200
    assert early.json["annotations"] == (ANNOTATIONS if at == "vm_record" else [])
    assert len(await listed(api, **FILTER)) == (1 if at == "vm_record" else 0)
    clock.advance(60)
    assert (await by_fqdn(api, "web-01")).json["annotations"] == ANNOTATIONS
    assert len(await listed(api, **FILTER)) == 1


# ---------------------------------------------------------------- annotation_filter


@pytest.mark.parametrize("honoured", [True, False], ids=["honoured", "ignored"])
async def test_the_list_filter_is_honoured_or_ignored(
    sim: Any, api: Api, clock: FakeClock, state: SimulatorState, honoured: bool
) -> None:
    """annotation_filter decides whether the VM list filters on annotations at all."""
    sim.config.annotation_filter = "honoured" if honoured else "ignored"
    state.add_existing_vm("acme", "bystander")
    await build(api, "web-01", annotations=ANNOTATIONS)
    clock.advance(60)
    names = [v["hostname"] for v in await listed(api, **FILTER)]
    assert names == (["web-01"] if honoured else ["bystander", "web-01"])


@pytest.mark.parametrize(
    ("reading", "status", "code"),
    [("refused_400", 400, "invalid_argument"), ("refused_422", 422, "validation_error")],
)
async def test_the_list_filter_is_refused(
    sim: Any, api: Api, clock: FakeClock, reading: str, status: int, code: str
) -> None:
    """annotation_filter="refused_*": a list given the filter gets the error envelope
    (its text in detail); the same list without the filter is answered."""
    sim.config.annotation_filter = reading
    await build(api, "web-01", annotations=ANNOTATIONS)
    clock.advance(60)
    reply = await api.get("organizations/_/virtual_machines", **ACME, **FILTER)
    assert reply.status == status, reply.raw
    assert reply.json["error"]["code"] == code
    detail = reply.json["error"]["detail"]
    assert detail.get("path") == ["annotations"] or detail.get("errors")
    assert [v["hostname"] for v in await listed(api)] == ["web-01"]


async def test_the_filtered_list_follows_every_change_between_pages(
    api: Api, clock: FakeClock, state: SimulatorState
) -> None:
    """The filtered listing is remembered between pages, but a VM built, re-annotated or
    trashed since is seen at once."""
    filtered = {"annotations[][key]": "orchestrator/key"}
    await build(api, "web-01", annotations=ANNOTATIONS)
    clock.advance(60)
    assert [v["hostname"] for v in await listed(api, **filtered)] == ["web-01"]
    await build(api, "web-02", annotations=[{"key": "orchestrator/key", "value": "web-02"}])
    clock.advance(60)
    listed_now = await listed(api, **filtered)
    assert [v["hostname"] for v in listed_now] == ["web-01", "web-02"]
    vm = state.vm_by_id(listed_now[0]["id"])
    assert vm is not None
    state.update_vm(vm, hostname=None, name=None, description=None, tags=None, annotations=[])
    assert [v["hostname"] for v in await listed(api, **filtered)] == ["web-02"]
    state.trash_vm(listed_now[1]["id"])
    assert await listed(api, **filtered) == []


# ----------------------------------------------------------- xml_without_interface

XML_WITH_INTERFACE = (
    '<NetworkInterfaces><NetworkInterface><Network by="permalink">'
    "uk-lon-01-public</Network></NetworkInterface></NetworkInterfaces><Hostname>"
)


@pytest.mark.parametrize("reading", ["default_network", "no_address"])
@pytest.mark.parametrize("interface", [True, False], ids=["interface", "no-interface"])
async def test_an_xml_build_without_an_interface_gets_an_address_or_not(
    sim: Any, api: Api, clock: FakeClock, reading: str, interface: bool
) -> None:
    """xml_without_interface decides the address of an XML build that names no interface;
    one that names an interface always gets its address."""
    sim.config.xml_without_interface = reading
    body = spec_body("web-01")
    if interface:
        body["xml"] = body["xml"].replace("<Hostname>", XML_WITH_INTERFACE, 1)
    assert (await api.post(SPEC, body)).status == 201
    clock.advance(60)
    vm = (await by_fqdn(api, "web-01")).json["virtual_machine"]
    addressed = interface or reading == "default_network"
    assert bool(vm["ip_addresses"]) is addressed
    assert bool((await listed(api))[0]["ip_addresses"]) is addressed


# ----------------------------------------------------------------- legacy_build_key


@pytest.mark.parametrize("legacy", [False, True], ids=["current", "older-server"])
async def test_an_older_server_names_the_build_build(sim: Any, api: Api, legacy: bool) -> None:
    """legacy_build_key: the POST's answer and the build's GET carry only ``build``."""
    sim.config.legacy_build_key = legacy
    reply = await api.post(BUILD, build_body("web-01"))
    assert reply.status == 201
    assert ("virtual_machine_build" in reply.json) is not legacy
    build_id = reply.json["build"]["id"]
    info = await api.get("virtual_machines/builds/_", **{"virtual_machine_build[id]": build_id})
    key = "build" if legacy else "virtual_machine_build"
    assert set(info.json) == {key, "annotations"}
    assert info.json[key]["id"] == build_id


# --------------------------------------------------------------------- existing_vms


@pytest.mark.parametrize("fleet", [None, "other-team"])
def test_an_organization_can_start_with_vms_of_its_own(fleet: str | None) -> None:
    """existing_vms gives acme that many started VMs, annotated as existing_vms_fleet's."""
    state = SimulatorState(SimulatorConfig(existing_vms=3, existing_vms_fleet=fleet))
    vms = state.snapshot()["virtual_machines"]
    assert [vm["hostname"] for vm in vms] == ["existing-00001", "existing-00002", "existing-00003"]
    record = state.vm_by_id(vms[0]["id"])
    assert record is not None
    expected = [] if fleet is None else [{"key": "orchestrator.spec", "value": fleet}]
    assert [kv for kv in record.annotations if kv["key"] == "orchestrator.spec"] == expected
    with pytest.raises(ValueError, match="existing_vms"):
        SimulatorConfig(existing_vms=-1)
