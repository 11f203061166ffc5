"""The async side of ``run`` and ``destroy``: the simulator when asked for, the
engine, progress, signals (a first stops new work, a second exits at once), and
the errors that end a run as an exit code."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator._logging import get_logger
from orchestrator._simulated import SIMULATED_TIME_SCALE, simulated_settings
from orchestrator.cli._console import CliExit, _err, _expected_error, _fail
from orchestrator.cli._exit_codes import EXIT_CANCELLED, EXIT_OK, exit_code_for
from orchestrator.cli._progress import log_progress, show_progress
from orchestrator.cli._results import _finish_run
from orchestrator.cli._signals import Signals, handle_sigterm
from orchestrator.cli._simulator_options import simulator_config
from orchestrator.engine.state.location import PostgresState
from orchestrator.errors import JournalError, OrchestratorError

if TYPE_CHECKING:
    from orchestrator.cli._destroy import _Destroy
    from orchestrator.cli._prune import _Prune
    from orchestrator.cli._verdict import Verdict
    from orchestrator.engine.state.location import StateLocation
    from orchestrator.settings import Settings
    from orchestrator.spec import Spec


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


async def _run_async(
    settings: Settings,
    spec: Spec,
    journal_path: StateLocation | None,
    only_keys: set[str] | None,
    simulate: bool,
    readings: dict[str, Any] | None = None,
    destroying: _Destroy | None = None,
    journal_rebind: bool = False,
    verdict: Verdict | None = None,
    pruning: _Prune | None = None,
) -> int:
    signals = Signals(settings)
    code = EXIT_OK
    failure: CliExit | None = None
    # the signal watcher is on from the first moment until the results are out
    async with anyio.create_task_group() as watcher:
        watcher.start_soon(signals.watch)
        try:
            async with AsyncExitStack() as stack:
                code = await _run_in(
                    stack,
                    signals,
                    settings,
                    spec,
                    journal_path,
                    only_keys,
                    simulate,
                    readings,
                    destroying,
                    journal_rebind,
                    verdict,
                    pruning,
                )
        except (OrchestratorError, BaseExceptionGroup) as raw:
            error = _expected_error(raw)
            if error is None:
                raise
            # raised once the watcher is gone: ``_main`` (and run's verdict) take it
            failure = CliExit(_error_text(error, journal_path), exit_code_for(error))
        finally:
            watcher.cancel_scope.cancel()
    if failure is not None and signals.interrupted:
        _fail(failure.message or "", failure.code)
    elif failure is not None:
        raise failure
    return EXIT_CANCELLED if signals.interrupted else code


async def _run_in(
    stack: AsyncExitStack,
    signals: Signals,
    settings: Settings,
    spec: Spec,
    journal_path: StateLocation | None,
    only_keys: set[str] | None,
    simulate: bool,
    readings: dict[str, Any] | None,
    destroying: _Destroy | None,
    journal_rebind: bool,
    verdict: Verdict | None,
    pruning: _Prune | None = None,
) -> int:
    """The run itself, from the simulator (if any) to the results written (and, with
    ``--prune``, the deletes of what the spec no longer lists, and their results)."""
    from orchestrator.engine import Orchestrator

    if simulate:
        settings = await _simulated(stack, settings, readings)
    orch = signals.orch = await stack.enter_async_context(Orchestrator(settings))
    if signals.interrupted:  # before anything was sent
        return EXIT_CANCELLED
    if destroying is not None and not await destroying.confirmed(orch, spec):
        return EXIT_CANCELLED
    async with anyio.create_task_group() as tg:
        if settings.output.progress and settings.output.log_format == "json":
            # the stream stays JSON: progress is a log event, not a text line
            tg.start_soon(lambda: log_progress(orch.statistics, run_id=signals.current_run_id))
        elif settings.output.progress:
            tg.start_soon(show_progress, orch.statistics, _err)
        if destroying is not None:
            result = await destroying.destroy(orch, spec, journal_path)
        else:
            result = await orch.run(
                spec, journal=journal_path, only_keys=only_keys, journal_rebind=journal_rebind
            )
        tg.cancel_scope.cancel()
    signals.finishing = True
    code = await _finish_run(
        settings, orch, result, journal_path, simulate, spec, verdict, cancelled=signals.interrupted
    )
    if pruning is None or journal_path is None or signals.interrupted:
        return code
    signals.finishing = False
    pruned = await pruning.prune(orch, spec, journal_path, result)
    signals.finishing = True
    if pruned is None:
        return code
    pruned_code = await _finish_run(
        pruning.settings_for(settings), orch, pruned, journal_path, simulate, spec, None
    )
    return code if code != EXIT_OK else pruned_code


def _error_text(error: OrchestratorError, journal_path: StateLocation | None) -> str:
    """The error's line; a journal file's refusal says how to name another (a database's
    names its fleet and URL: another fleet or state is the way out, which it says)."""
    text = str(error)
    file_journal = not isinstance(journal_path, PostgresState)
    if isinstance(error, JournalError) and file_journal and "--journal" not in text:
        return f"{text} (--journal PATH names another journal)"
    return text


_handle_sigterm = handle_sigterm  # (what run and destroy call once anyio.run returns)
