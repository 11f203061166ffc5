"""Prometheus text format for node-exporter's textfile collector, read back by prometheus_client."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import get_args

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import Category
from orchestrator.report import Report, write_metrics
from orchestrator.report._metrics import metrics_text

from ._helpers import report_of, vm

Families = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str, fleet: str = "default") -> tuple[Families, dict[str, str]]:
    """(samples by family and labels, type by family), parsed by prometheus_client; every
    sample's ``fleet`` label is checked to be ``fleet``, and left out of the labels."""
    families: Families = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        series = families.setdefault(family.name, {})
        for sample in family.samples:
            assert sample.name == family.name, f"unexpected sample {sample.name}"
            assert sample.labels.pop("fleet") == fleet
            labels = tuple(sorted(sample.labels.items()))
            assert labels not in series, f"duplicate series {family.name}{labels}"
            series[labels] = sample.value
    return families, types


def test_written_file_is_atomic_and_readable_by_a_collector(tmp_path: Path, report: Report) -> None:
    """write_metrics writes 0o644 by default (no secret in it), no temp file left; mode is
    an option."""
    path = tmp_path / "orchestrator.prom"
    write_metrics(report, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["orchestrator.prom"]
    parse(path.read_text("utf-8"))
    write_metrics(report, path, mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_every_line_is_valid_and_values_match_the_report(report: Report) -> None:
    """Each metric has HELP and TYPE, and its samples say what the report says."""
    families, _ = parse(metrics_text(report))
    assert families["orchestrator_last_run_vms"] == {
        (("outcome", "succeeded"),): 1,
        (("outcome", "failed"),): 1,
        (("outcome", "skipped"),): 1,
        (("outcome", "cancelled"),): 1,
    }
    assert families["orchestrator_last_run_duration_seconds"] == {(): 72}
    assert families["orchestrator_last_run_requests"] == {(): 17}
    assert families["orchestrator_last_run_rate_limited_requests"] == {(): 2}
    assert families["orchestrator_last_run_timestamp_seconds"] == {
        (): report.finished_at.timestamp()
    }
    assert families["orchestrator_last_run_interrupted"] == {(): 0}
    assert families["orchestrator_last_run_info"] == {
        (("run_id", "run-0001"), ("spec_sha256", report.spec.sha256)): 1
    }


def test_every_category_has_a_sample_zeros_included(report: Report) -> None:
    """orchestrator_last_run_vm_failures has one series per category of the closed list."""
    failures = parse(metrics_text(report))[0]["orchestrator_last_run_vm_failures"]
    assert {labels[0][1] for labels in failures} == set(get_args(Category))
    assert failures[(("category", "not_found"),)] == 1
    assert failures[(("category", "cancelled"),)] == 1
    assert failures[(("category", "quota"),)] == 0


def test_per_run_figures_are_gauges_named_for_the_last_run(report: Report) -> None:
    """Nothing restarts from zero under a counter's name: every family is a gauge of the
    last run, none ends in _total."""
    families, types = parse(metrics_text(report, exit_code=0))
    assert set(types.values()) == {"gauge"}
    assert all(
        name.startswith("orchestrator_last_run_")
        or name == "orchestrator_last_success_timestamp_seconds"
        for name in families
    )
    assert not [name for name in families if name.endswith("_total")]


def test_label_values_are_escaped() -> None:
    """Backslashes, quotes and newlines in label values are escaped and parse back."""
    run_id = 'run "1"\\two\nthree'
    report = report_of([vm("a")], run_id=run_id, interrupted=True)
    families, _ = parse(metrics_text(report))
    info = families["orchestrator_last_run_info"]
    assert dict(next(iter(info)))["run_id"] == run_id
    assert families["orchestrator_last_run_interrupted"] == {(): 1}


@pytest.mark.parametrize("duration", [0.5, 1e-7, 12.25])
def test_fractional_values_parse(duration: float) -> None:
    """Non-integral values parse back."""
    report = report_of([vm("a", duration_seconds=duration)])
    families, _ = parse(metrics_text(report))
    assert families["orchestrator_last_run_duration_seconds"][()] == report.duration_seconds


def test_every_sample_names_its_fleet_and_the_verdict(report: Report) -> None:
    """The fleet labels every sample (two fleets can share a textfile directory); the
    verdict says whether the run succeeded, its exit code, and when it last succeeded."""
    families, _ = parse(metrics_text(report, fleet='we"b', exit_code=1), fleet='we"b')
    assert families["orchestrator_last_run_success"] == {(): 0}
    assert families["orchestrator_last_run_exit_code"] == {(): 1}
    assert "orchestrator_last_success_timestamp_seconds" not in families
    families, _ = parse(metrics_text(report, exit_code=0))
    assert families["orchestrator_last_run_success"] == {(): 1}
    assert families["orchestrator_last_success_timestamp_seconds"] == {
        (): report.finished_at.timestamp()
    }


def test_a_failed_run_carries_the_last_success_over(tmp_path: Path, report: Report) -> None:
    """The file of a run that failed still says when the fleet last succeeded."""
    from orchestrator.report._metrics import write_failure_metrics

    path = tmp_path / "fleet.prom"
    write_metrics(report, path, fleet="fleet", exit_code=0)
    write_failure_metrics(path, "fleet", exit_code=2)
    families, _ = parse(path.read_text("utf-8"), fleet="fleet")
    assert families["orchestrator_last_run_success"] == {(): 0}
    assert families["orchestrator_last_run_exit_code"] == {(): 2}
    assert families["orchestrator_last_success_timestamp_seconds"] == {
        (): report.finished_at.timestamp()
    }
