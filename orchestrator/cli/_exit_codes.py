"""The command's exit codes, and the "Exit codes:" block of each help text."""

from __future__ import annotations

from orchestrator.errors import (
    AuthenticationError,
    ConfigError,
    JournalError,
    LimitError,
    OrchestratorError,
    PermissionDenied,
    SpecError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
#: plan's internal "there are VMs to build" (exit 0, or 2 with --detailed-exitcode)
EXIT_PLAN_CHANGES = 4
#: plan --detailed-exitcode: there are VMs to build (Terraform's)
EXIT_DETAILED_CHANGES = 2
EXIT_CANCELLED = 130

#: Every exit code of the command, and when it is used.
EXIT_CODES = {
    EXIT_OK: "every VM succeeded or already existed (plan: the plan was made)",
    EXIT_FAILED: "some VMs failed or were not built (the report says which); "
    "report diff: something newly failed; plan: the API could not be read",
    EXIT_USAGE: "bad usage, spec or config: nothing was submitted (plan: problems found)",
    EXIT_AUTH: "authentication or permission stopped the whole run",
    EXIT_CANCELLED: "interrupted (Ctrl-C, SIGTERM): report and journal still written",
}


def exit_code_for(error: OrchestratorError) -> int:
    """The exit code of a command that ``error`` stopped: the one table of them.

    A refused token or permission stops the whole run (3); a spec, setting,
    selection or journal that cannot be used is the user's input (2), found
    before anything was sent; anything else (the API, the network) is 1.
    """
    if isinstance(error, AuthenticationError | PermissionDenied):
        return EXIT_AUTH
    if isinstance(error, SpecError | ConfigError | LimitError | JournalError):
        return EXIT_USAGE
    return EXIT_FAILED


def _exit_codes(*codes: tuple[int, str]) -> str:
    lines = "\n".join(f"  {code:<4} {text}" for code, text in codes)
    return f"\b\nExit codes:\n{lines}"
