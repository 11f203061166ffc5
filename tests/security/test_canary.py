"""A canary API token, at debug log level with every kind of failure, shows up nowhere.

``orchestrator run`` runs as a real process (umask 0) against a simulator
process that accepts only the canary and injects every fault it has. The run
is killed with SIGKILL (so the journal's ``-wal`` is left on disk) and rerun
with JUnit and metrics output. Its stdout, stderr and every file it left
behind (report, JUnit, metrics, journal, ``-wal``, ``-shm``, lock) are
searched for the token, plain and base64-encoded; and every file must be
owner-only.
"""

from __future__ import annotations

import base64
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.report._validate import validate_report_file
from tests.faults._processes import (
    SimProcess,
    count,
    engine_env,
    orchestrator_argv,
    run_to_end,
    run_until,
    write_spec,
)

pytestmark = pytest.mark.slow

CANARY = "canary-tok-7f3a9c1e5b2d4a60e8"
WRONG_CANARY = "canary-wrong-0d9e8f7a6b5c4d3e2f"
SCALE = 100.0
N = 10

#: every fault the simulator has, at rates that make each strike in a small run
FAULTS: dict[str, object] = {
    "fault-5xx": 0.05,
    "fault-html-502": 0.03,
    "fault-slow": 0.03,
    "slow-seconds": 0.4,
    "fault-reset-before": 0.03,
    "fault-reset-after": 0.05,
    "fault-truncated": 0.03,
    "fault-build-fail": 0.15,
    "fault-build-hang": 0.1,
    "burst-429-every": 20,
    "burst-429-length": 2,
}


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b"Bearer " + raw)]


def assert_absent(secret: str, where: str, data: bytes | str) -> None:
    """``secret`` (plain or base64) is not in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    for form in _forms(secret):
        assert form not in blob, f"the token leaked into {where}"


def assert_no_file_leaks(secret: str, directory: Path) -> list[Path]:
    """No file under ``directory`` holds ``secret``; every one is owner-only, but the metrics
    file (0o644 by default: no secret in it, and node-exporter may run as another user)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        assert_absent(secret, str(path), path.read_bytes())
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.suffix == ".prom":
            assert mode == 0o644, f"{path.name} has mode {oct(mode)}"
        elif path.suffix != ".toml":  # the spec is the test's own file
            assert mode == 0o600, f"{path.name} has mode {oct(mode)}"
    return files


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """A simulator that accepts only the canary and injects every fault."""
    with SimProcess(time_scale=SCALE, token=CANARY, seed=9, options=FAULTS) as running:
        yield running


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_token_never_leaks_from_a_faulty_killed_and_rerun_run(
    log_format: str, sim: SimProcess, tmp_path: Path
) -> None:
    """The token is in no output and no file, at debug level, faults on, killed and rerun."""
    spec = tmp_path / "spec.toml"
    write_spec(spec, f"leak{log_format[0]}", N)
    env = engine_env(
        sim,
        ORCHESTRATOR_READ_TIMEOUT_SECONDS="0.2",
        ORCHESTRATOR_BUILD_TIMEOUT_SECONDS="0.8",
        ORCHESTRATOR_MAX_IN_FLIGHT="6",
    )
    flags = ("--log-level", "debug", "--log-format", log_format)
    killed = run_until(
        orchestrator_argv(spec, tmp_path, *flags),
        env,
        count("orchestrator.vm.submitted", 4),
        tmp_path,
        umask=0,
    )
    assert killed.reached
    assert_absent(CANARY, "stderr of the killed run", "".join(killed.lines))
    files = assert_no_file_leaks(CANARY, tmp_path)
    assert (tmp_path / "run.journal-wal") in files, "no -wal left to search"

    final = run_to_end(
        [
            *orchestrator_argv(spec, tmp_path, *flags),
            "--junit",
            str(tmp_path / "junit.xml"),
            "--metrics",
            str(tmp_path / "metrics.prom"),
        ],
        env,
        tmp_path,
        umask=0,
    )
    assert final.returncode in (0, 1), final.stderr[-3000:]
    assert_absent(CANARY, "stdout", final.stdout)
    assert_absent(CANARY, "stderr", final.stderr)
    assert "debug" in final.stderr.lower(), "the run did not log at debug level"
    files = assert_no_file_leaks(CANARY, tmp_path)
    names = {p.name for p in files}
    assert {"report.json", "junit.xml", "metrics.prom", "run.journal", "run.journal.lock"} <= names
    report = validate_report_file(tmp_path / "report.json", forbidden=[CANARY])
    categories = {vm.category for vm in report.vms}
    assert {"build_failed", "timeout"} & categories, "the failures did not happen"


def test_a_refused_token_never_leaks(sim: SimProcess, tmp_path: Path) -> None:
    """A token the API refuses (auth failure, exit 3) appears in no output and no file."""
    spec = tmp_path / "spec.toml"
    write_spec(spec, "wrongtok", 3)
    env = engine_env(sim, KATAPULT_API_KEY=WRONG_CANARY)
    for log_format in ("json", "console"):
        result = run_to_end(
            orchestrator_argv(spec, tmp_path, "--log-level", "debug", "--log-format", log_format),
            env,
            tmp_path,
            umask=0,
        )
        assert result.returncode == 3, result.stderr[-3000:]
        assert "invalid_api_token" in result.stdout + result.stderr
        assert_absent(WRONG_CANARY, "stdout", result.stdout)
        assert_absent(WRONG_CANARY, "stderr", result.stderr)
    assert_no_file_leaks(WRONG_CANARY, tmp_path)
