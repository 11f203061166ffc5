"""The report: one :class:`VmResult` per VM of the spec, and a summary.

This is ``report.json`` schema_version 2 (see INTERFACES.md; 2 adds, to 1, each
VM's ``first_seen_at``, ``package`` and ``location`` and the run's ``budget``, all
optional, so a version 1 report still loads); the JSON Schema
shipped as ``orchestrator/report/report.schema.json`` describes exactly this.
Both are strict (unknown keys are errors) and a test checks that they agree.

Datetimes must be timezone-aware; they are stored, and written, in UTC.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.errors import ApiError, Category, OrchestratorError

__all__ = [
    "FAILED_OUTCOMES",
    "ApiInfo",
    "ApiReading",
    "BudgetUse",
    "BudgetWindow",
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

#: The outcomes that count as "failed" for ``report diff`` and ``--retry-failed``.
FAILED_OUTCOMES: frozenset[Outcome] = frozenset({"failed", "cancelled"})

_Count = Annotated[int, Field(ge=0)]


def _utc(value: datetime | None) -> datetime | None:
    """Reject naive datetimes (their zone is a guess) and convert aware ones to UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (UTC)")
    return value.astimezone(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorInfo(_Model):
    """What went wrong, in the API's own words where there were any."""

    code: str | None = None
    description: str | None = None
    detail: Any = None
    http_status: int | None = Field(default=None, ge=100, le=599)

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``: the API's code/description/detail for an :class:`ApiError`.

        Any other error is described by its text, which for
        :class:`~orchestrator.errors.OrchestratorError` is safe to print.
        """
        if isinstance(exc, ApiError):
            return cls(
                code=exc.code,
                description=exc.description or str(exc),
                detail=exc.detail,
                http_status=exc.http_status,
            )
        text = str(exc) if isinstance(exc, OrchestratorError) else type(exc).__name__
        return cls(description=text or type(exc).__name__)


class VmRef(_Model):
    """The VM that was built (or found).

    ``ip_addresses`` and ``data_center`` (its permalink) are what the run saw
    of it: a look at the VM (every VM found for a hostname is looked at once;
    a destroy's rows show the VM as it was before it was deleted), or the
    fleet's VM list read once the builds are over; they are empty / None when
    neither could be read or the run was interrupted.
    """

    id: str
    fqdn: str | None = None
    #: the VM's state when it was last looked at (None when it was not looked at)
    state: str | None = None
    ip_addresses: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    data_center: str | None = None


class SpecChange(_Model):
    """A field of a VM whose value in the spec differs from the one it was built with."""

    field: Literal["organization", "package", "disk_template", "location"]
    built: str | None = None
    spec: str | None = None


class VmResult(_Model):
    """The one outcome of one VM of the spec.

    A ``failed`` VM always has a ``category``; a ``skipped`` VM always has a
    ``reason`` (``already_exists``, ...).
    """

    key: str = Field(min_length=1)
    hostname: str = Field(min_length=1)
    outcome: Outcome
    category: Category | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
    virtual_machine: VmRef | None = None
    task_id: str | None = None
    build_id: str | None = None
    attempts: int = Field(default=0, ge=0)
    stopped_because: str | None = None
    submitted_at: datetime | None = None
    #: when this run first saw the VM's record (its build showed it, or a lookup found it)
    first_seen_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    #: the package the spec asks for (permalink or id, as the spec names it)
    package: str | None = None
    #: the data center or zone the spec asks for (as the spec names it)
    location: str | None = None
    #: the tags the VM has after the orchestrator set them (None: the spec asked for none)
    tags: tuple[str, ...] | None = None
    #: where the spec now differs from what the journal recorded the VM was built with
    #: (the VM is not rebuilt; None: no difference known)
    spec_changed: list[SpecChange] | None = None

    _check_utc = field_validator("submitted_at", "first_seen_at", "finished_at")(_utc)

    @model_validator(mode="after")
    def _outcome_needs(self) -> VmResult:
        if self.outcome == "failed" and self.category is None:
            raise ValueError("a failed VM needs a category")
        if self.outcome == "skipped" and self.reason is None:
            raise ValueError("a skipped VM needs a reason")
        return self

    @property
    def is_failure(self) -> bool:
        """True when the outcome is ``failed`` or ``cancelled`` (see :data:`FAILED_OUTCOMES`)."""
        return self.outcome in FAILED_OUTCOMES


class RequestCounts(_Model):
    """How many API requests the run made, and how many of them got a 429."""

    total: _Count = 0
    rate_limited: _Count = 0


class Summary(_Model):
    """Counts by outcome and by category; always derived from ``vms`` (see :meth:`of`)."""

    total: _Count
    succeeded: _Count
    failed: _Count
    skipped: _Count
    cancelled: _Count
    by_category: dict[Category, _Count] = Field(default_factory=dict)
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
    """The spec file the run was made from."""

    path: str
    sha256: str


class ApiInfo(_Model):
    """The API the run talked to (never the token)."""

    url: str
    organization: str | None = None


class OwnershipInfo(_Model):
    """Whether this run could tell its fleet's VMs from others' by their annotations."""

    #: the fleet name every build's ``orchestrator.spec`` annotation carries
    fleet: str
    #: True: the API copies build annotations onto VMs, so ownership was verified;
    #: False: it does not (the run fell back to the journal and to what it sent);
    #: None: the run never looked at a VM that could tell
    verifiable: bool | None = None
    evidence: str | None = None
    #: whether the VM list honoured its ``annotations[][key]``/``[value]`` filter
    #: (found out once per run; None: never asked); ``refused``: a list given it was
    #: answered 400/422, and the run went on as if it were ignored
    annotation_filter: Literal["honoured", "ignored", "refused"] | None = None
    filter_evidence: str | None = None
    #: organization -> how its VMs of the spec were found: ``fleet`` (the list filtered
    #: by the fleet's identity), ``organization`` (its whole list), ``fqdn`` (one lookup
    #: per hostname) or ``fleet+fqdn`` (the fleet's list, and lookups of the rest)
    listed_by: dict[str, Literal["fleet", "organization", "fqdn", "fleet+fqdn"]] = Field(
        default_factory=dict
    )


#: the readings of the unconfirmed API a run can find out
ReadingName = Literal[
    "annotation_filter", "annotations_copied", "vm_list_page_size", "delete_running"
]


class ApiReading(_Model):
    """One reading of the unconfirmed API this run found out, and how.

    ``annotation_filter``: ``honoured``, ``ignored`` or ``refused`` (the VM list's
    ``annotations[][key]``/``[value]`` filter); ``annotations_copied``: ``copied`` or
    ``not_copied`` (a build's annotations on its VM); ``delete_running``: ``refused``
    (a DELETE of a VM that was not stopped was refused; destroy stops VMs first, so it
    is found only when a VM was started again between its stop and its DELETE);
    ``vm_list_page_size``: ``honoured``, ``capped`` or ``refused`` (a page of 200 VMs
    asked of the VM list: answered, answered smaller, or refused and asked at 100).
    """

    name: ReadingName
    value: Literal["honoured", "ignored", "refused", "copied", "not_copied", "capped"]
    evidence: str | None = None


class BudgetWindow(_Model):
    """One window of the API's rate budget, as this run saw it."""

    started_at: datetime
    #: this run's requests answered in the window (429s included)
    requests: _Count = 0
    #: of those, answered 429
    rate_limited: _Count = 0
    #: the limit per window the server stated (``X-Ratelimit-Permitted``; None: never said)
    permitted: _Count | None = None
    #: what the server counted in the window, everyone's requests (``Permitted - Remaining``
    #: at its lowest); None when no response of the window carried both headers
    used: _Count | None = None
    #: ``used`` beyond this run's own requests: other clients of the same token
    #: (None: unknown)
    others: _Count | None = None

    _check_utc = field_validator("started_at")(_utc)


class BudgetUse(_Model):
    """The rate budget per window over the run (windows in which nothing was sent are left out)."""

    window_seconds: float = Field(gt=0, allow_inf_nan=False)
    windows: list[BudgetWindow] = Field(default_factory=list)


class Report(_Model):
    """``report.json``. Build it with :meth:`build` so the summary always agrees."""

    #: 2 is written; 1 (without the fields 2 added) is still read
    schema_version: Literal[1, 2] = 2
    run_id: str = Field(min_length=1)
    started_at: datetime
    finished_at: datetime
    spec: SpecInfo
    api: ApiInfo
    summary: Summary
    vms: list[VmResult]
    interrupted: bool = False
    stopped_because: str | None = None
    removed_from_spec: list[str] = Field(default_factory=list)
    ownership: OwnershipInfo | None = None
    #: what the run did to each VM: ``build`` (``orchestrator run``) or ``delete`` (``destroy``)
    operation: Literal["build", "delete"] = "build"
    #: the rate budget per window (None: not recorded, as in schema_version 1)
    budget: BudgetUse | None = None
    #: the readings of the unconfirmed API this run found out, in the order above
    #: (a reading never found out is not listed)
    readings: list[ApiReading] = Field(default_factory=list)

    _check_utc = field_validator("started_at", "finished_at")(_utc)

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
        stopped_because: str | None = None,
        removed_from_spec: list[str] | None = None,
        ownership: OwnershipInfo | None = None,
        operation: Literal["build", "delete"] = "build",
        budget: BudgetUse | None = None,
        readings: list[ApiReading] | None = None,
    ) -> Report:
        """A report whose summary is computed from ``vms`` and ``requests``."""
        return cls(
            run_id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            spec=spec,
            api=api,
            summary=Summary.of(vms, requests),
            vms=vms,
            interrupted=interrupted,
            stopped_because=stopped_because,
            removed_from_spec=removed_from_spec or [],
            ownership=ownership,
            operation=operation,
            budget=budget,
            readings=readings or [],
        )

    @property
    def duration_seconds(self) -> float:
        """Wall-clock length of the run (never negative)."""
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def inconsistencies(self) -> list[str]:
        """What is wrong beyond types: duplicate keys, a summary that disagrees with ``vms``."""
        problems: list[str] = []
        seen: Counter[str] = Counter(vm.key for vm in self.vms)
        dups = sorted(key for key, n in seen.items() if n > 1)
        if dups:
            problems.append(f"vms: duplicate keys {', '.join(dups)}")
        expected = Summary.of(self.vms, self.summary.requests)
        for name in ("total", "succeeded", "failed", "skipped", "cancelled", "by_category"):
            got, want = getattr(self.summary, name), getattr(expected, name)
            if got != want:
                problems.append(f"summary.{name}: is {got!r}, the vms say {want!r}")
        if self.finished_at < self.started_at:
            problems.append("finished_at: earlier than started_at")
        return problems
