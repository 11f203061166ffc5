"""Progress: a live line on a terminal, ``progress:`` lines elsewhere, and log lines that
never garble it; ``--no-progress`` turns it off."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import anyio
import pytest
from rich.console import Console
from rich.text import Text

from orchestrator._logging import configure_logging
from orchestrator.cli._progress import format_progress, log_progress, show_progress
from orchestrator.engine import EngineStatistics
from tests.cli._helpers import (
    WAIT,
    clean_environ,
    orchestrator_command,
    run_in_pty,
    strip_ansi,
    thread_simulator,
    write_spec,
)

#: Simulated seconds of a build: one real second at the tests' time scale.
BUILD_SECONDS = 100.0


def _stats(**changes: int | float | None) -> EngineStatistics:
    values: dict[str, int | float | None] = {
        "total": 5,
        "queued": 0,
        "submitting": 0,
        "building": 2,
        "succeeded": 2,
        "failed": 1,
        "skipped": 0,
        "cancelled": 0,
        "requests_total": 27,
        "rate_limited": 0,
        "permitted": 1000,
        "remaining": 973,
        "elapsed_seconds": 30.0,
    }
    values.update(changes)
    return EngineStatistics(**values)  # type: ignore[arg-type]


def test_progress_line_says_the_most_telling_first() -> None:
    """The line starts with done/total and building, and ends with the ETA and the budget."""
    assert format_progress(_stats()) == (
        "3/5 done · building 2 · queued 0 · ok 2 · failed 1 · ETA 20s · requests 27 · "
        "budget 973/1000"
    )


def test_progress_line_shows_the_in_flight_limit_once_known() -> None:
    """The number of builds allowed in flight at once follows the building count."""
    line = format_progress(_stats(in_flight_limit=563))
    assert line.startswith("3/5 done · building 2 (limit 563) · queued 0")


def test_progress_line_shows_rare_counts_only_when_not_zero() -> None:
    """Skipped, cancelled and 429s appear once they happened; an unknown budget is left out."""
    line = format_progress(
        _stats(skipped=1, cancelled=1, rate_limited=4, permitted=None, remaining=None)
    )
    assert "skipped 1 · cancelled 1" in line
    assert "requests 27 (429: 4)" in line
    assert "budget" not in line


@pytest.mark.parametrize(
    ("changes", "eta"),
    [
        ({"succeeded": 0, "failed": 0}, "?"),
        ({"elapsed_seconds": 0.0}, "?"),
        ({"succeeded": 4, "building": 0}, "0s"),
        ({"elapsed_seconds": 600.0}, "6m40s"),
        ({"elapsed_seconds": 6000.0}, "1h06m"),
    ],
)
def test_progress_eta(changes: dict[str, float], eta: str) -> None:
    """The ETA extrapolates from the VMs done so far; unknown before the first is done."""
    assert format_progress(_stats(**changes)).split(" · ")[-3] == f"ETA {eta}"


@pytest.mark.parametrize("width", [80, 60, 40])
def test_progress_line_fits_a_narrow_terminal_and_keeps_the_budget(width: int) -> None:
    """A big run's line fits the terminal's width and still ends with the budget figure."""
    stats = _stats(
        total=10_000,
        queued=7_400,
        building=200,
        succeeded=2_350,
        failed=45,
        skipped=3,
        cancelled=2,
        requests_total=12_345,
        rate_limited=7,
        remaining=973,
        elapsed_seconds=6000.0,
    )
    full = format_progress(stats)
    assert len(full) > 80
    line = format_progress(stats, width=width)
    assert len(line) <= width
    assert line.startswith("2400/10000 done")
    assert line.endswith("budget 973/1000")


def test_progress_line_that_fits_is_left_whole() -> None:
    """A line that fits the width is the full line."""
    assert format_progress(_stats(), width=100) == format_progress(_stats())


def test_progress_line_at_80_columns_on_a_live_console() -> None:
    """Rendered by rich at 80 columns, the live line shows the budget (nothing cut)."""
    stats = _stats(total=10_000, queued=7_400, succeeded=2_350, requests_total=12_345)
    console = Console(record=True, width=80, file=io.StringIO(), force_terminal=True)
    line = format_progress(stats, width=console.width - 1)
    console.print(Text(line, no_wrap=True, overflow="ellipsis"))
    (shown,) = console.export_text().splitlines()
    assert shown.rstrip().endswith("budget 973/1000")


@pytest.mark.anyio
async def test_json_progress_is_a_json_log_event() -> None:
    """With JSON logs, progress is an orchestrator.run.progress event with the run id."""
    stream = _LineCounter(lines=2)
    configure_logging(fmt="json", level="info", stream=stream)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: log_progress(_stats, run_id=lambda: "r1", interval=0.001))
        await stream.enough.wait()
        tg.cancel_scope.cancel()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert events[0]["event"] == "orchestrator.run.progress"
    assert events[0]["run_id"] == "r1"
    assert (events[0]["done"], events[0]["total"], events[0]["budget_remaining"]) == (3, 5, 973)


class _LineCounter(io.StringIO):
    """A console file that tells when enough lines were written."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.enough = anyio.Event()
        self._lines = lines

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self._lines:
            self.enough.set()
        return written


@pytest.mark.anyio
async def test_plain_progress_prints_a_line_per_interval_off_a_terminal() -> None:
    """Off a terminal, progress is one ``progress:`` line per interval, nothing else."""
    file = _LineCounter(lines=3)
    console = Console(file=file, force_terminal=False, width=200)
    snapshots = iter([None, _stats(), _stats(succeeded=3, building=1)])

    def snapshot() -> EngineStatistics | None:
        return next(snapshots, _stats(succeeded=4, building=0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: show_progress(snapshot, console, plain_interval=0.001))
        await file.enough.wait()
        tg.cancel_scope.cancel()
    lines = file.getvalue().splitlines()
    assert lines[0] == "progress: " + format_progress(_stats())
    assert all(line.startswith("progress: ") for line in lines)
    assert "\x1b[" not in file.getvalue()


def test_live_progress_on_a_pty_is_not_garbled_by_log_lines(cwd: Path) -> None:
    """On a terminal a live line is redrawn in place; every log line starts on a line of its own."""
    write_spec(cwd / "fleet.toml", "pty", count=3)
    with thread_simulator(build_seconds=BUILD_SECONDS) as sim:
        code, screen = run_in_pty("run", "fleet.toml", cwd=cwd, env=sim.env())
    assert code == 0, screen
    assert "\x1b[?25l" in screen  # the live display hid the cursor...
    assert screen.rindex("\x1b[?25h") > screen.rindex("\x1b[?25l")  # ...and showed it again
    assert "done · building" in strip_ansi(screen)
    log_lines = 0
    for physical in screen.split("\n"):
        visible = strip_ansi(physical.rstrip("\r").split("\r")[-1])
        if "orchestrator.vm." in visible:
            log_lines += 1
            assert visible[:2] == "20", f"a log line shares its line: {visible!r}"
    assert log_lines >= 6  # submitted and succeeded for each VM
    assert "3 succeeded" in strip_ansi(screen)


def test_no_progress_on_a_pty_shows_no_live_line(cwd: Path) -> None:
    """``--no-progress`` on a terminal: no live line, no cursor games, still logs and summary."""
    write_spec(cwd / "fleet.toml", "quiet", count=2)
    with thread_simulator() as sim:
        code, screen = run_in_pty("run", "fleet.toml", "--no-progress", cwd=cwd, env=sim.env())
    assert code == 0, screen
    assert "\x1b[?25l" not in screen
    assert "done ·" not in strip_ansi(screen)
    assert "orchestrator.vm.succeeded" in strip_ansi(screen)
    assert "2 succeeded" in strip_ansi(screen)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_screen_under_tmux_shows_logs_and_summary_and_no_leftover_progress(cwd: Path) -> None:
    """Under tmux, the final screen holds whole log lines and the summary; the live line is gone."""
    write_spec(cwd / "fleet.toml", "tmx", count=3)
    # unique per run: two test sessions at once have tmp dirs of the same name
    socket = f"orchestrator-test-{uuid.uuid4().hex[:12]}"
    (cwd / "tmux.conf").write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
    tmux = ["tmux", "-L", socket, "-f", str(cwd / "tmux.conf")]
    command = " ".join(orchestrator_command("run", "fleet.toml"))
    with thread_simulator(build_seconds=BUILD_SECONDS) as sim:
        env = clean_environ({"TERM": "xterm-256color", **sim.env()})
        env.pop("TMUX", None)
        try:
            subprocess.run(
                [*tmux, "new-session", "-d", "-x", "250", "-y", "50", "-c", str(cwd),
                 f"{command}; tmux -L {socket} wait-for -S finished"],
                env=env, check=True, timeout=WAIT,
            )  # fmt: skip
            subprocess.run([*tmux, "wait-for", "finished"], env=env, check=True, timeout=WAIT)
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-S", "-"],
                env=env, check=True, timeout=WAIT, capture_output=True, text=True,
            ).stdout  # fmt: skip
        finally:
            subprocess.run([*tmux, "kill-server"], env=env, check=False, timeout=WAIT)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert any("3 succeeded" in line for line in lines), screen
    log_lines = [line for line in lines if "orchestrator.vm." in line]
    assert len(log_lines) >= 6, screen
    assert all(line.startswith("20") for line in log_lines), screen
    assert not any("done · building" in line for line in lines), screen
