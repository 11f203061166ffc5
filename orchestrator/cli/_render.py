"""Rendering of ``plan`` results for people."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.engine import Plan
from orchestrator.engine._plan import FATE_LABELS
from orchestrator.report._text import for_terminal

__all__ = ["render_plan"]

#: how ``listed_by`` reads in a plan
_LISTED_BY = {
    "fleet": "the fleet's filtered list",
    "organization": "the organization's whole list",
    "fqdn": "one fqdn lookup per hostname",
    "fleet+fqdn": "the fleet's filtered list and fqdn lookups",
}


def _seconds(value: float) -> str:
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def render_plan(plan: Plan, console: Console) -> None:
    """What ``run`` would build and skip, what stands in the way, and how long it takes."""
    console.print(
        f"Plan: {len(plan.to_build)} to build, {len(plan.existing)} already exist, "
        f"{len(plan.problems)} problem(s).",
        highlight=False,
        markup=False,
    )
    if plan.problems:
        table = Table(title="Problems", show_lines=False)
        for column in ("what", "value", "problem", "VMs"):
            table.add_column(column)
        for problem in plan.problems:
            hosts = ", ".join(problem.hostnames[:5])
            if len(problem.hostnames) > 5:
                hosts += f" … (+{len(problem.hostnames) - 5})"
            # text of the spec and of the API: never rich markup, never a terminal escape
            table.add_row(
                *(Text(for_terminal(cell)) for cell in (problem.field, problem.value)),
                Text(for_terminal(problem.message)),
                Text(for_terminal(hosts)),
            )
        console.print(table)
    if plan.fleet is not None:
        console.print(f"Fleet: {for_terminal(plan.fleet)}", highlight=False, markup=False)
    if plan.annotation_filter is not None:
        how = ", ".join(f"{org}: {_LISTED_BY[by]}" for org, by in sorted(plan.listed_by.items()))
        console.print(
            f"Readings: the VM list {plan.annotation_filter} its annotation filter; "
            f"VMs found by {how}",
            highlight=False,
            markup=False,
        )
    if plan.readings:
        found = ", ".join(f"{r.name} {r.value}" for r in plan.readings)
        console.print(
            f"Readings of the API found: {found}", highlight=False, markup=False, soft_wrap=False
        )
        for reading in plan.readings:
            if reading.evidence:
                console.print(
                    f"  {reading.name}: {for_terminal(reading.evidence)}",
                    highlight=False,
                    markup=False,
                )
    for fate, keys in plan.by_fate().items():
        label = FATE_LABELS[fate]
        shown = ", ".join(keys[:10]) + (f" … (+{len(keys) - 10})" if len(keys) > 10 else "")
        console.print(
            f"{label[:1].upper()}{label[1:]} ({len(keys)}): {shown}", highlight=False, markup=False
        )
        if fate == "drift":
            for key in keys[:10]:
                fields = "; ".join(
                    f"{name}: built {built}, spec {spec}" for name, built, spec in plan.drift[key]
                )
                console.print(f"  {key}: {for_terminal(fields)}", highlight=False, markup=False)
    if plan.removed:
        shown = ", ".join(plan.removed[:10])
        more = f" … (+{len(plan.removed) - 10})" if len(plan.removed) > 10 else ""
        console.print(
            f"No longer in the spec ({len(plan.removed)}; run --prune deletes them): {shown}{more}",
            highlight=False,
            markup=False,
        )
    if plan.to_build:
        estimate = plan.estimated_seconds
        budget = f"{plan.permitted} requests per {plan.window_seconds:g} s window"
        if estimate is None:
            console.print(
                f"Estimate: about {plan.estimated_requests} requests; rate budget unknown",
                highlight=False,
                markup=False,
            )
        else:
            console.print(
                f"Estimate: about {plan.estimated_requests} requests, at least "
                f"{_seconds(estimate)} with {budget}",
                highlight=False,
                markup=False,
            )
        limit = plan.in_flight_limit
        if limit is not None and limit >= len(plan.to_build):
            # never more at once than there are VMs to build
            console.print(
                f"In flight: all {len(plan.to_build)} at once (the limit is {limit})",
                highlight=False,
                markup=False,
            )
        elif limit is not None:
            how = (
                f"max_in_flight = {plan.max_in_flight}"
                if limit == plan.max_in_flight
                else "sized from the rate budget and the expected build time; the run then "
                "follows the build times it measures"
            )
            console.print(
                f"In flight: up to {limit} builds at once ({how})", highlight=False, markup=False
            )
    console.print(
        f"Requests spent by this plan: {plan.requests_spent}", highlight=False, markup=False
    )
