"""What the report's timeline needs of each VM beyond its result: the package and
location the spec asked for, and when the run first saw the VM's record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from orchestrator.report import VmResult
from orchestrator.vm_request import VmRequest

__all__ = ["FirstSeen", "with_build_facts", "with_build_facts_of"]

#: hostname key -> when this run first saw the VM's record
FirstSeen = dict[str, datetime]


def with_build_facts_of(
    result: VmResult, request: VmRequest | None, first_seen: datetime | None
) -> VmResult:
    """``result`` with ``package``, ``location`` (from ``request``) and ``first_seen_at``
    filled in where it lacks them (what it has is kept)."""
    update: dict[str, object] = {}
    if result.first_seen_at is None and first_seen is not None:
        update["first_seen_at"] = first_seen
    if request is not None and result.package is None:
        update["package"] = request.package.value
        update["location"] = None if request.location == "?" else request.location
    return result.model_copy(update=update) if update else result


def with_build_facts(
    results: Sequence[VmResult],
    requests: Sequence[VmRequest],
    first_seen: Mapping[str, datetime],
) -> list[VmResult]:
    """Every result through :func:`with_build_facts_of` (results from the journal of an
    earlier run, and those that never went through the run's end of a VM)."""
    by_key = {req.key: req for req in requests}
    return [
        with_build_facts_of(result, by_key.get(result.key), first_seen.get(result.key))
        for result in results
    ]
