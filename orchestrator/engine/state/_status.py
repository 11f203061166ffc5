"""``orchestrator status JOURNAL``: what a journal holds, for a human."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Final

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.engine.state._model import (
    JOURNAL_STATES,
    JournalEntry,
    JournalSnapshot,
    JournalState,
)

__all__ = ["render_status"]

_STATE_STYLE: Final[dict[JournalState, str]] = {
    "pending": "dim",
    "intent": "yellow",
    "submitted": "cyan",
    "uncertain": "bold yellow",
    "finished": "green",
}
_OUTCOME_STYLE: Final = {
    "succeeded": "green",
    "skipped": "blue",
    "failed": "bold red",
    "cancelled": "magenta",
}
# what needs a human's eye comes first when the list is cut
_STATE_RANK: Final[dict[JournalState, int]] = {
    "uncertain": 0,
    "intent": 1,
    "submitted": 2,
    "pending": 3,
    "finished": 4,
}
_OUTCOME_RANK: Final = {"failed": 0, "cancelled": 1, "skipped": 2, "succeeded": 3}
_RUNS_SHOWN: Final = 5
#: below this console width the three id columns are stacked into one
_WIDE: Final = 150
#: error texts longer than this are cut (the report has them whole)
_DETAIL_MAX: Final = 240


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _label(entry: JournalEntry) -> str:
    """The entry's state, or for a finished one its outcome (``finished: failed``)."""
    if entry.state == "finished" and entry.result is not None:
        return entry.result.outcome
    return entry.state


def _rank(entry: JournalEntry) -> tuple[int, int]:
    outcome = entry.result.outcome if entry.result is not None else "failed"
    sub = _OUTCOME_RANK.get(outcome, 0) if entry.state == "finished" else 0
    return (_STATE_RANK[entry.state], sub)


def _detail(entry: JournalEntry) -> Text:
    """Last error, or outcome and category with the API's message, or the latest note."""
    text = _detail_text(entry)
    if len(text) > _DETAIL_MAX:
        text.truncate(_DETAIL_MAX - 1)
        text.append("…")
    return text


def _detail_text(entry: JournalEntry) -> Text:
    result = entry.result
    if entry.state == "finished" and result is not None:
        parts = [p for p in (result.category, result.reason) if p]
        if result.error is not None:
            parts.append(result.error.description or result.error.code or "")
        elif result.stopped_because:
            parts.append(result.stopped_because)
        text = ": ".join(p for p in parts if p)
        return Text(text, style="red" if result.outcome == "failed" else "")
    if entry.last_error:
        return Text(entry.last_error, style="yellow")
    return Text(entry.note or "", style="dim")


def render_status(snapshot: JournalSnapshot, console: Console, *, limit: int | None = 50) -> None:
    """Print a journal's runs, its counts by state, and a table of its VMs.

    The VM table shows what needs attention first (uncertain, in flight, pending,
    then failed before succeeded) and at most ``limit`` rows (None: all), followed
    by a count of what was left out. On a console narrower than 150 columns the
    task, build and VM ids share one column, one id per line.
    """
    console.print(Text.assemble(("Journal ", "bold"), (snapshot.path, "bold cyan")))
    if snapshot.fleet is not None:
        console.print(Text(f"Fleet {snapshot.fleet}"))
    _render_runs(snapshot, console)
    _render_counts(snapshot, console)
    if snapshot.entries:
        _render_vms(snapshot, console, limit)


def _render_runs(snapshot: JournalSnapshot, console: Console) -> None:
    runs = snapshot.runs
    table = Table(
        title=f"Runs ({len(runs)})", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False
    )
    for column in ("run", "spec", "started (UTC)", "pid", "ended (UTC)"):
        table.add_column(column, no_wrap=column != "ended (UTC)")
    for run in runs[-_RUNS_SHOWN:]:
        ended = (
            Text(_when(run.finished_at))
            if run.finished_at is not None
            else Text("never closed (killed, or still running)", style="yellow")
        )
        table.add_row(
            Text(run.run_id), Text(run.spec_sha256[:8]), _when(run.started_at), str(run.pid), ended
        )
    console.print(table)
    if len(runs) > _RUNS_SHOWN:
        console.print(Text(f"… {len(runs) - _RUNS_SHOWN} earlier runs not shown", style="dim"))
    if len({run.spec_sha256 for run in runs}) > 1:
        console.print(Text("note: the spec changed between runs of this journal", style="yellow"))


def _render_counts(snapshot: JournalSnapshot, console: Console) -> None:
    counts = snapshot.counts()
    outcomes = Counter(
        e.result.outcome for e in snapshot.entries if e.state == "finished" and e.result
    )
    line = Text("VMs: ", style="bold")
    line.append(f"{len(snapshot.entries)} total")
    for state in JOURNAL_STATES:
        line.append(" · ")
        line.append(
            f"{counts[state]} {state}", style=_STATE_STYLE[state] if counts[state] else "dim"
        )
    if outcomes:
        inner = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        line.append(f" ({inner})")
    console.print(line)


def _render_vms(snapshot: JournalSnapshot, console: Console, limit: int | None) -> None:
    ordered = sorted(snapshot.entries, key=_rank)  # stable: spec order within a rank
    shown = ordered if limit is None else ordered[:limit]
    wide = console.width >= _WIDE
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("hostname", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    if wide:
        for column in ("task", "build", "vm"):
            table.add_column(column, no_wrap=True)
    else:
        table.add_column("ids", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=1)
    for entry in shown:
        label = _label(entry)
        style = _OUTCOME_STYLE.get(label) or _STATE_STYLE.get(entry.state, "")
        result = entry.result
        vm_id = entry.vm_id or (
            result.virtual_machine.id
            if result is not None and result.virtual_machine is not None
            else None
        )
        ids = (entry.task_id, entry.build_id, vm_id)
        id_cells = (
            [Text(i or "-") for i in ids] if wide else [Text("\n".join(i for i in ids if i) or "-")]
        )
        table.add_row(
            Text(entry.hostname),
            Text(label, style=style),
            str(entry.attempts),
            *id_cells,
            _detail(entry),
        )
    console.print(table)
    hidden = ordered[len(shown) :]
    if hidden:
        left = Counter(_label(e) for e in hidden)
        inner = ", ".join(f"{n} {label}" for label, n in sorted(left.items()))
        console.print(Text(f"… and {len(hidden)} more VMs not shown ({inner})", style="dim"))
