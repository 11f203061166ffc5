"""``orchestrator status``: what a journal holds."""

from __future__ import annotations

import shlex

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
@click.argument("journal", required=False, metavar="[JOURNAL]")
@click.option(
    "--state",
    "state",
    metavar="PATH|URL",
    envvar="ORCHESTRATOR_STATE",
    help="The fleet's state instead of JOURNAL: a journal's path, or a postgresql:// URL "
    "(then --fleet says whose). Env: ORCHESTRATOR_STATE.",
)
@click.option("--fleet", "fleet", metavar="NAME", help="The fleet, in a PostgreSQL state.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"Show every VM (by default the {_STATUS_ROWS} that most need attention: "
    "unfinished and failed first). --output json always lists every VM.",
)
@_output_option
def status(
    journal: str | None, state: str | None, fleet: str | None, show_all: bool, output: str
) -> int:
    """Show what JOURNAL holds: its runs, and per VM its state, ids and last error.

    JOURNAL is the SQLite file `run` keeps beside the report
    (report.json.journal unless --journal said otherwise), or a postgresql://
    URL with --fleet NAME (also given as --state).
    """
    from orchestrator.engine.state.journal import read_journal, render_status

    where = journal if journal is not None else state
    if where is None:
        return _fail("name the journal: orchestrator status JOURNAL (or --state URL --fleet NAME)")
    try:
        snapshot = read_journal(where, fleet=fleet)
    except JournalError as exc:
        return _fail(str(exc))
    if output == "json":
        from orchestrator.cli._json_output import status_json

        _print_json(status_json(snapshot))
        return EXIT_OK
    out = _out()
    render_status(snapshot, out, limit=None if show_all else _STATUS_ROWS)
    if not show_all and len(snapshot.entries) > _STATUS_ROWS:
        fleet_flag = f" --fleet {shlex.quote(fleet)}" if fleet else ""
        shown = snapshot.path.split(" (fleet ", 1)[0]
        command = f"orchestrator status --all {shlex.quote(shown)}{fleet_flag}"
        out.print(f"({command} shows every VM)", markup=False)
    return EXIT_OK
