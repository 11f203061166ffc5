"""``orchestrator status``: what a journal holds."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from orchestrator.cli._console import _fail, _out, _print_json
from orchestrator.cli._exit_codes import EXIT_OK, EXIT_USAGE, _exit_codes
from orchestrator.cli._group import _output_option, cli
from orchestrator.errors import JournalError

#: VMs shown by ``status`` without ``--all``.
_STATUS_ROWS = 50


@cli.command(
    epilog="\b\nExamples:\n"
    "  orchestrator status report.json.journal\n"
    "  orchestrator status --all /var/lib/fleet/report.json.journal\n"
    "  orchestrator status report.json.journal --output json | jq '.vms[] | select(.outcome)'\n\n"
    "It only reads: a journal in use by a running `run` can be inspected.\n\n"
    + _exit_codes(
        (EXIT_OK, "the journal was shown"),
        (EXIT_USAGE, "no journal at that path, or a file that is not a journal"),
    )
)
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"Show every VM (by default the {_STATUS_ROWS} that most need attention: "
    "unfinished and failed first). --output json always lists every VM.",
)
@_output_option
def status(journal: Path, show_all: bool, output: str) -> int:
    """Show what JOURNAL holds: its runs, and per VM its state, ids and last error.

    JOURNAL is the SQLite file `run` keeps beside the report
    (report.json.journal unless --journal said otherwise).
    """
    from orchestrator.engine.state.journal import read_journal, render_status

    try:
        snapshot = read_journal(journal)
    except JournalError as exc:
        return _fail(str(exc))
    if output == "json":
        from orchestrator.cli._json_output import status_json

        _print_json(status_json(snapshot))
        return EXIT_OK
    out = _out()
    render_status(snapshot, out, limit=None if show_all else _STATUS_ROWS)
    if not show_all and len(snapshot.entries) > _STATUS_ROWS:
        command = f"orchestrator status --all {shlex.quote(str(journal))}"
        out.print(f"({command} shows every VM)", markup=False)
    return EXIT_OK
