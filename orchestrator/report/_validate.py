"""A check for test suites: is this file a report.json as the contract says?

Needs ``jsonschema`` (a test dependency), imported only when called.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from orchestrator.report._atomic import temp_pattern
from orchestrator.report._json import load_report, report_json_schema
from orchestrator.report._model import Report

__all__ = ["validate_report_file"]


def validate_report_file(
    path: str | os.PathLike[str],
    *,
    forbidden: Iterable[str] = (),
    check_mode: bool = True,
) -> Report:
    """Assert that ``path`` holds a valid report and return it.

    Checks, in order: none of the ``forbidden`` strings (an API token canary)
    occurs in the file; the JSON validates against the shipped JSON Schema;
    :func:`~orchestrator.report.load_report` accepts it; the summary agrees
    with the VMs and keys are unique; the file is owner-only (0o600, POSIX
    only, unless ``check_mode`` is false); no temp file of an atomic write is
    left next to it. Raises :class:`AssertionError` (or
    :class:`~orchestrator.errors.ReportError` from the loader) on the first
    failed check.
    """
    from jsonschema import Draft202012Validator, FormatChecker

    file = Path(path)
    text = file.read_text("utf-8")
    for index, secret in enumerate(forbidden):
        # never show the secret itself in the assertion message
        assert secret not in text, f"{file}: contains forbidden string #{index}"

    validator = Draft202012Validator(report_json_schema(), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(json.loads(text)), key=lambda e: list(e.absolute_path))
    assert not errors, f"{file}: does not match report.schema.json:\n" + "\n".join(
        f"  - {'/'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
        for error in errors[:20]
    )

    report = load_report(file)
    problems = report.inconsistencies()
    assert not problems, f"{file}: inconsistent:\n" + "\n".join(f"  - {p}" for p in problems)

    if check_mode and os.name == "posix":
        mode = stat.S_IMODE(file.stat().st_mode)
        assert mode == 0o600, f"{file}: mode is {mode:#o}, expected 0o600"

    leftovers = sorted(p.name for p in file.parent.glob(temp_pattern(file)))
    assert not leftovers, f"{file}: temp files left behind: {', '.join(leftovers)}"
    return report
