"""``orchestrator report html``: one self-contained HTML page of a report.

The page fetches nothing (no CDN, font, image or script from anywhere: CSS and
the one small script are inline, the charts are inline SVG) and its summary,
failures, timeline, budget and durations read without JavaScript; the script
only runs the failures' filter box (also set by the page's ``#filter=TEXT``).
It is rendered by Jinja2 with autoescaping on, so every string of the report
(hostnames, file names, error texts, tags) is escaped.
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from orchestrator.report._atomic import atomic_write
from orchestrator.report._html_charts import (
    LABEL_WIDTH,
    OUTCOME_ORDER,
    PLOT_WIDTH,
    budget_chart,
    group_of,
    outcome_counts,
    timeline,
)
from orchestrator.report._model import Report, VmResult

__all__ = ["render_html", "write_html"]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    category: str
    code: str
    vms: list[VmResult]


@dataclass(frozen=True, slots=True)
class DurationRow:
    location: str
    package: str
    count: int
    p50: float
    p90: float
    maximum: float
    seen_p50: float | None
    #: p50 as a share of the slowest row's p90 (for the bar), 0..100
    share: float


def _failure_groups(report: Report) -> list[FailureGroup]:
    """Failed and cancelled VMs by (category, code), the biggest group first."""
    groups: dict[tuple[str, str], list[VmResult]] = defaultdict(list)
    for vm in report.vms:
        if vm.is_failure:
            category = vm.category or vm.outcome
            code = (vm.error.code if vm.error else None) or vm.reason or ""
            groups[(category, code)].append(vm)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [FailureGroup(category, code, vms) for (category, code), vms in ordered]


def _pct(values: Sequence[float], pct: float) -> float:
    index = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


def _durations(report: Report) -> list[DurationRow]:
    """Build durations (submission to end) of the VMs that succeeded, by data center and
    package; time to the first sighting of the VM's record beside it."""
    built: dict[tuple[str, str], list[float]] = defaultdict(list)
    seen: dict[tuple[str, str], list[float]] = defaultdict(list)
    for vm in report.vms:
        if vm.outcome != "succeeded" or vm.duration_seconds is None:
            continue
        key = group_of(vm)
        built[key].append(vm.duration_seconds)
        if vm.first_seen_at is not None and vm.submitted_at is not None:
            seen[key].append(max(0.0, (vm.first_seen_at - vm.submitted_at).total_seconds()))
    rows = []
    for key, values in built.items():
        values.sort()
        firsts = sorted(seen.get(key, []))
        rows.append((key, values, firsts))
    slowest = max((_pct(values, 90) for _, values, _ in rows), default=1.0) or 1.0
    return [
        DurationRow(
            location=key[0],
            package=key[1],
            count=len(values),
            p50=_pct(values, 50),
            p90=_pct(values, 90),
            maximum=values[-1],
            seen_p50=_pct(firsts, 50) if firsts else None,
            share=round(100 * _pct(values, 50) / slowest, 1),
        )
        for key, values, firsts in sorted(rows, key=lambda row: -_pct(row[1], 50))
    ]


def _message(vm: VmResult) -> str:
    """What went wrong, in one line: the API's description, or the skip/cancel reason."""
    error = vm.error
    if error is not None and error.description:
        text = error.description
        if error.detail not in (None, "", {}, []):
            detail = json.dumps(error.detail, default=str, ensure_ascii=False)
            text += f" — {detail[:300]}"
        return text
    return vm.reason or vm.stopped_because or ""


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["message"] = _message
    env.filters["secs"] = lambda value: "—" if value is None else f"{value:,.1f} s"
    return env


def render_html(report: Report) -> str:
    """The HTML page of ``report`` (a whole document, UTF-8, nothing fetched)."""
    counts = outcome_counts(report.vms)
    context: dict[str, Any] = {
        "report": report,
        "counts": [(outcome, counts[outcome]) for outcome in OUTCOME_ORDER],
        "failures": _failure_groups(report),
        "failed_total": sum(1 for vm in report.vms if vm.is_failure),
        "timeline": timeline(report),
        "budget": budget_chart(report),
        "durations": _durations(report),
        "label_width": LABEL_WIDTH,
        "plot_width": PLOT_WIDTH,
        "per_vm": report.summary.total and report.summary.requests.total / report.summary.total,
    }
    return _environment().get_template("report.html.j2").render(context)


def write_html(report: Report, path: str | os.PathLike[str]) -> None:
    """Write the HTML page of ``report`` to ``path``, atomically and owner-only (0o600)."""
    atomic_write(path, render_html(report).encode("utf-8"))
