"""JUnit XML for CI systems: one test case per VM of the run."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import PurePath

from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Report, VmResult
from orchestrator.report._text import for_xml

__all__ = ["failure_junit_xml", "headline", "junit_xml", "write_failure_junit", "write_junit"]


def headline(vm: VmResult) -> str:
    """``category: code - description`` for a VM that did not succeed (parts may be absent)."""
    label = vm.category or vm.outcome
    code = vm.error.code if vm.error else None
    if code == label:
        code = None  # said once is enough
    text = vm.error.description if vm.error and vm.error.description else None
    text = text or vm.stopped_because or vm.reason
    if code and text:
        return f"{label}: {code} - {text}"
    if code or text:
        return f"{label}: {code or text}"
    return label


def _details(vm: VmResult) -> str:
    """The body of a <failure>/<error>: everything that helps find out what happened."""
    fields: list[tuple[str, object]] = [
        ("hostname", vm.hostname),
        ("outcome", vm.outcome),
        ("category", vm.category),
        ("error code", vm.error.code if vm.error else None),
        ("http status", vm.error.http_status if vm.error else None),
        ("description", vm.error.description if vm.error else None),
        ("stopped because", vm.stopped_because),
        ("attempts", vm.attempts),
        ("task id", vm.task_id),
        ("build id", vm.build_id),
        ("virtual machine", vm.virtual_machine.id if vm.virtual_machine else None),
        ("submitted at", vm.submitted_at.isoformat() if vm.submitted_at else None),
        ("finished at", vm.finished_at.isoformat() if vm.finished_at else None),
    ]
    lines = [f"{name}: {value}" for name, value in fields if value is not None]
    if vm.error is not None and vm.error.detail is not None:
        detail = json.dumps(vm.error.detail, indent=2, sort_keys=True, default=str)
        lines.append(f"error detail: {detail}")
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def junit_xml(report: Report, *, fleet: str | None = None) -> bytes:
    """``report`` as a JUnit XML document (UTF-8, with declaration).

    ``failed`` -> ``<failure>``, ``cancelled`` -> ``<error type="cancelled">``,
    ``skipped`` -> ``<skipped message="<reason>">``. All text is escaped, and
    characters XML cannot carry are replaced by visible escapes. The suite is
    named after ``fleet`` (default: the report's fleet).
    """
    fleet = fleet or (report.ownership.fleet if report.ownership else None) or "orchestrator"
    summary = report.summary
    counts = {
        "tests": str(summary.total),
        "failures": str(summary.failed),
        "errors": str(summary.cancelled),
        "skipped": str(summary.skipped),
        "time": _seconds(report.duration_seconds),
    }
    root = ET.Element("testsuites", {"name": "orchestrator", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": for_xml(fleet),
            **counts,
            # the JUnit XSD's timestamp carries no zone: it is UTC here
            "timestamp": report.started_at.astimezone(UTC)
            .replace(tzinfo=None)
            .isoformat(timespec="seconds"),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", report.run_id),
        ("spec_path", report.spec.path),
        ("spec_sha256", report.spec.sha256),
        ("api_url", report.api.url),
        ("organization", report.api.organization),
        ("interrupted", str(report.interrupted).lower()),
    ):
        if value is not None:
            ET.SubElement(properties, "property", {"name": name, "value": for_xml(value)})

    group = report.api.organization or PurePath(report.spec.path).stem or "spec"
    classname = for_xml(f"orchestrator.{group}")
    for vm in report.vms:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": classname,
                "name": for_xml(vm.hostname),
                "time": _seconds(vm.duration_seconds),
            },
        )
        if vm.outcome == "failed":
            failure = ET.SubElement(
                case,
                "failure",
                {"message": for_xml(headline(vm)), "type": for_xml(vm.category or "failed")},
            )
            failure.text = for_xml(_details(vm))
        elif vm.outcome == "cancelled":
            error = ET.SubElement(
                case, "error", {"message": for_xml(headline(vm)), "type": "cancelled"}
            )
            error.text = for_xml(_details(vm))
        elif vm.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": for_xml(vm.reason or "skipped")})
        else:
            out = ET.SubElement(case, "system-out")
            out.text = for_xml(_details(vm))

    ET.indent(root)
    buffer = io.BytesIO()
    ET.ElementTree(root).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue() + b"\n"


def failure_junit_xml(fleet: str, problem: str, *, at: datetime | None = None) -> bytes:
    """JUnit XML of a run that stopped before it had a report (bad input, a refused
    token...): one failing test case, ``run``, whose message names the problem."""
    counts = {"tests": "1", "failures": "1", "errors": "0", "skipped": "0", "time": "0.000"}
    root = ET.Element("testsuites", {"name": "orchestrator", **counts})
    stamp = (at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": for_xml(fleet), **counts, "timestamp": stamp.isoformat(timespec="seconds")},
    )
    case = ET.SubElement(
        suite, "testcase", {"classname": for_xml(f"orchestrator.{fleet}"), "name": "run"}
    )
    headline_text = problem.splitlines()[0] if problem else "the run failed"
    failure = ET.SubElement(
        case, "failure", {"message": for_xml(headline_text), "type": "run_failed"}
    )
    failure.text = for_xml(problem + "\n")
    ET.indent(root)
    buffer = io.BytesIO()
    ET.ElementTree(root).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue() + b"\n"


def write_failure_junit(path: str | os.PathLike[str], fleet: str, problem: str) -> None:
    """Write :func:`failure_junit_xml` to ``path``: atomically, mode 0o600."""
    atomic_write(path, failure_junit_xml(fleet, problem))


def write_junit(report: Report, path: str | os.PathLike[str], *, fleet: str | None = None) -> None:
    """Write ``report`` as JUnit XML to ``path``: atomically, mode 0o600.

    One ``<testsuite name="<fleet>">`` holding one ``<testcase
    classname="orchestrator.<organization or spec stem>" name="<hostname>">``
    per VM; see :func:`junit_xml` for how outcomes map to elements.
    """
    atomic_write(path, junit_xml(report, fleet=fleet))
