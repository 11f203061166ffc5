"""Smaller whole-run problems of issue 24, each found the way a user finds it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.simulator import FaultConfig
from tests.cli._helpers import thread_simulator, write_spec

SetEnv = Callable[[dict[str, str]], None]


def test_tables_off_a_terminal_fit_80_columns(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped (to less, to a CI log) with no COLUMNS, the summary wraps at 80 columns."""
    write_spec(cwd / "fleet.toml", "a-rather-long-hostname-for-a-table", 3)
    with thread_simulator(faults=FaultConfig(build_fail_rate=1.0)) as failing:
        setenv(failing.env())
        assert main(["run", "fleet.toml", "--no-progress"]) == 1
    out, _ = capsys.readouterr()
    assert "Failed or cancelled VMs (3)" in out
    assert max(len(line) for line in out.splitlines()) <= 80, out


def test_run_help_says_what_max_in_flight_defaults_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--max-in-flight has no default of 200: the run sizes it (the help said 200)."""
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "default 200" not in out
    assert "the run sizes it from the rate budget" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "error: Missing argument 'SPEC'."),
        (["run", "x.toml", "--max-in-flight", "0"], "error: Invalid value for '--max-in-flight'"),
        (["frobnicate"], "error: No such command 'frobnicate'."),
    ],
)
def test_click_usage_errors_say_error_like_ours(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage error is our one 'error:' line (after click's usage and hint), exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Error:" not in err


def test_a_limit_that_excludes_says_it_is_not_supported(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit '!db-*' is refused as an exclusion, not as a pattern that matches nothing."""
    write_spec(cwd / "fleet.toml", "db", 2)
    assert main(["plan", "--simulate", "fleet.toml", "--limit", "!db-*"]) == 2
    err = capsys.readouterr().err
    assert "excluding VMs is not supported" in err
    assert "match" not in err


def test_the_status_hint_is_shell_quoted(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The `status --all` command the hint shows can be pasted as it is."""
    write_spec(cwd / "fleet.toml", "web", 51)
    journal = "my fleet's.journal"
    assert main(["run", "--simulate", "fleet.toml", "--no-progress", "--journal", journal]) == 0
    capsys.readouterr()
    assert main(["status", journal]) == 0
    out = capsys.readouterr().out
    assert "(orchestrator status --all 'my fleet'\"'\"'s.journal' shows every VM)" in out
    assert os.path.exists(journal)
