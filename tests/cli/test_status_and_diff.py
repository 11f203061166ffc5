"""``orchestrator status`` and ``orchestrator report diff`` in-process."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli._helpers import (
    EXAMPLE_HOSTNAMES,
    EXAMPLE_SPEC,
    ThreadSimulator,
    make_report,
    write_spec,
)

SetEnv = Callable[[dict[str, str]], None]


def test_status_shows_each_vm_state_and_ids(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """status JOURNAL (0) shows the run and every VM with its state and ids."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["status", "report.json.journal"]) == 0
    out = capsys.readouterr().out
    assert "Runs (1)" in out
    assert "5 finished (5 succeeded)" in out
    for hostname in EXAMPLE_HOSTNAMES:
        assert hostname in out
    assert out.count("vmbuild_") == 5
    assert out.count("task_") == 5


def test_status_shows_50_rows_unless_all(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """status shows 50 VMs and says how to see the rest; --all shows every one."""
    hostnames = write_spec(cwd / "big.toml", "many", count=55)
    setenv(sim.env())
    assert main(["run", "big.toml", "--no-progress", "--log-level", "warning"]) == 0
    capsys.readouterr()
    assert main(["status", "report.json.journal"]) == 0
    out = capsys.readouterr().out
    assert sum(hostname in out for hostname in hostnames) == 50
    assert "5 more VMs not shown" in out
    assert "status --all report.json.journal" in out
    assert main(["status", "--all", "report.json.journal"]) == 0
    out = capsys.readouterr().out
    assert all(hostname in out for hostname in hostnames)
    assert "not shown" not in out


def test_status_of_a_missing_journal_exits_2(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status on a path with no journal is a message (2), and creates nothing."""
    assert main(["status", "gone.journal"]) == 2
    assert "there is no journal at gone.journal" in capsys.readouterr().err
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("kind", ["text", "sqlite"])
def test_status_of_a_foreign_file_exits_2_and_leaves_it(
    cwd: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """status on a file that is not a journal (text, or someone else's SQLite) exits 2."""
    path = cwd / "other.db"
    if kind == "text":
        path.write_text("hello\n")
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
    before = path.read_bytes()
    assert main(["status", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not an orchestrator journal" in err
    assert "--journal" not in err  # status has no such option
    assert path.read_bytes() == before


def test_report_diff_without_new_failures_exits_0(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two reports where nothing newly failed: 0, and the fixed VM is listed."""
    make_report(cwd / "old.json", {"a-1": "failed", "a-2": "succeeded"})
    make_report(cwd / "new.json", {"a-1": "succeeded", "a-2": "succeeded"})
    assert main(["report", "diff", "old.json", "new.json"]) == 0
    out = capsys.readouterr().out
    assert "New failures: 0, fixed: 1" in out


def test_report_diff_with_a_new_failure_exits_1(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A VM that failed in NEW and not in OLD: 1, and it is listed first."""
    make_report(cwd / "old.json", {"a-1": "succeeded", "a-2": "succeeded"})
    make_report(cwd / "new.json", {"a-1": "succeeded", "a-2": "cancelled", "a-3": "skipped"})
    assert main(["report", "diff", "old.json", "new.json"]) == 1
    out = capsys.readouterr().out
    assert "New failures: 1" in out
    assert "a-2" in out
    assert "Added (1): a-3" in out


@pytest.mark.parametrize("which", ["missing", "not json", "not a report"])
def test_report_diff_of_a_bad_report_exits_2(
    cwd: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    """A report that is missing or not a report is a message naming it (2)."""
    make_report(cwd / "old.json", {"a-1": "succeeded"})
    if which == "not json":
        (cwd / "new.json").write_text("{not json")
    elif which == "not a report":
        (cwd / "new.json").write_text('{"hello": "world"}')
    assert main(["report", "diff", "old.json", "new.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: report new.json")
