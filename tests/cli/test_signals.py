"""A signal at any moment exits 130, never with the signal's own code (-2, -15)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from tests.cli._helpers import WAIT, clean_environ, write_spec


def test_sigint_and_sigterm_are_never_left_to_the_default_while_a_run_ends(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the first moment of a run to its end, SIGINT and SIGTERM always have a handler:
    the default (death by the signal) is never set in between, as the event loop's own
    signal handling did when it closed (only main's last step gives the caller's back)."""
    write_spec(cwd / "web.toml", "web", 2)
    set_to: list[tuple[int, Any]] = []
    real = signal.signal

    def recording(signum: int, handler: Any) -> Any:
        set_to.append((signum, handler))
        return real(signum, handler)

    monkeypatch.setattr(signal, "signal", recording)
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["run", "--simulate", "web.toml", "--no-progress"]) == 0
    *during, last = set_to
    assert last == (signal.SIGTERM, previous)  # main gives the caller its handler back
    assert [s for s, handler in during if handler is signal.SIG_DFL] == []
    assert {s for s, _ in during} >= {signal.SIGINT, signal.SIGTERM}


_AS_MAIN_RETURNS = """
import os, signal, sys
import orchestrator.cli._main as cli_main

def main_that_is_signalled_as_it_returns(argv=None):
    os.kill(os.getpid(), signal.{name})
    return 0

cli_main.main = main_that_is_signalled_as_it_returns
cli_main.console_main()
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_as_the_command_ends_exits_130(cwd: Path, name: str) -> None:
    """The console script exits 130 for a signal that lands as the command returns (it
    died with -2 or -15: the signal's default outside main)."""
    done = subprocess.run(
        [sys.executable, "-c", _AS_MAIN_RETURNS.format(name=name)],
        cwd=cwd,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
