"""The command's exit codes, and the "Exit codes:" block of each help text."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PLAN_CHANGES = 4
EXIT_CANCELLED = 130

#: Every exit code of the command, and when it is used.
EXIT_CODES = {
    EXIT_OK: "every VM succeeded or already existed (plan: nothing to build)",
    EXIT_FAILED: "some VMs failed or were not built (the report says which); "
    "report diff: something newly failed; plan: the API could not be read",
    EXIT_USAGE: "bad usage, spec or config: nothing was submitted (plan: problems found)",
    EXIT_AUTH: "authentication or permission stopped the whole run",
    EXIT_PLAN_CHANGES: "plan only: there are VMs to build",
    EXIT_CANCELLED: "interrupted (Ctrl-C, SIGTERM): report and journal still written",
}


def _exit_codes(*codes: tuple[int, str]) -> str:
    lines = "\n".join(f"  {code:<4} {text}" for code, text in codes)
    return f"\b\nExit codes:\n{lines}"
