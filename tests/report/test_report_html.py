"""The HTML page of a report: what it shows, that it escapes, that it fetches nothing,
and that it stays small at 10,000 VMs. (In a real browser: ``tests/browser``.)"""

from __future__ import annotations

import html.parser
import os
import stat
from pathlib import Path

import pytest

from orchestrator.report import ApiReading, ErrorInfo, render_html, write_html
from orchestrator.report._html_charts import PER_VM_ROWS

from ._fleet import fleet_report
from ._helpers import report_of, sample_report, vm

HOSTILE = '<script>alert("x")</script>'


class _Tags(html.parser.HTMLParser):
    """Every start tag and its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Tags:
    tags = _Tags()
    tags.feed(page)
    return tags


def test_the_page_shows_the_summary_and_every_failure() -> None:
    """Counts by outcome, the requests and 429s, and a row per failed or cancelled VM."""
    page = _parse(render_html(sample_report()))
    text = " ".join(" ".join(page.text).split())
    assert "4 VMs 1 succeeded 1 failed 1 cancelled 1 skipped" in text
    assert "requests 17 (4.25 per VM)" in text
    assert "429 answers 2" in text
    rows = [attrs["data-vm"] for tag, attrs in page.tags if tag == "tr" and "data-vm" in attrs]
    assert rows == ["web-04", "web-02"]  # groups of one: by category, cancelled first
    assert "No package was found matching any of the criteria provided" in text
    assert "not_found package_not_found — 1 VM" in text


def test_failures_are_grouped_by_category_and_code_biggest_first() -> None:
    """Three quota failures, then one timeout: two groups, in that order."""
    quota = ErrorInfo(code="quota_exceeded", description="quota reached")
    vms = [vm(f"q-{i}", "failed", category="quota", error=quota) for i in range(3)]
    vms.append(vm("t-1", "failed", category="timeout", error=ErrorInfo(code="ApiTimeout")))
    page = _parse(render_html(report_of(vms)))
    groups = [attrs["data-category"] for tag, attrs in page.tags if tag == "details"]
    assert groups == ["quota", "timeout"]


def test_everything_from_the_report_is_escaped() -> None:
    """A hostile spec path, error text, organization and run id arrive as text, never markup."""
    hostile = report_of(
        [vm("web-01", "failed", category="validation", error=ErrorInfo(description=HOSTILE))],
        run_id=HOSTILE,
        organization=HOSTILE,
    )
    hostile = hostile.model_copy(
        update={"spec": hostile.spec.model_copy(update={"path": f"specs/{HOSTILE}.toml"})}
    )
    page = render_html(hostile)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    scripts = [tag for tag, _ in _parse(page).tags if tag == "script"]
    assert scripts == ["script"]  # the page's own filter script, and nothing else


@pytest.mark.parametrize("size", [4, PER_VM_ROWS + 1, 10_000])
def test_the_page_fetches_nothing(size: int) -> None:
    """No element loads anything (no src, href, link, srcset, url(), @import), and the
    Content-Security-Policy forbids every fetch."""
    page = render_html(fleet_report(size))
    tags = _parse(page).tags
    for tag, attrs in tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base", "audio", "video")
        assert not {"src", "href", "srcset", "action", "poster", "xlink:href"} & set(attrs), tag
    assert "url(" not in page
    assert "@import" not in page
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv")]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"]


def test_a_row_per_vm_up_to_the_limit_then_a_row_per_group() -> None:
    """A few VMs: a bar each (retried ones marked); thousands: a band per data center and
    package, labelled with its p50, p95 and retries."""
    few = _parse(render_html(fleet_report(30)))
    labels = [t for t in few.text if t.startswith("vm-")]
    assert "vm-00001" in labels
    assert any(attrs.get("class") == "retry" for tag, attrs in few.tags if tag == "circle")
    many = render_html(fleet_report(PER_VM_ROWS + 1))
    assert "us-nyc-01 · rock-1" in many
    assert "vm-00001</text>" not in many
    assert " retried" in many


def test_durations_by_data_center_and_package_slowest_first() -> None:
    """The slow data center (us-nyc-01, 2.5x) tops the durations table."""
    page = _parse(render_html(fleet_report(600)))
    text = "".join(page.text)
    durations = text.split("Build durations by data center and package", 1)[1]
    assert durations.index("us-nyc-01") < durations.index("uk-lon-01")


def test_a_schema_version_1_report_still_renders() -> None:
    """No budget, no first sightings, no package: the page says so and shows the rest."""
    old = sample_report().model_copy(update={"schema_version": 1})
    text = " ".join(" ".join(_parse(render_html(old)).text).split())
    assert "does not record the budget per window (schema_version 1" in text
    assert "unknown" in text  # the package of the durations table
    assert "web-02" in text


def test_ten_thousand_vms_make_a_small_page() -> None:
    """10,000 VMs (3.5% of them failed or cancelled, each a row): under 1 MB."""
    page = render_html(fleet_report(10_000))
    assert len(page.encode()) < 1_000_000


def test_write_html_is_owner_only(tmp_path: Path) -> None:
    """The page is written like the report: atomically, mode 0600."""
    path = tmp_path / "run.html"
    write_html(sample_report(), path)
    assert path.read_text("utf-8").startswith("<!DOCTYPE html>")
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_page_lists_the_readings_found_escaped() -> None:
    """Each reading of the API found, with its evidence (the API's words, escaped)."""
    readings = [ApiReading(name="delete_running", value="refused", evidence=HOSTILE)]
    page = render_html(sample_report().model_copy(update={"readings": readings}))
    text = " ".join(" ".join(_parse(page).text).split())
    assert "readings of the API found delete_running refused" in text
    assert HOSTILE not in page
    assert ("dd", {"data-fact": "readings"}) in _parse(page).tags
