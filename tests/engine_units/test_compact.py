"""Results sharing their field-name sets: the same results, and a copy never touches the share."""

from __future__ import annotations

from orchestrator.engine._compact import compact
from orchestrator.report import VmRef, VmResult


def _result(key: str) -> VmResult:
    return VmResult(
        key=key,
        hostname=key,
        outcome="succeeded",
        virtual_machine=VmRef(id=f"vm_{key}", state="started"),
        attempts=1,
    )


def test_results_made_alike_share_one_set_and_stay_the_same() -> None:
    """Two results of the same fields share one set each (result, VM reference); their
    fields, dumps and fields set are what they were."""
    a, b = _result("a"), _result("b")
    assert a.virtual_machine is not None
    assert b.virtual_machine is not None
    before = (a.model_dump(), a.model_fields_set, a.virtual_machine.model_fields_set)
    assert compact(a) is a
    assert compact(b) is b
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.virtual_machine.__pydantic_fields_set__ is b.virtual_machine.__pydantic_fields_set__
    assert (a.model_dump(), a.model_fields_set, a.virtual_machine.model_fields_set) == before


def test_a_copy_with_an_update_leaves_the_shared_set_alone() -> None:
    """model_copy(update=...) of a compacted result gets its own set; the others keep theirs."""
    a, b = compact(_result("a")), compact(_result("b"))
    shared = set(b.model_fields_set)
    copied = a.model_copy(update={"reason": "adopted"})
    assert "reason" in copied.model_fields_set
    assert b.model_fields_set == shared
    assert a.model_fields_set == shared
    assert compact(copied).model_fields_set == shared | {"reason"}
