"""The JSON Schema shipped in the package agrees with the model and the contract."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import BaseModel

import orchestrator.report
from orchestrator.errors import Category, ReportError
from orchestrator.report import (
    ApiInfo,
    ApiReading,
    BudgetUse,
    BudgetWindow,
    ErrorInfo,
    Outcome,
    Report,
    RequestCounts,
    SpecChange,
    SpecInfo,
    Summary,
    VmRef,
    VmResult,
    load_report,
    report_json_schema,
    write_report,
)
from orchestrator.report._atomic import temp_pattern
from orchestrator.report._json import report_to_json
from orchestrator.report._validate import validate_report_file

from ._helpers import report_of, sample_report, vm
from ._strategies import reports

SCHEMA_FILE = Path(orchestrator.report.__file__).parent / "report.schema.json"
VALIDATOR = Draft202012Validator(report_json_schema(), format_checker=FormatChecker())


def _errors(data: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


def test_schema_ships_inside_the_package() -> None:
    """report_json_schema() returns the file that sits in the package directory."""
    assert json.loads(SCHEMA_FILE.read_text("utf-8")) == report_json_schema()


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The shipped schema is itself valid JSON Schema."""
    Draft202012Validator.check_schema(report_json_schema())


def test_schema_copy_is_fresh() -> None:
    """Mutating the returned schema does not change the next one."""
    schema = report_json_schema()
    schema["properties"].clear()
    assert report_json_schema()["properties"]


def test_schema_enums_are_the_closed_lists() -> None:
    """Outcome and category enums are exactly the model's Literal types."""
    defs = report_json_schema()["$defs"]
    assert tuple(defs["category"]["enum"]) == get_args(Category)
    assert tuple(defs["outcome"]["enum"]) == get_args(Outcome)
    reading = defs["reading"]["properties"]
    assert tuple(reading["name"]["enum"]) == get_args(ApiReading.model_fields["name"].annotation)
    assert tuple(reading["value"]["enum"]) == get_args(ApiReading.model_fields["value"].annotation)


@pytest.mark.parametrize(
    ("model", "pointer"),
    [
        (Report, ()),
        (VmResult, ("$defs", "vm")),
        (Summary, ("$defs", "summary")),
        (RequestCounts, ("$defs", "summary", "properties", "requests")),
        (ErrorInfo, ("$defs", "error")),
        (VmRef, ("$defs", "virtual_machine")),
        (SpecInfo, ("properties", "spec")),
        (ApiInfo, ("properties", "api")),
        (SpecChange, ("$defs", "spec_change")),
        (BudgetUse, ("$defs", "budget")),
        (BudgetWindow, ("$defs", "budget_window")),
        (ApiReading, ("$defs", "reading")),
    ],
)
def test_schema_properties_match_model_fields(
    model: type[BaseModel], pointer: tuple[str, ...]
) -> None:
    """Every model field is a schema property and vice versa, so neither drifts."""
    node = report_json_schema()
    for part in pointer:
        node = node[part]
    assert set(node["properties"]) == set(model.model_fields)
    assert node["additionalProperties"] is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reports())
def test_every_model_report_validates_against_the_schema(report: Report) -> None:
    """Any report the model accepts is written as JSON the shipped schema accepts."""
    text = report_to_json(report)
    assert _errors(json.loads(text)) == []
    assert Report.model_validate_json(text) == report


def test_sample_report_validates(report: Report) -> None:
    """The hand-made sample report validates (sanity check of the fixture)."""
    assert _errors(json.loads(report_to_json(report))) == []


def _base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report_to_json(sample_report()))
    return data


def _delete(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing run_id": _delete("run_id"),
    "missing vms": _delete("vms"),
    "missing summary.requests": _delete("summary", "requests"),
    "missing vm category key": _delete("vms", 0, "category"),
    "missing vm error key": _delete("vms", 0, "error"),
    "bad category": _set("kaput", "vms", 1, "category"),
    "bad category key in summary": _set({"kaput": 1}, "summary", "by_category"),
    "bad outcome": _set("done", "vms", 0, "outcome"),
    "failed with null category": _set(None, "vms", 1, "category"),
    "skipped without reason": _delete("vms", 2, "reason"),
    "skipped with null reason": _set(None, "vms", 2, "reason"),
    "schema_version 3": _set(3, "schema_version"),
    "budget window without requests": _set(
        {"window_seconds": 60, "windows": [{"started_at": "2025-03-01T12:00:00Z"}]}, "budget"
    ),
    "budget with a zero window": _set({"window_seconds": 0, "windows": []}, "budget"),
    "first_seen_at not a datetime": _set("soon", "vms", 0, "first_seen_at"),
    "unknown top-level key": _set("x", "token"),
    "unknown vm key": _set("x", "vms", 0, "password"),
    "negative attempts": _set(-1, "vms", 0, "attempts"),
    "attempts as string": _set("1", "vms", 0, "attempts"),
    "negative count": _set(-1, "summary", "total"),
    "datetime without zone": _set("2025-03-01T12:00:00", "started_at"),
    "datetime not UTC": _set("2025-03-01T12:00:00+01:00", "finished_at"),
    "not a datetime": _set("yesterday", "vms", 0, "submitted_at"),
    "http status out of range": _set(99, "vms", 1, "error", "http_status"),
    "virtual_machine without id": _delete("vms", 0, "virtual_machine", "id"),
    "null organization key missing": _delete("api", "organization"),
    "empty key": _set("", "vms", 0, "key"),
}


@pytest.mark.parametrize("mutate", BROKEN.values(), ids=BROKEN.keys())
def test_schema_rejects_broken_reports(mutate: Callable[[dict[str, Any]], None]) -> None:
    """A report missing a required key, or with a wrong enum, type or extra key, is refused."""
    data = _base()
    mutate(data)
    assert _errors(data) != []


def test_schema_allows_anything_in_error_detail() -> None:
    """error.detail is the API's own JSON: any value goes."""
    data = _base()
    data["vms"][1]["error"]["detail"] = {"anything": [1, {"nested": None}], "x-extra": True}
    assert _errors(data) == []


def test_schema_accepts_optional_extras_absent() -> None:
    """reason, stopped_because and interrupted are optional except where the contract says."""
    data = _base()
    del data["interrupted"]
    del data["vms"][0]["reason"]
    del data["vms"][0]["stopped_because"]
    assert _errors(data) == []


# --------------------------------------------------------- validate_report_file


def test_validate_report_file_accepts_a_written_report(tmp_path: Path, report: Report) -> None:
    """A report written by write_report passes, and comes back as a Report."""
    path = tmp_path / "report.json"
    write_report(report, path)
    assert validate_report_file(path, forbidden=["canary-token-1234"]) == report


def test_validate_report_file_finds_a_forbidden_string(tmp_path: Path) -> None:
    """A canary found in the file fails the check without showing the canary."""
    canary = "canary-token-1234"
    path = tmp_path / "report.json"
    write_report(report_of([vm("a", "failed", error=ErrorInfo(description=canary))]), path)
    with pytest.raises(AssertionError, match="forbidden string #0") as info:
        validate_report_file(path, forbidden=[canary])
    assert canary not in str(info.value)


def test_validate_report_file_reports_schema_errors(tmp_path: Path, report: Report) -> None:
    """A file the schema refuses fails with the path of each problem."""
    data = json.loads(report_to_json(report))
    data["vms"][1]["category"] = "kaput"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    with pytest.raises(AssertionError, match="vms/1/category"):
        validate_report_file(path)


def test_validate_report_file_reports_inconsistency(tmp_path: Path, report: Report) -> None:
    """A summary that disagrees with the VMs fails the check."""
    path = tmp_path / "report.json"
    write_report(report.model_copy(update={"vms": report.vms[:2]}), path)
    with pytest.raises(AssertionError, match=r"summary\.total"):
        validate_report_file(path)


def test_validate_report_file_checks_mode(tmp_path: Path, report: Report) -> None:
    """A world-readable report fails the check (unless told not to look)."""
    path = tmp_path / "report.json"
    write_report(report, path)
    path.chmod(0o644)
    with pytest.raises(AssertionError, match="mode is 0o644"):
        validate_report_file(path)
    validate_report_file(path, check_mode=False)


def test_validate_report_file_finds_leftover_temp_files(tmp_path: Path, report: Report) -> None:
    """A temp file of an interrupted atomic write next to the report fails the check."""
    path = tmp_path / "report.json"
    write_report(report, path)
    leftover = tmp_path / temp_pattern(path).replace("*", "abc123")
    leftover.write_text("{")
    with pytest.raises(AssertionError, match="temp files left behind"):
        validate_report_file(path)


def test_validate_report_file_propagates_load_errors(tmp_path: Path) -> None:
    """A file that passes the schema but not the loader (duplicate keys) raises ReportError."""
    data = _base()
    data["vms"][1]["key"] = "web-01"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match="duplicate keys"):
        validate_report_file(path)


def test_load_report_agrees_with_schema_on_required_keys(tmp_path: Path) -> None:
    """A report missing a top-level key is refused by the loader as well."""
    data = _base()
    del data["run_id"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(copy.deepcopy(data)))
    with pytest.raises(ReportError, match="run_id: Field required"):
        load_report(path)
