"""Prometheus metrics of the last run, for node-exporter's textfile collector."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import get_args

from orchestrator.errors import Category
from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Outcome, Report

__all__ = ["metrics_text", "write_metrics"]

_Sample = tuple[Mapping[str, str], float]


def _escape_label(value: str) -> str:
    """A label value as the exposition format wants it: ``\\``, ``"`` and newline escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[_Sample]) -> list[str]:
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
        lines.append(
            f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}"
        )
    return lines


def metrics_text(report: Report) -> str:
    """``report`` in the Prometheus text exposition format (version 0.0.4).

    Every outcome and every category of the closed list gets a sample, zeros
    included, so alerts never see a series vanish. The request counters count
    the requests of this run (they "reset" with every run, which ``rate()``
    and ``increase()`` handle).
    """
    summary = report.summary
    outcome_counts: dict[Outcome, int] = {
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "cancelled": summary.cancelled,
    }
    lines: list[str] = []
    lines += _family(
        "orchestrator_vms",
        "gauge",
        "VMs of the last run by outcome.",
        (({"outcome": outcome}, count) for outcome, count in outcome_counts.items()),
    )
    by_category: dict[str, int] = {str(cat): n for cat, n in summary.by_category.items()}
    categories: list[str] = list(get_args(Category))
    categories += sorted(set(by_category) - set(categories))
    lines += _family(
        "orchestrator_vm_failures",
        "gauge",
        "VMs of the last run by error category.",
        (({"category": cat}, by_category.get(cat, 0)) for cat in categories),
    )
    lines += _family(
        "orchestrator_run_duration_seconds",
        "gauge",
        "Wall-clock duration of the last run.",
        [({}, report.duration_seconds)],
    )
    lines += _family(
        "orchestrator_requests_total",
        "counter",
        "API requests made by the last run.",
        [({}, summary.requests.total)],
    )
    lines += _family(
        "orchestrator_requests_rate_limited_total",
        "counter",
        "API requests of the last run answered 429 (rate limited).",
        [({}, summary.requests.rate_limited)],
    )
    lines += _family(
        "orchestrator_last_run_timestamp_seconds",
        "gauge",
        "When the last run finished, in seconds since the Unix epoch.",
        [({}, report.finished_at.timestamp())],
    )
    lines += _family(
        "orchestrator_run_interrupted",
        "gauge",
        "1 when the last run was cut short (Ctrl-C, deadline, auth), else 0.",
        [({}, 1 if report.interrupted else 0)],
    )
    lines += _family(
        "orchestrator_run_info",
        "gauge",
        "Identity of the last run; always 1.",
        [({"run_id": report.run_id, "spec_sha256": report.spec.sha256}, 1)],
    )
    return "\n".join(lines) + "\n"


def write_metrics(report: Report, path: str | os.PathLike[str], *, mode: int = 0o600) -> None:
    """Write the metrics of ``report`` to ``path`` (e.g. ``.../textfile/orchestrator.prom``).

    Written atomically (temp file in the same directory, then rename), which
    the textfile collector requires; the temp file ends in ``.tmp`` so the
    collector never reads it. The file is owner-only (0o600) by default, as
    every file the orchestrator writes: node_exporter usually runs as root and
    reads it anyway; if it runs as another user, pass ``mode=0o644``.
    """
    atomic_write(path, metrics_text(report).encode("utf-8"), mode=mode)
