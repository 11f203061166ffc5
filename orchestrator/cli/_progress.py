"""Progress for people: a live line on a terminal, plain periodic lines elsewhere.

On a terminal the line is redrawn in place (rich ``Live``); log lines and
messages printed meanwhile appear above it, because ``Live`` routes
``sys.stderr`` through the console and the log set-up writes to whatever
``sys.stderr`` is at the time (see ``orchestrator._logging``). Elsewhere (a
pipe, a file, cron) one ``progress:`` line is printed per interval, so logs
stay line-oriented. With JSON logs, progress is an ``orchestrator.run.progress``
log event per interval instead (:func:`log_progress`), so the stream stays JSON.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator._logging import get_logger
from orchestrator.engine.events import EngineStatistics

__all__ = ["PLAIN_INTERVAL_SECONDS", "format_progress", "log_progress", "show_progress"]

#: Seconds between two progress lines when the output is not a terminal.
PLAIN_INTERVAL_SECONDS = 10.0


def _eta(stats: EngineStatistics) -> str:
    done = stats.done
    if done == 0 or stats.elapsed_seconds <= 0:
        return "?"
    if done >= stats.total:
        return "0s"
    remaining = (stats.total - done) * stats.elapsed_seconds / done
    minutes, seconds = divmod(int(remaining), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


#: Parts of the line, most telling first; on a narrow terminal the labels shorten,
#: then parts go, lowest ``keep`` first (done and the budget always stay).
_SHORT = {"building": "bld", "queued": "q", "failed": "fail", "skipped": "skip"}
_SHORT |= {"cancelled": "canc", "requests": "req"}
_KEEP = {"done": 9, "budget": 8, "ETA": 7, "failed": 6, "building": 5, "cancelled": 4}
_KEEP |= {"ok": 3, "skipped": 2, "requests": 1, "queued": 0}


def _parts(stats: EngineStatistics) -> list[tuple[str, str]]:
    building = str(stats.building + stats.submitting)
    if stats.in_flight_limit:  # how many may be in flight at once (sized by the run)
        building += f" (limit {stats.in_flight_limit})"
    parts = [
        ("done", f"{stats.done}/{stats.total}"),
        ("building", building),
        ("queued", str(stats.queued)),
        ("ok", str(stats.succeeded)),
        ("failed", str(stats.failed)),
    ]
    if stats.skipped:
        parts.append(("skipped", str(stats.skipped)))
    if stats.cancelled:
        parts.append(("cancelled", str(stats.cancelled)))
    parts.append(("ETA", _eta(stats)))
    requests = str(stats.requests_total)
    if stats.rate_limited:
        requests += f" (429: {stats.rate_limited})"
    parts.append(("requests", requests))
    if stats.permitted is not None:
        parts.append(("budget", f"{stats.remaining}/{stats.permitted}"))
    return parts


def _join(parts: list[tuple[str, str]], *, short: bool) -> str:
    def one(label: str, value: str) -> str:
        if label == "done":
            return f"{value} done"
        return f"{_SHORT.get(label, label) if short else label} {value}"

    return " · ".join(one(label, value) for label, value in parts)


def format_progress(stats: EngineStatistics, width: int | None = None) -> str:
    """One line, most telling first: where the run stands, the ETA, the rate budget.

    ``3/5 done · building 2 (limit 563) · queued 0 · ok 2 · failed 1 · ETA 12s ·
    requests 27 · budget 973/1000``; the limit is how many may be in flight at
    once (sized by the run, or ``max_in_flight``); skipped, cancelled and 429
    counts appear once not zero. Given a ``width`` (a terminal's columns), the
    line fits it: labels shorten (``bld 2 · q 0``), then the least telling
    parts go; the budget stays.
    """
    parts = _parts(stats)
    line = _join(parts, short=False)
    if width is None or len(line) <= width:
        return line
    while True:
        line = _join(parts, short=True)
        if len(line) <= width or len(parts) <= 2:
            return line
        parts.remove(min(parts, key=lambda part: _KEEP[part[0]]))


async def log_progress(
    snapshot: Callable[[], EngineStatistics | None],
    *,
    run_id: Callable[[], str | None] = lambda: None,
    interval: float = PLAIN_INTERVAL_SECONDS,
) -> None:
    """Log an ``orchestrator.run.progress`` event per interval until cancelled (JSON logs)."""
    log = get_logger("orchestrator.progress")
    while True:
        await anyio.sleep(interval)
        stats = snapshot()
        if stats is not None:
            log.info(
                "orchestrator.run.progress",
                run_id=run_id(),
                done=stats.done,
                total=stats.total,
                building=stats.building + stats.submitting,
                queued=stats.queued,
                succeeded=stats.succeeded,
                failed=stats.failed,
                skipped=stats.skipped,
                cancelled=stats.cancelled,
                requests=stats.requests_total,
                rate_limited=stats.rate_limited,
                budget_remaining=stats.remaining,
                budget_permitted=stats.permitted,
            )


async def show_progress(
    snapshot: Callable[[], EngineStatistics | None],
    console: Console,
    *,
    plain_interval: float = PLAIN_INTERVAL_SECONDS,
) -> None:
    """Show progress until cancelled: live on a terminal, a line per interval elsewhere.

    ``snapshot`` returns the run's statistics (None before the run starts).
    """
    if console.is_terminal:
        line = Text("starting…", no_wrap=True, overflow="ellipsis")
        with Live(line, console=console, refresh_per_second=4, transient=True) as live:
            while True:
                stats = snapshot()
                if stats is not None:
                    text = format_progress(stats, width=console.width - 1)
                    live.update(Text(text, no_wrap=True, overflow="ellipsis"))
                await anyio.sleep(0.25)
    while True:
        await anyio.sleep(plain_interval)
        stats = snapshot()
        if stats is not None:
            console.print(
                "progress: " + format_progress(stats), markup=False, highlight=False, soft_wrap=True
            )
