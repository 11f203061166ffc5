"""report diff: newly failed, fixed, still failing, missing, added."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from orchestrator.report import Report, ReportDiff, VmResult, diff_reports, failed_keys, render_diff

from ._helpers import report_of, vm


@pytest.fixture
def old() -> Report:
    """The earlier run."""
    return report_of(
        [
            vm("a"),  # succeeded -> failed: newly failed
            vm("b", "failed"),  # failed -> succeeded: fixed
            vm("c", "failed"),  # failed -> failed: still failing
            vm("d", "cancelled"),  # cancelled -> skipped: fixed
            vm("e"),  # gone from new: missing
            vm("h", "cancelled"),  # cancelled -> failed: still failing
            vm("i", "skipped"),  # skipped -> succeeded: nothing to say
        ],
        run_id="old",
    )


@pytest.fixture
def new() -> Report:
    """The later run."""
    return report_of(
        [
            vm("g"),  # added, succeeded
            vm("a", "failed", category="timeout"),
            vm("b"),
            vm("c", "failed", category="quota"),
            vm("d", "skipped"),
            vm("f", "failed"),  # added and failing: newly failed too
            vm("h", "failed"),
            vm("i"),
        ],
        run_id="new",
    )


def _hosts(vms: list[VmResult]) -> list[str]:
    return [v.hostname for v in vms]


def test_the_five_lists(old: Report, new: Report) -> None:
    """Each VM lands in the right list, NEW's results in NEW's order."""
    diff = diff_reports(old, new)
    assert _hosts(diff.newly_failed) == ["a", "f"]
    assert _hosts(diff.fixed) == ["b", "d"]
    assert _hosts(diff.still_failing) == ["c", "h"]
    assert diff.missing == ["e"]
    assert diff.added == ["g", "f"]
    assert diff.newly_failed[0].category == "timeout"  # the NEW result
    assert diff.has_new_failures
    assert not diff.is_empty


def test_no_new_failures_when_only_fixed(old: Report) -> None:
    """A diff with only fixes has no new failures."""
    fixed = report_of([vm(v.hostname) for v in old.vms])
    diff = diff_reports(old, fixed)
    assert not diff.has_new_failures
    assert _hosts(diff.fixed) == ["b", "c", "d", "h"]


def test_same_report_is_empty(old: Report) -> None:
    """A report compared with itself has no changes (its failures are still failing)."""
    diff = diff_reports(old, old)
    assert diff.is_empty
    assert _hosts(diff.still_failing) == ["b", "c", "d", "h"]
    assert diff == ReportDiff(
        newly_failed=[], fixed=[], still_failing=diff.still_failing, missing=[], added=[]
    )


def test_failed_keys_are_failed_and_cancelled(old: Report) -> None:
    """failed_keys lists the keys of failed and cancelled VMs."""
    assert failed_keys(old) == {"b", "c", "d", "h"}
    assert failed_keys(report_of([vm("x"), vm("y", "skipped")])) == set()


def _render(diff: ReportDiff, **kwargs: Any) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    render_diff(diff, console, **kwargs)
    return console.export_text()


def test_render_diff_shows_every_section(old: Report, new: Report) -> None:
    """The rendering counts each list and names the VMs in it."""
    text = _render(diff_reports(old, new))
    assert "New failures: 2, fixed: 2, still failing: 2, missing: 1, added: 2" in text
    for title in ("New failures", "Fixed", "Still failing"):
        assert title in text
    assert "Missing from the new report (1): e" in text
    assert "Added (2): g, f" in text
    assert "timeout" in text


def test_render_empty_diff() -> None:
    """An empty diff says there are no differences."""
    report = report_of([vm("a")])
    assert "No differences." in _render(diff_reports(report, report))


def test_render_diff_caps_long_lists() -> None:
    """Long lists are cut at max_rows with a count of the rest."""
    old = report_of([vm(f"h{i:03d}") for i in range(50)])
    new = report_of([vm(f"h{i:03d}", "failed") for i in range(10, 60)])
    text = _render(diff_reports(old, new), max_rows=5)
    assert "... and 45 more (see the new report)" in text
    assert "Missing from the new report (10): h000, h001, h002, h003, h004 ... and 5 more" in text
    assert "h009" not in text
