"""``orchestrator report html`` and ``run --html`` / ``destroy --html`` in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli._helpers import EXAMPLE_HOSTNAMES, EXAMPLE_SPEC, ThreadSimulator, make_report

SetEnv = Callable[[dict[str, str]], None]


def test_report_html_writes_the_page_beside_the_report(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -o the page is REPORT with .html; with -o where it says (0 both times)."""
    make_report(cwd / "report.json", {"web-01": "succeeded", "web-02": "failed"})
    assert main(["report", "html", "report.json"]) == 0
    assert "HTML report written to report.html" in capsys.readouterr().out
    assert "web-02" in (cwd / "report.html").read_text("utf-8")


def test_report_html_to_a_named_file(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o run.html`` writes exactly there."""
    make_report(cwd / "report.json", {"web-01": "succeeded"})
    assert main(["report", "html", "report.json", "-o", "run.html"]) == 0
    assert (cwd / "run.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    assert not (cwd / "report.html").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "error: report missing.json: no such file"),
        ("{not json", "error: report missing.json: not valid JSON"),
        ('{"schema_version": 9}', "schema_version 9 is not supported"),
    ],
)
def test_report_html_of_a_bad_report_is_one_error_line(
    cwd: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    """A missing or broken report: exit 2, one ``error:`` line, no traceback, no page."""
    if content is not None:
        (cwd / "missing.json").write_text(content, encoding="utf-8")
    assert main(["report", "html", "missing.json", "-o", "run.html"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (cwd / "run.html").exists()


def test_report_html_to_a_place_it_cannot_write(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output in a directory that does not exist: exit 1 naming the path."""
    make_report(cwd / "report.json", {"web-01": "succeeded"})
    assert main(["report", "html", "report.json", "-o", "no/such/dir/run.html"]) == 1
    assert "error: cannot write no/such/dir/run.html" in capsys.readouterr().err


def test_run_and_destroy_write_the_page_with_html(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run --html`` and ``destroy --html`` write the page of their report."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--html", "run.html"]) == 0
    page = (cwd / "run.html").read_text("utf-8")
    assert all(hostname in page for hostname in EXAMPLE_HOSTNAMES)
    assert "build run" in page
    assert "HTML report written to run.html" in capsys.readouterr().out
    code = main(["destroy", "--yes", "--no-progress", str(EXAMPLE_SPEC), "--html", "gone.html"])
    assert code == 0
    assert "delete run" in (cwd / "gone.html").read_text("utf-8")


def test_run_checks_the_html_path_before_sending_anything(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An --html path that cannot be written: exit 2 before any request."""
    setenv(sim.env())
    code = main(["run", str(EXAMPLE_SPEC), "--no-progress", "--html", "no/dir/run.html"])
    assert code == 2
    assert "cannot write the HTML report no/dir/run.html" in capsys.readouterr().err
    assert sim.hostnames() == []


def test_run_html_from_the_environment(cwd: Path, sim: ThreadSimulator, setenv: SetEnv) -> None:
    """ORCHESTRATOR_HTML is --html."""
    setenv({**sim.env(), "ORCHESTRATOR_HTML": "env.html"})
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    assert (cwd / "env.html").exists()
