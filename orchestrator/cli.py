"""The command line (placeholder until the CLI lands)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``orchestrator`` command."""
    return 0
