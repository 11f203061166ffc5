"""The public API of orchestrator.report is curated and complete."""

from __future__ import annotations
import __future__

import types

import orchestrator.report


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1, name) if name[0].isupper() else (2, name)


def test_all_is_sorted_and_unique() -> None:
    """__all__ is sorted (constants, classes, functions) and has no duplicates."""
    names = orchestrator.report.__all__
    assert names == sorted(names, key=_isort_key)
    assert len(set(names)) == len(names)


def test_all_is_complete() -> None:
    """Every public name of the package is in __all__, and every name there exists."""
    public = {
        name
        for name, value in vars(orchestrator.report).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert public == set(orchestrator.report.__all__)
    for name in orchestrator.report.__all__:
        assert hasattr(orchestrator.report, name)


def test_brief_api_is_exported() -> None:
    """The functions other parts of the project code against are all there."""
    for name in (
        "write_report",
        "load_report",
        "report_json_schema",
        "write_junit",
        "write_metrics",
        "render_summary",
        "ReportDiff",
        "diff_reports",
        "render_diff",
        "failed_keys",
        "Report",
        "VmResult",
    ):
        assert name in orchestrator.report.__all__
