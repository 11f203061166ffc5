"""Reports of a run, for people and machines.

``report.json`` (:func:`write_report` / :func:`load_report`, JSON Schema in
:func:`report_json_schema`), JUnit XML for CI (:func:`write_junit`),
Prometheus metrics for node-exporter (:func:`write_metrics`), one
self-contained HTML page (:func:`write_html`), an Ansible
inventory of the fleet (:func:`write_inventory`), the terminal
summary (:func:`render_summary`) and ``report diff`` (:func:`diff_reports`,
:func:`render_diff`). Every file is written atomically and owner-only.

Test suites check a produced report with
``orchestrator.report._validate.validate_report_file`` (needs ``jsonschema``).
"""

from __future__ import annotations

from orchestrator.report._diff import ReportDiff, diff_reports, failed_keys
from orchestrator.report._html import render_html, write_html
from orchestrator.report._inventory import inventory_of, write_inventory
from orchestrator.report._json import load_report, report_json_schema, write_report
from orchestrator.report._junit import write_junit
from orchestrator.report._metrics import write_metrics
from orchestrator.report._model import (
    FAILED_OUTCOMES,
    ApiInfo,
    ApiReading,
    BudgetUse,
    BudgetWindow,
    ErrorInfo,
    Outcome,
    OwnershipInfo,
    Report,
    RequestCounts,
    SpecChange,
    SpecInfo,
    Summary,
    VmRef,
    VmResult,
)
from orchestrator.report._render import render_diff, render_summary

__all__ = [
    "FAILED_OUTCOMES",
    "ApiInfo",
    "ApiReading",
    "BudgetUse",
    "BudgetWindow",
    "ErrorInfo",
    "Outcome",
    "OwnershipInfo",
    "Report",
    "ReportDiff",
    "RequestCounts",
    "SpecChange",
    "SpecInfo",
    "Summary",
    "VmRef",
    "VmResult",
    "diff_reports",
    "failed_keys",
    "inventory_of",
    "load_report",
    "render_diff",
    "render_html",
    "render_summary",
    "report_json_schema",
    "write_html",
    "write_inventory",
    "write_junit",
    "write_metrics",
    "write_report",
]
