"""A VM's fate: what each operation does with it, from what is known and nothing else.

Three things are known of each VM of a spec before anything is sent for it
(``docs/guarantees.md``, "What is ours, and how we know"; the table of cases is
``shared/design/FLEET-STATE.md``):

* **what the API holds for its hostname now** (:data:`Seen`), from the fleet's
  listing and one look at the VM found there: the API is the record;
* **what this fleet's journal remembers of its builds** (:class:`Row`): what
  was sent, never proof that a VM exists, is ours, or is still failed; the
  one thing a row proves is that *this fleet's own accepted build created VM
  X* (:attr:`Row.created`), which makes X ours where the API keeps no
  annotations;
* **the operation**: a build (``run``) or a delete (``destroy``, ``run --prune``).

:func:`build_fate` and :func:`delete_fate` are pure: the operations call them
and carry out what they answer; ``tests/engine_units/test_fate.py`` holds the
table, one row per case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestrator.engine.state._model import JournalEntry

__all__ = [
    "BROKEN_STATES",
    "BUILDING_STATES",
    "BuildFate",
    "DeleteFate",
    "Row",
    "RowFact",
    "Seen",
    "build_fate",
    "delete_fate",
    "row_of",
    "seen_of",
]

Seen = Literal[
    "none",  # A0: looked up, not there (the listing does not show the trash)
    "ours",  # A1: carries this fleet's identity, in a good state
    "ours_broken",  # A2: carries this fleet's identity, failed or orphaned
    "ours_building",  # A3: carries this fleet's identity, still being built
    "theirs",  # A4: carries another fleet's identity, or someone else's annotations
    "bare",  # A5: no annotations of ours or anyone's (or the API keeps none)
    "trash_ours",  # A6: a VM of this fleet in the trash, holding the hostname
    "trash_theirs",  # A7: someone else's VM in the trash
]
"""What the API holds for a hostname now."""

RowFact = Literal[
    "none",  # B0: nothing (or only what a run *found*: never evidence)
    "sent",  # B1: an intent, or a POST whose outcome is unknown
    "accepted",  # B2: a build accepted (ids known), not finished
    "created",  # B3: a build of ours that created VM X
    "failed",  # B4: a build that ended failed
    "deleted",  # B5: a delete or purge (rows of a journal written before deletes had their own)
]
"""What this fleet's journal remembers of a VM's builds."""

#: VM states of a build still under way
BUILDING_STATES = frozenset({"allocating", "allocated"})
#: VM states that make a VM unusable: it must be deleted before it can be rebuilt
BROKEN_STATES = frozenset({"failed", "orphaned"})
#: reasons of a finished row that a delete wrote (journals from before deletes had a table)
_DELETE_REASONS = frozenset({"deleted", "purged", "absent", "already_deleted", "in_trash"})


@dataclass(frozen=True, slots=True)
class Row:
    """What the journal's build row of a VM says, reduced to what decides anything."""

    fact: RowFact = "none"
    #: the VM this fleet's own accepted build created (the only row evidence of ownership)
    created: str | None = None


#: the rows that name no VM are shared (a Row never changes)
_NOTHING, _SENT, _DELETED = Row(), Row("sent"), Row("deleted")


def row_of(entry: JournalEntry | None) -> Row:
    """Reduce a build row of the journal to a :class:`Row`.

    A VM id counts as *created by us* only when the row shows an accepted
    build of ours (its task or build id) or a VM adopted after an uncertain POST
    of ours, and never in a row a delete wrote, nor for a VM a run *found*
    (``skipped``: ``already_exists``, ``not_ours``, ...).
    """
    if entry is None or entry.state == "pending":
        return _NOTHING
    if entry.state in ("intent", "uncertain"):
        return _SENT
    if entry.state == "submitted":
        return Row("accepted", created=entry.vm_id)
    result = entry.result
    if result is None:  # pragma: no cover - a finished row always has its result
        return _NOTHING
    if result.reason in _DELETE_REASONS:
        return _DELETED
    vm = result.virtual_machine
    vm_id = vm.id if vm is not None else entry.vm_id
    ours = bool(result.task_id or result.build_id or entry.task_id or entry.build_id)
    if result.reason == "adopted":
        ours = True  # found by hostname after an uncertain POST of ours
    created = vm_id if ours and result.outcome != "skipped" else None
    if result.category == "timeout" and (result.build_id or entry.build_id):
        return Row("accepted", created=created)  # it may still finish: follow, never re-send
    if result.outcome == "succeeded":
        return Row("created", created=created)
    if result.outcome == "failed" and result.category == "build_failed":
        # the VM a failed build of ours left (or one adopted after our uncertain POST);
        # never one a run *found* broken (``failed_vm_exists``)
        if result.reason != "failed_vm_exists":
            created = vm_id
        return Row("failed", created=created)
    if result.outcome == "failed" and created is not None:
        return Row("created", created=created)  # built, then its tags could not be set
    return _NOTHING


def seen_of(
    verdict: Literal["ours", "theirs", "unknown"], state: str | None, *, in_trash: bool = False
) -> Seen:
    """What a VM found for the hostname is, from whose its annotations say and its state."""
    if in_trash:
        return "trash_ours" if verdict == "ours" else "trash_theirs"
    if verdict == "theirs":
        return "theirs"
    if verdict == "unknown":
        return "bare"
    if state in BROKEN_STATES:
        return "ours_broken"
    if state in BUILDING_STATES:
        return "ours_building"
    return "ours"


BuildFate = Literal[
    "submit",  # nothing there: send the build
    "reconcile",  # a POST may have taken: look again past the time-to-VM, then send
    "follow_build",  # our accepted build: poll it
    "ours",  # ours and there: skipped (already_exists); tags as a union
    "follow_vm",  # ours, still being built: poll the VM
    "broken",  # ours and failed: failed/build_failed, "delete it first"; nothing sent
    "conflict",  # someone else's: failed/conflict, naming both identities
    "not_ours",  # not provably ours: skipped/not_ours, never tagged, inventoried or deleted
    "held_by_trash",  # ours in the trash, hostname held: failed, "destroy --purge"
]


def _proven(state: str | None) -> Seen:
    """A VM without annotations that our own build created: ours, in ``state``."""
    return seen_of("ours", state)


def build_fate(
    seen: Seen,
    row: Row,
    *,
    vm_id: str | None,
    copies: bool | None,
    vm_state: str | None = None,
) -> BuildFate:
    """Where a VM's build starts. ``vm_id``/``vm_state``: the VM seen (if any);
    ``copies``: whether the API is known to copy a build's annotations onto its VM
    (None: not known)."""
    if seen == "none":
        if row.fact == "sent":
            return "reconcile"
        return "follow_build" if row.fact == "accepted" else "submit"
    if seen in ("theirs", "trash_theirs"):
        return "conflict"
    if seen == "trash_ours":
        return "held_by_trash"
    if seen == "bare":
        proven = row.created is not None and row.created == vm_id
        if row.fact == "accepted" and row.created is None:
            return "follow_build"  # our build in flight names its VM: that decides
        if not proven and row.fact == "sent" and copies is not True:
            # our uncertain POST may have created it, on an API that keeps no annotations
            return "follow_vm"
        if not proven and vm_state in BROKEN_STATES:
            return "broken"  # a broken VM holds the hostname: never reported as fine
        if not proven:
            return "not_ours"
        seen = _proven(vm_state)
    if seen == "ours_broken":
        return "broken"
    if row.fact == "accepted" and row.created in (None, vm_id):
        return "follow_build"
    if seen == "ours_building" or row.fact == "sent":
        return "follow_vm"  # (sent: our uncertain POST created it; it ends ``adopted``)
    return "ours"


DeleteFate = Literal[
    "absent",  # nothing of ours there: skipped/absent (after looking)
    "follow_build",  # our accepted build has no VM yet: follow it until it shows one
    "reconcile",  # a POST of ours may still create one: look again past the time-to-VM
    "delete",  # ours: stop if need be, delete, purge when asked
    "wait",  # ours, still being built: wait for the build to end, then delete
    "not_ours",  # failed/not_ours: never deleted
    "in_trash",  # ours, in the trash: purge when asked, else skipped/in_trash
]


def delete_fate(
    seen: Seen, row: Row, *, vm_id: str | None, vm_state: str | None = None
) -> DeleteFate:
    """What a delete does with a VM. ``row`` is the fleet's *build* row (a delete's own
    rows are never evidence of anything); ``vm_id`` the VM seen (if any)."""
    if seen == "none":
        if row.fact == "sent":
            return "reconcile"
        return "follow_build" if row.fact == "accepted" else "absent"
    if seen in ("theirs", "trash_theirs"):
        return "not_ours"
    if seen == "trash_ours":
        return "in_trash"
    if seen == "bare":
        if row.fact == "accepted" and row.created is None:
            return "follow_build"  # our build in flight names its VM: that decides
        if row.created is None or row.created != vm_id:
            return "not_ours"
        seen = _proven(vm_state)
    if seen == "ours_building":
        return "wait"
    return "delete"
