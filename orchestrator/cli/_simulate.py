"""``orchestrator simulate``: the Katapult simulator as a standalone HTTP server."""

from __future__ import annotations

import signal
import sys
from typing import Any

import anyio
import click

from orchestrator.cli._console import _err, _fail, _leaves
from orchestrator.cli._exit_codes import EXIT_OK, EXIT_USAGE, _exit_codes
from orchestrator.cli._group import cli
from orchestrator.cli._simulator_options import (
    FAULT_RATES,
    fault_rate_options,
    reading_options,
    simulator_config,
)

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
@click.option(
    "--existing-vms",
    metavar="N",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="VMs organization acme holds from the start (existing-00001 ...): a shared organization.",
)
@click.option(
    "--existing-vms-fleet",
    metavar="FLEET",
    help="Annotate those VMs as another orchestrator fleet's (orchestrator.spec=FLEET).",
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
            existing_vms=options["existing_vms"],
            existing_vms_fleet=options["existing_vms_fleet"],
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
