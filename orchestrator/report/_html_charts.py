"""The geometry of the HTML report's two charts: the timeline of every VM (or of every
group, when there are many) and the rate budget per window under it.

Everything here is numbers and the report's own strings; the template escapes
the strings. Coordinates are in SVG user units: the plot spans ``PLOT_WIDTH``
units from ``LABEL_WIDTH`` on, over the run's wall time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.report._model import Outcome, Report, VmResult

__all__ = [
    "LABEL_WIDTH",
    "OUTCOME_ORDER",
    "PER_VM_ROWS",
    "PLOT_WIDTH",
    "BudgetChart",
    "GroupLabel",
    "Timeline",
    "budget_chart",
    "group_of",
    "timeline",
]

LABEL_WIDTH = 250.0
PLOT_WIDTH = 740.0
#: up to this many VMs on the timeline, a row each; beyond, a row per data center and package
PER_VM_ROWS = 300
_ROW = 13.0
_GROUP_ROW = 34.0
_BINS = 150
OUTCOME_ORDER: tuple[Outcome, ...] = ("succeeded", "failed", "cancelled", "skipped")


def group_of(vm: VmResult) -> tuple[str, str]:
    """(data center, package) of a VM: as the spec asked (schema 2), else as found."""
    location = vm.location
    if location is None and vm.virtual_machine is not None:
        location = vm.virtual_machine.data_center
    return (location or "unknown", vm.package or "unknown")


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class VmBar:
    """One VM's row: waiting for its record (light), then building until its end."""

    y: float
    hostname: str
    outcome: Outcome
    x_submitted: float
    x_seen: float | None
    x_end: float
    retried: bool
    title: str


@dataclass(frozen=True, slots=True)
class GroupLabel:
    """The heading row of a data center and package in the per-VM timeline."""

    y: float
    label: str


@dataclass(frozen=True, slots=True)
class GroupBand:
    """One group's row: how many of its VMs were in flight over time, stacked by outcome."""

    y: float
    label: str
    detail: str
    #: outcome -> SVG path data of its stacked area
    areas: list[tuple[Outcome, str]]
    #: x of each bin where a VM of the group that was retried was submitted
    retries: list[float]


@dataclass(slots=True)
class Timeline:
    seconds: float
    height: float
    ticks: list[Tick]
    bars: list[VmBar] = field(default_factory=list)
    labels: list[GroupLabel] = field(default_factory=list)
    bands: list[GroupBand] = field(default_factory=list)
    #: VMs with no submission time (skipped, never submitted): not drawn
    not_drawn: int = 0

    @property
    def per_vm(self) -> bool:
        return bool(self.bars)


def _ticks(seconds: float) -> list[Tick]:
    """About six round ticks over ``seconds``."""
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200)
    step = next((s for s in steps if seconds / s <= 7), 86400)
    ticks = []
    t = 0.0
    while t <= seconds + 1e-9:
        ticks.append(Tick(LABEL_WIDTH + PLOT_WIDTH * t / seconds, _clock(t)))
        t += step
    return ticks


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _span(report: Report) -> tuple[datetime, float]:
    start = report.started_at
    end = max([report.finished_at, *(vm.finished_at for vm in report.vms if vm.finished_at)])
    return start, max(1.0, (end - start).total_seconds())


def timeline(report: Report) -> Timeline:
    """The timeline: a row per VM up to :data:`PER_VM_ROWS` VMs, else a row per group."""
    start, seconds = _span(report)
    scale = PLOT_WIDTH / seconds

    def x(when: datetime) -> float:
        offset = min(seconds, max(0.0, (when - start).total_seconds()))
        return round(LABEL_WIDTH + offset * scale, 1)

    drawn = [vm for vm in report.vms if vm.submitted_at is not None]
    chart = Timeline(seconds=seconds, height=0.0, ticks=_ticks(seconds))
    chart.not_drawn = len(report.vms) - len(drawn)
    drawn.sort(key=lambda vm: (group_of(vm), vm.submitted_at))
    if len(drawn) <= PER_VM_ROWS:
        row = 0
        current: tuple[str, str] | None = None
        for vm in drawn:
            assert vm.submitted_at is not None
            end = vm.finished_at or report.finished_at
            location, package = group_of(vm)
            if (location, package) != current:
                current = (location, package)
                chart.labels.append(GroupLabel(row * _ROW, f"{location} · {package}"))
                row += 1
            took = f"{vm.duration_seconds:g} s" if vm.duration_seconds is not None else "?"
            attempts = f", {vm.attempts} attempts" if vm.attempts > 1 else ""
            chart.bars.append(
                VmBar(
                    y=row * _ROW,
                    hostname=vm.hostname,
                    outcome=vm.outcome,
                    x_submitted=x(vm.submitted_at),
                    x_seen=x(vm.first_seen_at) if vm.first_seen_at else None,
                    x_end=max(x(end), x(vm.submitted_at) + 1.0),
                    retried=vm.attempts > 1,
                    title=f"{vm.hostname}: {vm.outcome} after {took} "
                    f"({location}, {package}{attempts})",
                )
            )
            row += 1
        chart.height = row * _ROW
        return chart
    groups: dict[tuple[str, str], list[VmResult]] = defaultdict(list)
    for vm in drawn:
        groups[group_of(vm)].append(vm)
    counts = {key: _in_flight(vms, start, seconds) for key, vms in groups.items()}
    peak = max((sum(col) for per in counts.values() for col in zip(*per.values(), strict=True)),
               default=1) or 1  # fmt: skip
    width = PLOT_WIDTH / _BINS
    for row, (key, vms) in enumerate(sorted(groups.items())):
        y = row * _GROUP_ROW
        areas = _stacked(counts[key], y + _GROUP_ROW - 4, (_GROUP_ROW - 8) / peak, width)
        durations = sorted(vm.duration_seconds for vm in vms if vm.duration_seconds is not None)
        retried = [vm for vm in vms if vm.attempts > 1]
        detail = f"{len(vms):,} VMs"
        if durations:
            detail += f" · p50 {_pct(durations, 50):.0f} s · p95 {_pct(durations, 95):.0f} s"
        if retried:
            detail += f" · {len(retried):,} retried"
        marks = sorted({x(vm.submitted_at) for vm in retried if vm.submitted_at})
        chart.bands.append(GroupBand(y, f"{key[0]} · {key[1]}", detail, areas, marks[:_BINS]))
    chart.height = len(groups) * _GROUP_ROW
    return chart


def _in_flight(
    vms: Sequence[VmResult], start: datetime, seconds: float
) -> dict[Outcome, list[int]]:
    """Per outcome, how many VMs were in flight in each bin (difference array, O(VMs + bins))."""
    per: dict[Outcome, list[int]] = {o: [0] * (_BINS + 1) for o in OUTCOME_ORDER}
    for vm in vms:
        assert vm.submitted_at is not None
        end = vm.finished_at or vm.submitted_at
        first = int(_BINS * max(0.0, (vm.submitted_at - start).total_seconds()) / seconds)
        last = int(_BINS * max(0.0, (end - start).total_seconds()) / seconds)
        first, last = min(first, _BINS - 1), min(max(last, first), _BINS - 1)
        diff = per[vm.outcome]
        diff[first] += 1
        diff[last + 1] -= 1
    out: dict[Outcome, list[int]] = {}
    for outcome, diff in per.items():
        running, column = 0, []
        for step in diff[:_BINS]:
            running += step
            column.append(running)
        out[outcome] = column
    return out


def _stacked(
    counts: dict[Outcome, list[int]], base: float, unit: float, width: float
) -> list[tuple[Outcome, str]]:
    """Stacked step areas, one SVG path per outcome that has any VM in flight."""
    below = [0] * _BINS
    areas = []
    for outcome in OUTCOME_ORDER:
        column = counts[outcome]
        if not any(column):
            continue
        top = [b + c for b, c in zip(below, column, strict=True)]
        points = []
        for i, value in enumerate(top):
            x0, x1 = LABEL_WIDTH + i * width, LABEL_WIDTH + (i + 1) * width
            y = base - value * unit
            points += [f"{x0:.1f},{y:.1f}", f"{x1:.1f},{y:.1f}"]
        for i in range(_BINS - 1, -1, -1):
            x0, x1 = LABEL_WIDTH + i * width, LABEL_WIDTH + (i + 1) * width
            y = base - below[i] * unit
            points += [f"{x1:.1f},{y:.1f}", f"{x0:.1f},{y:.1f}"]
        areas.append((outcome, "M" + "L".join(points) + "Z"))
        below = top
    return areas


def _pct(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of sorted ``values`` (nearest rank)."""
    index = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


@dataclass(frozen=True, slots=True)
class BudgetBar:
    x: float
    width: float
    ours: float  # heights, from the baseline up
    others: float
    limited: bool
    title: str
    #: the requests of this run (and others', when known), written above a wide bar
    label: str


@dataclass(slots=True)
class BudgetChart:
    height: float
    limit_y: float | None
    bars: list[BudgetBar]
    peak: int


_BUDGET_HEIGHT = 110.0


def budget_chart(report: Report) -> BudgetChart | None:
    """Bars per window (this run's requests, others' on top) and the limit, on the
    timeline's time axis; None when the report has no budget (schema_version 1)."""
    budget = report.budget
    if budget is None or not budget.windows:
        return None
    start, seconds = _span(report)
    scale = PLOT_WIDTH / seconds
    peak = max(
        max(w.permitted or 0, w.requests + (w.others or 0), w.used or 0) for w in budget.windows
    )
    peak = max(peak, 1)
    unit = (_BUDGET_HEIGHT - 10) / peak
    permitted = [w.permitted for w in budget.windows if w.permitted is not None]
    bars = []
    for window in budget.windows:
        offset = (window.started_at - start).total_seconds()
        x0 = LABEL_WIDTH + max(0.0, offset) * scale
        x1 = LABEL_WIDTH + min(seconds, max(0.0, offset + budget.window_seconds)) * scale
        if x1 <= x0:
            continue
        others = "unknown" if window.others is None else f"{window.others:,}"
        limit = "unknown" if window.permitted is None else f"{window.permitted:,}"
        bars.append(
            BudgetBar(
                x=round(x0, 1),
                width=round(max(0.5, x1 - x0 - 0.5), 1),
                ours=round(window.requests * unit, 1),
                others=round((window.others or 0) * unit, 1),
                limited=window.rate_limited > 0,
                title=f"window at {_clock(max(0.0, offset))}: this run {window.requests:,} "
                f"({window.rate_limited:,} answered 429), others {others}, limit {limit}",
                label=f"{window.requests:,}" + (f"+{window.others:,}" if window.others else ""),
            )
        )
    limit_y = _BUDGET_HEIGHT - max(permitted) * unit if permitted else None
    return BudgetChart(height=_BUDGET_HEIGHT, limit_y=limit_y, bars=bars, peak=peak)


def outcome_counts(vms: Sequence[VmResult]) -> Counter[Outcome]:
    """How many VMs ended each way."""
    return Counter(vm.outcome for vm in vms)
