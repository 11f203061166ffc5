"""``orchestrator report diff``: what changed between two reports."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli._console import _fail, _out, _print_json
from orchestrator.cli._exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _exit_codes
from orchestrator.cli._group import _CONTEXT, _output_option, cli
from orchestrator.errors import ReportError


@cli.group(context_settings=_CONTEXT)
def report() -> None:
    """Work with report.json files written by `run`."""


@report.command(
    "diff",
    epilog="\b\nExample (cron, compare two nights):\n"
    "  orchestrator report diff yesterday.json report.json || alert 'new failures'\n"
    "  orchestrator report diff yesterday.json report.json --output json | jq .summary\n\n"
    + _exit_codes(
        (EXIT_OK, "nothing newly failed"),
        (EXIT_FAILED, "some VM failed in NEW that had not failed in OLD"),
        (EXIT_USAGE, "a report is missing or is not an orchestrator report"),
    ),
)
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@_output_option
def report_diff(old: Path, new: Path, output: str) -> int:
    """What changed from OLD to NEW: newly failed, fixed, still failing, missing, added.

    A VM is matched by its key (the lower-cased hostname); cancelled counts as failed.
    """
    from orchestrator.report import diff_reports, load_report, render_diff

    try:
        before, after = load_report(old), load_report(new)
    except ReportError as exc:
        return _fail(str(exc))
    diff = diff_reports(before, after)
    if output == "json":
        from orchestrator.cli._json_output import diff_json

        _print_json(diff_json(diff, old=(old, before), new=(new, after)))
    else:
        render_diff(diff, _out())
    return EXIT_FAILED if diff.has_new_failures else EXIT_OK
