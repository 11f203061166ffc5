"""Smoke test of the benchmark harness: ``python -m benchmarks --quick`` end to end.

Only correctness is asserted (no duplicate, every VM accounted, the table and
the Markdown report produced); timing figures are never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_cluster import find_binaries

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {
    "rate-bound",
    "rate-bound-real",
    "baseline",
    "overhead",
    "faults",
    "faults-pessimistic",
    "shared-org",
    "destroy",
    "state-backends",
    "shared-budget",
}


@pytest.mark.timeout(180)
def test_quick_mode_runs_every_scenario_exactly_once(tmp_path: Path) -> None:
    """The quick benchmark runs every scenario with no duplicate and no lost VM, and reports."""
    figures, doc = tmp_path / "figures.json", tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--json",
            str(figures),
            "--output",
            str(doc),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(figures.read_text(encoding="utf-8"))
    assert {r["name"] for r in results} == SCENARIOS
    without_postgres = find_binaries() is None  # state-backends then measures nothing
    for result in results:
        assert result["correct"], result["checks"]
        if result["name"] == "state-backends" and without_postgres:
            continue
        assert result["checks"], result["name"]
        assert result["rows"], result["name"]
    by_name = {r["name"]: r["data"] for r in results}
    for name in ("rate-bound", "faults", "faults-pessimistic"):
        data = by_name[name]
        assert data["duplicates"] == 0
        assert data["lost"] == 0
        assert data["rows"] == data["n"]
        assert data["repeated_rows"] == 0
    # beside a neighbour on the same token (steady and bursty): still every VM once
    budget_runs = by_name["shared-budget"]["runs"]
    assert {run["bursty"] for run in budget_runs} == {False, True}
    for run in budget_runs:
        assert run["neighbour_sent"] > 0
    for run in [*by_name["rate-bound-real"]["runs"], *budget_runs]:
        assert run["duplicates"] == 0
        assert run["lost"] == 0
        assert run["rows"] == run["n"]
    assert "correctness: all" in done.stdout
    assert "wall / lower bound" in done.stdout
    text = doc.read_text(encoding="utf-8")
    assert "| scenario | metric | measured | target | result |" in text
    assert "## Targets" in text
