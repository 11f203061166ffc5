"""The HTML report of a simulated run with failures, loaded in headless Chromium: what the
DOM shows (counts, a failed VM's row, the filter), a screenshot, and not one request."""

from __future__ import annotations

import html.parser
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from tests.cli._helpers import clean_environ, thread_simulator

from ._chromium import Browser, Page, chromium

pytestmark = pytest.mark.slow

SPEC = """\
[defaults]
organization = "acme"
package = "rock-1"
disk_template = "templates/ubuntu-22-04"

[[vms]]
hostname = "web-{index:02d}"
count = 4
data_center = "uk-lon-01"

[[vms]]
hostname = "flex-{index:02d}"
count = 3
data_center = "nl-ams-01"
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``orchestrator run fleet.toml --html run.html`` against a simulator where another
    fleet's VMs hold flex-01..03: 4 built, 3 failed (conflict) at run time: exit 1."""
    workdir = tmp_path_factory.mktemp("run")
    (workdir / "fleet.toml").write_text(SPEC, encoding="utf-8")
    with thread_simulator() as sim:
        for hostname in ("flex-01", "flex-02", "flex-03"):
            vm_id = sim.portal.call(sim.running.state.add_existing_vm, "acme", hostname)
            record = sim.running.state.vm_by_id(vm_id)
            assert record is not None
            record.annotations = [
                {"key": VM_KEY, "value": hostname},
                {"key": FLEET_KEY, "value": "another-team"},
            ]
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", "fleet.toml",
             "--html", "run.html", "--no-progress"],
            cwd=workdir, env=clean_environ(sim.env()), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "HTML report written to run.html" in result.stdout
    return workdir / "run.html"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium of the test's own (its profile in the test's tmp dir)."""
    with chromium(tmp_path / "profile") as running:
        yield running


def _fetched(page: Page, url: str) -> list[str]:
    """What the page asked of the network beyond its own document, and any load it was
    refused (a Content-Security-Policy refusal is logged, not requested)."""
    own = url.split("#", 1)[0]
    asked = [request for request in page.requests if request != own]
    refused = [line for line in page.console if "Refused to" in line]
    return asked + refused


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


class _Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM: (tag, attributes) in order, and their text by id/data."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "td":  # cells of a row are told apart by a tab
            for opened in self._open:
                if opened:
                    self.text[opened] += "\t"
        key = (
            attributes.get("data-count") or attributes.get("data-vm") or attributes.get("id") or ""
        )
        self._open.append(key)
        if key:
            self.text.setdefault(key, "")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in self._open:
            if key:
                self.text[key] += data

    def attrs_of(self, name: str, value: str) -> dict[str, str | None]:
        return next(attrs for _, attrs in self.elements if attrs.get(name) == value)


def _dom(page: Page) -> _Dom:
    dom = _Dom()
    dom.feed(page.dom())
    return dom


def test_the_dom_shows_the_counts_and_each_failed_vm(page: Path, browser: Browser) -> None:
    """Counts by outcome, and a failed VM's row with its category's message; no request."""
    tab = browser.open(page.as_uri())
    dom = _dom(tab)
    counts = {k: dom.text[k].strip() for k in ("total", "succeeded", "failed", "cancelled")}
    assert counts == {"total": "7", "succeeded": "4", "failed": "3", "cancelled": "0"}
    cells = dom.text["flex-02"].split("\t")[1:]
    assert cells[0] == "flex-02"
    # met as the API's refusal of a taken hostname (the fleet is found by its own listing)
    assert "Hostname has already been taken" in cells[1]
    assert cells[-1] == "1"  # attempts: its POST, refused as taken
    rows = [attrs.get("data-vm") for tag, attrs in dom.elements if tag == "tr"]
    assert [row for row in rows if row] == ["flex-01", "flex-02", "flex-03"]
    assert "conflict" in dom.text["failures"]
    assert dom.attrs_of("id", "filter").get("hidden") is None  # the script ran: filter shown
    assert tab.evaluate("document.querySelectorAll('#timeline svg rect').length") > 4
    assert _fetched(tab, page.as_uri()) == []


def test_typing_in_the_filter_shows_only_matching_rows(page: Path, browser: Browser) -> None:
    """Typing "flex-02" in the filter box hides the other failed VMs' rows: "1 of 3 shown"."""
    tab = browser.open(page.as_uri())
    tab.evaluate(
        "(() => { const box = document.getElementById('filter'); box.value = 'FLEX-02';"
        " box.dispatchEvent(new Event('input')); })()"
    )
    dom = _dom(tab)
    assert "hidden" in dom.attrs_of("data-vm", "flex-01")
    assert "hidden" not in dom.attrs_of("data-vm", "flex-02")
    assert "hidden" in dom.attrs_of("data-vm", "flex-03")
    assert dom.text["shown"] == "1"
    tab.evaluate(
        "(() => { const box = document.getElementById('filter'); box.value = 'no such vm';"
        " box.dispatchEvent(new Event('input')); })()"
    )
    assert tab.evaluate("document.getElementById('shown').textContent") == "0"
    assert tab.evaluate("document.querySelector('#failures details.group').hidden") is True
    assert _fetched(tab, page.as_uri()) == []


def test_the_filter_in_the_address(page: Path, browser: Browser) -> None:
    """``run.html#filter=flex-03`` opens the page filtered."""
    url = page.as_uri() + "#filter=flex-03"
    tab = browser.open(url)
    shown = tab.evaluate(
        "[...document.querySelectorAll('#failures tbody tr:not([hidden])')].map(r => r.dataset.vm)"
    )
    assert shown == ["flex-03"]
    assert _fetched(tab, url) == []


def test_a_screenshot_of_the_page(page: Path, browser: Browser, tmp_path: Path) -> None:
    """The page renders to a PNG (kept in the test's tmp dir), fetching nothing."""
    tab = browser.open(page.as_uri())
    shot = tmp_path / "run.png"
    tab.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    assert _fetched(tab, page.as_uri()) == []


def test_a_page_that_fetches_is_caught(browser: Browser, tmp_path: Path) -> None:
    """The check is real: a remote image, a loopback script and a CSP-refused font are seen."""
    fetching = tmp_path / "fetching.html"
    fetching.write_text(
        '<!DOCTYPE html><img src="http://cdn.example.invalid/logo.png">'
        '<script src="http://127.0.0.1:9/x.js"></script>',
        encoding="utf-8",
    )
    tab = browser.open(fetching.as_uri())
    seen = _fetched(tab, fetching.as_uri())
    assert "http://cdn.example.invalid/logo.png" in seen, seen
    assert "http://127.0.0.1:9/x.js" in seen, seen
    refusing = tmp_path / "refusing.html"
    refusing.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        '<img src="https://fonts.example.invalid/a.png">',
        encoding="utf-8",
    )
    tab = browser.open(refusing.as_uri())
    assert any("fonts.example.invalid" in line for line in _fetched(tab, refusing.as_uri()))
