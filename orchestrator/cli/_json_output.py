"""``--output json`` of ``plan``, ``status`` and ``report diff``: one JSON object on stdout.

Each object starts with ``"kind"`` (``plan``, ``status``, ``report_diff``) and
``"format_version": 1``. Within a version keys are only ever added, never
renamed or removed. Datetimes are ISO-8601 in UTC; a VM row, wherever one
appears (``status``' ``result``, ``report diff``'s lists), is exactly a row of
``report.json``'s ``vms``. ``docs/json-output.md`` documents every key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.engine import Plan
    from orchestrator.engine.state._model import JournalEntry, JournalSnapshot
    from orchestrator.report import Report, ReportDiff, VmResult
    from orchestrator.vm_request import VmRequest

__all__ = ["FORMAT_VERSION", "diff_json", "dumps", "plan_json", "status_json"]

#: The ``format_version`` of every JSON output.
FORMAT_VERSION = 1


def dumps(data: dict[str, Any]) -> str:
    """``data`` as the text printed on stdout: indented, one trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _row(vm: VmResult) -> dict[str, Any]:
    """A VM as ``report.json`` has it."""
    data: dict[str, Any] = json.loads(vm.model_dump_json(fallback=str))
    return data


def _vm(req: VmRequest) -> dict[str, Any]:
    return {
        "key": req.key,
        "hostname": req.hostname,
        "organization": req.organization.value,
        "entry": req.entry_index,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """What ``plan --output json`` prints."""
    return {
        "kind": "plan",
        "format_version": FORMAT_VERSION,
        "summary": {
            "to_build": len(plan.to_build),
            "existing": len(plan.existing),
            "problems": len(plan.problems),
        },
        "has_changes": plan.has_changes,
        "has_errors": plan.has_errors,
        "to_build": [_vm(req) for req in plan.to_build],
        "existing": [{**_vm(req), "virtual_machine_id": vm_id} for req, vm_id in plan.existing],
        "problems": [
            {
                "field": problem.field,
                "value": problem.value,
                "message": problem.message,
                "hostnames": list(problem.hostnames),
            }
            for problem in plan.problems
        ],
        "estimate": {
            "requests": plan.estimated_requests,
            "seconds": plan.estimated_seconds,
            "permitted": plan.permitted,
            "window_seconds": plan.window_seconds,
        },
        "requests_spent": plan.requests_spent,
        "fleet": plan.fleet,
        "fates": plan.by_fate(),
        "drift": {
            key: [{"field": name, "built": built, "spec": spec} for name, built, spec in found]
            for key, found in plan.drift.items()
        },
        "removed_from_spec": plan.removed,
        "readings": {
            "annotation_filter": plan.annotation_filter,
            "filter_evidence": plan.filter_evidence,
            "listed_by": dict(plan.listed_by),
            "found": [reading.model_dump(mode="json") for reading in plan.readings],
        },
    }


def _entry(entry: JournalEntry) -> dict[str, Any]:
    result = entry.result
    vm_id = entry.vm_id or (
        result.virtual_machine.id if result is not None and result.virtual_machine else None
    )
    return {
        "key": entry.key,
        "hostname": entry.hostname,
        "state": entry.state,
        "outcome": result.outcome if entry.state == "finished" and result else None,
        "attempts": entry.attempts,
        "task_id": entry.task_id,
        "build_id": entry.build_id,
        "vm_id": vm_id,
        "submitted_at": _when(entry.submitted_at),
        "updated_at": _when(entry.updated_at),
        "last_error": entry.last_error,
        "note": entry.note,
        "result": _row(result) if result is not None else None,
    }


def status_json(snapshot: JournalSnapshot) -> dict[str, Any]:
    """What ``status --output json`` prints: every run and every VM of the journal."""
    return {
        "kind": "status",
        "format_version": FORMAT_VERSION,
        "journal": snapshot.path,
        "counts": {"total": len(snapshot.entries), **snapshot.counts()},
        "runs": [
            {
                "run_id": run.run_id,
                "spec_sha256": run.spec_sha256,
                "started_at": _when(run.started_at),
                "finished_at": _when(run.finished_at),
                "pid": run.pid,
            }
            for run in snapshot.runs
        ],
        "vms": [_entry(entry) for entry in snapshot.entries],
        "fleet": snapshot.fleet,
        "deletes": [_entry(entry) for entry in snapshot.deletes],
    }


def _report(path: Path, report: Report) -> dict[str, Any]:
    return {
        "path": str(path),
        "run_id": report.run_id,
        "finished_at": _when(report.finished_at),
        "total": report.summary.total,
    }


def diff_json(
    diff: ReportDiff, *, old: tuple[Path, Report], new: tuple[Path, Report]
) -> dict[str, Any]:
    """What ``report diff --output json`` prints."""
    return {
        "kind": "report_diff",
        "format_version": FORMAT_VERSION,
        "old": _report(*old),
        "new": _report(*new),
        "summary": {
            "newly_failed": len(diff.newly_failed),
            "fixed": len(diff.fixed),
            "still_failing": len(diff.still_failing),
            "missing": len(diff.missing),
            "added": len(diff.added),
        },
        "has_new_failures": diff.has_new_failures,
        "newly_failed": [_row(vm) for vm in diff.newly_failed],
        "fixed": [_row(vm) for vm in diff.fixed],
        "still_failing": [_row(vm) for vm in diff.still_failing],
        "missing": list(diff.missing),
        "added": list(diff.added),
    }
