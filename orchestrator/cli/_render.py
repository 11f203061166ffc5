"""Rendering of ``plan`` results for people."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.engine import Plan
from orchestrator.report._text import for_terminal

__all__ = ["render_plan"]


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
    if plan.existing:
        shown = ", ".join(f"{req.hostname} ({vm_id})" for req, vm_id in plan.existing[:10])
        more = f" … (+{len(plan.existing) - 10})" if len(plan.existing) > 10 else ""
        console.print(
            f"Already exist (will be skipped): {shown}{more}", highlight=False, markup=False
        )
    if plan.to_build:
        shown = ", ".join(req.hostname for req in plan.to_build[:10])
        more = f" … (+{len(plan.to_build) - 10})" if len(plan.to_build) > 10 else ""
        console.print(f"To build: {shown}{more}", highlight=False, markup=False)
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
