"""Prometheus metrics of the last run, for node-exporter's textfile collector.

Every figure describes the last run only, so every metric is a gauge named
``orchestrator_last_run_*``: a figure that starts again from zero with every
run is no counter (``increase()`` over a counter that restarts each night would
be wrong). The exposition text is written by ``prometheus_client``.
"""

from __future__ import annotations

import os
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from orchestrator.errors import Category
from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Outcome, Report

__all__ = ["DEFAULT_METRICS_MODE", "metrics_text", "write_metrics"]

#: The metrics file holds no secret, and node-exporter often runs as its own
#: user: readable by all, unlike the report and the journal (0o600).
DEFAULT_METRICS_MODE = 0o644


def _gauge(
    registry: CollectorRegistry, name: str, help_text: str, labels: tuple[str, ...] = ()
) -> Gauge:
    return Gauge(name, help_text, labels, registry=registry)


def metrics_text(report: Report) -> str:
    """``report`` in the Prometheus text exposition format.

    Every outcome and every category of the closed list gets a sample, zeros
    included, so alerts never see a series vanish.
    """
    registry = CollectorRegistry(auto_describe=False)
    summary = report.summary
    outcome_counts: dict[Outcome, int] = {
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "cancelled": summary.cancelled,
    }
    vms = _gauge(
        registry, "orchestrator_last_run_vms", "VMs of the last run by outcome.", ("outcome",)
    )
    for outcome, count in outcome_counts.items():
        vms.labels(outcome=outcome).set(count)
    by_category: dict[str, int] = {str(cat): n for cat, n in summary.by_category.items()}
    categories: list[str] = list(get_args(Category))
    categories += sorted(set(by_category) - set(categories))
    failures = _gauge(
        registry,
        "orchestrator_last_run_vm_failures",
        "VMs of the last run by error category.",
        ("category",),
    )
    for category in categories:
        failures.labels(category=category).set(by_category.get(category, 0))
    single = [
        (
            "orchestrator_last_run_duration_seconds",
            "Wall-clock duration of the last run.",
            report.duration_seconds,
        ),
        (
            "orchestrator_last_run_requests",
            "API requests made by the last run.",
            summary.requests.total,
        ),
        (
            "orchestrator_last_run_rate_limited_requests",
            "API requests of the last run answered 429 (rate limited).",
            summary.requests.rate_limited,
        ),
        (
            "orchestrator_last_run_timestamp_seconds",
            "When the last run finished, in seconds since the Unix epoch.",
            report.finished_at.timestamp(),
        ),
        (
            "orchestrator_last_run_interrupted",
            "1 when the last run was cut short (Ctrl-C, deadline, auth), else 0.",
            1 if report.interrupted else 0,
        ),
    ]
    for name, help_text, value in single:
        _gauge(registry, name, help_text).set(value)
    info = _gauge(
        registry,
        "orchestrator_last_run_info",
        "Identity of the last run; always 1.",
        ("run_id", "spec_sha256"),
    )
    info.labels(run_id=report.run_id, spec_sha256=report.spec.sha256).set(1)
    return generate_latest(registry).decode("utf-8")


def write_metrics(
    report: Report, path: str | os.PathLike[str], *, mode: int = DEFAULT_METRICS_MODE
) -> None:
    """Write the metrics of ``report`` to ``path`` (e.g. ``.../textfile/orchestrator.prom``).

    Written atomically (temp file in the same directory, then rename), which
    the textfile collector requires; the temp file ends in ``.tmp`` so the
    collector never reads it. The file gets ``mode``: 0o644 by default, so a
    node-exporter running as its own user can read it (it holds no secret);
    the temp file is owner-only until it is complete.
    """
    atomic_write(path, metrics_text(report).encode("utf-8"), mode=mode)
