"""The report: one :class:`VmResult` per VM of the spec, and a summary.

This is ``report.json`` schema_version 1 (see INTERFACES.md); the JSON Schema
shipped as ``orchestrator/report/report.schema.json`` describes exactly this.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import Category

__all__ = [
    "ApiInfo",
    "ErrorInfo",
    "Outcome",
    "Report",
    "RequestCounts",
    "SpecInfo",
    "Summary",
    "VmRef",
    "VmResult",
]

Outcome = Literal["succeeded", "failed", "skipped", "cancelled"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_Model):
    """What went wrong, in the API's own words where there were any."""

    code: str | None = None
    description: str | None = None
    detail: Any = None
    http_status: int | None = None


class VmRef(_Model):
    """The VM that was built (or found)."""

    id: str
    fqdn: str | None = None


class VmResult(_Model):
    """The one outcome of one VM of the spec."""

    key: str
    hostname: str
    outcome: Outcome
    category: Category | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    virtual_machine: VmRef | None = None
    task_id: str | None = None
    build_id: str | None = None
    attempts: int = 0
    stopped_because: str | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None


class RequestCounts(_Model):
    total: int = 0
    rate_limited: int = 0


class Summary(_Model):
    total: int
    succeeded: int
    failed: int
    skipped: int
    cancelled: int
    by_category: dict[str, int] = Field(default_factory=dict)
    requests: RequestCounts = Field(default_factory=RequestCounts)

    @classmethod
    def of(cls, vms: list[VmResult], requests: RequestCounts) -> Summary:
        """Count outcomes and categories of ``vms``."""
        outcomes = Counter(vm.outcome for vm in vms)
        cats = Counter(vm.category for vm in vms if vm.category is not None)
        return cls(
            total=len(vms),
            succeeded=outcomes["succeeded"],
            failed=outcomes["failed"],
            skipped=outcomes["skipped"],
            cancelled=outcomes["cancelled"],
            by_category=dict(sorted(cats.items())),
            requests=requests,
        )


class SpecInfo(_Model):
    path: str
    sha256: str


class ApiInfo(_Model):
    url: str
    organization: str | None = None


class Report(_Model):
    """``report.json``. Build it with :meth:`build` so the summary always agrees."""

    schema_version: Literal[1] = 1
    run_id: str
    started_at: datetime
    finished_at: datetime
    spec: SpecInfo
    api: ApiInfo
    summary: Summary
    vms: list[VmResult]
    interrupted: bool = False

    @classmethod
    def build(
        cls,
        *,
        run_id: str,
        started_at: datetime,
        finished_at: datetime,
        spec: SpecInfo,
        api: ApiInfo,
        vms: list[VmResult],
        requests: RequestCounts,
        interrupted: bool = False,
    ) -> Report:
        return cls(
            run_id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            spec=spec,
            api=api,
            summary=Summary.of(vms, requests),
            vms=vms,
            interrupted=interrupted,
        )
