"""Terminal renderings: the run summary and a report diff.

Everything reads the same without colour (the console may be a file or a
pipe): colour only repeats what the words already say. Text that came from
the API is made printable first, so it cannot drive the terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.report._diff import ReportDiff
from orchestrator.report._model import Report, VmResult
from orchestrator.report._text import for_terminal

__all__ = ["format_duration", "render_diff", "render_summary"]

#: Rows shown in a table of VMs before "... and N more".
MAX_ROWS = 40
_REASON_WIDTH = 160


def format_duration(seconds: float) -> str:
    """``38.2s``, ``1m 12s``, ``2h 03m 07s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _reason(vm: VmResult) -> str:
    if vm.outcome == "cancelled":
        # what matters is where it was left: not sent, sent, or building
        return ", ".join(r for r in (vm.reason, vm.stopped_because) if r)
    if vm.error is not None and vm.error.description:
        return vm.error.description
    return vm.stopped_because or vm.reason or ""


def _failure(vm: VmResult) -> str:
    """``not_found (package_not_found)``; the code only where it says more than the category."""
    label = vm.category or vm.outcome
    code = vm.error.code if vm.error and vm.error.code else None
    return f"{label} ({for_terminal(code)})" if code and code != label else label


def _unsent(vm: VmResult) -> tuple[str, str, str]:
    """(category, code, reason) of a VM that failed unsent; empty for any other VM."""
    if vm.outcome != "failed" or vm.reason != "not_submitted":
        return ("", "", "")
    code = vm.error.code if vm.error and vm.error.code else ""
    return (vm.category or "failed", for_terminal(code), for_terminal(_reason(vm), _REASON_WIDTH))


def _vm_table(title: str, vms: Sequence[VmResult], *, attempts: bool = True) -> Table:
    # four columns so that 80 terminal columns keep an id on one line of the reason
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("hostname", overflow="fold")
    table.add_column("outcome", overflow="fold", max_width=20)
    table.add_column("reason", overflow="fold", ratio=1, min_width=24)
    if attempts:
        table.add_column("tries", justify="right", no_wrap=True)
    for vm in vms:
        style = ("red" if vm.outcome == "failed" else "yellow") if vm.is_failure else "green"
        row = [
            Text(for_terminal(vm.hostname)),
            Text(_failure(vm) if vm.is_failure else vm.outcome, style=style),
            Text(for_terminal(_reason(vm), _REASON_WIDTH) or "-"),
        ]
        if attempts:
            row.append(Text(str(vm.attempts)))
        table.add_row(*row)
    return table


def _print_vms(
    console: Console,
    title: str,
    vms: Sequence[VmResult],
    *,
    more_hint: str,
    max_rows: int,
    attempts: bool = True,
) -> None:
    if not vms:
        return
    console.print(_vm_table(title, vms[:max_rows], attempts=attempts))
    if len(vms) > max_rows:
        console.print(Text(f"... and {len(vms) - max_rows} more {more_hint}"))


def _line(*parts: tuple[str, str | None]) -> Text:
    text = Text()
    for content, style in parts:
        text.append(content, style=style)
    return text


def render_summary(
    report: Report,
    console: Console,
    *,
    report_path: str | None = None,
    max_rows: int = MAX_ROWS,
) -> None:
    """Print the end-of-run summary of ``report`` on ``console``.

    Counts by outcome and by category, a table of the VMs that failed or were
    cancelled (at most ``max_rows``, then "... and N more (see report.json)"),
    skipped VMs by reason, the run's duration and the requests it spent.
    """
    summary = report.summary
    status = " (interrupted)" if report.interrupted else ""
    deleting = report.operation == "delete"
    done = Counter(vm.reason for vm in report.vms if vm.outcome == "succeeded")
    succeeded = (
        f"{done['deleted']} deleted, {done['purged']} purged"
        if deleting
        else f"{summary.succeeded} succeeded"
    )
    console.print(
        _line(
            (f"{'Destroy' if deleting else 'Run'} {for_terminal(report.run_id)}", "bold"),
            (f" finished in {format_duration(report.duration_seconds)}{status}", None),
            (f" — spec {for_terminal(report.spec.path)}", None),
        )
    )
    console.print(
        _line(
            (f"VMs: {summary.total} total, ", None),
            (succeeded, "green" if summary.succeeded else None),
            (", ", None),
            (f"{summary.failed} failed", "bold red" if summary.failed else None),
            (f", {summary.skipped} skipped, ", None),
            (f"{summary.cancelled} cancelled", "yellow" if summary.cancelled else None),
        )
    )
    if summary.by_category:
        cats = ", ".join(f"{cat} {count}" for cat, count in summary.by_category.items())
        console.print(Text(f"By category: {cats}"))
    requests = summary.requests
    console.print(
        Text(f"Requests: {requests.total} total, {requests.rate_limited} rate-limited (429)")
    )
    if report.readings:
        found = ", ".join(f"{r.name} {r.value}" for r in report.readings)
        # (wrapped at the console's width: the list grows with what a run finds out)
        console.print(Text(f"Readings of the API found: {found}"), soft_wrap=False)
    skipped = Counter(vm.reason or "unknown" for vm in report.vms if vm.outcome == "skipped")
    if skipped:
        reasons = ", ".join(f"{for_terminal(r)} {n}" for r, n in sorted(skipped.items()))
        console.print(Text(f"Skipped: {sum(skipped.values())} ({reasons})"))
    removed = report.removed_from_spec
    if removed and not deleting:
        shown = ", ".join(for_terminal(h) for h in removed[:10])
        more = f" … (+{len(removed) - 10})" if len(removed) > 10 else ""
        console.print(
            Text(
                f"No longer in the spec: {len(removed)} VM(s) of this fleet, left as they are "
                f"(run --prune deletes them): {shown}{more}"
            )
        )
    failing = [vm for vm in report.vms if vm.is_failure]
    unsent = Counter(_unsent(vm) for vm in failing)
    for (category, code, text), count in sorted(unsent.items(), key=lambda item: -item[1]):
        if category and count > 1:  # the same refusal for many VMs: said once
            label = f"{category} ({code})" if code and code != category else category
            console.print(Text(f"Not submitted ({count}): {label} - {text}"))
    failing = [vm for vm in failing if unsent[_unsent(vm)] <= 1 or not _unsent(vm)[0]]
    _print_vms(
        console,
        f"Failed or cancelled VMs ({len(failing)})",
        failing,
        more_hint=f"(see {report_path or 'report.json'})",
        max_rows=max_rows,
    )


def render_diff(diff: ReportDiff, console: Console, *, max_rows: int = MAX_ROWS) -> None:
    """Print ``diff`` on ``console``: new failures first, then fixed, still failing,
    and the VMs that are missing from, or were added in, the new report."""
    console.print(
        Text(
            f"New failures: {len(diff.newly_failed)}, fixed: {len(diff.fixed)}, "
            f"still failing: {len(diff.still_failing)}, missing: {len(diff.missing)}, "
            f"added: {len(diff.added)}"
        )
    )
    hint = "(see the new report)"
    _print_vms(console, "New failures", diff.newly_failed, more_hint=hint, max_rows=max_rows)
    _print_vms(console, "Fixed", diff.fixed, more_hint=hint, max_rows=max_rows, attempts=False)
    _print_vms(console, "Still failing", diff.still_failing, more_hint=hint, max_rows=max_rows)
    for title, keys in (("Missing from the new report", diff.missing), ("Added", diff.added)):
        if keys:
            shown = ", ".join(for_terminal(key) for key in keys[:max_rows])
            more = f" ... and {len(keys) - max_rows} more" if len(keys) > max_rows else ""
            console.print(Text(f"{title} ({len(keys)}): {shown}{more}"))
    if diff.is_empty and not diff.still_failing:
        console.print(Text("No differences."))
