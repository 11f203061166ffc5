"""orchestrator: exactly-once bulk provisioning of Katapult virtual machines."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("orchestrator")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            return "0.0.0"
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
