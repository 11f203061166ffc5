"""The ``orchestrator`` command: parse, load settings, call one library entry point, render.

Every command returns its exit code (see :data:`EXIT_CODES`); expected
failures (:class:`~orchestrator.errors.OrchestratorError`) become a message and
a code, never a traceback. Anything else is a bug and crashes loudly.

One module per command (``_run``, ``_destroy``, ``_plan``, ``_simulate``,
``_status``, ``_report``); importing them registers them on :data:`cli`.
"""

from __future__ import annotations

# importing a command's module registers the command on ``cli``
from orchestrator.cli import (  # noqa: F401
    _completion,
    _destroy,
    _examples,
    _plan,
    _report,
    _run,
    _simulate,
    _status,
)
from orchestrator.cli._exit_codes import EXIT_CODES
from orchestrator.cli._group import cli
from orchestrator.cli._main import console_main, main

__all__ = ["EXIT_CODES", "cli", "console_main", "main"]
