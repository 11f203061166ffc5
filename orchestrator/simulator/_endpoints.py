"""The endpoints: ``Ctx -> (status, body)``, pure functions over the state.

Each one first reads all its arguments in the order the server's schema
declares them (so argument errors come out in the same order as on the real
API), then resolves the lookups and acts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.simulator import _render as render
from orchestrator.simulator._actions import ActionTask
from orchestrator.simulator._args import Args
from orchestrator.simulator._catalogue import (
    DataCenter,
    DiskTemplate,
    Network,
    Organization,
    Package,
    Zone,
)
from orchestrator.simulator._config import SimulatorConfig
from orchestrator.simulator._errors import (
    LOOKUP_NOT_FOUND,
    SimApiError,
    api_error,
    invalid_argument,
    invalid_spec_xml,
    validation_error,
)
from orchestrator.simulator._state import Build, SimulatorState, VirtualMachine
from orchestrator.simulator._xmlspec import Ref, SpecXml, parse_spec_xml, render_spec_xml

__all__ = [
    "ORG_KEYS",
    "VM_KEYS",
    "Answer",
    "Ctx",
    "Endpoint",
    "find_org",
    "find_vm",
    "paginate",
    "resolve",
]

Answer = tuple[int, dict[str, Any]]
_T = TypeVar("_T")

ID_OR_PERMALINK = ("id", "permalink")
ORG_KEYS = ("id", "sub_domain")
VM_KEYS = ("id", "fqdn")


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an endpoint sees of one request."""

    state: SimulatorState
    config: SimulatorConfig
    args: Args
    now: float


Endpoint = Callable[[Ctx], Answer]


# ---------------------------------------------------------------- resolving


def resolve(
    name: str, lookup: tuple[str, str | None] | None, find: Callable[[str, str], _T | None]
) -> _T:
    """The object a lookup names, or the lookup's ``404 *_not_found``."""
    if lookup is None:
        raise api_error(LOOKUP_NOT_FOUND[name])
    key, value = lookup
    found = None if value is None else find(key, value)
    if found is None:
        raise api_error(LOOKUP_NOT_FOUND[name])
    return found


def find_org(ctx: Ctx, lookup: tuple[str, str | None] | None) -> Organization:
    org = resolve("organization", lookup, ctx.state.catalogue.org_by)
    if org.status == "suspended":
        raise api_error("organization_suspended")
    if org.status == "not_activated":
        raise api_error("organization_not_activated")
    return org


def paginate(
    items: Sequence[_T], page: int, per_page: int, large_threshold: int | None
) -> tuple[list[_T], dict[str, Any]]:
    page = max(1, page)
    per_page = max(1, per_page)
    start = (page - 1) * per_page
    chunk = list(items[start : start + per_page])
    large = large_threshold is not None and len(items) > large_threshold
    return chunk, render.pagination(page, per_page, len(items), large)


def _key_values(items: list[dict[str, str | None]]) -> list[dict[str, Any]]:
    return [{"key": kv["key"], "value": kv["value"]} for kv in items]


# ---------------------------------------------------------------- catalogue


def list_data_centers(ctx: Ctx) -> Answer:
    """``GET data_centers``."""
    return 200, {
        "data_centers": [
            {
                **render.data_center_short(dc),
                "country": {"id": dc.country.id, "name": dc.country.name},
            }
            for dc in ctx.state.catalogue.data_centers
        ]
    }


def get_default_network(ctx: Ctx) -> Answer:
    """``GET data_centers/:data_center/default_network`` (as recorded: with ``default``)."""
    lookup = ctx.args.lookup("data_center", ID_OR_PERMALINK, required=True)
    catalogue = ctx.state.catalogue
    data_center: DataCenter = resolve("data_center", lookup, catalogue.data_center_by)
    return 200, {"network": render.network_short(catalogue.default_network(data_center))}


def list_zones(ctx: Ctx) -> Answer:
    """``GET zones``."""
    return 200, {"zones": [render.zone_short(z) for z in ctx.state.catalogue.zones]}


def list_packages(ctx: Ctx) -> Answer:
    """``GET virtual_machine_packages`` (organization optional)."""
    a = ctx.args
    lookup = a.lookup("organization", ORG_KEYS, required=False)
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    if lookup is not None:
        find_org(ctx, lookup)
    items, pagination = paginate(ctx.state.catalogue.packages, page, per_page, None)
    return 200, {
        "pagination": pagination,
        "virtual_machine_packages": [render.package_list_item(p) for p in items],
    }


def get_organization(ctx: Ctx) -> Answer:
    """``GET organizations/:organization``."""
    org = find_org(ctx, ctx.args.lookup("organization", ORG_KEYS, required=True))
    return 200, {"organization": render.organization(org)}


def get_policy_limits(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/policy_limits``."""
    org = find_org(ctx, ctx.args.lookup("organization", ORG_KEYS, required=True))
    return 200, {
        "policy_limits": render.policy_limits(
            ctx.config.vm_limit, flexible_resources=org.flexible_resources
        )
    }


def list_ssh_keys(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/ssh_keys``: the organization's stored keys."""
    a = ctx.args
    lookup = a.lookup("organization", ORG_KEYS, required=True)
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    org = find_org(ctx, lookup)
    items, pagination = paginate(ctx.state.catalogue.ssh_keys_of(org), page, per_page, None)
    return 200, {"pagination": pagination, "ssh_keys": [render.ssh_key(k) for k in items]}


def list_tags(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/tags``: the organization's tags."""
    a = ctx.args
    lookup = a.lookup("organization", ORG_KEYS, required=True)
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    org = find_org(ctx, lookup)
    items, pagination = paginate(ctx.state.catalogue.tags_of(org), page, per_page, None)
    return 200, {"pagination": pagination, "tags": [render.tag(t) for t in items]}


def list_disk_templates(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/disk_templates``.

    The seeded templates are universal: like the real API, they are listed
    only with ``include_universal=true``.
    """
    a = ctx.args
    org_lookup = a.lookup("organization", ORG_KEYS, required=True)
    include_universal = a.boolean("include_universal", False)
    os_lookup = a.lookup("operating_system", ("id",), required=False)
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    find_org(ctx, org_lookup)
    templates: list[DiskTemplate] = [
        t for t in ctx.state.catalogue.disk_templates if include_universal or not t.universal
    ]
    if os_lookup is not None:
        os_ids = {t.os_id for t in ctx.state.catalogue.disk_templates}
        os_id = resolve("operating_system", os_lookup, lambda _k, v: v if v in os_ids else None)
        templates = [t for t in templates if t.os_id == os_id]
    items, pagination = paginate(templates, page, per_page, None)
    return 200, {
        "pagination": pagination,
        "disk_templates": [render.disk_template(t) for t in items],
    }


def list_networks(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/available_networks``."""
    find_org(ctx, ctx.args.lookup("organization", ORG_KEYS, required=True))
    return 200, {
        "networks": [render.network_short(n) for n in ctx.state.catalogue.networks],
        "virtual_networks": [],
    }


# ----------------------------------------------------------- virtual machines


def list_virtual_machines(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/virtual_machines`` (no trash, creation order).

    ``annotations[][key]``/``annotations[][value]`` keep only the VMs carrying
    every pair given (a pair without a value matches the key alone), unless the
    reading ``annotation_filter`` says it is ignored (every VM listed) or refused
    (``400 invalid_argument`` or ``422 validation_error``, both guesses). The
    reading ``vm_list_per_page`` says how wide a page may be.
    """
    a = ctx.args
    lookup = a.lookup("organization", ORG_KEYS, required=True)
    wanted = a.key_values("annotations")
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    per_page = _vm_list_page_size(a.endpoint_id, per_page, ctx.config.vm_list_per_page)
    org = find_org(ctx, lookup)
    if wanted and ctx.config.annotation_filter == "refused_400":
        raise invalid_argument(a.endpoint_id, ["annotations"], "parse_error")
    if wanted and ctx.config.annotation_filter == "refused_422":
        raise validation_error("Annotations cannot be used to filter virtual machines")
    vms = ctx.state.vms_of(org)
    if wanted and ctx.config.annotation_filter == "honoured":
        pairs = [(w["key"], w["value"]) for w in wanted]
        vms = ctx.state.vms_annotated(org, pairs, ctx.now)
    items, pagination = paginate(vms, page, per_page, ctx.config.large_set_threshold)
    return 200, {
        "pagination": pagination,
        "virtual_machines": [render.vm_list_item(v) for v in items],
    }


#: the reading ``vm_list_per_page``: the largest page, and whether more is refused
_PAGE_LIMITS: dict[str, tuple[int | None, bool]] = {
    "max_200": (200, True),
    "max_100": (100, True),
    "capped_100": (100, False),
    "unlimited": (None, False),
}


def _vm_list_page_size(endpoint_id: str, per_page: int, reading: str) -> int:
    """The page size the VM list answers at: Apia refuses ``per_page`` above the
    endpoint's maximum (``400 invalid_argument``, ``detail.path == ["per_page"]``,
    its validation named ``less_than_or_equal_to_one_hundred`` whatever the maximum);
    the ``capped_100`` reading answers 100 instead."""
    limit, refuses = _PAGE_LIMITS[reading]
    if limit is None or per_page <= limit:
        return per_page
    if refuses:
        raise invalid_argument(
            endpoint_id,
            ["per_page"],
            "validation_error",
            errors=["less_than_or_equal_to_one_hundred"],
        )
    return limit


def find_vm(ctx: Ctx, lookup: tuple[str, str | None] | None) -> VirtualMachine:
    """The VM a lookup names (by ``id`` or ``fqdn``): 404 if none, 406 if in the trash."""
    state = ctx.state
    vm = resolve(
        "virtual_machine",
        lookup,
        lambda key, value: state.vm_by_id(value) if key == "id" else state.vm_by_fqdn(value),
    )
    if vm.trash is not None:
        raise api_error("object_in_trash", {"trash_object": render.trash_object(vm, vm.trash)})
    return vm


def get_virtual_machine(ctx: Ctx) -> Answer:
    """``GET virtual_machines/:virtual_machine`` by ``id`` or ``fqdn``."""
    vm = find_vm(ctx, ctx.args.lookup("virtual_machine", VM_KEYS, required=True))
    return 200, {
        "annotations": _key_values(vm.annotations_at(ctx.now)),
        "virtual_machine": render.virtual_machine(vm, ctx.now, ctx.config.vm_start_seconds),
    }


def get_build(ctx: Ctx) -> Answer:
    """``GET virtual_machines/builds/:virtual_machine_build``."""
    lookup = ctx.args.lookup("virtual_machine_build", ("id",), required=False)
    build = resolve("virtual_machine_build", lookup, lambda _k, v: ctx.state.build_by_id(v))
    key = "build" if ctx.config.legacy_build_key else "virtual_machine_build"
    return 200, {
        key: render.build_info(build, ctx.now, ctx.config.vm_start_seconds),
        "annotations": _key_values(build.annotations),
    }


def get_task(ctx: Ctx) -> Answer:
    """``GET tasks/:task`` (a build's task, a stop's, a shutdown's or a purge's)."""
    lookup = ctx.args.lookup("task", ("id",), required=True)
    task = resolve("task", lookup, lambda _k, v: ctx.state.task_by_id(v))
    assert isinstance(task, Build | ActionTask)
    return 200, {"task": render.task(task, ctx.now)}


# ------------------------------------------------------------------- builds


def _accepted(ctx: Ctx, build: Build) -> Answer:
    short = {"id": build.id, "state": "pending"}
    answer: dict[str, Any] = {
        "task": {"id": build.task_id, "name": "Build virtual machine", "status": "pending"},
        "build": dict(short),
        "virtual_machine_build": dict(short),
        "hostname": build.hostname,
        "annotations": _key_values(build.annotations),
    }
    if ctx.config.legacy_build_key:
        del answer["virtual_machine_build"]  # an older server: the deprecated key alone
    return 201, answer


def _place(
    ctx: Ctx, zone: Zone | None, data_center: DataCenter | None, network: Network | None
) -> tuple[Zone, Network]:
    catalogue = ctx.state.catalogue
    if zone is None:
        assert data_center is not None
        zone = catalogue.zones_of(data_center)[0]
    elif data_center is not None and zone.data_center.id != data_center.id:
        raise validation_error("Zone is not within the data center chosen")
    if network is None:
        network = catalogue.default_network(zone.data_center)
    elif network.data_center.id != zone.data_center.id:
        raise validation_error("Network is not available in the data center chosen")
    return zone, network


def build_virtual_machine(ctx: Ctx) -> Answer:
    """``POST organizations/:organization/virtual_machines/build``."""
    a = ctx.args
    catalogue = ctx.state.catalogue
    org_l = a.lookup("organization", ORG_KEYS, required=True)
    zone_l = a.lookup("zone", ID_OR_PERMALINK, required=False)
    dc_l = a.lookup("data_center", ID_OR_PERMALINK, required=False)
    package_l = a.lookup("package", ID_OR_PERMALINK, required=True)
    template_l = a.lookup("disk_template", ID_OR_PERMALINK, required=False)
    options = a.key_values("disk_template_options")
    network_l = a.lookup("network", ID_OR_PERMALINK, required=False)
    hostname = a.string("hostname")
    annotations = a.key_values("annotations")

    org = find_org(ctx, org_l)
    if zone_l is None and dc_l is None:
        raise api_error("location_required")
    zone = resolve("zone", zone_l, catalogue.zone_by) if zone_l else None
    dc = resolve("data_center", dc_l, catalogue.data_center_by) if dc_l else None
    package: Package = resolve("package", package_l, catalogue.package_by)
    template = (
        resolve("disk_template", template_l, catalogue.disk_template_by) if template_l else None
    )
    network = resolve("network", network_l, catalogue.network_by) if network_l else None
    zone, network = _place(ctx, zone, dc, network)
    option_pairs = [(kv["key"] or "", kv["value"] or "") for kv in options]

    def spec_xml(final_hostname: str) -> str:
        return render_spec_xml(
            data_center_id=zone.data_center.id,
            zone_id=zone.id if zone_l else None,
            package_permalink=package.permalink,
            cpu_cores=None,
            memory_in_gb=None,
            disk_template_permalink=template.permalink if template else None,
            disk_template_options=option_pairs,
            network_id=network.id,
            hostname=final_hostname,
            name=None,
            description=None,
            tags=[],
        )

    build = ctx.state.create_build(
        org=org,
        zone=zone,
        network=network,
        package=package,
        cpu_cores=None,
        memory_in_gb=None,
        hostname=hostname,
        name=None,
        description=None,
        tags=[],
        annotations=annotations,
        spec_xml=spec_xml,
        now=ctx.now,
    )
    return _accepted(ctx, build)


def detail_messages_of(error: SimApiError) -> list[str]:
    """The ``detail.errors`` messages of an error, or its description."""
    detail = error.detail if isinstance(error.detail, dict) else {}
    messages = detail.get("errors")
    if isinstance(messages, list) and messages:
        return [str(m) for m in messages]
    return [error.description or error.code]


def _spec_ref(what: str, ref: Ref | None, find: Callable[[str, str], _T | None]) -> _T | None:
    if ref is None:
        return None
    by, value = ref
    found = find(by, value)
    if found is None:
        raise invalid_spec_xml(f"No {what} was found matching {by} '{value}'")
    return found


def _check_spec_keys_and_tags(ctx: Ctx, org: Organization, spec: SpecXml) -> list[str]:
    """The ids of the spec's SSH keys, which must be stored in the organization.

    Tags must be the organization's tags. Refusals are ``invalid_spec_xml``
    [inferred texts].
    """
    catalogue = ctx.state.catalogue
    keys = catalogue.ssh_keys_of(org)
    ids: list[str] = []
    for by, value in spec.ssh_keys:
        found = [k for k in keys if by in ("id", "name") and getattr(k, by) == value]
        if not found:
            raise invalid_spec_xml(f"No SSH key was found matching {by} '{value}'")
        ids.append(found[0].id)
    names = {t.name for t in catalogue.tags_of(org)}
    for name in spec.tags:
        if name not in names:
            raise invalid_spec_xml(f"No tag was found matching name '{name}'")
    return ids


def build_virtual_machine_from_spec(ctx: Ctx) -> Answer:
    """``POST organizations/:organization/virtual_machines/build_from_spec``."""
    a = ctx.args
    catalogue = ctx.state.catalogue
    org_l = a.lookup("organization", ORG_KEYS, required=True)
    xml = a.string("xml", required=True)
    annotations = a.key_values("annotations")
    org = find_org(ctx, org_l)
    spec: SpecXml = parse_spec_xml(xml or "")
    zone = _spec_ref("zone", spec.zone, catalogue.zone_by)
    dc = _spec_ref("data center", spec.data_center, catalogue.data_center_by)
    if zone is None and dc is None:
        raise invalid_spec_xml("A DataCenter or a Zone must be specified")
    if zone is not None and dc is not None:
        raise invalid_spec_xml("Only one of DataCenter or Zone may be specified")
    package = _spec_ref("package", spec.package, catalogue.package_by)
    if package is None and (spec.cpu_cores is None or spec.memory_in_gb is None):
        raise invalid_spec_xml("Resources must name a Package, or give CPUCores and Memory")
    if (spec.cpu_cores is not None or spec.memory_in_gb is not None) and (
        not org.flexible_resources
    ):
        # [inferred] the refusal's exact code is unconfirmed; the policy is seen
        raise validation_error("Flexible resources are not available to this organization")
    key_ids = _check_spec_keys_and_tags(ctx, org, spec)
    template = _spec_ref("disk template", spec.disk_template, catalogue.disk_template_by)
    network = _spec_ref(
        "network", spec.networks[0] if spec.networks else None, catalogue.network_by
    )
    zone, network = _place(ctx, zone, dc, network)

    def spec_xml(final_hostname: str) -> str:
        return render_spec_xml(
            data_center_id=zone.data_center.id,
            zone_id=zone.id if spec.zone else None,
            package_permalink=package.permalink if package else None,
            cpu_cores=spec.cpu_cores,
            memory_in_gb=spec.memory_in_gb,
            disk_template_permalink=template.permalink if template else None,
            disk_template_options=spec.disk_template_options,
            network_id=network.id,
            hostname=final_hostname,
            name=spec.name,
            description=spec.description,
            tags=spec.tags,
            ssh_key_ids=key_ids,
        )

    try:
        build = ctx.state.create_build(
            org=org,
            zone=zone,
            network=network,
            package=package,
            cpu_cores=spec.cpu_cores,
            memory_in_gb=spec.memory_in_gb,
            hostname=spec.hostname,
            name=spec.name,
            description=spec.description,
            tags=spec.tags if ctx.config.xml_tags == "applied" else [],
            annotations=annotations,
            spec_xml=spec_xml,
            now=ctx.now,
            # [inferred either way] a spec without an interface: see xml_without_interface
            addressed=bool(spec.networks) or ctx.config.xml_without_interface != "no_address",
        )
    except SimApiError as error:
        # this endpoint lists no resource_creation_restricted: the organization's
        # VM limit comes out as a validation error [inferred]
        if error.code != "resource_creation_restricted":
            raise
        raise validation_error(*detail_messages_of(error)) from None
    return _accepted(ctx, build)
