"""The ``orchestrator`` command: parse, load settings, call one library entry point, render.

Every command returns its exit code (see :data:`EXIT_CODES`); expected
failures become a message and a code, never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console

from orchestrator import __version__
from orchestrator._duration import parse_duration
from orchestrator._logging import configure_logging
from orchestrator._progress import show_progress
from orchestrator._simulated import SIMULATED_TIME_SCALE, simulated_settings
from orchestrator.errors import (
    AuthenticationError,
    ConfigError,
    JournalError,
    OrchestratorError,
    PermissionDenied,
    ReportError,
    SpecError,
)

__all__ = ["EXIT_CODES", "cli", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PLAN_CHANGES = 4
EXIT_CANCELLED = 130

EXIT_CODES = {
    EXIT_OK: "every VM succeeded or already existed (plan: nothing to build)",
    EXIT_FAILED: "some VMs failed (report says which); report diff: something newly failed",
    EXIT_USAGE: "bad usage, spec or config (nothing submitted); plan: errors found",
    EXIT_AUTH: "authentication or permission stopped the whole run",
    EXIT_PLAN_CHANGES: "plan: there are VMs to build",
    EXIT_CANCELLED: "cancelled by the user (report and journal still written)",
}

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    _err.print(f"error: {message}", markup=False)
    return code


class _Duration(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EPILOG,
)
@click.version_option(__version__, prog_name="orchestrator")
def cli() -> None:
    """Provision Katapult virtual machines in bulk, exactly once.

    Start with `orchestrator run --simulate specs/example.toml`: it runs the
    built-in Katapult simulator, so it needs no account and no network.
    """


def _common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ORCHESTRATOR_CONFIG",
            help="TOML config file ([katapult], [engine], [output]). Env: ORCHESTRATOR_CONFIG.",
        ),
        click.option("--api-url", help="API base URL. Env: KATAPULT_API_URL."),
        click.option(
            "--organization",
            help="Default organization (sub_domain or org_ id). Env: KATAPULT_ORGANIZATION.",
        ),
        click.option(
            "--simulate",
            is_flag=True,
            help="Run against the built-in simulator (no token, no network).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["console", "json"]),
            help="Log lines for people or JSON lines for machines. Env: ORCHESTRATOR_LOG_FORMAT.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            help="Lowest level logged (to stderr). Env: ORCHESTRATOR_LOG_LEVEL.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(config_file: Path | None, overrides: dict[str, Any]) -> tuple[Any, int | None]:
    from orchestrator.settings import load_settings

    try:
        settings = load_settings(config_file=config_file, overrides=overrides)
    except ConfigError as exc:
        return None, _fail(str(exc))
    token = settings.katapult.api_token
    configure_logging(
        fmt=settings.output.log_format,
        level=settings.output.log_level,
        secrets=[token.get_secret_value()] if token is not None else [],
    )
    return settings, None


def _load_spec(path: str, settings: Any) -> tuple[Any, int | None]:
    from orchestrator.spec import SpecDefaults, load_spec

    try:
        spec = load_spec(
            path,
            defaults=SpecDefaults(
                organization=settings.katapult.organization,
                data_center=settings.katapult.data_center,
            ),
        )
    except SpecError as exc:
        return None, _fail(str(exc))
    return spec, None


# ----------------------------------------------------------------------------- run


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write report.json (default report.json). Env: ORCHESTRATOR_REPORT.",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite journal to resume from (default: beside the report). Env: ORCHESTRATOR_JOURNAL.",
)
@click.option("--no-journal", is_flag=True, help="Run without a journal (no resume after a crash).")
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    help="Cap on builds submitted and not finished. Env: ORCHESTRATOR_MAX_IN_FLIGHT.",
)
@click.option(
    "--retry-failed",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rebuild only the VMs that failed (or were cancelled) in this earlier report.",
)
@click.option(
    "--no-progress", is_flag=True, help="No progress display. Env: ORCHESTRATOR_PROGRESS=false."
)
@click.option(
    "--deadline",
    type=_Duration(),
    help="No new submissions after this long (90s, 15m, 1h30m). "
    "Env: ORCHESTRATOR_DEADLINE_SECONDS.",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write JUnit XML (one test case per VM). Env: ORCHESTRATOR_JUNIT.",
)
@click.option(
    "--metrics",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write Prometheus text metrics (node-exporter textfile). Env: ORCHESTRATOR_METRICS.",
)
@click.option(
    "--wait-until-started",
    is_flag=True,
    default=None,
    help="A VM succeeds only once it is started (not just built).",
)
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
    no_journal: bool,
    max_in_flight: int | None,
    retry_failed: Path | None,
    no_progress: bool,
    deadline: float | None,
    junit: Path | None,
    metrics: Path | None,
    wait_until_started: bool | None,
) -> int:
    """Provision every VM of SPEC (TOML, YAML or JSON), wait for each, write the report."""
    settings, code = _load(
        config_file,
        {
            "katapult.api_url": api_url,
            "katapult.organization": organization,
            "output.log_format": log_format,
            "output.log_level": log_level,
            "output.report": report,
            "output.journal": journal,
            "output.progress": False if no_progress else None,
            "output.junit": junit,
            "output.metrics": metrics,
            "engine.max_in_flight": max_in_flight,
            "engine.deadline_seconds": deadline,
            "engine.wait_until_started": wait_until_started,
        },
    )
    if code is not None:
        return code
    loaded, code = _load_spec(spec, settings)
    if code is not None:
        return code
    only_keys: set[str] | None = None
    if retry_failed is not None:
        from orchestrator.report import failed_keys, load_report

        try:
            only_keys = failed_keys(load_report(retry_failed))
        except ReportError as exc:
            return _fail(str(exc))
    journal_path: Path | None
    if no_journal:
        journal_path = None
    elif simulate:
        # a simulated run's journal must never be mistaken for a real one's
        journal_path = settings.output.journal
    else:
        journal_path = settings.journal_path()
    if not simulate and settings.katapult.api_token is None:
        return _fail(
            "no API token: set KATAPULT_API_KEY (or katapult.api_token in the config file), "
            "or try --simulate"
        )
    return anyio.run(_run_async, settings, loaded, journal_path, only_keys, simulate)


async def _run_async(
    settings: Any, spec: Any, journal_path: Path | None, only_keys: set[str] | None, simulate: bool
) -> int:
    from orchestrator.engine import Orchestrator
    from orchestrator.report import render_summary, write_junit, write_metrics, write_report

    interrupted = False
    async with AsyncExitStack() as stack:
        if simulate:
            from orchestrator.simulator import SimulatorConfig, run_simulator

            sim = await stack.enter_async_context(
                run_simulator(SimulatorConfig(time_scale=SIMULATED_TIME_SCALE))
            )
            settings = simulated_settings(settings, sim.url, sim.config.token, SIMULATED_TIME_SCALE)
            _err.print(f"simulator: {sim.url} (time runs {SIMULATED_TIME_SCALE:g}x faster)")
        orch = await stack.enter_async_context(Orchestrator(settings))

        async def watch_signals(scope: anyio.CancelScope) -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if interrupted:
                        _err.print("second interrupt: exiting now")
                        os._exit(EXIT_CANCELLED)
                    interrupted = True
                    name = signal.Signals(signum).name
                    _err.print(
                        f"{name}: stopping - no new builds; in-flight builds are recorded "
                        "(press Ctrl-C again to exit at once)"
                    )
                    orch.request_stop("interrupted")

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_signals, tg.cancel_scope)
                if settings.output.progress:
                    tg.start_soon(show_progress, orch.statistics, _err)
                result = await orch.run(spec, journal=journal_path, only_keys=only_keys)
                tg.cancel_scope.cancel()
        except JournalError as exc:
            return _fail(str(exc))
        run_info = orch.current_run
    output = settings.output
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(write_report, result, output.report)
        if output.junit is not None:
            await anyio.to_thread.run_sync(write_junit, result, output.junit)
        if output.metrics is not None:
            await anyio.to_thread.run_sync(write_metrics, result, output.metrics)
    render_summary(result, _out(), report_path=str(output.report))
    _out().print(f"report written to {output.report}", highlight=False)
    if interrupted:
        return EXIT_CANCELLED
    if run_info is not None and run_info.doomed_run is not None:
        return EXIT_AUTH
    if result.summary.failed or result.summary.cancelled:
        return EXIT_FAILED
    return EXIT_OK


# ---------------------------------------------------------------------------- plan


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
def plan(
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
) -> int:
    """Dry run of SPEC against the API: resolve lookups, find existing hostnames, check
    quota, estimate the duration. Never builds anything.

    Exit code 0: nothing to build; 4: VMs to build; 2: errors (bad spec,
    lookups that name nothing, quota); 3: token or permission refused.
    """
    settings, code = _load(
        config_file,
        {
            "katapult.api_url": api_url,
            "katapult.organization": organization,
            "output.log_format": log_format,
            "output.log_level": log_level,
        },
    )
    if code is not None:
        return code
    loaded, code = _load_spec(spec, settings)
    if code is not None:
        return code
    if not simulate and settings.katapult.api_token is None:
        return _fail("no API token: set KATAPULT_API_KEY, or try --simulate")
    return anyio.run(_plan_async, settings, loaded, simulate)


async def _plan_async(settings: Any, spec: Any, simulate: bool) -> int:
    from orchestrator._render import render_plan
    from orchestrator.engine import Orchestrator, make_plan

    async with AsyncExitStack() as stack:
        if simulate:
            from orchestrator.simulator import SimulatorConfig, run_simulator

            sim = await stack.enter_async_context(
                run_simulator(SimulatorConfig(time_scale=SIMULATED_TIME_SCALE))
            )
            settings = simulated_settings(settings, sim.url, sim.config.token, SIMULATED_TIME_SCALE)
        orch = await stack.enter_async_context(Orchestrator(settings))
        engine = settings.engine
        try:
            result = await make_plan(
                orch.client,
                spec.vms,
                deadline_seconds=engine.retry_deadline_seconds,
                window_seconds=engine.rate_window_seconds,
                expected_build_seconds=engine.expected_build_seconds,
                permitted=lambda: orch.budget_statistics().permitted,
            )
        except (AuthenticationError, PermissionDenied) as exc:
            return _fail(str(exc), EXIT_AUTH)
        except OrchestratorError as exc:
            return _fail(str(exc), EXIT_FAILED)
    render_plan(result, _out())
    if result.has_errors:
        return EXIT_USAGE
    return EXIT_PLAN_CHANGES if result.has_changes else EXIT_OK


# ------------------------------------------------------------------------ simulate


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", default="sim-token", show_default=True, help="The one valid API token.")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Requests per window per token.",
)
@click.option(
    "--window-seconds",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Length of the fixed rate window (simulated seconds).",
)
@click.option(
    "--build-seconds",
    type=click.FloatRange(min=0),
    default=40.0,
    show_default=True,
    help="Mean build duration (simulated seconds).",
)
@click.option(
    "--build-spread",
    type=click.FloatRange(min=0),
    default=0.25,
    show_default=True,
    help="Relative spread of build durations.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (60: a 60 s window lasts 1 s).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--retry-after", is_flag=True, help="Send Retry-After on 429 (the real API does not)."
)
@click.option("--vm-limit", type=click.IntRange(min=0), help="acme's policy limit of VMs.")
@click.option("--fault-5xx", type=click.FloatRange(0, 1), default=0.0, help="Rate of JSON 500/503.")
@click.option(
    "--fault-html-502",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of proxy-style HTML 502 pages.",
)
@click.option(
    "--fault-slow",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of responses delayed by --slow-seconds.",
)
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=5.0, show_default=True)
@click.option(
    "--fault-reset-before",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of connections dropped before acting.",
)
@click.option(
    "--fault-reset-after",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of connections dropped after acting (the ambiguous POST).",
)
@click.option(
    "--fault-truncated",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of cut-off bodies after acting.",
)
@click.option(
    "--fault-build-fail",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of builds that end failed.",
)
@click.option(
    "--fault-build-hang",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Rate of builds that never finish.",
)
@click.option(
    "--burst-429-every",
    type=click.IntRange(min=1),
    help="After every N requests, answer the next --burst-429-length with 429.",
)
@click.option("--burst-429-length", type=click.IntRange(min=0), default=5, show_default=True)
def simulate(**options: Any) -> int:
    """Run the Katapult simulator as a standalone HTTP server until interrupted."""
    from orchestrator.simulator import FaultConfig, SimulatorConfig, serve

    faults = FaultConfig(
        error_5xx_rate=options["fault_5xx"],
        html_502_rate=options["fault_html_502"],
        slow_rate=options["fault_slow"],
        slow_seconds=options["slow_seconds"],
        reset_before_rate=options["fault_reset_before"],
        reset_after_rate=options["fault_reset_after"],
        truncated_body_rate=options["fault_truncated"],
        build_fail_rate=options["fault_build_fail"],
        build_hang_rate=options["fault_build_hang"],
        burst_429_every=options["burst_429_every"],
        burst_429_length=options["burst_429_length"],
    )
    config = SimulatorConfig(
        token=options["token"],
        rate_limit=options["rate_limit"],
        window_seconds=options["window_seconds"],
        retry_after=options["retry_after"],
        time_scale=options["time_scale"],
        build_seconds=options["build_seconds"],
        build_spread=options["build_spread"],
        seed=options["seed"],
        faults=faults,
        vm_limit=options["vm_limit"],
    )

    def ready(url: str) -> None:
        click.echo(f"listening on {url}")
        sys.stdout.flush()

    async def main_async() -> None:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            await serve(config, host=options["host"], port=options["port"], ready=ready)
            tg.cancel_scope.cancel()

    try:
        anyio.run(main_async)
    except OSError as exc:
        return _fail(f"cannot listen on {options['host']}:{options['port']}: {exc.strerror}")
    _err.print("simulator stopped")
    return EXIT_OK


# -------------------------------------------------------------------------- status


@cli.command()
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
def status(journal: Path) -> int:
    """Show what JOURNAL holds: runs, and per VM its state, ids and last error."""
    from orchestrator.engine.journal import read_journal, render_status

    try:
        snapshot = read_journal(journal)
    except JournalError as exc:
        return _fail(str(exc))
    render_status(snapshot, _out())
    return EXIT_OK


# -------------------------------------------------------------------------- report


@cli.group()
def report() -> None:
    """Work with report.json files."""


@report.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
def report_diff(old: Path, new: Path) -> int:
    """What changed from OLD to NEW: newly failed, fixed, still failing, missing.

    Exit code 1 when something newly failed, else 0.
    """
    from orchestrator.report import diff_reports, load_report, render_diff

    try:
        before, after = load_report(old), load_report(new)
    except ReportError as exc:
        return _fail(str(exc))
    diff = diff_reports(before, after)
    render_diff(diff, _out())
    return EXIT_FAILED if diff.has_new_failures else EXIT_OK


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    try:
        code = cli.main(args=argv, prog_name="orchestrator", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        return EXIT_CANCELLED
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), EXIT_FAILED)
    return int(code) if isinstance(code, int) else EXIT_OK
