"""The library logs through the standard ``logging`` machinery: silent unless configured."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import pytest
import stamina.instrumentation
import structlog

from orchestrator._logging import configure_logging, get_logger
from orchestrator.engine import Orchestrator
from orchestrator.engine._retry import retry_get
from orchestrator.errors import ApiConnectError
from orchestrator.simulator import FaultConfig, SimulatorConfig, run_simulator

from .conftest import SCALE, settings_for, vms

pytestmark = pytest.mark.anyio


def _sim(**kw: object) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(time_scale=SCALE, seed=7), **kw)  # type: ignore[arg-type]


async def test_the_library_prints_nothing_unless_logging_is_configured(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With structlog and logging left as they are, a run with failures writes nothing."""
    structlog.reset_defaults()
    async with (
        run_simulator(_sim(faults=FaultConfig(build_fail_rate=0.3))) as sim,
        Orchestrator(settings_for(sim)) as orch,
    ):
        report = await orch.run(vms(10))
    assert report.summary.failed, "the seed should fail some builds"
    assert capfd.readouterr() == ("", "")


async def test_standard_logging_gets_the_records(caplog: pytest.LogCaptureFixture) -> None:
    """Configured with the standard logging only: a record per outcome, failures at warning,
    each naming its run; the level set for 'orchestrator' filters them."""
    caplog.set_level(logging.INFO, logger="orchestrator")
    async with (
        run_simulator(_sim(faults=FaultConfig(build_fail_rate=0.3))) as sim,
        Orchestrator(settings_for(sim)) as orch,
    ):
        report = await orch.run(vms(10))
    run_id = report.run_id
    records = [r for r in caplog.records if r.name.startswith("orchestrator")]
    ended = [r for r in records if r.getMessage().startswith("orchestrator.vm.")]
    failed = [r for r in ended if r.getMessage().startswith("orchestrator.vm.failed ")]
    succeeded = [r for r in ended if r.getMessage().startswith("orchestrator.vm.succeeded ")]
    assert len(failed) == report.summary.failed > 0
    assert len(succeeded) == report.summary.succeeded
    assert {r.levelno for r in failed} == {logging.WARNING}
    assert {r.levelno for r in succeeded} == {logging.INFO}
    assert all(f"run_id={run_id}" in r.getMessage() for r in ended)
    assert "category=build_failed" in failed[0].getMessage()
    assert not [r for r in records if r.levelno < logging.INFO], "debug records were emitted"


async def test_an_application_level_silences_the_library(caplog: pytest.LogCaptureFixture) -> None:
    """The application's level for 'orchestrator' is obeyed: at ERROR, a run logs nothing."""
    caplog.set_level(logging.ERROR, logger="orchestrator")
    async with run_simulator(_sim()) as sim, Orchestrator(settings_for(sim)) as orch:
        await orch.run(vms(3))
    assert [r for r in caplog.records if r.name.startswith("orchestrator")] == []


async def test_get_retries_are_logged_with_the_run_id_without_flooding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A GET retried three times: the first retry at info, the others at debug, each
    naming the run and the error."""
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    failures = [ApiConnectError("connection refused", method="GET", path="/x")] * 3

    async def call() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    log = get_logger("orchestrator.engine", run_id="r1")
    assert await retry_get(call, deadline_seconds=60, log=log) == "ok"
    retries = [r for r in caplog.records if "orchestrator.request.retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO, logging.DEBUG, logging.DEBUG]
    assert all("run_id=r1" in r.getMessage() for r in retries)
    assert "connection refused" in retries[0].getMessage()


async def test_the_cli_set_up_leaves_only_our_retry_records(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Once the CLI configured logging, stamina's own retry records are not written."""
    stream = io.StringIO()
    structlog.reset_defaults()
    configure_logging(fmt="json", level="debug", stream=stream)
    try:
        failures = [ApiConnectError("connection refused", method="GET", path="/x")]

        async def call() -> str:
            if failures:
                raise failures.pop()
            return "ok"

        await retry_get(call, deadline_seconds=60, log=get_logger(run_id="r2"))
    finally:
        logger = logging.getLogger("orchestrator")
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.NullHandler):
                logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        stamina.instrumentation.set_on_retry_hooks(None)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["run_id"]) for e in events] == [("orchestrator.request.retrying", "r2")]
    assert "stamina" not in "".join(capfd.readouterr())


async def test_a_deadline_is_logged_through_the_package_logging_only(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The deadline's warning goes to the ``orchestrator`` logger, never around it: with
    structlog left at its defaults nothing is printed (it printed to stdout)."""
    structlog.reset_defaults()
    caplog.set_level(logging.WARNING, logger="orchestrator")
    async with run_simulator(_sim(build_seconds=100_000.0)) as sim:
        settings = settings_for(sim, deadline_seconds=0.2, build_timeout_seconds=10_000_000.0)
        async with Orchestrator(settings) as orch:
            report = await orch.run(vms(3))
    assert report.stopped_because == "deadline"
    assert capfd.readouterr() == ("", "")
    deadline = [r for r in caplog.records if "orchestrator.run.deadline" in r.getMessage()]
    assert [r.name for r in deadline] == ["orchestrator.engine"]
