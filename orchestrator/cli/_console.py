"""Where the command writes (stdout tables, stderr messages), and how an expected
error becomes an ``error:`` line and an exit code instead of a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console

from orchestrator.cli._exit_codes import EXIT_USAGE
from orchestrator.errors import (
    AuthenticationError,
    OrchestratorError,
    PermissionDenied,
)

#: Width of tables written to a pipe or a file, when COLUMNS does not say (a terminal's
#: own width is used on a terminal): what a pager or a CI log shows without wrapping.
_PIPE_WIDTH = 80

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = _PIPE_WIDTH
    return console


class CliExit(Exception):
    """Ends a command with exit ``code``; ``_main`` prints ``message`` as one ``error:`` line.

    What a command finds wrong before (or instead of) running raises this; no
    helper returns a code for its caller to pass on.
    """

    def __init__(self, message: str | None, code: int = EXIT_USAGE) -> None:
        super().__init__(message or "")
        self.message = message
        self.code = code


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``message`` as an ``error:`` line (its own lines kept, anything that is not
    printable in them shown as an escape); return ``code``."""
    lines = (
        line
        if line.isprintable()
        else "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
        for line in message.split("\n")
    )
    _err.print("error: " + "\n".join(lines), markup=False)
    return code


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _expected_error(exc: BaseException) -> OrchestratorError | None:
    """``exc`` (or, for a task group's exception group, its most telling member) when
    every error in it is one we raise on purpose; None for anything else (a bug)."""
    leaves = list(_leaves(exc))
    errors = [leaf for leaf in leaves if isinstance(leaf, OrchestratorError)]
    if not errors or len(errors) != len(leaves):
        return None
    for error in errors:
        if isinstance(error, AuthenticationError | PermissionDenied):
            return error
    return errors[0]


def _print_json(data: dict[str, Any]) -> None:
    from orchestrator.cli._json_output import dumps

    click.echo(dumps(data), nl=False)
