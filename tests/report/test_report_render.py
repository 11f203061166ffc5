"""The terminal summary: counts, failed VMs, skipped reasons; plain text stays readable."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from orchestrator.report import ApiReading, ErrorInfo, Report, RequestCounts, render_summary
from orchestrator.report._render import format_duration
from orchestrator.report._text import for_terminal, for_xml

from ._helpers import report_of, vm


def _render(report: Report, **kwargs: Any) -> tuple[str, str]:
    """(the recorded text, what went to the non-terminal file)."""
    file = io.StringIO()
    console = Console(record=True, width=120, file=file)
    render_summary(report, console, **kwargs)
    return console.export_text(), file.getvalue()


def test_summary_has_counts_and_failed_hosts(report: Report) -> None:
    """Counts by outcome and category, requests, skipped reasons and failed hosts are shown."""
    text, _ = _render(report)
    assert "Run run-0001 finished in 1m 12s" in text
    assert "VMs: 4 total, 1 succeeded, 1 failed, 1 skipped, 1 cancelled" in text
    assert "By category: cancelled 1, not_found 1" in text
    assert "Requests: 17 total, 2 rate-limited (429)" in text
    assert "Skipped: 1 (already_exists 1)" in text
    assert "Failed or cancelled VMs (2)" in text
    lines = text.splitlines()
    failed_rows = [line for line in lines if "web-02" in line or "web-04" in line]
    assert len(failed_rows) == 2
    row = lines.index(failed_rows[0])
    assert "package_not_found" in " ".join(lines[row : row + 2])
    assert failed_rows[0].rstrip().endswith("2")  # attempts
    assert "interrupted" in failed_rows[1]
    assert "web-01" not in text  # succeeded VMs are not listed


def test_non_terminal_output_has_no_escape_codes(report: Report) -> None:
    """On a file or pipe the summary is plain text, no ANSI sequences."""
    _, raw = _render(report)
    assert "\x1b" not in raw
    assert "web-02" in raw


def test_interrupted_run_says_so() -> None:
    """An interrupted run is marked in the first line."""
    text, _ = _render(report_of([vm("a")], interrupted=True))
    assert "(interrupted)" in text.splitlines()[0]


def test_clean_run_has_no_failure_table() -> None:
    """With nothing failed there is no table and no category line."""
    text, _ = _render(report_of([vm("a"), vm("b")], requests=RequestCounts(total=3)))
    assert "Failed or cancelled VMs" not in text
    assert "By category" not in text
    assert "Requests: 3 total, 0 rate-limited (429)" in text


def test_long_failure_lists_are_capped() -> None:
    """After max rows the table stops with '... and N more (see <report>)'."""
    report = report_of([vm(f"web-{i:03d}", "failed") for i in range(45)])
    text, _ = _render(report)
    assert "web-039" in text
    assert "web-040" not in text
    assert "... and 5 more (see report.json)" in text
    text, _ = _render(report, report_path="out/run.json", max_rows=10)
    assert "... and 35 more (see out/run.json)" in text


def test_api_text_cannot_drive_the_terminal_or_markup() -> None:
    """Rich markup and escape sequences in API text are shown literally, never interpreted."""
    error = ErrorInfo(code="[bold]x[/bold]", description="evil \x1b[2J\x07 [red]text[/red]\nmore")
    text, raw = _render(report_of([vm("web-01", "failed", error=error)]))
    assert "[bold]x[/bold]" in text
    assert "evil \\x1b[2J\\x07 [red]text[/red] more" in text
    assert "\x1b" not in raw
    assert "\x07" not in raw


def test_error_details_are_not_printed() -> None:
    """The summary never prints an error's detail (where a stray secret could hide)."""
    canary = "canary-token-98765"
    error = ErrorInfo(code="c", description="d", detail={"authorization": f"Bearer {canary}"})
    text, _ = _render(report_of([vm("a", "failed", error=error)]))
    assert canary not in text


def test_long_reasons_are_shortened() -> None:
    """A very long description is cut so the table stays readable."""
    error = ErrorInfo(description="x" * 1000)
    text, _ = _render(report_of([vm("a", "failed", error=error)]))
    assert "x" * 1000 not in text.replace("\n", "").replace(" ", "")
    assert "…" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0s"), (38.24, "38.2s"), (72, "1m 12s"), (3600 + 127, "1h 02m 07s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations read as seconds, minutes or hours."""
    assert format_duration(seconds) == text


def test_for_terminal_and_for_xml() -> None:
    """Text helpers collapse whitespace, escape controls, cut long text and fix XML."""
    assert for_terminal("a\n\tb\x1bc", limit=None) == "a b\\x1bc"
    assert for_terminal("abcdef", limit=4) == "abc…"
    assert for_terminal("\u2028x") == "x"  # a line separator is whitespace
    assert for_xml("a\x00b\ud800c\ufffe\td") == "a\\x00b\\ud800c\\ufffe\td"


def test_failure_table_fits_80_columns_with_ids_on_one_line() -> None:
    """At 80 columns every line fits, an id in a reason is never cut, and a code equal to
    its category is not repeated."""
    build = "vmbuild_abcdefgh12345679"
    report = report_of(
        [
            vm(
                "web-01",
                "failed",
                category="timeout",
                error=None,
                build_id=build,
                stopped_because=f"build {build} not finished after 1200s",
            ),
            vm(
                "web-02",
                "failed",
                category="conflict",
                error=ErrorInfo(code="conflict", description="hostname taken", http_status=422),
            ),
        ]
    )
    file = io.StringIO()
    console = Console(record=True, width=80, file=file)
    render_summary(report, console)
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any(build in line for line in lines)
    (row,) = [line for line in lines if "web-02" in line]
    assert row.count("conflict") == 1


def test_the_readings_found_are_one_line() -> None:
    """The readings of the API the run found out are named, one line; none, no line."""
    readings = [
        ApiReading(name="annotation_filter", value="refused", evidence="400 invalid_argument"),
        ApiReading(name="delete_running", value="refused", evidence="409 deletion_restricted"),
    ]
    text, _ = _render(report_of([vm("a")]).model_copy(update={"readings": readings}))
    assert "Readings of the API found: annotation_filter refused, delete_running refused" in text
    assert "Readings" not in _render(report_of([vm("a")]))[0]
