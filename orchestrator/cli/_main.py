"""``main``: the command line run as a function that returns its exit code."""

from __future__ import annotations

import signal
from typing import NoReturn

import click

from orchestrator.cli._console import CliExit, _err, _fail
from orchestrator.cli._exit_codes import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from orchestrator.cli._group import cli
from orchestrator.cli._pipes import pipe_safe_streams
from orchestrator.cli._runner import _handle_sigterm
from orchestrator.cli._signals import cancelled_exit


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    SIGTERM is handled like SIGINT (exit 130) wherever it lands, and a reader of
    stdout or stderr that goes away (``| head -1``) costs no result file.
    """
    previous = _handle_sigterm()
    try:
        with pipe_safe_streams():
            return _main(argv)
    except KeyboardInterrupt:
        # a signal after the run's own handling ended (while exiting)
        return EXIT_CANCELLED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def console_main() -> NoReturn:
    """The ``orchestrator`` console script: :func:`main`, then exit with its code.

    From start to exit a signal ends the process with 130, never with the
    signal's own code: SIGTERM is handled from the first moment, and once
    ``main`` has returned, SIGINT and SIGTERM exit 130 while the process winds down.
    """
    signal.signal(signal.SIGTERM, cancelled_exit)
    try:
        try:
            code = main()
        finally:
            signal.signal(signal.SIGINT, cancelled_exit)
            signal.signal(signal.SIGTERM, cancelled_exit)
    except KeyboardInterrupt:
        code = EXIT_CANCELLED
    raise SystemExit(code)


def _main(argv: list[str] | None) -> int:
    try:
        code = cli.main(args=argv, prog_name="orchestrator", standalone_mode=False)
    except CliExit as exc:
        if exc.message:
            _fail(exc.message, exc.code)
        return exc.code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # click's own "Error:" becomes ours, "error:", after click's usage line and hint
        ctx = exc.ctx if isinstance(exc, click.UsageError) else None
        if ctx is not None:
            _err.print(ctx.get_usage(), markup=False)
            help_option = ctx.help_option_names[0] if ctx.help_option_names else "--help"
            _err.print(f"Try '{ctx.command_path} {help_option}' for help.\n", markup=False)
        return _fail(exc.format_message(), EXIT_USAGE)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _err.print("interrupted", markup=False)
        return EXIT_CANCELLED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)
    return int(code) if isinstance(code, int) else EXIT_OK
