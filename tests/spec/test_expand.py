"""Hostname templates and the RFC 1123 check, with properties over generated input."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.spec import MAX_HOSTNAME_LENGTH, hostname_problem
from orchestrator.spec._expand import HostnameTemplate, TemplateError, parse_template

from ._helpers import parse

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DEFAULTS = {"organization": "acme", "data_center": "uk-lon-01", "package": "rock-1"}


def _spec(*entries: dict[str, object]) -> str:
    return json.dumps({"defaults": _DEFAULTS, "vms": list(entries)})


@settings(deadline=None)
@given(
    prefix=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    width=st.integers(0, 6),
    suffix=st.from_regex(r"(-[a-z0-9]{1,5})?", fullmatch=True),
    count=st.integers(1, 60),
    start=st.integers(0, 1000),
)
def test_any_valid_template_gives_count_distinct_valid_hostnames(
    prefix: str, width: int, suffix: str, count: int, start: int
) -> None:
    """A valid template and count give exactly count distinct hostnames, in index order."""
    template = f"{prefix}{{index:0{width}d}}{suffix}" if width else f"{prefix}{{index}}{suffix}"
    spec = parse(_spec({"hostname": template, "count": count, "start": start}), "json")
    expected = [f"{prefix}{index:0{width}d}{suffix}" for index in range(start, start + count)]
    assert [vm.hostname for vm in spec.vms] == expected
    assert len(spec.by_key()) == count
    assert all(hostname_problem(vm.key) is None for vm in spec.vms)


@given(st.text())
def test_hostname_problem_answers_for_any_string(text: str) -> None:
    """Any string either is a valid label or gets a reason; the check never raises."""
    problem = hostname_problem(text)
    valid = len(text) <= MAX_HOSTNAME_LENGTH and _LABEL.fullmatch(text) is not None
    assert (problem is None) == valid
    assert problem is None or isinstance(problem, str)


@given(st.text(), st.integers(0, 10**9))
def test_parse_template_parses_or_explains(text: str, index: int) -> None:
    """Any text parses to a template or a TemplateError; rendering raises only value errors."""
    try:
        template = parse_template(text)
    except TemplateError as exc:
        error: TemplateError | None = exc
    else:
        error = None
    if error is not None:
        assert str(error).startswith("hostname template ")
        return
    assert isinstance(template, HostnameTemplate)
    try:
        rendered = template.render(index)
    except (ValueError, OverflowError):
        return
    assert isinstance(rendered, str)
    if not template.has_index:
        assert rendered == text.format()  # only {{ and }} escapes to undo


@settings(deadline=None)
@given(
    hostname=st.text(max_size=80),
    count=st.integers(1, 5),
    start=st.integers(0, 10**9),
)
def test_any_hostname_gives_vms_or_issues(hostname: str, count: int, start: int) -> None:
    """Any hostname text with any count yields valid unique VMs or a SpecError, nothing else."""
    text = _spec({"hostname": hostname, "count": count, "start": start})
    try:
        spec = parse(text, "json")
    except SpecError as exc:
        error: SpecError | None = exc
    else:
        error = None
    if error is not None:
        assert error.issues
        assert all(issue.entry == 0 for issue in error.issues)
        return
    assert len(spec.vms) == count
    assert len(spec.by_key()) == count
    assert all(hostname_problem(vm.key) is None for vm in spec.vms)


def test_plain_hostname_is_its_own_template() -> None:
    """A hostname without braces renders as itself for every index."""
    template = parse_template("db-01")
    assert not template.has_index
    assert template.render(7) == "db-01"


def test_several_index_fields_are_allowed() -> None:
    """{index} may appear more than once, each with its own format spec."""
    template = parse_template("r{index}-n{index:03d}")
    assert template.render(4) == "r4-n004"
