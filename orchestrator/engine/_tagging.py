"""Tags are set on a VM once it is built, as the official Terraform provider does.

The spec XML carries the tag names too, but whether a build applies them is
unconfirmed; ``PATCH virtual_machines/_`` with ``properties[tag_names]`` sets
them for certain and answers with the tags the VM has, so a VM never silently
lacks one. The PATCH sets (never adds), so repeating it is harmless: it is
retried like a GET. When no answer of it arrives, the VM is read back: its
tags say whether it was applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator.engine._track import error_info
from orchestrator.errors import ApiError, Category, TransportError
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import Lookup

if TYPE_CHECKING:
    from orchestrator.engine._operation import Conductor

__all__ = ["apply_tags"]


async def apply_tags(
    run: Conductor,
    vm_id: str | None,
    fqdn: str | None,
    tags: Sequence[str],
) -> tuple[tuple[str, ...], tuple[Category, ErrorInfo] | None]:
    """Set ``tags`` on the VM; the tags it has afterwards, and the failure if any.

    A failure is the API's error (categorized as any other), or
    ``tags_not_applied`` (``validation``) when the VM answered without some of
    them. The VM is named by id, else by fqdn.
    """
    vm = Lookup("id", vm_id) if vm_id else Lookup("fqdn", fqdn) if fqdn else None
    if vm is None:
        return (), (
            "server_error",
            ErrorInfo(code="tags_not_applied", description="the VM's id is unknown: not tagged"),
        )
    try:
        updated = await run.retried(lambda: run.api.set_vm_tags(vm, tags))
    except (ApiError, TransportError) as exc:
        # the PATCH may have been applied and only its answer lost: what the VM has
        # is read back, so the row never says [] of a VM that has its tags
        try:
            looked = await run.retried(lambda: run.api.get_vm(vm))
        except (ApiError, TransportError):
            return (), (exc.category, error_info(exc))
        have = tuple(looked.tag_names)
        if all(tag in have for tag in tags):
            return have, None
        return have, (exc.category, error_info(exc))
    have = tuple(updated.tag_names)
    missing = [tag for tag in tags if tag not in have]
    if missing:
        return have, (
            "validation",
            ErrorInfo(
                code="tags_not_applied",
                description=f"the VM was built but lacks the tags {', '.join(missing)}",
            ),
        )
    return have, None
