"""The curated public API: ``orchestrator.__all__`` is complete, sorted and importable."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version

import pytest

import orchestrator

#: Names in the package namespace that are tooling, not API.
_NOT_API = {"TYPE_CHECKING", "annotations"}


def _public_names() -> set[str]:
    return {
        name
        for name in vars(orchestrator)
        if not name.startswith("_")
        and name not in _NOT_API
        and not inspect.ismodule(getattr(orchestrator, name))
    }


def test_all_is_sorted() -> None:
    """``__all__`` is sorted (plain string order) and has no duplicates."""
    assert orchestrator.__all__ == sorted(set(orchestrator.__all__))


def test_all_is_complete() -> None:
    """Every public name of the package namespace is listed in ``__all__``."""
    assert _public_names() <= set(orchestrator.__all__)


@pytest.mark.parametrize("name", orchestrator.__all__)
def test_every_listed_name_is_importable(name: str) -> None:
    """Every name of ``__all__`` resolves on the package."""
    assert getattr(orchestrator, name) is not None


def test_nothing_private_is_listed() -> None:
    """``__all__`` lists no ``_private`` name (``__version__`` is the one dunder)."""
    assert [name for name in orchestrator.__all__ if name.startswith("_")] == ["__version__"]


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in orchestrator.__all__
        if inspect.isclass(getattr(orchestrator, name))
        or inspect.isfunction(getattr(orchestrator, name))
    ],
)
def test_public_objects_are_documented_and_ours(name: str) -> None:
    """Every exported class and function has a docstring and comes from the package."""
    obj = getattr(orchestrator, name)
    assert obj.__module__.startswith("orchestrator.")
    assert inspect.getdoc(obj)


def test_version_comes_from_the_installed_metadata() -> None:
    """``__version__`` is the installed distribution's version."""
    assert orchestrator.__version__ == version("katapult-orchestrator")


def test_unknown_attribute_raises_attribute_error() -> None:
    """A name the package does not have is an ``AttributeError`` naming it."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = orchestrator.no_such_name  # type: ignore[attr-defined]


def test_star_import_gives_exactly_all() -> None:
    """``from orchestrator import *`` binds exactly the names of ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from orchestrator import *", namespace)  # noqa: S102 - a fixed statement
    assert set(namespace) - {"__builtins__"} == set(orchestrator.__all__)


def test_errors_share_one_root() -> None:
    """Every exported exception derives from ``OrchestratorError`` (warnings are no errors)."""
    errors = [
        getattr(orchestrator, name)
        for name in orchestrator.__all__
        if inspect.isclass(getattr(orchestrator, name))
        and issubclass(getattr(orchestrator, name), BaseException)
        and not issubclass(getattr(orchestrator, name), Warning)
    ]
    assert errors
    assert all(issubclass(error, orchestrator.OrchestratorError) for error in errors)


def test_importing_the_package_leaves_the_simulator_out() -> None:
    """``import orchestrator`` leaves the simulator out (``orchestrator.simulator`` has it)."""
    code = "import sys, orchestrator; print('orchestrator.simulator' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
