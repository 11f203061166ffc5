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
    try:
        diff = diff_reports(before, after)
    except ReportError as exc:
        return _fail(f"{old} and {new}: {exc}")
    if output == "json":
        from orchestrator.cli._json_output import diff_json

        _print_json(diff_json(diff, old=(old, before), new=(new, after)))
    else:
        render_diff(diff, _out())
    return EXIT_FAILED if diff.has_new_failures else EXIT_OK


@report.command(
    "html",
    epilog="\b\nExamples:\n"
    "  orchestrator run --simulate specs/example.toml && orchestrator report html report.json\n"
    "  orchestrator report html /var/lib/fleet/report.json -o /srv/www/fleet/last-night.html\n"
    "  orchestrator run fleet.toml --html run.html     (the same page, written by the run)\n\n"
    "Open it in any browser: it is one file that fetches nothing. The failures' filter box\n"
    "needs JavaScript (everything else reads without it); run.html#filter=TEXT opens it\n"
    "filtered.\n\n"
    + _exit_codes(
        (EXIT_OK, "the page was written"),
        (EXIT_USAGE, "the report is missing or is not an orchestrator report"),
        (EXIT_FAILED, "the page could not be written"),
    ),
)
@click.argument("report_file", metavar="REPORT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: REPORT with the suffix .html).",
)
def report_html(report_file: Path, output: Path | None) -> int:
    """Write REPORT as one self-contained HTML page: summary, failures (with a filter),
    a timeline of every VM, the rate budget per window and build durations."""
    from orchestrator.report import load_report, write_html

    try:
        loaded = load_report(report_file)
    except ReportError as exc:
        return _fail(str(exc))
    target = output if output is not None else report_file.with_suffix(".html")
    try:
        write_html(loaded, target)
    except OSError as exc:
        return _fail(f"cannot write {target}: {exc.strerror or exc}", EXIT_FAILED)
    _out().print(f"HTML report written to {target}", markup=False, highlight=False)
    return EXIT_OK
