"""Ctrl-C (SIGINT) and SIGTERM on ``orchestrator run``: graceful stop, exit 130, resumable."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import (
    WAIT,
    orchestrator_process,
    run_orchestrator,
    thread_simulator,
    write_spec,
)

#: Simulated seconds of a build: far longer than the test, until the test jumps the clock.
LONG_BUILD = 100_000.0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_and_a_rerun_finishes_it(cwd: Path, signum: signal.Signals) -> None:
    """Signalled mid-build: exit 130, every VM cancelled with what to do, journal kept (and
    locked meanwhile); a rerun on it follows the same builds, and every VM exists once."""
    hostnames = write_spec(cwd / "fleet.toml", "ctl", count=4)
    with thread_simulator(build_seconds=LONG_BUILD) as sim:
        args = ("run", "fleet.toml", "--log-format", "json", "--metrics", "fleet.prom")
        with orchestrator_process(*args, cwd=cwd, env=sim.env()) as process:
            submitted: set[str] = set()
            while len(submitted) < len(hostnames):
                line = process.stderr.wait_for(lambda text: "orchestrator.vm.submitted" in text)
                submitted.add(json.loads(line)["hostname"])
            # meanwhile a second run on the same journal is refused (2)
            with pytest.MonkeyPatch.context() as patch:
                for name, value in sim.env().items():
                    patch.setenv(name, value)
                other = ["--report", "second.json", "--journal", "report.json.journal"]
                assert main(["run", "fleet.toml", *other]) == 2
            process.popen.send_signal(signum)
            code = process.popen.wait(timeout=WAIT)
            out = process.stdout.rest()
            err = process.stderr.rest()
        assert code == 130, err
        stopping = [json.loads(line) for line in err.splitlines() if "run.stopping" in line]
        assert [event["signal"] for event in stopping] == [signum.name]
        first = validate_report_file(cwd / "report.json")
        assert first.interrupted
        assert [vm.outcome for vm in first.vms] == ["cancelled"] * len(hostnames)
        assert {vm.reason for vm in first.vms} == {"build_in_progress"}
        assert all(vm.build_id for vm in first.vms)
        assert "4 VMs were not finished: 4 still building on Katapult" in out
        assert "run the same command again" in out
        assert (cwd / "report.json.journal").exists()
        assert not (cwd / "second.json").exists()
        # the metrics' verdict is the exit code the process had
        metrics = (cwd / "fleet.prom").read_text()
        assert 'orchestrator_last_run_exit_code{fleet="fleet"} 130.0' in metrics
        assert 'orchestrator_last_run_success{fleet="fleet"} 0.0' in metrics

        sim.jump(2 * LONG_BUILD)  # every build completes
        rerun = run_orchestrator("run", "fleet.toml", "--no-progress", cwd=cwd, env=sim.env())
        assert rerun.returncode == 0, rerun.stderr
        second = validate_report_file(cwd / "report.json")
        assert [vm.outcome for vm in second.vms] == ["succeeded"] * len(hostnames)
        assert {vm.key: vm.build_id for vm in second.vms} == {
            vm.key: vm.build_id for vm in first.vms
        }
        assert sorted(sim.hostnames()) == hostnames
