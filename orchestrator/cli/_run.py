"""``orchestrator run``: build every VM of a spec that does not exist yet."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from orchestrator.cli._console import CliExit, _err
from orchestrator.cli._exit_codes import (
    EXIT_AUTH,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _exit_codes,
)
from orchestrator.cli._group import (
    _PRECEDENCE,
    _common_options,
    _Duration,
    _fleet_option,
    _limit_option,
    _state_option,
    cli,
)
from orchestrator.cli._prepare import _NO_CREDENTIALS, _limited, _load, _load_spec, _unwritable
from orchestrator.cli._prune import _Prune
from orchestrator.cli._runner import _handle_sigterm, _run_async
from orchestrator.cli._simulator_options import reading_options, readings_given, simulator_config
from orchestrator.cli._verdict import Verdict
from orchestrator.engine._ownership import default_fleet
from orchestrator.errors import ReportError

if TYPE_CHECKING:
    from orchestrator.engine.state.location import StateLocation

_RUN_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator run --simulate specs/example.toml     try it: no account, no network\n"
    "  orchestrator run fleet.toml                        with KATAPULT_API_KEY set\n"
    "  orchestrator run fleet.toml --report out/report.json --junit out/junit.xml\n"
    "  orchestrator run fleet.toml --retry-failed report.json   only what failed last time\n"
    "  orchestrator run fleet.toml --limit 'web-*' --limit db-01   only these hostnames\n"
    "  orchestrator run fleet.toml --inventory inventory.yml   then: ansible -i inventory.yml ...\n"
    "  orchestrator run fleet.toml --no-progress --log-format json   for cron and CI\n"
    "\n"
    "Reruns are safe: VMs that already exist are skipped, and the journal "
    "(report.json.journal by default) lets a rerun follow builds that were in flight "
    "instead of submitting them again. Ctrl-C (or SIGTERM) stops new builds and writes "
    "the report; a second Ctrl-C exits at once.\n\n"
    f"{_PRECEDENCE}\n\n"
    + _exit_codes(
        (EXIT_OK, "every VM succeeded or already existed"),
        (
            EXIT_FAILED,
            "some VMs failed or were not built (the report says which), the deadline "
            "was reached, the API could not be reached, or the journal could not be written",
        ),
        (
            EXIT_USAGE,
            "bad usage, spec or config, a lookup the API does not know (organization, "
            "package, template, location, network, SSH key, tag), a suspended "
            "organization, a quota the builds would exceed, an output path that cannot "
            "be written, or a journal in use, of another API or organization, or that "
            "lost records: nothing was submitted",
        ),
        (EXIT_AUTH, "the token or its scopes were refused: one error line, every VM reported"),
        (EXIT_CANCELLED, "interrupted (Ctrl-C, SIGTERM): report and journal still written"),
    )
)


@cli.command(epilog=_RUN_EPILOG)
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@click.option(
    "--report",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the JSON report (default report.json). Env: ORCHESTRATOR_REPORT.",
)
@click.option(
    "--journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite journal that makes the run resumable (default: the report's path + "
    "'.journal'; with --simulate, none unless given). Env: ORCHESTRATOR_JOURNAL.",
)
@_state_option
@click.option(
    "--no-journal",
    is_flag=True,
    help="Keep no journal: a rerun still skips VMs that exist, but cannot follow builds "
    "that were in flight when a run was killed.",
)
@click.option(
    "--journal-rebind",
    is_flag=True,
    help="Use the journal even though it was written against another API URL or "
    "organization, or has lost records it once held (refused otherwise: exit 2).",
)
@click.option(
    "--max-in-flight",
    metavar="N",
    type=click.IntRange(min=1),
    help="At most N builds submitted and not finished (default: none; the run sizes it "
    "from the rate budget and the build times it measures). Env: ORCHESTRATOR_MAX_IN_FLIGHT.",
)
@click.option(
    "--budget-share",
    metavar="FRACTION",
    help="Use at most this share of the token's rate budget per window, e.g. 0.5 or 50% "
    "(default: no cap; what other clients of the token spend is left to them anyway). "
    "Env: ORCHESTRATOR_BUDGET_SHARE.",
)
@click.option(
    "--retry-failed",
    metavar="REPORT",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Build only the VMs that failed or were cancelled in this earlier report.",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress display (a live line on a terminal, a line every 10 s elsewhere). "
    "Env: ORCHESTRATOR_PROGRESS=false.",
)
@click.option(
    "--deadline",
    metavar="DURATION",
    type=_Duration(),
    help="End the run after this long, e.g. 90s, 15m, 1h30m, as a signal would: nothing "
    "more is submitted, builds in flight stay in the journal for a rerun and are reported "
    "cancelled, the report is written, exit 1. Env: ORCHESTRATOR_DEADLINE_SECONDS.",
)
@click.option(
    "--junit",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write JUnit XML, one test case per VM, for CI. Env: ORCHESTRATOR_JUNIT.",
)
@click.option(
    "--html",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one self-contained HTML page (summary, failures, "
    "timeline, rate budget, build durations; fetches nothing). Env: ORCHESTRATOR_HTML.",
)
@click.option(
    "--metrics",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write Prometheus metrics (gauges of the last run) for the node-exporter "
    "textfile collector. Env: ORCHESTRATOR_METRICS.",
)
@click.option(
    "--metrics-mode",
    metavar="MODE",
    help="Permissions of the metrics file, in octal (default 0644: it holds no secret, and "
    "node-exporter may run as its own user). Env: ORCHESTRATOR_METRICS_MODE.",
)
@click.option(
    "--inventory",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an Ansible inventory (YAML) of the VMs that succeeded or already "
    "existed, grouped by data center, package, group and tag. Env: ORCHESTRATOR_INVENTORY.",
)
@click.option(
    "--wait-until-started",
    is_flag=True,
    default=None,
    help="A VM succeeds only once it is started, not as soon as its build completes. "
    "Env: ORCHESTRATOR_WAIT_UNTIL_STARTED.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="After the run, delete the fleet's VMs that the spec no longer lists (only those "
    "provably the fleet's, as destroy decides; asks first unless --yes). Their report: "
    "REPORT with .prune before its suffix. Without it, the summary says how many there are.",
)
@click.option("--yes", "-y", is_flag=True, help="With --prune: do not ask (for scripts).")
@reading_options
@_limit_option
@_fleet_option
def run(
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
    report: Path | None,
    journal: Path | None,
    state: str | None,
    no_journal: bool,
    journal_rebind: bool,
    max_in_flight: int | None,
    budget_share: str | None,
    retry_failed: Path | None,
    no_progress: bool,
    deadline: float | None,
    junit: Path | None,
    html: Path | None,
    metrics: Path | None,
    metrics_mode: str | None,
    inventory: Path | None,
    wait_until_started: bool | None,
    readings: dict[str, Any],
    limit: tuple[str, ...],
    fleet: str | None,
    prune: bool,
    yes: bool,
) -> int:
    """Build every VM of SPEC that does not exist yet, wait for each, write the report.

    SPEC is a TOML, YAML or JSON file listing the VMs (see specs/ for examples).
    The summary goes to stdout, progress and log lines to stderr; report.json
    holds every VM's outcome, ids and, for a failure, the API's own error.
    """
    params = dict(locals())
    # from the flags, or the environment while the settings are not read (or cannot be)
    verdict = Verdict(
        fleet=default_fleet(spec),
        junit=junit or _env_path("ORCHESTRATOR_JUNIT"),
        metrics=metrics or _env_path("ORCHESTRATOR_METRICS"),
    )
    try:
        code = _run(verdict, **params)
    except CliExit as exc:
        verdict.write_failure(exc.message or "the run failed", exc.code)
        raise
    except KeyboardInterrupt:
        verdict.write_failure("interrupted before the run had a report", EXIT_CANCELLED)
        raise
    except Exception as exc:
        verdict.write_failure(f"the run failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
        raise
    if code != EXIT_OK and not verdict.written:
        verdict.write_failure("interrupted before the run had a report", code)
    return code


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value and value.isprintable() else None


def _run(
    verdict: Verdict,
    *,
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
    report: Path | None,
    journal: Path | None,
    state: str | None,
    no_journal: bool,
    journal_rebind: bool,
    max_in_flight: int | None,
    budget_share: str | None,
    retry_failed: Path | None,
    no_progress: bool,
    deadline: float | None,
    junit: Path | None,
    metrics: Path | None,
    metrics_mode: str | None,
    inventory: Path | None,
    html: Path | None,
    wait_until_started: bool | None,
    readings: dict[str, Any],
    limit: tuple[str, ...],
    fleet: str | None,
    prune: bool,
    yes: bool,
) -> int:
    if (journal is not None or state is not None) and no_journal:
        flag = "--journal" if journal is not None else "--state"
        raise CliExit(f"{flag} and --no-journal contradict each other: choose one")
    if prune and no_journal:
        raise CliExit("--prune needs the fleet's journal (it says which VMs the fleet built)")
    if prune and not yes and not sys.stdin.isatty():
        raise CliExit("run --prune asks before deleting: pass --yes when not at a terminal")
    if not simulate and readings_given(readings):
        raise CliExit(f"{', '.join(readings_given(readings))}: only with --simulate")
    if simulate:
        try:
            simulator_config(readings)
        except ValueError as exc:
            raise CliExit(f"simulator options: {exc}") from None
    settings = _load(
        config_file,
        {
            "katapult.api_url": api_url,
            "katapult.organization": organization,
            "output.log_format": log_format,
            "output.log_level": log_level,
            "output.report": report,
            "output.journal": journal,
            "output.state": state,
            "output.progress": False if no_progress else None,
            "output.junit": junit,
            "output.html": html,
            "output.metrics": metrics,
            "output.metrics_mode": metrics_mode,
            "output.inventory": inventory,
            "engine.max_in_flight": max_in_flight,
            "engine.budget_share": budget_share,
            "engine.deadline_seconds": deadline,
            "engine.wait_until_started": wait_until_started,
        },
    )
    verdict.junit, verdict.metrics = settings.output.junit, settings.output.metrics
    verdict.metrics_mode = settings.output.metrics_mode
    loaded = _load_spec(spec, settings, fleet)
    if loaded.fleet is not None:
        verdict.fleet = loaded.fleet
    only_keys: set[str] | None = None
    if retry_failed is not None:
        from orchestrator.report import failed_keys, load_report

        try:
            retried = load_report(retry_failed)
        except ReportError as exc:
            raise CliExit(str(exc)) from None
        only_keys = failed_keys(retried)
        if loaded.fleet is None and retried.ownership is not None:
            # the same fleet as the run that failed them, whichever journal this run keeps
            loaded = dataclasses.replace(loaded, fleet=retried.ownership.fleet)
    if limit:
        selected = _limited(loaded, limit)
        # the others are reported skipped/not_selected (or as the journal has them)
        keys = {vm.key for vm in selected}
        only_keys = keys if only_keys is None else only_keys & keys
    journal_path: StateLocation | None
    if no_journal:
        journal_path = None
    elif simulate:
        # a simulated run's journal must never be mistaken for a real one's
        journal_path = settings.given_state()
    else:
        journal_path = settings.journal_path()
    if not simulate and settings.katapult.api_token is None:
        raise CliExit(_NO_CREDENTIALS)
    if journal_path is None and loaded.fleet is None and not simulate:
        _err.print(
            "warning: this fleet has no name and no journal: a later run or destroy cannot "
            "tell its VMs from another fleet's. Name it (fleet = ... in the spec, or --fleet)",
            markup=False,
        )
    output = settings.output
    _unwritable(
        ("report", output.report),
        ("journal", journal_path),
        ("JUnit file", output.junit),
        ("HTML report", output.html),
        ("metrics file", output.metrics),
        ("inventory", output.inventory),
    )
    try:
        return anyio.run(
            functools.partial(
                _run_async,
                journal_rebind=journal_rebind,
                verdict=verdict,
                pruning=_Prune(yes=yes) if prune else None,
            ),
            settings,
            loaded,
            journal_path,
            only_keys,
            simulate,
            readings,
        )
    finally:
        _handle_sigterm()  # asyncio put SIGTERM back to its default (death) on leaving
