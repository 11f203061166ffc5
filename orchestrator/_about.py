"""What this program is called where, and which API it speaks."""

from __future__ import annotations

from typing import Final

__all__ = ["API_TARGET", "DISTRIBUTION", "distribution_version"]

#: The name on the package index (``orchestrator`` there is another project);
#: the import package and the command stay ``orchestrator``.
DISTRIBUTION: Final = "katapult-orchestrator"

#: The API this version is written against (``orchestrator --version`` says it).
API_TARGET: Final = "Katapult Core API v1"


def distribution_version() -> str:
    """The installed version (``0+unknown`` when run from a tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - only from an uninstalled tree
        return "0+unknown"
