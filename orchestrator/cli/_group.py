"""The ``orchestrator`` click group, and the options and types its commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orchestrator._about import API_TARGET, DISTRIBUTION, distribution_version
from orchestrator._duration import parse_duration
from orchestrator._simulated import SIMULATED_TIME_SCALE
from orchestrator.cli._exit_codes import EXIT_CODES, _exit_codes


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
@click.version_option(
    distribution_version(),
    prog_name="orchestrator",
    message=f"%(prog)s %(version)s ({DISTRIBUTION}), for the {API_TARGET}",
    help="Show the version and the API it targets, and exit.",
)
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
            "per line for machines; the one-line 'error:' and 'warning:' messages stay text "
            "either way, and nothing is logged on stdout. Env: ORCHESTRATOR_LOG_FORMAT.",
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


def _fleet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--fleet NAME``; the command gets ``fleet: str | None``."""
    return click.option(
        "--fleet",
        "fleet",
        metavar="NAME",
        help="The fleet these VMs are (overrides the spec's fleet = ...): every build carries "
        "it in its annotations, and destroy deletes only VMs that carry it or that this "
        "fleet's builds created. Unnamed, a fleet gets an identity of its own at its first "
        "build, kept in its journal.",
    )(func)


def _state_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--state PATH|URL``; the command gets ``state: str | None``."""
    return click.option(
        "--state",
        "state",
        metavar="PATH|URL",
        help="Where the fleet's state (journal and lock) lives: a journal's path, or a "
        "postgresql:// URL of a database that keeps every named fleet's state, for runs "
        "from many machines (its password: in the URL, PGPASSWORD or ~/.pgpass; never "
        "shown). Env: ORCHESTRATOR_STATE.",
    )(func)


def state_flag(location: object) -> str:
    """The flag that names ``location`` in messages: ``--state`` for a database, else
    ``--journal``."""
    from orchestrator.engine.state.location import PostgresState

    return "--state" if isinstance(location, PostgresState) else "--journal"


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
