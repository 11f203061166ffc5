"""``python -m orchestrator`` is the ``orchestrator`` command."""

from __future__ import annotations

from orchestrator.cli import console_main

console_main()
