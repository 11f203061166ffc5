"""``orchestrator plan``: what ``run`` would build and skip, never building."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

from orchestrator.cli._console import CliExit, _expected_error, _fail, _out, _print_json
from orchestrator.cli._exit_codes import (
    EXIT_AUTH,
    EXIT_DETAILED_CHANGES,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PLAN_CHANGES,
    EXIT_USAGE,
    _exit_codes,
    exit_code_for,
)
from orchestrator.cli._group import (
    _PRECEDENCE,
    _common_options,
    _fleet_option,
    _limit_option,
    _output_option,
    _state_option,
    cli,
)
from orchestrator.cli._prepare import _NO_CREDENTIALS, _limited, _load, _load_spec
from orchestrator.cli._runner import _simulated
from orchestrator.errors import JournalError, OrchestratorError

if TYPE_CHECKING:
    from orchestrator.engine.state.journal import JournalEntry
    from orchestrator.engine.state.location import StateLocation
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec
    from orchestrator.vm_request import VmRequest


_PLAN_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator plan --simulate specs/example.toml\n"
    "  orchestrator plan fleet.toml --detailed-exitcode || echo 'changes or problems'\n"
    "  orchestrator plan fleet.toml --limit 'web-*'\n"
    "  orchestrator plan fleet.toml --output json | jq .summary\n"
    "\n"
    "plan decides each VM as run would, from what the API holds now and what the\n"
    "fleet's journal remembers: to build, up to date, drift, being built, held by the\n"
    "trash, another fleet's, failed (delete it first), and the fleet's VMs the spec no\n"
    "longer lists.\n"
    "\n"
    f"{_PRECEDENCE}\n\n"
    + _exit_codes(
        (EXIT_OK, "the plan was made, with or without VMs to build"),
        (EXIT_USAGE, "bad usage, spec or config, or problems found (a lookup names nothing)"),
        (EXIT_AUTH, "the token or its permissions were refused"),
        (EXIT_FAILED, "the API could not be read (network, server errors)"),
    )
    + "\n\b\nWith --detailed-exitcode (as Terraform's): 0 nothing to build, 1 an error "
    "(any of the above), 2 VMs to build."
)


@cli.command(epilog=_PLAN_EPILOG)
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@_limit_option
@_output_option
@_fleet_option
@click.option(
    "--journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The fleet's journal, read without its lock (default: report.json.journal, as "
    "run's, when it exists). Env: ORCHESTRATOR_JOURNAL.",
)
@_state_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to build, 2 when there is, 1 on any error.",
)
def plan(
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
    limit: tuple[str, ...],
    output: str,
    fleet: str | None,
    journal: Path | None,
    state: str | None,
    detailed_exitcode: bool,
) -> int:
    """Dry run of SPEC against the API: what `run` would do with each VM. Never builds.

    Resolves every lookup (organization, data center, zone, package, disk
    template, network), looks at every VM a hostname of the spec holds, reads
    the fleet's journal, checks the organizations' VM quota and estimates the
    duration from the rate budget. It spends read requests only.
    """
    try:
        code = _plan(
            spec,
            config_file,
            {
                "katapult.api_url": api_url,
                "katapult.organization": organization,
                "output.log_format": log_format,
                "output.log_level": log_level,
                "output.journal": journal,
                "output.state": state,
            },
            simulate=simulate,
            limit=limit,
            output=output,
            fleet=fleet,
        )
    except CliExit as exc:
        if detailed_exitcode:
            exc.code = EXIT_FAILED  # Terraform's: 1 is every error
        raise
    if code == EXIT_PLAN_CHANGES:
        return EXIT_DETAILED_CHANGES if detailed_exitcode else EXIT_OK
    if detailed_exitcode and code != EXIT_OK:
        return EXIT_FAILED  # Terraform's: 1 is every error
    return code


def _plan(
    spec: str,
    config_file: Path | None,
    overrides: dict[str, object],
    *,
    simulate: bool,
    limit: tuple[str, ...],
    output: str,
    fleet: str | None,
) -> int:
    """The plan; EXIT_PLAN_CHANGES when there are VMs to build (mapped by the caller)."""
    settings = _load(config_file, overrides)
    loaded = _load_spec(spec, settings, fleet)
    selected = _limited(loaded, limit)
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    journal = settings.given_state()
    if journal is None and not simulate:
        journal = settings.journal_path()
    try:
        fleet_id, rows = _fleet_state(loaded, journal)
    except JournalError as exc:
        return _fail(str(exc))
    return anyio.run(_plan_async, settings, selected, simulate, output, fleet_id, rows)


def _fleet_state(
    spec: Spec, journal: StateLocation | None
) -> tuple[str | None, dict[str, JournalEntry]]:
    """The fleet's identity and its journal's build rows (none without a journal)."""
    from orchestrator.engine._ownership import default_fleet
    from orchestrator.engine.state.journal import read_journal
    from orchestrator.errors import NoJournal

    if journal is None:
        return spec.fleet, {}
    try:
        snapshot = read_journal(journal, fleet=spec.fleet)
    except NoJournal:
        return spec.fleet, {}
    if spec.fleet is not None and snapshot.fleet not in (None, spec.fleet):
        raise JournalError(
            f"journal {journal} is the state of fleet {snapshot.fleet!r}, not {spec.fleet!r}: "
            "use the fleet's own journal (--journal PATH)"
        )
    stem = default_fleet(spec.path)
    if spec.fleet is None and snapshot.fleet_spec not in (None, stem):
        raise JournalError(
            f"journal {journal} is the state of fleet {snapshot.fleet!r}, made from spec "
            f"{snapshot.fleet_spec!r}, not {stem!r}: use the spec's own journal (--journal), "
            f"or name the fleet (--fleet {snapshot.fleet})"
        )
    rows = {entry.key: entry for entry in snapshot.entries}
    legacy = stem if rows else None
    return spec.fleet or snapshot.fleet or legacy, rows


async def _plan_async(
    settings: Settings,
    vms: list[VmRequest],
    simulate: bool,
    output: str,
    fleet: str | None,
    rows: dict[str, JournalEntry],
) -> int:
    from orchestrator.cli._render import render_plan
    from orchestrator.engine import Orchestrator, make_plan
    from orchestrator.engine._preflight import START_UP_SECONDS, check_reachable

    async with AsyncExitStack() as stack:
        if simulate:
            settings = await _simulated(stack, settings)
        orch = await stack.enter_async_context(Orchestrator(settings))
        engine = settings.engine
        try:
            # a refused port: within seconds, not after minutes of retries
            await check_reachable(
                orch.client, seconds=min(START_UP_SECONDS, engine.retry_deadline_seconds)
            )
            result = await make_plan(
                orch.client,
                vms,
                deadline_seconds=engine.retry_deadline_seconds,
                window_seconds=engine.rate_window_seconds,
                expected_build_seconds=engine.expected_build_seconds,
                permitted=lambda: orch.budget_statistics().permitted,
                max_in_flight=engine.max_in_flight,
                fleet=fleet,
                rows=rows,
            )
        except (OrchestratorError, BaseExceptionGroup) as raw:
            # make_plan runs its look-ups in a task group: errors may come grouped
            error = _expected_error(raw)
            if error is None:
                raise
            return _fail(str(error), exit_code_for(error))
    for category, cause in result.checked.unreadable.values():
        if category in ("auth", "permission"):  # as run stops: the token, not the spec
            from orchestrator.cli._results import _refusal

            return _fail(_refusal(cause, sent=False), EXIT_AUTH)
    if output == "json":
        from orchestrator.cli._json_output import plan_json

        # the config file read, last (keys are only ever added)
        _print_json({**plan_json(result), "config_file": _config_path(settings)})
    else:
        out = _out()
        render_plan(result, out)
        out.print(f"Config file: {_config_text(settings)}", markup=False, highlight=False)
    if result.has_errors:
        return EXIT_USAGE
    return EXIT_PLAN_CHANGES if result.has_changes else EXIT_OK


def _config_path(settings: Settings) -> str | None:
    return None if settings.config_file is None else str(settings.config_file)


def _config_text(settings: Settings) -> str:
    """Which config file was read, and how it was found (``plan`` says so)."""
    path = settings.config_file
    if path is None:
        return "none"
    if settings.config_file_found_by == "XDG_CONFIG_HOME":
        return f"{path} (found as $XDG_CONFIG_HOME/orchestrator/config.toml)"
    return str(path)
