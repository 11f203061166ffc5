"""orchestrator.spec exports a curated, sorted public API."""

from __future__ import annotations

import orchestrator.spec


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted, and every name in it exists."""
    names = orchestrator.spec.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(orchestrator.spec, name), name


def test_public_functions_and_classes_are_exported() -> None:
    """Every public function or class defined in the package's __init__ is in __all__."""
    public = {
        name
        for name, value in vars(orchestrator.spec).items()
        if not name.startswith("_")
        and callable(value)
        and not isinstance(value, type(orchestrator))
    }
    assert public <= set(orchestrator.spec.__all__)
