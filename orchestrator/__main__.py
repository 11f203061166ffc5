"""``python -m orchestrator`` is the ``orchestrator`` command."""

from __future__ import annotations

from orchestrator.cli import main

raise SystemExit(main())
