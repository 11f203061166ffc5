"""Progress for people: a live line on a terminal, plain periodic lines elsewhere."""

from __future__ import annotations

from collections.abc import Callable

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.engine.events import EngineStatistics

__all__ = ["format_progress", "show_progress"]


def _eta(stats: EngineStatistics) -> str:
    done = stats.done
    if done == 0 or stats.elapsed_seconds <= 0:
        return "?"
    remaining = (stats.total - done) * stats.elapsed_seconds / done
    minutes, seconds = divmod(int(remaining), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def format_progress(stats: EngineStatistics) -> str:
    """One line: where the run stands, what the budget allows, and the ETA."""
    budget = f"{stats.remaining}/{stats.permitted}" if stats.permitted is not None else "unknown"
    return (
        f"{stats.done}/{stats.total} done · submitted {stats.total - stats.queued} · "
        f"building {stats.building + stats.submitting} · ok {stats.succeeded} · "
        f"failed {stats.failed} · skipped {stats.skipped} · cancelled {stats.cancelled} · "
        f"requests {stats.requests_total} (429: {stats.rate_limited}) · "
        f"budget left {budget} · ETA {_eta(stats)}"
    )


async def show_progress(
    snapshot: Callable[[], EngineStatistics | None],
    console: Console,
    *,
    plain_interval: float = 10.0,
) -> None:
    """Show progress until cancelled: live on a terminal, a line per interval elsewhere."""
    if console.is_terminal:
        with Live(Text("starting…"), console=console, refresh_per_second=4, transient=True) as live:
            while True:
                stats = snapshot()
                if stats is not None:
                    live.update(Text(format_progress(stats)))
                await anyio.sleep(0.25)
    while True:
        await anyio.sleep(plain_interval)
        stats = snapshot()
        if stats is not None:
            console.print(format_progress(stats), highlight=False, soft_wrap=True)
