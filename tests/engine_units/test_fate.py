"""A VM's fate as a table: one row per case of ``shared/design/FLEET-STATE.md``.

``A`` is what the API holds for the hostname now, ``B`` what the fleet's journal
remembers of its builds; the decision is a function of them and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.engine._delete import must_stop_first
from orchestrator.engine.state._model import JournalEntry, JournalState
from orchestrator.engine.state.fate import (
    Row,
    Seen,
    build_fate,
    delete_fate,
    row_of,
    seen_of,
)
from orchestrator.errors import ApiError
from orchestrator.report import VmRef, VmResult

X = "vm_x"  # the VM the API shows for the hostname
Y = "vm_y"  # another VM

B0 = Row()
B1 = Row("sent")
B2 = Row("accepted")
B2X = Row("accepted", created=X)
B3X = Row("created", created=X)
B3Y = Row("created", created=Y)
B4 = Row("failed")
B4X = Row("failed", created=X)
B5 = Row("deleted")
EVERY_ROW = [B0, B1, B2, B2X, B3X, B3Y, B4, B4X, B5]


# ------------------------------------------------------------------ build

BUILD_TABLE: list[tuple[Seen, Row, bool | None, str]] = [
    # A0: nothing there
    ("none", B0, None, "submit"),
    ("none", B1, None, "reconcile"),  # wait past the time-to-VM, look again, then submit
    ("none", B2, None, "follow_build"),
    ("none", B3X, None, "submit"),  # the VM is gone, whatever the row says (purged fleet)
    ("none", B4, None, "submit"),
    ("none", B5, None, "submit"),
    # A1: ours, good: already there, whatever an old row says (a healthy VM is never
    # failed forever for an old failed row)
    ("ours", B0, True, "ours"),
    ("ours", B3X, True, "ours"),
    ("ours", B4, True, "ours"),
    ("ours", B4X, True, "ours"),
    ("ours", B5, True, "ours"),
    ("ours", B2X, True, "follow_build"),  # the build this run follows ends it succeeded
    ("ours", B1, True, "follow_vm"),  # our uncertain POST made it: adopted
    # A2: ours, failed: "delete it first", nothing sent
    ("ours_broken", B0, True, "broken"),
    ("ours_broken", B3X, True, "broken"),
    ("ours_broken", B4X, True, "broken"),
    # A3: ours, still being built: follow it
    ("ours_building", B0, True, "follow_vm"),
    ("ours_building", B3X, True, "follow_vm"),
    ("ours_building", B2X, True, "follow_build"),
    # A4, A7: someone else's
    *[("theirs", row, True, "conflict") for row in EVERY_ROW],
    *[("trash_theirs", row, None, "conflict") for row in EVERY_ROW],
    # A5: no annotations
    ("bare", B3X, False, "ours"),  # our build created this very VM
    ("bare", B3X, None, "ours"),
    ("bare", B1, None, "follow_vm"),
    ("bare", B1, False, "follow_vm"),  # B1 while the API is not known to copy annotations
    ("bare", B0, None, "not_ours"),  # a VM that existed before the fleet
    ("bare", B0, False, "not_ours"),
    ("bare", B4, False, "not_ours"),
    ("bare", B5, False, "not_ours"),  # a delete's row is never evidence
    ("bare", B3Y, False, "not_ours"),  # our build created another VM
    ("bare", B2, False, "follow_build"),  # our build in flight will name its VM
    # A6: ours in the trash: the hostname is held
    *[("trash_ours", row, None, "held_by_trash") for row in EVERY_ROW],
]


@pytest.mark.parametrize(("seen", "row", "copies", "expected"), BUILD_TABLE)
def test_build_fate(seen: Seen, row: Row, copies: bool | None, expected: str) -> None:
    assert build_fate(seen, row, vm_id=None if seen == "none" else X, copies=copies) == expected


def test_a_failed_vm_holding_the_hostname_is_never_reported_fine_even_if_not_ours() -> None:
    """Not provably ours, but failed: ``broken`` (failed, "delete it first"), not skipped."""
    assert build_fate("bare", B0, vm_id=X, copies=False, vm_state="failed") == "broken"
    assert build_fate("bare", B0, vm_id=X, copies=False, vm_state="started") == "not_ours"


@pytest.mark.parametrize(
    ("state", "expected"),
    [("started", "ours"), ("failed", "broken"), ("allocating", "follow_vm")],
)
def test_a_vm_without_annotations_that_our_build_created_is_judged_by_its_state(
    state: str, expected: str
) -> None:
    assert build_fate("bare", B3X, vm_id=X, copies=False, vm_state=state) == expected
    assert build_fate("bare", B4X, vm_id=X, copies=False, vm_state=state) == expected


# ------------------------------------------------------------------ delete

DELETE_TABLE: list[tuple[Seen, Row, str]] = [
    # A0: absent only after looking, never while a VM of ours may still appear
    ("none", B0, "absent"),
    ("none", B3X, "absent"),
    ("none", B4, "absent"),
    ("none", B5, "absent"),
    ("none", B2, "follow_build"),
    ("none", B1, "reconcile"),
    # A1, A2: ours
    *[("ours", row, "delete") for row in EVERY_ROW],
    *[("ours_broken", row, "delete") for row in EVERY_ROW],
    # A3: wait for the build to end
    ("ours_building", B0, "wait"),
    ("ours_building", B2X, "wait"),
    # A5: only our own build's VM
    ("bare", B3X, "delete"),
    ("bare", B4X, "delete"),  # a failed build of ours left this very VM
    ("bare", B0, "not_ours"),  # existed before the fleet
    ("bare", B1, "not_ours"),
    ("bare", B3Y, "not_ours"),
    ("bare", B5, "not_ours"),  # never an id taken from a delete's rows
    ("bare", B2, "follow_build"),  # the build names its VM, then this decides again
    # A4, A7: never
    *[("theirs", row, "not_ours") for row in EVERY_ROW],
    *[("trash_theirs", row, "not_ours") for row in EVERY_ROW],
    # A6
    *[("trash_ours", row, "in_trash") for row in EVERY_ROW],
]


@pytest.mark.parametrize(("seen", "row", "expected"), DELETE_TABLE)
def test_delete_fate(seen: Seen, row: Row, expected: str) -> None:
    assert delete_fate(seen, row, vm_id=None if seen == "none" else X) == expected


def test_a_vm_without_annotations_that_our_build_is_still_building_is_waited_for() -> None:
    assert delete_fate("bare", B3X, vm_id=X, vm_state="allocating") == "wait"
    assert delete_fate("bare", B3X, vm_id=X, vm_state="started") == "delete"


# ------------------------------------------------------------ what is seen

SEEN_TABLE = [
    ("ours", "started", "ours"),
    ("ours", "stopped", "ours"),
    ("ours", "starting", "ours"),
    ("ours", "failed", "ours_broken"),
    ("ours", "orphaned", "ours_broken"),
    ("ours", "allocating", "ours_building"),
    ("ours", "allocated", "ours_building"),
    ("theirs", "started", "theirs"),
    ("theirs", "failed", "theirs"),
    ("unknown", "started", "bare"),
]


@pytest.mark.parametrize(("verdict", "state", "expected"), SEEN_TABLE)
def test_seen_of(verdict: str, state: str, expected: str) -> None:
    assert seen_of(verdict, state) == expected  # type: ignore[arg-type]


# ------------------------------------------------------- what a row proves

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(
    state: JournalState,
    *,
    outcome: str | None = None,
    reason: str | None = None,
    category: str | None = None,
    task_id: str | None = None,
    build_id: str | None = None,
    vm_id: str | None = None,
) -> JournalEntry:
    result = None
    if outcome is not None:
        result = VmResult(
            key="web-01",
            hostname="web-01",
            outcome=outcome,
            reason=reason,
            category=category,
            task_id=task_id,
            build_id=build_id,
            virtual_machine=VmRef(id=vm_id) if vm_id else None,
        )
    return JournalEntry(
        key="web-01",
        hostname="web-01",
        state=state,
        attempts=1,
        task_id=task_id,
        build_id=build_id,
        vm_id=vm_id,
        submitted_at=None,
        last_error=None,
        result=result,
        updated_at=NOW,
    )


ROW_TABLE = [
    (None, Row()),
    (entry("pending"), Row()),
    (entry("intent"), Row("sent")),
    (entry("uncertain"), Row("sent")),
    (entry("submitted", task_id="t", build_id="b"), Row("accepted")),
    (entry("submitted", task_id="t", build_id="b", vm_id=X), Row("accepted", created=X)),
    # built by our accepted build
    (entry("finished", outcome="succeeded", task_id="t", build_id="b", vm_id=X), B3X),
    # adopted after an uncertain POST of ours
    (entry("finished", outcome="succeeded", reason="adopted", vm_id=X), B3X),
    # a VM the run *found* is never evidence
    (entry("finished", outcome="skipped", reason="already_exists", vm_id=X), Row()),
    (entry("finished", outcome="skipped", reason="already_exists", task_id="t", vm_id=X), Row()),
    (entry("finished", outcome="skipped", reason="not_ours", vm_id=X), Row()),
    # a delete's rows (journals from before deletes had their own table)
    (entry("finished", outcome="succeeded", reason="deleted", task_id="trsh", vm_id=X), B5),
    (entry("finished", outcome="succeeded", reason="purged", vm_id=X), B5),
    (entry("finished", outcome="failed", category="conflict", reason="not_ours", vm_id=X), Row()),
    # a build that failed, with and without leaving its VM
    (entry("finished", outcome="failed", category="build_failed", build_id="b"), B4),
    (
        entry("finished", outcome="failed", category="build_failed", build_id="b", vm_id=X),
        B4X,
    ),
    # a build that timed out may still finish: follow it
    (
        entry("finished", outcome="failed", category="timeout", build_id="b", vm_id=X),
        Row("accepted", created=X),
    ),
    # built, then its tags could not be set
    (entry("finished", outcome="failed", category="validation", build_id="b", vm_id=X), B3X),
    # refused before anything was built
    (entry("finished", outcome="failed", category="quota"), Row()),
]


@pytest.mark.parametrize(("given", "expected"), ROW_TABLE)
def test_row_of(given: JournalEntry | None, expected: Row) -> None:
    assert row_of(given) == expected


@pytest.mark.parametrize(
    ("status", "code", "description", "detail", "expected"),
    [
        (409, "deletion_restricted", "This object cannot be deleted",
         {"errors": ["Virtual machine must be stopped before it can be deleted"]}, True),
        (422, "validation_error", "A validation error occurred",
         {"errors": ["Virtual machine is running"]}, True),
        (422, "virtual_machine_must_be_stopped", None, None, True),
        (409, "deletion_restricted", "This object cannot be deleted",
         {"errors": ["Deletion protection is on"]}, False),
        (500, "unhandled_exception", "stop", None, False),
    ],
)  # fmt: skip
def test_a_refusal_to_delete_a_running_vm_is_read_in_its_detail_too(
    status: int, code: str, description: str | None, detail: object, expected: bool
) -> None:
    exc = ApiError(
        http_status=status, code=code, description=description, detail=detail, request_id=None
    )
    assert must_stop_first(exc) is expected
