"""JUnit XML: one well-formed test case per VM, outcomes mapped for CI systems."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from orchestrator.report import ErrorInfo, Report, write_junit
from orchestrator.report._junit import headline, junit_xml

from ._helpers import report_of, vm


def _parse(report: Report) -> ET.Element:
    return ET.fromstring(junit_xml(report))  # noqa: S314 - our own output, parsed to check it


def _case(root: ET.Element, hostname: str) -> ET.Element:
    cases = [c for c in root.iter("testcase") if c.get("name") == hostname]
    assert len(cases) == 1
    return cases[0]


def test_written_file_parses_and_is_owner_only(tmp_path: Path, report: Report) -> None:
    """write_junit writes a parseable file, mode 0o600, and leaves no temp file."""
    path = tmp_path / "junit.xml"
    write_junit(report, path)
    root = ET.parse(path).getroot()  # noqa: S314 - our own output, parsed to check it
    assert root.tag == "testsuites"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_one_suite_with_one_case_per_vm(report: Report) -> None:
    """One testsuite named orchestrator holds one testcase per VM, with the counts."""
    root = _parse(report)
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "orchestrator"
    assert [c.get("name") for c in suite.iter("testcase")] == [v.hostname for v in report.vms]
    assert {c.get("classname") for c in suite.iter("testcase")} == {"orchestrator.acme"}
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == (
        "4",
        "1",
        "1",
        "1",
    )
    assert suite.get("timestamp") == "2025-03-01T12:00:00"
    assert suite.get("time") == "72.000"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == "run-0001"
    assert props["organization"] == "acme"


def test_succeeded_vm_passes(report: Report) -> None:
    """A succeeded VM is a passing case with its duration and the VM it built."""
    case = _case(_parse(report), "web-01")
    assert case.get("time") == "38.200"
    assert [child.tag for child in case] == ["system-out"]
    assert "virtual machine: vm_aaaaaaaaaaaaaaaa" in (case.findtext("system-out") or "")


def test_failed_vm_is_a_failure_with_details(report: Report) -> None:
    """A failed VM has a <failure> whose message is 'category: code - description'."""
    failure = _case(_parse(report), "web-02").find("failure")
    assert failure is not None
    assert failure.get("type") == "not_found"
    assert failure.get("message") == (
        "not_found: package_not_found - No package was found matching any of the criteria provided"
    )
    body = failure.text or ""
    for expected in (
        "attempts: 2",
        "task id: task_bbbbbbbbbbbbbbbb",
        "build id: vmbuild_bbbbbbbbbbbbbbbb",
        "http status: 404",
        '"permalink": "rock-99"',
    ):
        assert expected in body


def test_cancelled_vm_is_an_error(report: Report) -> None:
    """A cancelled VM has an <error type="cancelled"> saying what stopped it."""
    error = _case(_parse(report), "web-04").find("error")
    assert error is not None
    assert error.get("type") == "cancelled"
    assert error.get("message") == "cancelled: interrupted"


def test_skipped_vm_is_skipped_with_its_reason(report: Report) -> None:
    """A VM that already existed is <skipped message="already_exists"/>."""
    skipped = _case(_parse(report), "web-03").find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "already_exists"


def test_classname_falls_back_on_spec_stem() -> None:
    """Without an organization, the classname is orchestrator.<spec file stem>."""
    root = _parse(report_of([vm("a")], organization=None))
    assert _case(root, "a").get("classname") == "orchestrator.example"


HOSTILE = "a<b>&c\"d'e]]>\x00\x1b[31m\x7f ünï ✓"


def test_everything_is_escaped() -> None:
    """Markup, quotes, CDATA ends, control characters and lone surrogates stay well-formed."""
    detail = {HOSTILE: [HOSTILE, "\ud800"]}  # the model refuses lone surrogates elsewhere
    error = ErrorInfo(code=HOSTILE, description=HOSTILE, detail=detail)
    bad = vm(HOSTILE, "failed", error=error, reason=HOSTILE, task_id=HOSTILE)
    skipped = vm("s", "skipped", reason=HOSTILE)
    root = _parse(report_of([bad, skipped], run_id=HOSTILE, organization=HOSTILE))
    case = next(root.iter("testcase"))
    assert case.get("name") == "a<b>&c\"d'e]]>\\x00\\x1b[31m\x7f ünï ✓"
    failure = case.find("failure")
    assert failure is not None
    assert "a<b>&c\"d'e]]>" in (failure.get("message") or "")
    assert "\\x1b[31m" in (failure.text or "")
    skip = root.find(".//testcase[@name='s']/skipped")
    assert skip is not None
    assert (skip.get("message") or "").startswith("a<b>&c")


def test_multiline_text_survives_in_attributes() -> None:
    """Newlines in a description are kept (as character references) in the message."""
    root = _parse(report_of([vm("a", "failed", error=ErrorInfo(description="line 1\nline 2"))]))
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.get("message") == "not_found: line 1\nline 2"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"error": ErrorInfo(code="c", description="d")}, "not_found: c - d"),
        ({"error": ErrorInfo(code="c")}, "not_found: c"),
        ({"error": ErrorInfo(description="d")}, "not_found: d"),
        ({"error": None, "reason": "hostname_taken"}, "not_found: hostname_taken"),
        ({"error": None}, "not_found"),
        ({"error": ErrorInfo(code="not_found", description="d")}, "not_found: d"),
    ],
)
def test_headline_drops_absent_parts(fields: dict[str, Any], expected: Any) -> None:
    """The failure message leaves out the parts the VM does not have (or repeats)."""
    assert headline(vm("a", "failed", **fields)) == expected
