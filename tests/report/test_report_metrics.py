"""Prometheus text format for node-exporter's textfile collector."""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from typing import Any, get_args

import pytest

from orchestrator.errors import Category
from orchestrator.report import Report, write_metrics
from orchestrator.report._metrics import metrics_text

from ._helpers import report_of, vm

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"^# HELP ({_NAME}) (.*)$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? "
    r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]Inf)$"
)
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Parse exposition text strictly; every line must be HELP, TYPE or a sample."""
    assert text.endswith("\n")
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    helped: set[str] = set()
    typed: set[str] = set()
    for line in text.splitlines():
        if m := _HELP.match(line):
            assert m.group(1) not in helped, f"second HELP for {m.group(1)}"
            helped.add(m.group(1))
        elif m := _TYPE.match(line):
            assert m.group(1) not in typed, f"second TYPE for {m.group(1)}"
            typed.add(m.group(1))
        elif m := _SAMPLE.match(line):
            name, labels, value = m.groups()
            assert name in helped, f"{name}: sample before HELP"
            assert name in typed, f"{name}: sample before TYPE"
            pairs = tuple((k, _unescape(v)) for k, v in _LABEL_PAIR.findall(labels or ""))
            series = families.setdefault(name, {})
            assert pairs not in series, f"duplicate series {name}{pairs}"
            series[pairs] = float(value.replace("Inf", "inf"))
        else:
            raise AssertionError(f"not a valid exposition line: {line!r}")
    return families


def test_written_file_is_atomic_and_owner_only(tmp_path: Path, report: Report) -> None:
    """write_metrics writes owner-only by default, no temp file left; mode can be relaxed."""
    path = tmp_path / "orchestrator.prom"
    write_metrics(report, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["orchestrator.prom"]
    parse(path.read_text("utf-8"))
    write_metrics(report, path, mode=0o644)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_every_line_is_valid_and_values_match_the_report(report: Report) -> None:
    """Each metric has HELP and TYPE, and its samples say what the report says."""
    families = parse(metrics_text(report))
    assert families["orchestrator_vms"] == {
        (("outcome", "succeeded"),): 1,
        (("outcome", "failed"),): 1,
        (("outcome", "skipped"),): 1,
        (("outcome", "cancelled"),): 1,
    }
    assert families["orchestrator_run_duration_seconds"] == {(): 72}
    assert families["orchestrator_requests_total"] == {(): 17}
    assert families["orchestrator_requests_rate_limited_total"] == {(): 2}
    assert families["orchestrator_last_run_timestamp_seconds"] == {
        (): report.finished_at.timestamp()
    }
    assert families["orchestrator_run_interrupted"] == {(): 0}
    assert families["orchestrator_run_info"] == {
        (("run_id", "run-0001"), ("spec_sha256", report.spec.sha256)): 1
    }


def test_every_category_has_a_sample_zeros_included(report: Report) -> None:
    """orchestrator_vm_failures has one series per category of the closed list."""
    failures = parse(metrics_text(report))["orchestrator_vm_failures"]
    assert {labels[0][1] for labels in failures} == set(get_args(Category))
    assert failures[(("category", "not_found"),)] == 1
    assert failures[(("category", "cancelled"),)] == 1
    assert failures[(("category", "quota"),)] == 0


def test_types_are_declared(report: Report) -> None:
    """Request totals are counters; the rest are gauges."""
    types = dict(re.findall(rf"^# TYPE ({_NAME}) (\w+)$", metrics_text(report), re.M))
    assert types.pop("orchestrator_requests_total") == "counter"
    assert types.pop("orchestrator_requests_rate_limited_total") == "counter"
    assert set(types.values()) == {"gauge"}


def test_label_values_are_escaped() -> None:
    """Backslashes, quotes and newlines in label values are escaped and parse back."""
    run_id = 'run "1"\\two\nthree'
    report = report_of([vm("a")], run_id=run_id, interrupted=True)
    families = parse(metrics_text(report))
    info = families["orchestrator_run_info"]
    assert next(iter(info))[0] == ("run_id", run_id)
    assert families["orchestrator_run_interrupted"] == {(): 1}


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(0.5, 0.5), (1e-7, 1e-7), (12.25, 12.25)],
)
def test_fractional_values_parse(duration: float, expected: Any) -> None:
    """Non-integral values are written so that they parse back exactly."""
    report = report_of([vm("a", duration_seconds=duration)])
    text = metrics_text(report)
    parse(text)
    assert math.isclose(parse(text)["orchestrator_run_duration_seconds"][()], 72)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (3.0, "3"),
        (0.1, "0.1"),
        (1e300, "1e+300"),
    ],
)
def test_number_formatting(value: Any, text: str) -> None:
    """Special and large floats use the exposition format's spellings."""
    from orchestrator.report._metrics import _number

    assert _number(value) == text
