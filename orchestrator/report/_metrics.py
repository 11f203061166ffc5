"""Prometheus metrics of the last run, for node-exporter's textfile collector.

Every figure describes the last run only, so every metric is a gauge named
``orchestrator_last_run_*``: a figure that starts again from zero with every
run is no counter (``increase()`` over a counter that restarts each night would
be wrong). The exposition text is written by ``prometheus_client``.

Every sample carries a ``fleet`` label (the spec's fleet), so two fleets can
share one textfile directory. Every run leaves a verdict, also one that stopped
before building (bad input, a refused token): ``orchestrator_last_run_success``
(1 or 0), ``orchestrator_last_run_exit_code``, ``orchestrator_last_run_timestamp_seconds``
and ``orchestrator_last_success_timestamp_seconds`` (carried over from the file
being replaced when this run did not succeed), which alerts on "no success for a
day" read.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from orchestrator.errors import Category
from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Outcome, Report

__all__ = [
    "DEFAULT_METRICS_MODE",
    "failure_metrics_text",
    "last_success",
    "metrics_text",
    "write_failure_metrics",
    "write_metrics",
]

#: The metrics file holds no secret, and node-exporter often runs as its own
#: user: readable by all, unlike the report and the journal (0o600).
DEFAULT_METRICS_MODE = 0o644


_LAST_SUCCESS = "orchestrator_last_success_timestamp_seconds"


def _gauge(
    registry: CollectorRegistry, name: str, help_text: str, labels: tuple[str, ...] = ()
) -> Gauge:
    return Gauge(name, help_text, ("fleet", *labels), registry=registry)


def _verdict(
    registry: CollectorRegistry,
    fleet: str,
    *,
    success: bool,
    exit_code: int,
    at: float,
    previous_success: float | None,
) -> None:
    """The gauges every run writes, whatever stopped it."""
    last = at if success else previous_success
    for name, help_text, value in (
        (
            "orchestrator_last_run_success",
            "1 when the last run succeeded (exit 0), else 0.",
            1 if success else 0,
        ),
        ("orchestrator_last_run_exit_code", "The exit code of the last run.", exit_code),
        (
            "orchestrator_last_run_timestamp_seconds",
            "When the last run finished, in seconds since the Unix epoch.",
            at,
        ),
    ):
        _gauge(registry, name, help_text).labels(fleet=fleet).set(float(value))
    if last is not None:
        _gauge(
            registry, _LAST_SUCCESS, "When a run last succeeded, in seconds since the Unix epoch."
        ).labels(fleet=fleet).set(last)


def metrics_text(
    report: Report,
    *,
    fleet: str | None = None,
    exit_code: int | None = None,
    previous_success: float | None = None,
) -> str:
    """``report`` in the Prometheus text exposition format.

    Every outcome and every category of the closed list gets a sample, zeros
    included, so alerts never see a series vanish. ``fleet`` labels every
    sample (default: the report's fleet); ``exit_code`` is the run's (default:
    0 when no VM failed and the run was not cut short, else 1).
    """
    registry = CollectorRegistry(auto_describe=False)
    summary = report.summary
    fleet = fleet or (report.ownership.fleet if report.ownership else None) or "default"
    if exit_code is None:
        failed = summary.failed or summary.cancelled or report.interrupted
        exit_code = 1 if failed else 0
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
        vms.labels(fleet=fleet, outcome=outcome).set(count)
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
        failures.labels(fleet=fleet, category=category).set(by_category.get(category, 0))
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
            "orchestrator_last_run_interrupted",
            "1 when the last run was cut short (Ctrl-C, deadline, auth), else 0.",
            1 if report.interrupted else 0,
        ),
    ]
    for name, help_text, value in single:
        _gauge(registry, name, help_text).labels(fleet=fleet).set(value)
    _verdict(
        registry,
        fleet,
        success=exit_code == 0,
        exit_code=exit_code,
        at=report.finished_at.timestamp(),
        previous_success=previous_success,
    )
    info = _gauge(
        registry,
        "orchestrator_last_run_info",
        "Identity of the last run; always 1.",
        ("run_id", "spec_sha256"),
    )
    info.labels(fleet=fleet, run_id=report.run_id, spec_sha256=report.spec.sha256).set(1)
    return generate_latest(registry).decode("utf-8")


def failure_metrics_text(
    fleet: str, *, exit_code: int, at: float | None = None, previous_success: float | None = None
) -> str:
    """The metrics of a run that stopped before it had a report (bad input, a refused
    token...): it failed, with ``exit_code``, at ``at`` (default: now)."""
    registry = CollectorRegistry(auto_describe=False)
    _verdict(
        registry,
        fleet,
        success=False,
        exit_code=exit_code,
        at=time.time() if at is None else at,
        previous_success=previous_success,
    )
    return generate_latest(registry).decode("utf-8")


def last_success(path: str | os.PathLike[str], fleet: str) -> float | None:
    """When ``fleet`` last succeeded, as the metrics file at ``path`` says (None: unknown)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    label = 'fleet="' + _label_value(fleet) + '"'
    for line in text.splitlines():
        if line.startswith(_LAST_SUCCESS + "{") and label in line:
            match = re.search(r"\}\s+(\S+)", line)
            try:
                return float(match.group(1)) if match else None
            except ValueError:
                return None
    return None


def _label_value(value: str) -> str:
    """``value`` escaped as the exposition format escapes a label value."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def write_metrics(
    report: Report,
    path: str | os.PathLike[str],
    *,
    mode: int = DEFAULT_METRICS_MODE,
    fleet: str | None = None,
    exit_code: int | None = None,
) -> None:
    """Write the metrics of ``report`` to ``path`` (e.g. ``.../textfile/orchestrator.prom``).

    Written atomically (temp file in the same directory, then rename), which
    the textfile collector requires; the temp file ends in ``.tmp`` so the
    collector never reads it. The file gets ``mode``: 0o644 by default, so a
    node-exporter running as its own user can read it (it holds no secret);
    the temp file is owner-only until it is complete.
    """
    fleet = fleet or (report.ownership.fleet if report.ownership else None) or "default"
    text = metrics_text(
        report, fleet=fleet, exit_code=exit_code, previous_success=last_success(path, fleet)
    )
    atomic_write(path, text.encode("utf-8"), mode=mode)


def write_failure_metrics(
    path: str | os.PathLike[str], fleet: str, *, exit_code: int, mode: int = DEFAULT_METRICS_MODE
) -> None:
    """Rewrite the metrics file of a run that stopped before it had a report."""
    text = failure_metrics_text(
        fleet, exit_code=exit_code, previous_success=last_success(path, fleet)
    )
    atomic_write(path, text.encode("utf-8"), mode=mode)
