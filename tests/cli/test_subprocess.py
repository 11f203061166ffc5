"""The CLI as users run it: ``python -m orchestrator ...`` in a subprocess.

What only a real process shows: exit statuses, no traceback on expected
errors, the standalone simulator, and that the token never leaks into any
output or file. Simulators run 100x faster than real time (see ``_helpers``).
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import __version__
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import (
    WAIT,
    StandaloneSimulator,
    make_report,
    orchestrator_process,
    run_orchestrator,
    standalone_simulator,
    write_spec,
)

#: The one token the shared simulator accepts: it must show up nowhere.
CANARY = "canary-XYZ-7f3a9c1e5b2d4f6a8c0e"


@pytest.fixture(scope="module")
def canary_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneSimulator]:
    """One ``orchestrator simulate --token CANARY`` for this module (tests use distinct VMs)."""
    with standalone_simulator(cwd=tmp_path_factory.mktemp("sim"), token=CANARY) as sim:
        yield sim


def test_version(cwd: Path) -> None:
    """``python -m orchestrator --version`` prints the installed version, the distribution's
    name and the API it targets (0)."""
    version = run_orchestrator("--version", cwd=cwd)
    assert version.returncode == 0
    assert version.stdout == (
        f"orchestrator {__version__} (katapult-orchestrator), for the Katapult Core API v1\n"
    )


def test_bad_spec_exits_2_without_traceback(cwd: Path) -> None:
    """A bad spec: exit 2, one message naming file, entry and field, no traceback, no report."""
    (cwd / "fleet.toml").write_text('[[vms]]\nhostname = "ok-1"\ncolour = "red"\n')
    result = run_orchestrator("run", "--simulate", "fleet.toml", cwd=cwd)
    assert result.returncode == 2
    assert "fleet.toml:3 vms[0] (ok-1) colour: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (cwd / "report.json").exists()


def test_plan_run_plan_status_against_a_standalone_simulator(
    cwd: Path, canary_sim: StandaloneSimulator
) -> None:
    """plan says 2 (--detailed-exitcode), run builds (0), plan then says 0, status shows
    them; each VM built once."""
    hostnames = write_spec(cwd / "fleet.toml", "pp", count=3)
    env = canary_sim.env()
    planned = run_orchestrator("plan", "fleet.toml", "--detailed-exitcode", cwd=cwd, env=env)
    assert planned.returncode == 2
    ran = run_orchestrator("run", "fleet.toml", "--no-progress", cwd=cwd, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "3 succeeded" in ran.stdout
    planned = run_orchestrator("plan", "fleet.toml", cwd=cwd, env=env)
    assert planned.returncode == 0, planned.stdout
    assert "0 to build, 3 already exist" in planned.stdout
    status = run_orchestrator("status", "report.json.journal", cwd=cwd)
    assert status.returncode == 0
    assert all(hostname in status.stdout for hostname in hostnames)
    assert sorted(h for h in canary_sim.hostnames() if h.startswith("pp-")) == hostnames


def test_wrong_token_exits_3_and_is_not_echoed(cwd: Path, canary_sim: StandaloneSimulator) -> None:
    """A refused token: exit 3, no traceback, and the wrong token appears nowhere."""
    wrong = "canary-WRONG-0b1c2d3e4f5a6b7c"
    write_spec(cwd / "fleet.toml", "wt", count=2)
    result = run_orchestrator(
        "run", "fleet.toml", "--log-level", "debug", cwd=cwd, env=canary_sim.env(token=wrong)
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "invalid_api_token" in result.stdout
    validate_report_file(cwd / "report.json", forbidden=[wrong, CANARY])
    for text in (
        result.stdout,
        result.stderr,
        (cwd / "report.json.journal").read_bytes().decode("latin-1"),
    ):
        assert wrong not in text


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_token_never_appears_in_any_output(
    cwd: Path, canary_sim: StandaloneSimulator, log_format: str
) -> None:
    """At debug level, in both log formats, the token is in no output and no file written."""
    write_spec(cwd / "fleet.toml", f"cn-{log_format}", count=3)
    result = run_orchestrator(
        "run",
        "fleet.toml",
        "--log-level",
        "debug",
        "--log-format",
        log_format,
        "--junit",
        "junit.xml",
        "--metrics",
        "metrics.prom",
        cwd=cwd,
        env=canary_sim.env(),
    )
    assert result.returncode == 0, result.stderr
    assert "orchestrator.vm.succeeded" in result.stderr  # debug logging did happen
    assert CANARY not in result.stdout
    assert CANARY not in result.stderr
    validate_report_file(cwd / "report.json", forbidden=[CANARY])
    written = sorted(path.name for path in cwd.iterdir())
    assert "report.json.journal" in written
    for path in cwd.iterdir():
        assert CANARY.encode() not in path.read_bytes(), path.name


def test_json_logs_are_json_lines_bound_to_run_and_vm(
    cwd: Path, canary_sim: StandaloneSimulator
) -> None:
    """--log-format json: every stderr line is a JSON object; VM events carry run, VM and ids."""
    hostnames = write_spec(cwd / "fleet.toml", "js", count=2)
    result = run_orchestrator(
        "run", "fleet.toml", "--log-format", "json", "--no-progress", cwd=cwd, env=canary_sim.env()
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert events
    assert all({"event", "level", "timestamp", "run_id"} <= set(event) for event in events)
    assert len({event["run_id"] for event in events}) == 1
    submitted = [event for event in events if event["event"] == "orchestrator.vm.submitted"]
    succeeded = [event for event in events if event["event"] == "orchestrator.vm.succeeded"]
    assert sorted(event["hostname"] for event in submitted) == hostnames
    for event in submitted + succeeded:
        assert event["task_id"].startswith("task_")
        assert event["build_id"].startswith("vmbuild_")
    assert all(event["vm_id"].startswith("vm_") for event in succeeded)


def test_failed_builds_exit_1_and_report_diff_exits_1(cwd: Path) -> None:
    """Builds that fail (simulate --fault-build-fail 1): run exits 1; diff with a good night: 1."""
    hostnames = write_spec(cwd / "fleet.toml", "bf", count=2)
    make_report(cwd / "last-night.json", dict.fromkeys(hostnames, "succeeded"))
    with standalone_simulator("--fault-build-fail", "1", cwd=cwd) as sim:
        result = run_orchestrator("run", "fleet.toml", "--no-progress", cwd=cwd, env=sim.env())
        assert sim.hostnames() == []
    assert result.returncode == 1, result.stderr
    assert "build_failed" in result.stdout
    report = validate_report_file(cwd / "report.json")
    assert report.summary.failed == 2
    diff = run_orchestrator("report", "diff", "last-night.json", "report.json", cwd=cwd)
    assert diff.returncode == 1
    assert "New failures: 2" in diff.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_simulate_prints_its_url_and_stops_cleanly_on_a_signal(
    cwd: Path, signum: signal.Signals
) -> None:
    """``simulate --port 0`` prints the real URL, serves, and exits 0 on SIGINT or SIGTERM."""
    with orchestrator_process("simulate", "--port", "0", cwd=cwd) as process:
        line = process.stdout.wait_for(lambda text: text.startswith("listening on "))
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/core/v1/")
        assert not url.startswith("http://127.0.0.1:0/")
        state_url = url.removesuffix("core/v1/") + "_simulator/state"
        with urllib.request.urlopen(state_url, timeout=WAIT) as answer:  # noqa: S310 - loopback
            assert json.loads(answer.read())["virtual_machines"] == []
        assert process.stop(signum) == 0
        assert "simulator stopped" in process.stderr.rest()
        assert "Traceback" not in "".join(process.stderr.seen)


def test_simulate_on_a_port_in_use_exits_2(cwd: Path) -> None:
    """``simulate`` on a port already taken says so and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_orchestrator("simulate", "--port", str(port), cwd=cwd)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
