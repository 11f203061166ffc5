"""Writing report.json atomically and owner-only, and reading it back."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from orchestrator.errors import ReportError
from orchestrator.report import ErrorInfo, Report, load_report, write_report
from orchestrator.report._atomic import atomic_write, temp_pattern
from orchestrator.report._json import report_json_chunks, report_to_json
from orchestrator.report._validate import validate_report_file

from ._helpers import report_of, vm
from ._strategies import reports


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """Set the umask to 0 for the test (as a careless shell might)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_round_trip(tmp_path: Path, report: Report) -> None:
    """A written report loads back equal."""
    path = tmp_path / "report.json"
    write_report(report, path)
    assert load_report(path) == report


def test_format_is_indented_json_with_utc_datetimes(tmp_path: Path, report: Report) -> None:
    """The file is JSON indented by 2, keys as in the contract, datetimes in UTC with Z."""
    path = tmp_path / "report.json"
    write_report(report, path)
    text = path.read_text("utf-8")
    assert text.startswith('{\n  "schema_version": 2,\n  "run_id": "run-0001",')
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["started_at"] == "2025-03-01T12:00:00Z"
    assert data["vms"][0]["finished_at"] == "2025-03-01T12:00:38.200000Z"
    assert data["vms"][1]["category"] == "not_found"
    assert data["vms"][0]["error"] is None


@pytest.mark.usefixtures("lax_umask")
def test_file_is_owner_only_even_with_lax_umask(tmp_path: Path, report: Report) -> None:
    """The report is created 0o600 whatever the umask."""
    path = tmp_path / "report.json"
    write_report(report, path)
    assert _mode(path) == 0o600


@pytest.mark.usefixtures("lax_umask")
def test_replacing_a_readable_file_makes_it_owner_only(tmp_path: Path, report: Report) -> None:
    """An older world-readable report is replaced by an owner-only one."""
    path = tmp_path / "report.json"
    path.write_text("old")
    path.chmod(0o644)
    write_report(report, path)
    assert _mode(path) == 0o600


def test_no_temp_file_is_left(tmp_path: Path, report: Report) -> None:
    """After a write the directory holds the report and nothing else."""
    write_report(report, tmp_path / "report.json")
    write_report(report, tmp_path / "report.json")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_old_file_intact(
    tmp_path: Path, report: Report, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """A write that fails (disk full, Ctrl-C) keeps the old file and removes its temp file."""
    path = tmp_path / "report.json"
    path.write_text("old report")

    def broken_fsync(fd: int) -> None:
        raise error

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(type(error)):
        write_report(report, path)
    assert path.read_text() == "old report"
    assert list(tmp_path.glob(temp_pattern(path))) == []
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_honours_mode(tmp_path: Path) -> None:
    """atomic_write gives the file exactly the mode asked for."""
    path = tmp_path / "metrics.prom"
    atomic_write(path, b"x 1\n", mode=0o644)
    assert _mode(path) == 0o644
    assert path.read_bytes() == b"x 1\n"


def test_atomic_write_to_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    """Writing into a directory that does not exist raises and creates nothing."""
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "nope" / "report.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_odd_error_detail_is_serialized_as_text(tmp_path: Path) -> None:
    """An error detail holding non-JSON values (a set, an object) is written as text."""
    weird = report_of([vm("a", "failed", error=ErrorInfo(detail={"ids": {2, 1}, "o": object}))])
    data = json.loads(report_to_json(weird))
    detail = data["vms"][0]["error"]["detail"]
    assert sorted(detail["ids"]) == [1, 2]
    assert detail["o"] == "<class 'object'>"


# ----------------------------------------------------------------- load errors


def _write_json(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "report.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_load_missing_file(tmp_path: Path) -> None:
    """A missing report is a ReportError naming the file."""
    path = tmp_path / "gone.json"
    with pytest.raises(ReportError, match=r"gone\.json: no such file"):
        load_report(path)


def test_load_directory(tmp_path: Path) -> None:
    """A directory given as report is a ReportError."""
    with pytest.raises(ReportError, match="is a directory"):
        load_report(tmp_path)


def test_load_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report we may not read is a ReportError saying why."""
    path = tmp_path / "report.json"
    path.write_text("{}")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(ReportError, match=r"cannot be read \(Permission denied\)"):
        load_report(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON \(line 1, column 2"),
        ("", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"run_id": "x"}', "no schema_version"),
        (
            '{"schema_version": 3}',
            r"schema_version 3 is not supported \(this orchestrator reads 1 and 2\)",
        ),
        ('{"schema_version": "1"}', "schema_version '1' is not supported"),
        ('{"schema_version": true}', "schema_version True is not supported"),
    ],
)
def test_load_rejects_what_is_not_a_report(tmp_path: Path, content: str, message: str) -> None:
    """Bad JSON, a non-object, or a foreign schema_version is a clear ReportError."""
    with pytest.raises(ReportError, match=message):
        load_report(_write_json(tmp_path, content))


def test_load_rejects_non_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are a ReportError."""
    path = tmp_path / "report.json"
    path.write_bytes(b"\xff\xfe\x00garbage\xff")
    with pytest.raises(ReportError, match="report"):
        load_report(path)


def test_load_names_the_bad_field_and_vm(tmp_path: Path, report: Report) -> None:
    """Invalid content names each bad field, with the VM's index and hostname."""
    data = json.loads(report_to_json(report))
    data["vms"][1]["outcome"] = "exploded"
    data["vms"][2]["attempts"] = -3
    del data["summary"]["total"]
    with pytest.raises(ReportError) as info:
        load_report(_write_json(tmp_path, data))
    text = str(info.value)
    assert "invalid content" in text
    assert "vms[1] (web-02).outcome: Input should be 'succeeded'" in text
    assert "vms[2] (web-03).attempts: Input should be greater than or equal to 0" in text
    assert "summary.total: Field required" in text


def test_load_names_outcome_rules(tmp_path: Path, report: Report) -> None:
    """A failed VM without category is refused with the model's own words."""
    data = json.loads(report_to_json(report))
    data["vms"][1]["category"] = None
    with pytest.raises(ReportError, match=r"vms\[1\] \(web-02\): a failed VM needs a category"):
        load_report(_write_json(tmp_path, data))


def test_load_caps_the_list_of_errors(tmp_path: Path, report: Report) -> None:
    """Many bad fields are listed up to a limit, then counted."""
    data = json.loads(report_to_json(report))
    data["vms"] = [{"key": i} for i in range(20)]
    with pytest.raises(ReportError, match=r"\.\.\. and \d+ more"):
        load_report(_write_json(tmp_path, data))


def test_load_error_location_without_hostname(tmp_path: Path, report: Report) -> None:
    """A bad VM entry that is not an object is located by index alone."""
    data = json.loads(report_to_json(report))
    data["vms"][0] = "web-01"
    with pytest.raises(ReportError, match=r"  - vms\[0\]: Input should be"):
        load_report(_write_json(tmp_path, data))


def test_load_rejects_duplicate_keys(tmp_path: Path, report: Report) -> None:
    """Two VMs with one key make the report unusable for diff and retry."""
    data = json.loads(report_to_json(report))
    data["vms"][1]["key"] = "web-01"
    with pytest.raises(ReportError, match="duplicate keys web-01"):
        load_report(_write_json(tmp_path, data))


@settings(max_examples=60, deadline=None)
@given(report=reports())
def test_written_a_vm_at_a_time_the_text_is_pydantics_whole_dump(report: Report) -> None:
    """The report is written in pieces (one per VM), and the pieces make exactly the text
    pydantic gives for the whole report: any VM rows, empty lists, odd error details."""
    whole = report.model_dump_json(indent=2, fallback=str) + "\n"
    assert "".join(report_json_chunks(report)) == whole
    assert report_to_json(report) == whole


def test_an_odd_error_detail_is_written_as_text_in_a_row(tmp_path: Path) -> None:
    """A value pydantic cannot serialize in a row's error detail is written as its text."""
    odd = vm("odd-1", "failed", category="server_error", error=ErrorInfo(detail={1j}))
    report = report_of([odd, vm("web-1")])
    path = tmp_path / "report.json"
    write_report(report, path)
    assert path.read_text("utf-8") == report.model_dump_json(indent=2, fallback=str) + "\n"
    assert json.loads(path.read_text("utf-8"))["vms"][0]["error"]["detail"] == ["1j"]


def test_a_schema_version_1_report_still_loads(tmp_path: Path, report: Report) -> None:
    """A report written before version 2 (no first_seen_at, package, location, budget) loads,
    keeps its version, and validates against the shipped schema."""
    data = json.loads(report_to_json(report))
    data["schema_version"] = 1
    del data["budget"]
    for row in data["vms"]:
        for key in ("first_seen_at", "package", "location"):
            del row[key]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)
    old = validate_report_file(path)
    assert old.schema_version == 1
    assert old.budget is None
    assert [vm.first_seen_at for vm in old.vms] == [None] * len(old.vms)
