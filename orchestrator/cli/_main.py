"""``main``: the command line run as a function that returns its exit code."""

from __future__ import annotations

import signal

import click

from orchestrator.cli._console import CliExit, _err, _fail
from orchestrator.cli._exit_codes import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from orchestrator.cli._group import cli
from orchestrator.cli._pipes import pipe_safe_streams
from orchestrator.cli._runner import _handle_sigterm


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
        exc.show()
        return EXIT_USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        _err.print("interrupted", markup=False)
        return EXIT_CANCELLED
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)
    return int(code) if isinstance(code, int) else EXIT_OK
