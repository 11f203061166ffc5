"""How big the HTML report of a big run is, how long it takes to write, and how long
Chromium takes to open it: ``python -m benchmarks.html_report [--n 10000] [--repeat 5]``.

The report is ``tests/report/_fleet.py``'s made-up fleet (three data centers, one
2.5x slower, two packages, 2% retried, 3.5% failed or cancelled, the budget per
window); the browser is the distribution's headless Chromium over the DevTools
pipe (``tests/browser/_chromium.py``). "Open" is the page's own navigation timing
up to its load event (parsing, styles, the filter script) and to its first
contentful paint, read in the page; the median of ``--repeat`` fresh tabs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from orchestrator.report import render_html, write_report
from tests.browser._chromium import chromium
from tests.report._fleet import fleet_report

_TIMING = (
    "(() => { const n = performance.getEntriesByType('navigation')[0];"
    " const p = performance.getEntriesByName('first-contentful-paint')[0];"
    " return [n.domContentLoadedEventEnd, n.loadEventEnd, p ? p.startTime : null]; })()"
)
_FILTER = (
    "(() => { const box = document.getElementById('filter'); const t = performance.now();"
    " box.value = 'vm-0999'; box.dispatchEvent(new Event('input'));"
    " return performance.now() - t; })()"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--n", type=int, default=10_000, metavar="N", help="VMs (10000)")
    parser.add_argument("--repeat", type=int, default=5, help="tabs opened (5)")
    parser.add_argument(
        "--failed", type=float, default=0.03, metavar="SHARE", help="VMs that failed (0.03)"
    )
    args = parser.parse_args()
    report = fleet_report(args.n, failed=args.failed)
    started = time.perf_counter()
    page = render_html(report)
    rendered = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "run.html").write_text(page, encoding="utf-8")
        write_report(report, where / "report.json")
        json_size = (where / "report.json").stat().st_size
        loads, paints, filters = [], [], []
        with chromium(where / "profile") as browser:
            for _ in range(args.repeat):
                tab = browser.open((where / "run.html").as_uri())
                _, load, paint = tab.evaluate(_TIMING)
                loads.append(load)
                if paint is not None:
                    paints.append(paint)
                filters.append(tab.evaluate(_FILTER))
    failed = sum(1 for vm in report.vms if vm.is_failure)
    print(f"VMs: {args.n:,} ({failed:,} failed or cancelled, each a row)")
    print(f"HTML: {len(page.encode()):,} bytes (report.json {json_size:,} bytes)")
    print(f"written in: {rendered:.2f} s (render_html)")
    print(f"Chromium, load event: {statistics.median(loads):.0f} ms (median of {len(loads)})")
    if paints:
        print(f"Chromium, first contentful paint: {statistics.median(paints):.0f} ms")
    print(f"filter, one keystroke over every failed row: {statistics.median(filters):.1f} ms")


if __name__ == "__main__":
    main()
