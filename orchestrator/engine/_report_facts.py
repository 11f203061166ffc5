"""What the report's timeline needs of each VM beyond its result: the package and
location the spec asked for, and when the run first saw the VM's record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from orchestrator.report import VmResult
from orchestrator.vm_request import VmRequest

__all__ = ["with_build_facts"]


def with_build_facts(
    results: Sequence[VmResult],
    requests: Sequence[VmRequest],
    first_seen: Mapping[str, datetime],
) -> list[VmResult]:
    """``results`` with ``package``, ``location`` and ``first_seen_at`` filled in where known.

    A result that already carries a ``first_seen_at`` (from the journal of an
    earlier run) keeps it.
    """
    by_key = {req.key: req for req in requests}
    filled = []
    for result in results:
        req = by_key.get(result.key)
        seen = result.first_seen_at or first_seen.get(result.key)
        if req is None and seen is None:
            filled.append(result)
            continue
        update: dict[str, object] = {"first_seen_at": seen}
        if req is not None:
            update["package"] = req.package.value
            update["location"] = None if req.location == "?" else req.location
        filled.append(result.model_copy(update=update))
    return filled
