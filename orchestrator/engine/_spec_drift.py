"""What a VM's POST asked for, and where the spec now differs from what the journal says
a VM was built with.

A VM that was built (or is being built) is never rebuilt because the spec changed:
the difference is reported (``VmResult.spec_changed``) and logged. A VM now in
another organization is another VM altogether: the journal's record of it says
nothing about that organization, so such a journal is refused unless rebound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, get_args

from orchestrator.engine.state._model import JournalEntry
from orchestrator.report import SpecChange, VmResult
from orchestrator.vm_request import VmRequest

__all__ = ["moved_organization", "spec_changes", "spec_of", "with_spec_changes"]

_FIELDS: Final = get_args(SpecChange.model_fields["field"].annotation)


def spec_of(request: VmRequest) -> dict[str, str]:
    """What ``request``'s POST asks for, as the journal records it."""
    template = request.disk_template
    return {
        "organization": request.organization.value,
        "package": request.package.value,
        "disk_template": template.value if template is not None else "",
        "location": request.location,
    }


def _built(entry: JournalEntry) -> bool:
    """Whether the journal says a POST of this VM may have created it."""
    if entry.state in ("intent", "submitted", "uncertain"):
        return True
    result = entry.result
    return entry.state == "finished" and result is not None and result.outcome == "succeeded"


def spec_changes(
    requests: Sequence[VmRequest], entries: Mapping[str, JournalEntry]
) -> dict[str, list[SpecChange]]:
    """By key: the fields whose spec value differs from what the VM was built with."""
    changes: dict[str, list[SpecChange]] = {}
    for request in requests:
        entry = entries.get(request.key)
        if entry is None or entry.built_with is None or not _built(entry):
            continue
        now = spec_of(request)
        found = [
            SpecChange(field=name, built=entry.built_with.get(name), spec=now[name])
            for name in _FIELDS
            if name in entry.built_with and entry.built_with[name] != now[name]
        ]
        if found:
            changes[request.key] = found
    return changes


def moved_organization(changes: Mapping[str, list[SpecChange]]) -> list[str]:
    """``key (built in A, spec says B)`` for each VM whose organization changed."""
    return [
        f"{key} (built in {change.built}, the spec says {change.spec})"
        for key, found in changes.items()
        for change in found
        if change.field == "organization"
    ]


def with_spec_changes(
    results: Sequence[VmResult], changes: Mapping[str, list[SpecChange]]
) -> list[VmResult]:
    """``results`` with ``spec_changed`` set where the spec differs from what was built."""
    return [
        result.model_copy(update={"spec_changed": changes[result.key]})
        if result.key in changes and result.outcome != "failed"
        else result
        for result in results
    ]
