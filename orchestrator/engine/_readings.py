"""The readings of the unconfirmed API a run (or ``plan``) found out, for the report.

Each is found out on the way, never by a request of its own:

* ``annotation_filter``: the fleet's listing asks once per run whether the VM
  list honours its annotation filter (:class:`~orchestrator.engine._fleet_listing.FleetFinder`);
* ``annotations_copied``: whether a build's annotations show on its VM, from
  the first build of the run that is complete, or a VM found carrying them;
* ``vm_list_page_size``: whether the VM list answered a page of 200 VMs as
  asked, answered it smaller, or refused it (then asked at 100), from the first
  list read wider than 100 (:mod:`orchestrator.katapult._page_size`);
* ``delete_running``: ``refused`` when a DELETE was refused because its VM was
  not stopped (destroy stops VMs first, so only a VM started again between its
  stop and its DELETE meets it; an accepted DELETE of a running VM is never sent).
"""

from __future__ import annotations

from orchestrator.engine._fleet_listing import FleetFinder
from orchestrator.engine._ownership import Ownership
from orchestrator.report import ApiReading

__all__ = ["found_readings"]


def found_readings(
    finder: FleetFinder,
    ownership: Ownership | None,
    *,
    delete_refused: str | None = None,
) -> list[ApiReading]:
    """What was found out, in :data:`~orchestrator.report._model.ReadingName` order.

    ``delete_refused``: the evidence of a DELETE refused because its VM was not stopped.
    """
    found: list[ApiReading] = []
    if finder.filter is not None:
        found.append(
            ApiReading(
                name="annotation_filter", value=finder.filter, evidence=finder.filter_evidence
            )
        )
    copied, evidence = (ownership.copied, ownership.evidence) if ownership else (None, None)
    if copied is None and finder.copies:
        copied, evidence = True, finder.copies_evidence
    if copied is not None:
        found.append(
            ApiReading(
                name="annotations_copied",
                value="copied" if copied else "not_copied",
                evidence=evidence,
            )
        )
    page_size = finder.page_size
    if page_size.reading is not None:
        found.append(
            ApiReading(
                name="vm_list_page_size", value=page_size.reading, evidence=page_size.evidence
            )
        )
    if delete_refused is not None:
        found.append(ApiReading(name="delete_running", value="refused", evidence=delete_refused))
    return found
