"""The ``orchestrator`` command: parse, load settings, call one library entry point, render.

Every command returns its exit code (see :data:`EXIT_CODES`); expected
failures (:class:`~orchestrator.errors.OrchestratorError`) become a message and
a code, never a traceback. Anything else is a bug and crashes loudly.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click
from rich.console import Console

from orchestrator import __version__
from orchestrator._duration import parse_duration
from orchestrator._logging import configure_logging, get_logger
from orchestrator._pipes import pipe_safe_streams
from orchestrator._progress import log_progress, show_progress
from orchestrator._simulated import SIMULATED_TIME_SCALE, simulated_settings
from orchestrator._simulator_options import (
    FAULT_RATES,
    fault_rate_options,
    reading_options,
    readings_given,
    simulator_config,
)
from orchestrator.errors import (
    AuthenticationError,
    ConfigError,
    JournalError,
    LimitError,
    OrchestratorError,
    PermissionDenied,
    ReportError,
    SpecError,
)

if TYPE_CHECKING:
    from orchestrator.engine import Orchestrator
    from orchestrator.report import Report
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec
    from orchestrator.vm_request import VmRequest

__all__ = ["EXIT_CODES", "cli", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PLAN_CHANGES = 4
EXIT_CANCELLED = 130

#: Every exit code of the command, and when it is used.
EXIT_CODES = {
    EXIT_OK: "every VM succeeded or already existed (plan: nothing to build)",
    EXIT_FAILED: "some VMs failed or were not built (the report says which); "
    "report diff: something newly failed; plan: the API could not be read",
    EXIT_USAGE: "bad usage, spec or config: nothing was submitted (plan: problems found)",
    EXIT_AUTH: "authentication or permission stopped the whole run",
    EXIT_PLAN_CHANGES: "plan only: there are VMs to build",
    EXIT_CANCELLED: "interrupted (Ctrl-C, SIGTERM): report and journal still written",
}

#: VMs shown by ``status`` without ``--all``.
_STATUS_ROWS = 50

#: Width of tables written to a pipe or a file (a terminal's own width is used on a terminal).
_PIPE_WIDTH = 160

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = _PIPE_WIDTH
    return console


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    _err.print(f"error: {message}", markup=False)
    return code


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _expected_error(exc: BaseException) -> OrchestratorError | None:
    """``exc`` (or, for a task group's exception group, its most telling member) when
    every error in it is one we raise on purpose; None for anything else (a bug)."""
    leaves = list(_leaves(exc))
    errors = [leaf for leaf in leaves if isinstance(leaf, OrchestratorError)]
    if not errors or len(errors) != len(leaves):
        return None
    for error in errors:
        if isinstance(error, AuthenticationError | PermissionDenied):
            return error
    return errors[0]


class _Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
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


def _exit_codes(*codes: tuple[int, str]) -> str:
    lines = "\n".join(f"  {code:<4} {text}" for code, text in codes)
    return f"\b\nExit codes:\n{lines}"


_PRECEDENCE = (
    "Every option can also come from the environment or from the --config file: "
    "a flag wins over the environment, which wins over the file "
    "(config.example.toml lists every setting)."
)

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    context_settings=_CONTEXT,
    epilog="\b\nStart here (no account, no network, nothing real is built):\n"
    "  orchestrator run --simulate specs/example.toml\n\n"
    "`orchestrator COMMAND --help` explains each command.\n\n" + _exit_codes(*EXIT_CODES.items()),
)
@click.version_option(__version__, prog_name="orchestrator")
def cli() -> None:
    """Provision Katapult virtual machines in bulk, exactly once.

    You list the VMs you want in a spec file (TOML, YAML or JSON); `run` builds
    each one that does not exist yet, within the API's rate limit, waits for
    every build, and writes a report. A rerun never builds a VM twice.

    Against the real API, set KATAPULT_API_KEY (and KATAPULT_ORGANIZATION if
    the spec names no organization).
    """


def _common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config",
            "config_file",
            metavar="FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="ORCHESTRATOR_CONFIG",
            help="TOML config file with [katapult], [engine] and [output] tables. "
            "Env: ORCHESTRATOR_CONFIG.",
        ),
        click.option(
            "--api-url",
            metavar="URL",
            help="API base URL (default https://api.katapult.io/core/v1/; plain http:// only "
            "to 127.0.0.1 or localhost). Env: KATAPULT_API_URL.",
        ),
        click.option(
            "--organization",
            metavar="ORG",
            help="Organization for spec entries that name none (sub_domain or org_ id). "
            "Env: KATAPULT_ORGANIZATION.",
        ),
        click.option(
            "--simulate",
            is_flag=True,
            help="Start the built-in Katapult simulator in-process and use it instead of the "
            f"API: no token, no network, nothing real is built; time runs "
            f"{SIMULATED_TIME_SCALE:g}x faster.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["console", "json"]),
            help="Log lines on stderr for people (console, the default) or one JSON object "
            "per line for machines. Env: ORCHESTRATOR_LOG_FORMAT.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            help="Least severe level logged (default info). Env: ORCHESTRATOR_LOG_LEVEL.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(config_file: Path | None, overrides: dict[str, Any]) -> tuple[Any, int | None]:
    from orchestrator.settings import SettingsWarning, load_settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SettingsWarning)
        try:
            settings = load_settings(config_file=config_file, overrides=overrides)
        except ConfigError as exc:
            settings = None
            error = str(exc)
    for warning in caught:
        if issubclass(warning.category, SettingsWarning):
            _err.print(f"warning: {warning.message}", markup=False)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if settings is None:
        return None, _fail(error)
    token = settings.katapult.api_token
    configure_logging(
        fmt=settings.output.log_format,
        level=settings.output.log_level,
        secrets=[token.get_secret_value()] if token is not None else [],
    )
    return settings, None


def _load_spec(path: str, settings: Settings) -> tuple[Any, int | None]:
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


def _limit_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--limit PATTERN`` (repeatable); the command gets ``limit: tuple[str, ...]``."""
    return click.option(
        "--limit",
        "limit",
        metavar="PATTERN",
        multiple=True,
        help="Only the VMs whose hostname matches this glob (web-*, db-0[1-3]); repeat it "
        "or separate patterns with commas. A pattern that matches no VM of the spec is an "
        "error (exit 2).",
    )(func)


def _output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--output text|json``; the command gets ``output: str``."""
    return click.option(
        "--output",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, or one JSON object on stdout for scripts (its shape is in "
        "docs/json-output.md; errors still go to stderr with the same exit codes).",
    )(func)


def _print_json(data: dict[str, Any]) -> None:
    from orchestrator._json_output import dumps

    click.echo(dumps(data), nl=False)


def _limited(spec: Spec, limit: tuple[str, ...]) -> tuple[list[VmRequest], int | None]:
    """The VMs of ``spec`` selected by ``--limit`` (all of them when there is none)."""
    from orchestrator.spec import limit_vms

    try:
        return limit_vms(spec.vms, limit), None
    except LimitError as exc:
        return [], _fail(f"{spec.path}: {exc}")


def _unwritable(*outputs: tuple[str, Path | None]) -> int | None:
    """Exit 2 naming the first output that cannot be written; None when all can.

    Found now, before anything is sent, not after every VM was built.
    """
    from orchestrator.report._atomic import check_writable

    for label, path in outputs:
        problem = None if path is None else check_writable(path)
        if problem is not None:
            return _fail(f"cannot write the {label} {path}: {problem}")
    return None


_NO_CREDENTIALS = (
    "no API token: set KATAPULT_API_KEY (or katapult.api_token in the --config file), "
    "or add --simulate to try the built-in simulator"
)


async def _simulated(
    stack: AsyncExitStack, settings: Settings, readings: dict[str, Any] | None = None
) -> Settings:
    """Start the in-process simulator; ``settings`` pointed at it, durations scaled."""
    from orchestrator.simulator import run_simulator

    config = simulator_config(readings, time_scale=SIMULATED_TIME_SCALE)
    sim = await stack.enter_async_context(run_simulator(config))
    if settings.output.log_format == "json":
        get_logger("orchestrator.cli").info(
            "orchestrator.simulator.started", url=sim.url, time_scale=SIMULATED_TIME_SCALE
        )
    else:
        _err.print(
            f"simulator: {sim.url} (time runs {SIMULATED_TIME_SCALE:g}x faster; "
            "nothing real is built)",
            markup=False,
        )
    return simulated_settings(settings, sim.url, sim.config.token, SIMULATED_TIME_SCALE)


# ----------------------------------------------------------------------------- run

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
            "was reached, or the journal could not be written",
        ),
        (
            EXIT_USAGE,
            "bad usage, spec or config, an output path that cannot be written, or a journal "
            "in use, of another API or organization, or that lost records: nothing was "
            "submitted",
        ),
        (EXIT_AUTH, "the token or its permissions stopped the whole run"),
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
    help="At most N builds submitted and not finished (default 200; the rate budget is "
    "the real limit). Env: ORCHESTRATOR_MAX_IN_FLIGHT.",
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
@reading_options
@_limit_option
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
    journal_rebind: bool,
    max_in_flight: int | None,
    retry_failed: Path | None,
    no_progress: bool,
    deadline: float | None,
    junit: Path | None,
    metrics: Path | None,
    metrics_mode: str | None,
    inventory: Path | None,
    wait_until_started: bool | None,
    readings: dict[str, Any],
    limit: tuple[str, ...],
) -> int:
    """Build every VM of SPEC that does not exist yet, wait for each, write the report.

    SPEC is a TOML, YAML or JSON file listing the VMs (see specs/ for examples).
    The summary goes to stdout, progress and log lines to stderr; report.json
    holds every VM's outcome, ids and, for a failure, the API's own error.
    """
    if journal is not None and no_journal:
        return _fail("--journal and --no-journal contradict each other: choose one")
    if not simulate and readings_given(readings):
        return _fail(f"{', '.join(readings_given(readings))}: only with --simulate")
    if simulate:
        try:
            simulator_config(readings)
        except ValueError as exc:
            return _fail(f"simulator options: {exc}")
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
            "output.metrics_mode": metrics_mode,
            "output.inventory": inventory,
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
    if limit:
        selected, code = _limited(loaded, limit)
        if code is not None:
            return code
        # the others are reported skipped/not_selected (or as the journal has them)
        keys = {vm.key for vm in selected}
        only_keys = keys if only_keys is None else only_keys & keys
    journal_path: Path | None
    if no_journal:
        journal_path = None
    elif simulate:
        # a simulated run's journal must never be mistaken for a real one's
        journal_path = settings.output.journal
    else:
        journal_path = settings.journal_path()
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    output = settings.output
    code = _unwritable(
        ("report", output.report),
        ("journal", journal_path),
        ("JUnit file", output.junit),
        ("metrics file", output.metrics),
        ("inventory", output.inventory),
    )
    if code is not None:
        return code
    try:
        return anyio.run(
            functools.partial(_run_async, journal_rebind=journal_rebind),
            settings,
            loaded,
            journal_path,
            only_keys,
            simulate,
            readings,
        )
    finally:
        _handle_sigterm()  # asyncio put SIGTERM back to its default (death) on leaving


async def _run_async(
    settings: Settings,
    spec: Spec,
    journal_path: Path | None,
    only_keys: set[str] | None,
    simulate: bool,
    readings: dict[str, Any] | None = None,
    destroying: _Destroy | None = None,
    journal_rebind: bool = False,
) -> int:
    from orchestrator.engine import Orchestrator

    interrupted = False
    finishing = False  # the run is over: the results are being written
    orch: Orchestrator | None = None

    async def watch_signals() -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if finishing:
                    # a report cut short helps nobody: it takes a moment
                    interrupted = True
                    _err.print(f"{name}: the results are being written", markup=False)
                    continue
                if interrupted:
                    _err.print("second interrupt: exiting at once", markup=False)
                    _err.show_cursor(True)  # a live progress line had hidden it
                    os._exit(EXIT_CANCELLED)
                interrupted = True
                if settings.output.log_format == "json":
                    get_logger("orchestrator.cli").warning("orchestrator.run.stopping", signal=name)
                else:
                    _err.print(
                        f"{name}: stopping - no new builds; builds in flight are recorded "
                        "and the report is written (Ctrl-C again exits at once)",
                        markup=False,
                    )
                if orch is not None:
                    orch.request_stop("interrupted")

    def current_run_id() -> str | None:
        run = orch.current_run if orch is not None else None
        return run.run_id if run is not None else None

    code = EXIT_OK
    # the signal watcher is on from the first moment until the results are out
    async with anyio.create_task_group() as watcher:
        watcher.start_soon(watch_signals)
        try:
            async with AsyncExitStack() as stack:
                if simulate:
                    settings = await _simulated(stack, settings, readings)
                orch = await stack.enter_async_context(Orchestrator(settings))
                if interrupted:  # before anything was sent
                    watcher.cancel_scope.cancel()
                    return EXIT_CANCELLED
                if destroying is not None and not await destroying.confirmed(orch, spec):
                    watcher.cancel_scope.cancel()
                    return EXIT_CANCELLED
                async with anyio.create_task_group() as tg:
                    if settings.output.progress and settings.output.log_format == "json":
                        # the stream stays JSON: progress is a log event, not a text line
                        statistics = orch.statistics
                        tg.start_soon(lambda: log_progress(statistics, run_id=current_run_id))
                    elif settings.output.progress:
                        tg.start_soon(show_progress, orch.statistics, _err)
                    if destroying is not None:
                        result = await destroying.destroy(orch, spec, journal_path)
                    else:
                        result = await orch.run(
                            spec,
                            journal=journal_path,
                            only_keys=only_keys,
                            journal_rebind=journal_rebind,
                        )
                    tg.cancel_scope.cancel()
                finishing = True
                code = await _finish_run(settings, orch, result, journal_path, simulate, spec)
        except (OrchestratorError, BaseExceptionGroup) as raw:
            error = _expected_error(raw)
            if error is None:
                raise
            if isinstance(error, AuthenticationError | PermissionDenied):
                code = _fail(str(error), EXIT_AUTH)
            elif isinstance(error, JournalError):
                hint = " (--journal PATH names another journal)"
                code = _fail(f"{error}{'' if '--journal' in str(error) else hint}", EXIT_USAGE)
            elif isinstance(error, SpecError):  # an SSH key or tag the organization lacks
                code = _fail(str(error), EXIT_USAGE)
            else:
                code = _fail(str(error), EXIT_FAILED)
        finally:
            watcher.cancel_scope.cancel()
    return EXIT_CANCELLED if interrupted else code


async def _finish_run(
    settings: Settings,
    orch: Orchestrator,
    result: Report,
    journal_path: Path | None,
    simulate: bool,
    spec: Spec,
) -> int:
    """Write every result file, then print the summary; the exit code by the VMs' outcome."""
    from orchestrator.report import (
        render_summary,
        write_inventory,
        write_junit,
        write_metrics,
        write_report,
    )

    output = settings.output
    code = EXIT_OK
    report_path: Path | None = output.report
    metrics = functools.partial(write_metrics, mode=output.metrics_mode)

    def inventory(report: Report, path: Path) -> None:
        write_inventory(report, spec.vms, path)

    with anyio.CancelScope(shield=True):
        written = await _write_result(write_report, result, output.report, "report")
        if written is None:
            report_path = await _write_fallback_report(result)
            code = EXIT_FAILED
        for write, path, label in (
            (write_junit, output.junit, "JUnit file"),
            (metrics, output.metrics, "metrics file"),
            (inventory, output.inventory, "inventory"),
        ):
            if path is not None and await _write_result(write, result, path, label) is None:
                code = EXIT_FAILED
    run_info = orch.current_run
    if run_info is not None and run_info.journal_error is not None:
        _fail(
            f"{run_info.journal_error}; the run stopped submitting and the report says "
            "where each VM stands",
            EXIT_FAILED,
        )
    out = _out()
    render_summary(result, out, report_path=str(report_path) if report_path else None)
    if report_path is not None:
        out.print(f"report written to {report_path}", markup=False)
    if output.inventory is not None and code == EXIT_OK:
        out.print(f"inventory written to {output.inventory}", markup=False)
    hint = None if simulate else _unfinished_hint(result, journal_path)
    if hint:
        out.print(hint, markup=False)
    if code != EXIT_OK:
        return code
    if run_info is not None and run_info.doomed_run is not None:
        category, cause = run_info.doomed_run
        if category == "network":  # the API URL cannot work: say why, once
            return _fail(cause.description or "the API cannot be reached", EXIT_FAILED)
        return EXIT_AUTH
    if result.summary.failed or result.summary.cancelled or result.interrupted:
        return EXIT_FAILED
    return EXIT_OK


async def _write_result(
    write: Callable[[Report, Path], None], report: Report, path: Path, label: str
) -> Path | None:
    """Write one result file; on failure say why (naming the user's path) and return None."""
    try:
        await anyio.to_thread.run_sync(write, report, path)
    except (OSError, ReportError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail(f"cannot write the {label} {path}: {why}", EXIT_FAILED)
        return None
    return path


async def _write_fallback_report(report: Report) -> Path | None:
    """The report where it can be written when its own path cannot (a full disk)."""
    from orchestrator.report import write_report

    fallback = Path(tempfile.gettempdir()) / f"orchestrator-report-{report.run_id}.json"
    written = await _write_result(write_report, report, fallback, "report")
    if written is not None:
        _err.print(f"the report was written to {fallback} instead", markup=False)
    return written


# ------------------------------------------------------------------------- destroy

_DESTROY_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator destroy fleet.toml                  # shows what it deletes, asks first\n"
    "  orchestrator destroy --yes --purge fleet.toml    # in a script; frees the hostnames\n"
    "  orchestrator destroy fleet.toml --limit 'web-*'  # only these hostnames\n"
    "\n"
    "Only VMs this fleet built are deleted: their annotations say so, or (where the API\n"
    "keeps no annotations) the build journal recorded them. Any other VM with a\n"
    "hostname of the spec is left untouched and reported failed/conflict (not_ours).\n"
    "\n"
    + _exit_codes(
        (EXIT_OK, "every VM of the spec that this fleet built is deleted (or was absent)"),
        (EXIT_FAILED, "some VMs were not deleted (the report says which and why)"),
        (EXIT_USAGE, "bad usage, spec or config; no --yes without a terminal"),
        (EXIT_AUTH, "the token or its permissions were refused"),
        (EXIT_CANCELLED, "not confirmed, or interrupted (the report is still written)"),
    )
)


@dataclass(frozen=True)
class _Destroy:
    """What ``destroy`` does where ``run`` builds: confirm, then delete through the engine."""

    build_journal: Path | None
    purge: bool
    yes: bool
    fleet: str | None
    #: ``--limit``: only these keys (None: every VM of the spec)
    only_keys: set[str] | None = None

    async def confirmed(self, orch: Any, spec: Spec) -> bool:
        """Show the selected hostnames that exist now; ask unless ``--yes``."""
        wanted = [vm for vm in spec.vms if self.only_keys is None or vm.key in self.only_keys]
        found: list[str] = []
        for org in {vm.organization for vm in wanted}:
            names = {vm.hostname.lower() async for vm in orch.client.list_vms(org) if vm.hostname}
            found += [vm.hostname for vm in wanted if vm.organization == org and vm.key in names]
        verb = "delete and purge" if self.purge else "delete (to the trash)"
        _err.print(
            f"{len(found)} of the {len(wanted)} hostnames selected exist; this will {verb} "
            "those this fleet built: " + (", ".join(sorted(found)) or "none"),
            markup=False,
        )
        if self.yes or not found:
            return True
        answer: bool = await anyio.to_thread.run_sync(
            lambda: click.confirm("Delete them?", default=False, err=True)
        )
        if not answer:
            _err.print("not confirmed: nothing was deleted", markup=False)
        return answer

    async def destroy(self, orch: Any, spec: Spec, journal: Path | None) -> Report:
        result: Report = await orch.destroy(
            spec,
            journal=journal,
            build_journal=self.build_journal,
            purge=self.purge,
            fleet=self.fleet,
            only_keys=self.only_keys,
        )
        return result


@cli.command(epilog=_DESTROY_EPILOG)
@click.argument("spec", type=click.Path(dir_okay=False))
@_common_options
@click.option(
    "--report",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("destroy-report.json"),
    show_default=True,
    help="Where to write the JSON report (same schema as run's, operation 'delete').",
)
@click.option(
    "--journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="This destroy's own journal, so an interrupted destroy resumes (default: the "
    "report's path + '.journal'; with --simulate, none unless given).",
)
@click.option(
    "--build-journal",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The journal of the runs that built the fleet (default report.json.journal when "
    "it exists), read only: it proves ownership where the API keeps no annotations.",
)
@click.option(
    "--purge",
    is_flag=True,
    help="Also purge each VM from the trash (frees its "
    "hostname at once; the trash otherwise keeps it for days).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@click.option(
    "--fleet",
    metavar="NAME",
    help="The fleet named in the VMs' orchestrator.spec annotation (default: the spec "
    "file's name without its suffix).",
)
@click.option("--no-progress", is_flag=True, help="No progress display.")
@_limit_option
@reading_options
def destroy(
    spec: str,
    config_file: Path | None,
    api_url: str | None,
    organization: str | None,
    simulate: bool,
    log_format: str | None,
    log_level: str | None,
    report: Path,
    journal: Path | None,
    build_journal: Path | None,
    purge: bool,
    yes: bool,
    fleet: str | None,
    no_progress: bool,
    limit: tuple[str, ...],
    readings: dict[str, Any],
) -> int:
    """Delete the VMs of SPEC that this fleet built, and only those; write the report.

    It shows what exists and asks before deleting (--yes for scripts). It uses
    the same rate budget, journal, report schema and exit codes as run, and is
    exactly-once too: a DELETE whose outcome is unknown is settled by looking
    the VM up. Deleted VMs go to the trash, which keeps their hostnames taken;
    --purge also purges them.
    """
    if not simulate and readings_given(readings):
        return _fail(f"{', '.join(readings_given(readings))}: only with --simulate")
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
        },
    )
    if code is not None:
        return code
    loaded, code = _load_spec(spec, settings)
    if code is not None:
        return code
    only_keys: set[str] | None = None
    if limit:
        selected, code = _limited(loaded, limit)
        if code is not None:
            return code
        only_keys = {vm.key for vm in selected}  # the others: skipped/not_selected
    if not yes and not sys.stdin.isatty():
        return _fail("destroy asks before deleting: pass --yes when not at a terminal")
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    journal_path = settings.output.journal if simulate else settings.journal_path()
    if build_journal is None and Path("report.json.journal").exists():
        build_journal = Path("report.json.journal")
    if build_journal is not None and not build_journal.is_file():
        return _fail(f"--build-journal {build_journal}: no such file")
    code = _unwritable(("report", settings.output.report), ("journal", journal_path))
    if code is not None:
        return code
    destroying = _Destroy(
        build_journal=build_journal, purge=purge, yes=yes, fleet=fleet, only_keys=only_keys
    )
    try:
        return anyio.run(
            functools.partial(_run_async, destroying=destroying),
            settings,
            loaded,
            journal_path,
            None,
            simulate,
            readings,
        )
    finally:
        _handle_sigterm()  # asyncio put SIGTERM back to its default (death) on leaving


def _unfinished_hint(report: Report, journal_path: Path | None) -> str | None:
    """What to do about the VMs a stopped run left cancelled."""
    reasons = Counter(vm.reason or "" for vm in report.vms if vm.outcome == "cancelled")
    if not reasons:
        return None
    parts = []
    if reasons["build_in_progress"]:
        parts.append(f"{reasons['build_in_progress']} still building on Katapult")
    if reasons["submission_outcome_unknown"]:
        parts.append(
            f"{reasons['submission_outcome_unknown']} submitted with no answer yet (they may exist)"
        )
    if reasons["not_submitted"]:
        parts.append(f"{reasons['not_submitted']} not submitted")
    other = sum(reasons.values()) - sum(
        reasons[r] for r in ("build_in_progress", "submission_outcome_unknown", "not_submitted")
    )
    if other:
        parts.append(f"{other} stopped for another reason")
    text = f"{sum(reasons.values())} VMs were not finished: " + ", ".join(parts) + ". "
    if journal_path is not None:
        return text + (
            f"To finish them, run the same command again: with the journal {journal_path} "
            "it follows the builds in progress and looks up uncertain submissions by "
            "hostname, so nothing is built twice."
        )
    return text + (
        "This run kept no journal: a rerun skips every VM that exists by then and builds "
        "the rest, but a VM whose build is still running may be reported as a conflict."
    )


# ---------------------------------------------------------------------------- plan

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
    selected, code = _limited(loaded, limit)
    if code is not None:
        return code
    if not simulate and settings.katapult.api_token is None:
        return _fail(_NO_CREDENTIALS)
    return anyio.run(_plan_async, settings, selected, simulate, output)


async def _plan_async(settings: Settings, vms: list[VmRequest], simulate: bool, output: str) -> int:
    from orchestrator._render import render_plan
    from orchestrator.engine import Orchestrator, make_plan

    async with AsyncExitStack() as stack:
        if simulate:
            settings = await _simulated(stack, settings)
        orch = await stack.enter_async_context(Orchestrator(settings))
        engine = settings.engine
        try:
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
            if isinstance(error, AuthenticationError | PermissionDenied):
                return _fail(str(error), EXIT_AUTH)
            return _fail(str(error), EXIT_FAILED)
    if output == "json":
        from orchestrator._json_output import plan_json

        _print_json(plan_json(result))
    else:
        render_plan(result, _out())
    if result.has_errors:
        return EXIT_USAGE
    return EXIT_PLAN_CHANGES if result.has_changes else EXIT_OK


# ------------------------------------------------------------------------ simulate

_SIMULATE_EPILOG = (
    "\b\nExamples:\n"
    "  orchestrator simulate --port 8080 --time-scale 20\n"
    "  KATAPULT_API_URL=http://127.0.0.1:8080/core/v1/ KATAPULT_API_KEY=sim-token \\\n"
    "    ORCHESTRATOR_RATE_WINDOW_SECONDS=3 ORCHESTRATOR_EXPECTED_BUILD_SECONDS=2 \\\n"
    "    ORCHESTRATOR_POLL_MIN_SECONDS=0.25 orchestrator run specs/example.toml\n"
    "  orchestrator simulate --port 0 --fault-reset-after 0.2 --seed 7   "
    "ambiguous POSTs, reproducibly\n"
    "\n"
    "With --time-scale N, divide the orchestrator's durations by N too (the window, the "
    "expected build time and the poll interval; the line printed on stderr once listening "
    "shows them). GET /_simulator/state tells what was really created. SIGINT or SIGTERM "
    "stops it.\n\n"
    + _exit_codes(
        (EXIT_OK, "stopped by SIGINT or SIGTERM"),
        (EXIT_USAGE, "bad options, or the address cannot be listened on"),
    )
)


@cli.command(epilog=_SIMULATE_EPILOG)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the 'listening on' line tells which).",
)
@click.option(
    "--token", default="sim-token", show_default=True, help="The one API token it accepts."
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Requests per window per token (the real API allows 1000 per minute).",
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
    type=click.FloatRange(min=0.001),
    default=40.0,
    show_default=True,
    help="Mean build duration (simulated seconds).",
)
@click.option(
    "--build-spread",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.25,
    show_default=True,
    help="Relative spread of build durations (0.25: +/- 25 %).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (60: a 60 s window lasts 1 s).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds ids, build durations and fault draws: same seed, same run.",
)
@click.option(
    "--retry-after", is_flag=True, help="Send Retry-After on 429 (the real API does not)."
)
@click.option(
    "--vm-limit",
    type=click.IntRange(min=0),
    help="Policy limit of VMs per organization (default: none).",
)
@click.option(
    "--stop-seconds",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Simulated seconds a stop or shutdown task takes.",
)
@click.option(
    "--purge-seconds",
    type=click.FloatRange(min=0),
    default=4.0,
    show_default=True,
    help="Simulated seconds a purge from the trash takes.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Real seconds a slow answer is held.",
)
@click.option(
    "--burst-429-every",
    metavar="N",
    type=click.IntRange(min=1),
    help="After every N requests, answer the next --burst-429-length with 429 "
    "(as if another client drained the budget).",
)
@click.option(
    "--burst-429-length",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Requests refused by each 429 burst.",
)
@fault_rate_options
@reading_options
def simulate(readings: dict[str, Any], **options: Any) -> int:
    """Run the Katapult simulator as a standalone HTTP server until stopped.

    It serves the routes of Core API v1 the orchestrator uses, with the API's
    error envelopes, status codes and rate-limit headers, over a seeded
    catalogue (organization acme; data centers uk-lon-01, nl-ams-01,
    us-nyc-01; packages rock-1, rock-3, rock-6; ...). The first line on stdout
    is `listening on http://HOST:PORT/core/v1/`. The --fault-* rates are
    probabilities per request (per build for --fault-build-*). The reading
    options (--hostname-taken-at ... --pessimistic) play the API's unconfirmed
    behaviours.
    """
    from orchestrator.simulator import FaultConfig, SimulatorConfig, listening_line, serve

    try:
        faults = FaultConfig(
            **{field: options[field] for _, field, _ in FAULT_RATES},
            slow_seconds=options["slow_seconds"],
            burst_429_every=options["burst_429_every"],
            burst_429_length=options["burst_429_length"],
        )
        config = simulator_config(
            readings,
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
            stop_seconds=options["stop_seconds"],
            purge_seconds=options["purge_seconds"],
        )
    except ValueError as exc:
        return _fail(f"simulator options: {exc}")

    def ready(url: str) -> None:
        click.echo(listening_line(url))
        sys.stdout.flush()
        default = SimulatorConfig().token
        key = default if config.token == default else "<your --token>"
        _err.print(
            f"try: KATAPULT_API_URL={url} KATAPULT_API_KEY={key}{_scaled_env(config.time_scale)} "
            "orchestrator run specs/example.toml",
            markup=False,
        )

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
    except (OSError, BaseExceptionGroup) as raw:
        # the server starts inside a task group: a bind error may come grouped
        leaves = list(_leaves(raw))
        if not all(isinstance(leaf, OSError) for leaf in leaves):
            raise
        reason = "; ".join(
            str(leaf.strerror or leaf) for leaf in leaves if isinstance(leaf, OSError)
        )
        return _fail(f"cannot listen on {options['host']}:{options['port']}: {reason}")
    _err.print("simulator stopped", markup=False)
    return EXIT_OK


def _scaled_env(scale: float) -> str:
    """The environment that scales a run's durations like a simulator's clock."""
    if scale == 1:
        return ""
    from orchestrator.settings import EngineSettings

    engine = EngineSettings()
    return (
        f" ORCHESTRATOR_RATE_WINDOW_SECONDS={engine.rate_window_seconds / scale:g}"
        f" ORCHESTRATOR_EXPECTED_BUILD_SECONDS={engine.expected_build_seconds / scale:g}"
        f" ORCHESTRATOR_POLL_MIN_SECONDS={engine.poll_min_seconds / scale:g}"
    )


# -------------------------------------------------------------------------- status


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
    from orchestrator.engine.journal import read_journal, render_status

    try:
        snapshot = read_journal(journal)
    except JournalError as exc:
        return _fail(str(exc))
    if output == "json":
        from orchestrator._json_output import status_json

        _print_json(status_json(snapshot))
        return EXIT_OK
    out = _out()
    render_status(snapshot, out, limit=None if show_all else _STATUS_ROWS)
    if not show_all and len(snapshot.entries) > _STATUS_ROWS:
        out.print(f"(orchestrator status --all {journal} shows every VM)", markup=False)
    return EXIT_OK


# -------------------------------------------------------------------------- report


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
        from orchestrator._json_output import diff_json

        _print_json(diff_json(diff, old=(old, before), new=(new, after)))
    else:
        render_diff(diff, _out())
    return EXIT_FAILED if diff.has_new_failures else EXIT_OK


# ---------------------------------------------------------------------------- main


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _handle_sigterm() -> signal.Handlers | Callable[..., Any] | int | None:
    """Make SIGTERM raise KeyboardInterrupt like SIGINT (in the main thread only); return
    the handler it had (None: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


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
