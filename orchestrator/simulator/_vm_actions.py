"""The endpoints that change a VM and end its life: update, stop, shutdown, delete, purge.

As the server's schema describes them:

- ``PATCH virtual_machines/:virtual_machine`` with ``properties``
  (``hostname``, ``name``, ``description``, ``tag_names``; ``group`` and
  ``gpu_type`` are accepted and ignored) and optional ``annotations``
  (replacing the VM's) answers ``200 {"virtual_machine", "annotations"}``. A
  new hostname is checked like a build's (``422 validation_error``: invalid,
  too long, taken, as the ``duplicate_hostnames`` reading says) and frees the
  old one at once - the Terraform provider's way to free a name before a
  delete.

- ``POST virtual_machines/:virtual_machine/stop`` and ``.../shutdown`` queue a
  task and answer ``200 {"task": {id, name, status}}``; errors: the lookup's
  ``404 virtual_machine_not_found`` / ``406 object_in_trash``,
  ``permission_denied``, ``task_queueing_error`` (never raised here).
- ``DELETE virtual_machines/:virtual_machine`` moves the VM to the trash at
  once and answers ``200 {"trash_object", "virtual_machine"}`` (no task). The
  schema documents no refusal for a running VM, so any VM is trashed whatever
  its state (the Terraform provider stops it first; that is its choice).
  Deleting it again is ``406 object_in_trash``; once purged, ``404``.
- ``GET trash_objects/:trash_object`` (``id`` or ``object_id``) and
  ``GET organizations/:organization/trash_objects`` show the trash.
- ``DELETE trash_objects/:trash_object`` purges: ``200 {"task": {...}}`` with
  the full task (``Purge items from trash``); when the task ends the trash
  object, the VM and its hold on the hostname are gone (``404`` from then on).
"""

from __future__ import annotations

from typing import Any, Literal

from orchestrator.simulator import _render as render
from orchestrator.simulator._args import Args
from orchestrator.simulator._endpoints import (
    ORG_KEYS,
    VM_KEYS,
    Answer,
    Ctx,
    find_org,
    find_vm,
    paginate,
    resolve,
)
from orchestrator.simulator._errors import api_error, invalid_argument, missing_required_argument
from orchestrator.simulator._state import VirtualMachine

__all__ = [
    "delete_virtual_machine",
    "get_trash_object",
    "list_trash_objects",
    "purge_trash_object",
    "shutdown_virtual_machine",
    "stop_virtual_machine",
    "update_virtual_machine",
]

TRASH_KEYS = ("id", "object_id")


def _tag_names(endpoint_id: str, raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise invalid_argument(endpoint_id, ["properties", "tag_names"], "invalid_scalar")
    return list(raw)


def update_virtual_machine(ctx: Ctx) -> Answer:
    """``PATCH virtual_machines/:virtual_machine``: rename, re-describe, re-tag, re-annotate."""
    a = ctx.args
    lookup = a.lookup("virtual_machine", VM_KEYS, required=True)
    raw = a.raw("properties")
    if raw is None:
        raise missing_required_argument(a.endpoint_id, "properties")
    if not isinstance(raw, dict):
        raise invalid_argument(a.endpoint_id, ["properties"], "object_expected")
    props = Args(raw, {}, a.endpoint_id)
    hostname, name = props.string("hostname"), props.string("name")
    description = props.string("description")
    tags = _tag_names(a.endpoint_id, raw.get("tag_names"))
    annotations = a.key_values("annotations") if a.raw("annotations") is not None else None
    vm = find_vm(ctx, lookup)
    ctx.state.update_vm(
        vm,
        hostname=hostname,
        name=name,
        description=description,
        tags=tags,
        annotations=annotations,
    )
    return 200, {
        "virtual_machine": render.virtual_machine(vm, ctx.now, ctx.config.vm_start_seconds),
        "annotations": [{"key": kv["key"], "value": kv["value"]} for kv in vm.annotations],
    }


def _touch(ctx: Ctx, lookup: tuple[str, str | None] | None, action: str) -> None:
    """Note the VM a stop, shutdown or DELETE by id reached (trashed ones too), for
    the snapshot's ``vm_actions``."""
    if lookup is None or lookup[0] != "id" or lookup[1] is None:
        return
    vm = ctx.state.vm_by_id(lookup[1])
    if vm is not None:
        state = "in_trash" if vm.trash else vm.state(ctx.now, ctx.config.vm_start_seconds)
        ctx.state.touched = (vm.id, action, state)


def _power(ctx: Ctx, kind: Literal["stop", "shutdown"]) -> Answer:
    lookup = ctx.args.lookup("virtual_machine", VM_KEYS, required=True)
    _touch(ctx, lookup, kind)
    vm = find_vm(ctx, lookup)
    task = ctx.state.stop_vm(vm, kind, ctx.now)
    return 200, {"task": render.task_short(task, ctx.now)}


def stop_virtual_machine(ctx: Ctx) -> Answer:
    """``POST virtual_machines/:virtual_machine/stop``: power off at once (a task)."""
    return _power(ctx, "stop")


def shutdown_virtual_machine(ctx: Ctx) -> Answer:
    """``POST virtual_machines/:virtual_machine/shutdown``: a graceful stop (a task)."""
    return _power(ctx, "shutdown")


def delete_virtual_machine(ctx: Ctx) -> Answer:
    """``DELETE virtual_machines/:virtual_machine``: to the trash; the hostname stays taken."""
    lookup = ctx.args.lookup("virtual_machine", VM_KEYS, required=False)
    _touch(ctx, lookup, "delete")
    vm = find_vm(ctx, lookup)
    state = vm.state(ctx.now, ctx.config.vm_start_seconds)
    if ctx.config.delete_running == "refuse" and state not in ("stopped", "failed", "orphaned"):
        raise api_error(
            "deletion_restricted",
            {"errors": ["Virtual machine must be stopped before it can be deleted"]},
        )
    trash = ctx.state.trash_vm(vm.id)
    return 200, {
        "trash_object": render.trash_object(vm, trash),
        "virtual_machine": render.virtual_machine(vm, ctx.now, ctx.config.vm_start_seconds),
    }


def _trashed(ctx: Ctx) -> VirtualMachine:
    lookup = ctx.args.lookup("trash_object", TRASH_KEYS, required=True)
    return resolve("trash_object", lookup, ctx.state.trash_object)


def get_trash_object(ctx: Ctx) -> Answer:
    """``GET trash_objects/:trash_object`` by ``id`` or ``object_id``."""
    vm = _trashed(ctx)
    assert vm.trash is not None
    return 200, {"trash_object": render.trash_object(vm, vm.trash)}


def list_trash_objects(ctx: Ctx) -> Answer:
    """``GET organizations/:organization/trash_objects``, in the order things were trashed."""
    a = ctx.args
    lookup = a.lookup("organization", ORG_KEYS, required=True)
    page, per_page = a.integer("page", 1), a.integer("per_page", ctx.config.per_page_default)
    org = find_org(ctx, lookup)
    items, pagination = paginate(ctx.state.trash_of(org), page, per_page, None)
    return 200, {
        "pagination": pagination,
        "trash_objects": [render.trash_object(vm, vm.trash) for vm in items if vm.trash],
    }


def purge_trash_object(ctx: Ctx) -> Answer:
    """``DELETE trash_objects/:trash_object``: a task that purges the VM for good."""
    vm = _trashed(ctx)
    task = ctx.state.purge_vm(vm, ctx.now)
    return 200, {"task": render.task(task, ctx.now)}
