"""``orchestrator plan``: what ``run`` would build and skip, never building."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

from orchestrator.cli._console import _expected_error, _fail, _out, _print_json
from orchestrator.cli._exit_codes import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PLAN_CHANGES,
    EXIT_USAGE,
    _exit_codes,
    exit_code_for,
)
from orchestrator.cli._group import _PRECEDENCE, _common_options, _limit_option, _output_option, cli
from orchestrator.cli._prepare import _NO_CREDENTIALS, _limited, _load, _load_spec
from orchestrator.cli._runner import _simulated
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.settings import Settings
    from orchestrator.vm_request import VmRequest


_PLAN_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator plan --simulate specs/example.toml\n"
    "  orchestrator plan fleet.toml && echo 'nothing to build'\n"
    "  orchestrator plan fleet.toml --limit 'web-*'\n"
    "  orchestrator plan fleet.toml --output json | jq .summary\n"
    "\n"
    f"{_PRECEDENCE}\n\n"
    + _exit_codes(
        (EXIT_OK, "nothing to build: every VM exists"),
        (EXIT_PLAN_CHANGES, "there are VMs to build"),
        (
            EXIT_USAGE,
            "bad usage, spec or config, or problems found (a lookup names nothing, quota)",
        ),
        (EXIT_AUTH, "the token or its permissions were refused"),
        (EXIT_FAILED, "the API could not be read (network, server errors)"),
    )
)


@cli.command(epilog=_PLAN_EPILOG)
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@_limit_option
@_output_option
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
) -> int:
    """Dry run of SPEC against the API: what `run` would build and skip. Never builds.

    Resolves every lookup (organization, data center, zone, package, disk
    template, network), finds the hostnames that already exist, checks the
    organizations' VM quota and estimates the duration from the rate budget.
    It spends a few read requests of the budget, no more.
    """
    settings = _load(
        config_file,
        {
            "katapult.api_url": api_url,
            "katapult.organization": organization,
            "output.log_format": log_format,
            "output.log_level": log_level,
        },
    )
    loaded = _load_spec(spec, settings)
    selected = _limited(loaded, limit)
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    return anyio.run(_plan_async, settings, selected, simulate, output)


async def _plan_async(settings: Settings, vms: list[VmRequest], simulate: bool, output: str) -> int:
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

        _print_json(plan_json(result))
    else:
        render_plan(result, _out())
    if result.has_errors:
        return EXIT_USAGE
    return EXIT_PLAN_CHANGES if result.has_changes else EXIT_OK
