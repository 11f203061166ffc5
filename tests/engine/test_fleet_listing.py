"""Issue 23, item 4: a run looks at its fleet, not at the whole organization, and never
reads an organization whole twice; it finds out once whether the VM list honours its
annotation filter and says so in the report. Each case against the default simulator
(filter honoured, annotations copied) and the pessimistic one (filter ignored,
annotations not copied)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import Orchestrator, make_plan
from orchestrator.katapult import AiohttpTransport, ApiRequest, ApiResponse, KatapultClient
from orchestrator.simulator import RunningSimulator, SimulatorConfig, run_simulator

from .conftest import SCALE, assert_exactly_once, created_hostnames, settings_for, vms

pytestmark = pytest.mark.anyio

READINGS = ["default", "pessimistic"]
#: VMs of the organization that are not the fleet's: three pages and more of its list
#: (pages of 200, or of 100 where the API refuses wider ones)
OTHERS = 450
LIST = "organizations/_/virtual_machines"


def config_for(reading: str, **kw: Any) -> SimulatorConfig:
    base = SimulatorConfig(time_scale=SCALE, seed=11, existing_vms=OTHERS)
    if reading == "pessimistic":
        base = SimulatorConfig.pessimistic(time_scale=SCALE, seed=11, existing_vms=OTHERS)
    return dataclasses.replace(base, **kw)


class Counting(AiohttpTransport):
    """The real transport, remembering every request it sent."""

    def __init__(self, sim: RunningSimulator) -> None:
        super().__init__(sim.url)
        self.sent: list[ApiRequest] = []
        self.statuses: list[int] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        self.sent.append(request)
        response = await super().send(request)
        self.statuses.append(response.status)
        return response

    def whole_reads(self) -> int:
        """How many times the organization's unfiltered list was started (its page 1
        answered: a page refused as too wide, then asked narrower, is one start)."""
        return sum(
            1
            for r, status in zip(self.sent, self.statuses, strict=True)
            if r.path == LIST
            and status == 200
            and ("page", "1") in r.params
            and not any(name.startswith("annotations") for name, _ in r.params)
        )

    def reset(self) -> None:
        self.sent.clear()
        self.statuses.clear()


@pytest.mark.parametrize("reading", READINGS)
async def test_a_rerun_that_builds_nothing_costs_a_handful_of_requests(
    reading: str, tmp_path: Path
) -> None:
    """A 5-VM rerun in an organization of 350 other VMs: at most 10 requests, no whole
    read, every VM still looked at once (skipped, with its addresses)."""
    requests = vms(5, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for(reading)) as sim:
        transport = Counting(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            await orch.run(requests, journal=journal, fleet="web")
            transport.reset()
            again = await orch.run(requests, journal=journal, fleet="web")
    assert again.summary.requests.total <= 10
    assert transport.whole_reads() == 0
    assert {(vm.outcome, vm.reason) for vm in again.vms} == {("skipped", "already_exists")}
    assert all(vm.virtual_machine and vm.virtual_machine.ip_addresses for vm in again.vms)
    gets = [r for r in transport.sent if r.path == "virtual_machines/_"]
    assert len(gets) == 5  # one look at each VM, whichever way it was found


@pytest.mark.parametrize("reading", READINGS)
async def test_the_report_says_how_the_fleet_was_found(reading: str, tmp_path: Path) -> None:
    """ownership.annotation_filter and listed_by name the reading found and the listing used."""
    requests = vms(3, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for(reading)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal, fleet="web")
            again = await orch.run(requests, journal=journal, fleet="web")
    assert again.ownership is not None
    if reading == "default":
        assert again.ownership.annotation_filter == "honoured"
        assert again.ownership.listed_by == {"acme": "fleet"}
    else:
        assert again.ownership.annotation_filter == "ignored"
        assert again.ownership.listed_by == {"acme": "fqdn"}
    assert again.ownership.filter_evidence


@pytest.mark.parametrize("copies", [True, False])
async def test_the_first_fleet_in_an_organization_reads_none_of_it(
    copies: bool, tmp_path: Path
) -> None:
    """Filter honoured, 450 VMs of someone else without annotations, one of them holding
    web-003 of the spec: the first fleet's run reads no page of the organization's whole
    list before it builds. web-003 is met by the API's refusal of its taken hostname and
    the look that follows, and ends as it would had it been seen first (skipped/not_ours
    while the copy of annotations is not known; a conflict once it is), never built nor
    touched, and never adopted by a rerun; every other VM is built once. ``plan`` still
    reads the whole list and says web-003 is not ours."""
    requests = vms(6, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for("default", copy_annotations=copies)) as sim:
        theirs = sim.state.add_existing_vm("acme", "web-003")
        transport = Counting(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            first = await orch.run(requests, journal=journal, fleet="web")
            posts = [i for i, r in enumerate(transport.sent) if r.method == "POST"]
            del transport.sent[posts[0] :], transport.statuses[posts[0] :]
            whole_before_building = transport.whole_reads()
            again = await orch.run(requests, journal=journal, fleet="web")
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            plan = await make_plan(client, requests, fleet="web", deadline_seconds=5)
        standing = {vm["id"] for vm in sim.state.snapshot()["virtual_machines"]}
        created = [h for h in created_hostnames(sim) if h.startswith("web-")]
    # (without the copy the addresses at the end may come from one whole read, when it
    # costs fewer requests than a GET per VM built: never to decide what to build)
    assert whole_before_building == 0
    assert first.ownership is not None
    assert first.ownership.listed_by == {"acme": "fleet"}
    for report in (first, again):
        held = {vm.key: vm for vm in report.vms}["web-003"]
        if copies:
            # not provably ours until a build of the run shows the copy (then provably
            # someone else's): which of the two depends on when its refusal came
            assert (held.outcome, held.reason, held.category) in (
                ("skipped", "not_ours", None),
                ("failed", "hostname_taken", "conflict"),
            )
        else:
            assert (held.outcome, held.reason) == ("skipped", "not_ours")
    assert {vm.outcome for vm in first.vms if vm.key != "web-003"} == {"succeeded"}
    assert {(vm.outcome, vm.reason) for vm in again.vms if vm.key != "web-003"} == {
        ("skipped", "already_exists")
    }
    assert sorted(created) == sorted(r.hostname for r in requests)  # web-003 once: theirs
    assert theirs in standing
    assert plan.fates["web-003"] == "not_ours"


@pytest.mark.parametrize("copies", [True, False])
async def test_destroy_after_the_first_fleet_met_a_holder_leaves_the_holder(
    copies: bool, tmp_path: Path
) -> None:
    """The first fleet's run meets someone else's VM holding web-003 by the API's refusal
    (its ending journaled): destroy, run twice, deletes the five VMs the fleet built and
    never the holder, which it reports not ours; the second destroy deletes nothing."""
    requests = vms(6, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for("default", copy_annotations=copies)) as sim:
        theirs = sim.state.add_existing_vm("acme", "web-003")
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal, fleet="web")
            gone = await orch.destroy(requests, journal=journal, fleet="web")
            again = await orch.destroy(requests, journal=journal, fleet="web")
        standing = {
            vm["id"]: vm["hostname"]
            for vm in sim.state.snapshot()["virtual_machines"]
            if not vm["in_trash"]
        }
    assert standing.get(theirs) == "web-003"
    # the five the fleet built are in the trash; the organization's other VMs stand
    assert [h for h in standing.values() if h.startswith("web-")] == ["web-003"]
    assert len(standing) == 1 + OTHERS
    by_key = {vm.key: vm for vm in gone.vms}
    assert (by_key["web-003"].outcome, by_key["web-003"].reason) == ("failed", "not_ours")
    assert sorted(k for k, vm in by_key.items() if vm.reason == "deleted") == [
        r.key for r in requests if r.hostname != "web-003"
    ]
    assert not [vm.key for vm in again.vms if vm.reason == "deleted"]


async def test_the_first_fleet_beside_a_holder_on_an_api_that_accepts_duplicates(
    tmp_path: Path,
) -> None:
    """Filter honoured, annotations dropped and a taken hostname accepted (against what
    was seen of the API): the first fleet builds web-003 beside someone else's VM of that
    hostname, as a run whose copy is proven would. What still holds: none of the fleet's
    VMs is built twice, the other VM is never touched by the run nor by destroy, and
    destroy deletes every VM the fleet built that it can still tell apart."""
    requests = vms(6, prefix="web")
    journal = tmp_path / "web.journal"
    config = config_for(
        "default", copy_annotations=False, duplicate_hostnames="accept", existing_vms=0
    )
    async with run_simulator(config) as sim:
        theirs = sim.state.add_existing_vm("acme", "web-003")
        async with Orchestrator(settings_for(sim)) as orch:
            first = await orch.run(requests, journal=journal, fleet="web")
            gone = await orch.destroy(requests, journal=journal, fleet="web")
        standing = {vm["id"]: vm["hostname"] for vm in sim.state.snapshot()["virtual_machines"]}
        created = created_hostnames(sim)
    assert {vm.outcome for vm in first.vms} == {"succeeded"}
    assert sorted(created) == sorted([r.hostname for r in requests] + ["web-003"])
    assert standing[theirs] == "web-003"
    by_key = {vm.key: vm for vm in gone.vms}
    assert (by_key["web-003"].outcome, by_key["web-003"].reason) == ("failed", "not_ours")
    assert all(
        (vm.outcome, vm.reason) == ("succeeded", "deleted")
        for key, vm in by_key.items()
        if key != "web-003"
    )


@pytest.mark.parametrize("reading", READINGS)
async def test_the_report_lists_the_readings_the_run_found(reading: str, tmp_path: Path) -> None:
    """report.readings: the filter's reading and whether annotations are copied (learned
    from the run's first complete build), each with its evidence; a rerun that builds
    nothing on an API that keeps no annotations cannot tell, and does not say."""
    requests = vms(3, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for(reading)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            first = await orch.run(requests, journal=journal, fleet="web")
            again = await orch.run(requests, journal=journal, fleet="web")
    found = {r.name: r.value for r in first.readings}
    if reading == "default":
        # pages of 200 VMs answered as asked (Apia's default maximum)
        assert found == {
            "annotation_filter": "honoured",
            "annotations_copied": "copied",
            "vm_list_page_size": "honoured",
        }
        assert {r.name: r.value for r in again.readings} == found
    else:
        # pages of 200 refused: asked at 100 from then on (the client remembers)
        assert found == {
            "annotation_filter": "ignored",
            "annotations_copied": "not_copied",
            "vm_list_page_size": "refused",
        }
        assert {r.name: r.value for r in again.readings} == {
            "annotation_filter": "ignored",
            "vm_list_page_size": "refused",
        }
    assert [r.name for r in first.readings] == [
        "annotation_filter",
        "annotations_copied",
        "vm_list_page_size",
    ]
    assert all(r.evidence for r in first.readings)


@pytest.mark.parametrize("reading", READINGS)
async def test_a_run_never_reads_the_organization_whole_twice(reading: str, tmp_path: Path) -> None:
    """Building 40 VMs beside 350 others reads the organization's list whole at most once,
    builds each VM once and still reports every address."""
    requests = vms(40, prefix="web")
    async with run_simulator(config_for(reading)) as sim:
        transport = Counting(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            report = await orch.run(requests, journal=tmp_path / "web.journal", fleet="web")
        assert_exactly_once(report, requests, sim)
    assert transport.whole_reads() <= 1
    assert {vm.outcome for vm in report.vms} == {"succeeded"}
    assert all(vm.virtual_machine and vm.virtual_machine.ip_addresses for vm in report.vms)


@pytest.mark.parametrize("reading", READINGS)
async def test_plan_says_which_readings_it_found(reading: str, tmp_path: Path) -> None:
    """plan finds the fleet as run does and names the filter's reading and the listing."""
    requests = vms(3, prefix="web")
    async with run_simulator(config_for(reading)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=tmp_path / "web.journal", fleet="web")
            transport = Counting(sim)
            async with KatapultClient(
                api_url=sim.url, token=sim.config.token, transport=transport
            ) as client:
                plan = await make_plan(client, requests, fleet="web", deadline_seconds=5)
    assert transport.whole_reads() == 0
    if reading == "default":
        assert (plan.annotation_filter, plan.listed_by) == ("honoured", {"acme": "fleet"})
        assert plan.fates == dict.fromkeys(("web-001", "web-002", "web-003"), "ours")
        assert [(r.name, r.value) for r in plan.readings] == [
            ("annotation_filter", "honoured"),
            ("annotations_copied", "copied"),
            ("vm_list_page_size", "honoured"),
        ]
    else:
        assert (plan.annotation_filter, plan.listed_by) == ("ignored", {"acme": "fqdn"})
        assert [(r.name, r.value) for r in plan.readings] == [("annotation_filter", "ignored")]
    assert plan.filter_evidence


class Refusals(Counting):
    """Counting, and remembering the answers that refused a filtered list."""

    def __init__(self, sim: RunningSimulator) -> None:
        super().__init__(sim)
        self.refused: list[int] = []

    async def send(self, request: ApiRequest) -> ApiResponse:
        response = await super().send(request)
        filtered = any(name.startswith("annotations") for name, _ in request.params)
        if request.path == LIST and filtered and response.status in (400, 422):
            self.refused.append(response.status)
        return response


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("refusal", ["refused_400", "refused_422"])
async def test_an_api_that_refuses_the_filter_is_met_as_one_that_ignores_it(
    reading: str, refusal: str, tmp_path: Path
) -> None:
    """A VM list given the annotation filter answered 400 invalid_argument or 422
    validation_error: found out once per run (one refused request, never the
    organization's failure), said in the report (``refused``); the run falls back as for
    an ignored filter: every VM built once, its rerun a handful of requests, its destroy
    complete, and the organization never read whole twice."""
    requests = vms(20, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for(reading, annotation_filter=refusal)) as sim:
        transport = Refusals(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            first = await orch.run(requests, journal=journal, fleet="web")
            assert_exactly_once(first, requests, sim)
            refused_first, whole_first = list(transport.refused), transport.whole_reads()
            transport.reset()
            transport.refused.clear()
            again = await orch.run(requests, journal=journal, fleet="web")
            refused_again = list(transport.refused)
            gone = await orch.destroy(requests, journal=journal, fleet="web")
    want = 400 if refusal == "refused_400" else 422
    assert refused_first == [want]  # asked once, in the whole run
    assert refused_again == [want]
    assert whole_first <= 1
    for report in (first, again, gone):
        assert not report.interrupted
        assert report.stopped_because is None
        assert report.ownership is not None
        assert report.ownership.annotation_filter == "refused"
        assert report.ownership.filter_evidence
        assert str(want) in report.ownership.filter_evidence
    assert {vm.outcome for vm in first.vms} == {"succeeded"}
    assert all(vm.virtual_machine and vm.virtual_machine.ip_addresses for vm in first.vms)
    assert {(vm.outcome, vm.reason) for vm in again.vms} == {("skipped", "already_exists")}
    assert again.summary.requests.total <= len(requests) + 5
    assert {(vm.outcome, vm.reason) for vm in gone.vms} == {("succeeded", "deleted")}


@pytest.mark.parametrize("refusal", ["refused_400", "refused_422"])
async def test_plan_says_the_filter_was_refused(refusal: str, tmp_path: Path) -> None:
    """plan meets the refusal as run does: no problem of the spec, the reading named."""
    requests = vms(3, prefix="web")
    async with run_simulator(config_for("default", annotation_filter=refusal)) as sim:
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            plan = await make_plan(client, requests, fleet="web", deadline_seconds=5)
    assert plan.problems == []
    assert (plan.annotation_filter, plan.listed_by) == ("refused", {"acme": "fqdn"})
    assert plan.filter_evidence
    assert [(r.name, r.value) for r in plan.readings][:1] == [("annotation_filter", "refused")]


@pytest.mark.parametrize("reading", READINGS)
async def test_a_destroy_that_finds_everything_in_the_trash_looks_once_per_vm(
    reading: str, tmp_path: Path
) -> None:
    """A second destroy: each hostname's fqdn lookup answers 406 object_in_trash naming
    the VM (detail.trash_object.object_id), and that answer is its look: one request per
    VM, each skipped in_trash."""
    requests = vms(12, prefix="web")
    journal = tmp_path / "web.journal"
    async with run_simulator(config_for(reading)) as sim:
        async with Orchestrator(settings_for(sim)) as orch:
            await orch.run(requests, journal=journal, fleet="web")
            await orch.destroy(requests, journal=journal, fleet="web")
            transport = Counting(sim)
        async with Orchestrator(settings_for(sim), transport=transport) as orch:
            again = await orch.destroy(requests, journal=journal, fleet="web")
    assert {(vm.outcome, vm.reason) for vm in again.vms} == {("skipped", "in_trash")}
    looks = [r for r in transport.sent if r.path == "virtual_machines/_"]
    assert len(looks) == len(requests)
    assert again.summary.requests.total <= len(requests) + 6  # and a few list pages
