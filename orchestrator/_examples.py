"""The example spec files shipped with the program (``specs/`` of the repository).

In a wheel they are package data (``orchestrator/_specs``, put there at build
time); in a checkout (an editable install) they are the repository's ``specs/``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SPEC_SUFFIXES", "example_specs", "examples_dir"]

SPEC_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def examples_dir() -> Path | None:
    """Where the example specs are (None: neither in the package nor beside it)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_specs", package.parent / "specs"):
        if (candidate / "example.toml").is_file():
            return candidate
    return None


def example_specs() -> list[Path]:
    """Every example spec file, by name."""
    where = examples_dir()
    if where is None:
        return []
    return sorted(p for p in where.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file())
