"""Progress for people: a live line on a terminal, plain periodic lines elsewhere.

On a terminal the line is redrawn in place (rich ``Live``); log lines and
messages printed meanwhile appear above it, because ``Live`` routes
``sys.stderr`` through the console and the log set-up writes to whatever
``sys.stderr`` is at the time (see ``orchestrator._logging``). Elsewhere (a
pipe, a file, cron) one ``progress:`` line is printed per interval, so logs
stay line-oriented.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.engine.events import EngineStatistics

__all__ = ["PLAIN_INTERVAL_SECONDS", "format_progress", "show_progress"]

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


def format_progress(stats: EngineStatistics) -> str:
    """One line, most telling first: where the run stands, the ETA, the rate budget.

    ``3/5 done · building 2 · queued 0 · ok 2 · failed 1 · ETA 12s · requests 27 ·
    budget 973/1000``; skipped, cancelled and 429 counts appear once not zero.
    """
    parts = [
        f"{stats.done}/{stats.total} done",
        f"building {stats.building + stats.submitting}",
        f"queued {stats.queued}",
        f"ok {stats.succeeded}",
        f"failed {stats.failed}",
    ]
    if stats.skipped:
        parts.append(f"skipped {stats.skipped}")
    if stats.cancelled:
        parts.append(f"cancelled {stats.cancelled}")
    parts.append(f"ETA {_eta(stats)}")
    requests = f"requests {stats.requests_total}"
    if stats.rate_limited:
        requests += f" (429: {stats.rate_limited})"
    parts.append(requests)
    if stats.permitted is not None:
        parts.append(f"budget {stats.remaining}/{stats.permitted}")
    return " · ".join(parts)


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
                    live.update(Text(format_progress(stats), no_wrap=True, overflow="ellipsis"))
                await anyio.sleep(0.25)
    while True:
        await anyio.sleep(plain_interval)
        stats = snapshot()
        if stats is not None:
            console.print(
                "progress: " + format_progress(stats), markup=False, highlight=False, soft_wrap=True
            )
