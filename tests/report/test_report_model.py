"""The report model's own rules: UTC datetimes, what each outcome needs, consistency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.errors import ApiTimeout, NotFound
from orchestrator.report import FAILED_OUTCOMES, ErrorInfo, Report, Summary, VmResult

from ._helpers import T0, report_of, vm


def test_aware_datetimes_are_stored_in_utc() -> None:
    """A datetime with another offset is converted to UTC."""
    paris = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    result = vm("a", submitted_at=paris)
    assert result.submitted_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert result.submitted_at is not None
    assert result.submitted_at.tzinfo is UTC


@pytest.mark.parametrize("field", ["submitted_at", "finished_at"])
def test_naive_vm_datetimes_are_rejected(field: str) -> None:
    """A naive datetime is an error: its zone would be a guess."""
    with pytest.raises(ValidationError, match="timezone-aware"):
        vm("a", **{field: datetime(2025, 3, 1)})


def test_naive_report_datetimes_are_rejected() -> None:
    """The report's own timestamps must be timezone-aware too."""
    good = report_of([])
    data = good.model_dump()
    data["started_at"] = datetime(2025, 3, 1)
    with pytest.raises(ValidationError, match="started_at"):
        Report.model_validate(data)


def test_failed_vm_needs_a_category() -> None:
    """A failed VM without a category is refused."""
    with pytest.raises(ValidationError, match="failed VM needs a category"):
        vm("a", "failed", category=None)


def test_skipped_vm_needs_a_reason() -> None:
    """A skipped VM without a reason is refused."""
    with pytest.raises(ValidationError, match="skipped VM needs a reason"):
        vm("a", "skipped", reason=None)


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempts", -1), ("duration_seconds", -0.5), ("duration_seconds", float("nan")), ("key", "")],
)
def test_out_of_range_vm_fields_are_refused(field: str, value: Any) -> None:
    """Negative counts and durations, NaN and empty keys are refused."""
    with pytest.raises(ValidationError, match=field):
        vm("a", **{field: value})


def test_unknown_fields_are_refused() -> None:
    """The model is strict: a typo in a field name is an error."""
    with pytest.raises(ValidationError, match="extra"):
        VmResult(key="a", hostname="a", outcome="succeeded", outcom="x")  # type: ignore[call-arg]


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "skipped", "cancelled"])
def test_is_failure_means_failed_or_cancelled(outcome: str) -> None:
    """is_failure is True exactly for the outcomes of FAILED_OUTCOMES."""
    assert vm("a", outcome).is_failure is (outcome in {"failed", "cancelled"})
    assert (outcome in FAILED_OUTCOMES) is vm("a", outcome).is_failure


def test_summary_counts_outcomes_and_categories() -> None:
    """Summary.of counts each outcome and each category, categories sorted."""
    vms = [vm("a"), vm("b", "failed", category="quota"), vm("c", "failed"), vm("d", "cancelled")]
    report = report_of(vms)
    assert report.summary == Summary(
        total=4,
        succeeded=1,
        failed=2,
        skipped=0,
        cancelled=1,
        by_category={"cancelled": 1, "not_found": 1, "quota": 1},
        requests=report.summary.requests,
    )
    assert list(report.summary.by_category) == ["cancelled", "not_found", "quota"]


def test_built_report_is_consistent(report: Report) -> None:
    """A report made with Report.build has no inconsistencies."""
    assert report.inconsistencies() == []
    assert report.duration_seconds == 72


def test_inconsistencies_are_named(report: Report) -> None:
    """Duplicate keys, a wrong summary and a reversed time range are each reported."""
    broken = report.model_copy(
        update={
            "vms": [*report.vms, vm("web-01")],
            "finished_at": T0 - timedelta(seconds=1),
        }
    )
    problems = broken.inconsistencies()
    assert "vms: duplicate keys web-01" in problems
    assert any(p.startswith("summary.total:") for p in problems)
    assert any(p.startswith("summary.succeeded:") for p in problems)
    assert "finished_at: earlier than started_at" in problems
    assert broken.duration_seconds == 0.0


def test_error_info_of_api_error() -> None:
    """ErrorInfo.of keeps the API's code, description, detail and status."""
    exc = NotFound(
        http_status=404,
        code="package_not_found",
        description="No package",
        detail={"x": 1},
        request_id="req-1",
    )
    assert ErrorInfo.of(exc) == ErrorInfo(
        code="package_not_found", description="No package", detail={"x": 1}, http_status=404
    )


def test_error_info_of_other_errors() -> None:
    """ErrorInfo.of describes our errors by their text and foreign ones by their type only."""
    assert ErrorInfo.of(ApiTimeout("read timed out")) == ErrorInfo(description="read timed out")
    assert ErrorInfo.of(RuntimeError("secret-ish text")) == ErrorInfo(description="RuntimeError")
