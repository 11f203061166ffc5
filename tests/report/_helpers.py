"""Builders of VM results and reports for the report tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.report import (
    ApiInfo,
    ErrorInfo,
    Report,
    RequestCounts,
    SpecInfo,
    VmRef,
    VmResult,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SHA = "0123456789abcdef" * 4

_BASE: dict[str, dict[str, Any]] = {
    "succeeded": {
        "virtual_machine": VmRef(id="vm_aaaaaaaaaaaaaaaa", fqdn="x.acme.katapult.cloud"),
        "task_id": "task_aaaaaaaaaaaaaaaa",
        "build_id": "vmbuild_aaaaaaaaaaaaaaaa",
        "attempts": 1,
        "submitted_at": T0,
        "finished_at": T0 + timedelta(seconds=38.2),
        "duration_seconds": 38.2,
    },
    "failed": {
        "category": "not_found",
        "error": ErrorInfo(
            code="package_not_found",
            description="No package was found matching any of the criteria provided",
            detail={"lookup": {"permalink": "rock-99"}},
            http_status=404,
        ),
        "task_id": "task_bbbbbbbbbbbbbbbb",
        "build_id": "vmbuild_bbbbbbbbbbbbbbbb",
        "attempts": 2,
    },
    "skipped": {"reason": "already_exists"},
    "cancelled": {"category": "cancelled", "stopped_because": "interrupted", "attempts": 1},
}


def vm(hostname: str, outcome: str = "succeeded", /, **fields: Any) -> VmResult:
    """A VmResult with plausible fields for its outcome; ``fields`` override them."""
    data: dict[str, Any] = {
        "key": hostname,
        "hostname": hostname,
        "outcome": outcome,
        **_BASE[outcome],
    }
    data.update(fields)
    return VmResult(**data)


def report_of(
    vms: list[VmResult],
    *,
    run_id: str = "run-0001",
    organization: str | None = "acme",
    requests: RequestCounts | None = None,
    interrupted: bool = False,
) -> Report:
    """A report of ``vms`` with a summary computed from them."""
    return Report.build(
        run_id=run_id,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=72),
        spec=SpecInfo(path="specs/example.toml", sha256=SHA),
        api=ApiInfo(url="https://api.katapult.io/core/v1/", organization=organization),
        vms=vms,
        requests=requests or RequestCounts(total=17, rate_limited=2),
        interrupted=interrupted,
    )


def sample_report() -> Report:
    """One VM of every outcome: web-01 succeeded, web-02 failed, web-03 skipped,
    web-04 cancelled."""
    return report_of(
        [
            vm("web-01"),
            vm("web-02", "failed"),
            vm("web-03", "skipped"),
            vm("web-04", "cancelled"),
        ]
    )
