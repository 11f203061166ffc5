"""``kill -9`` mid-run, then rerun: every VM exists exactly once, the report has each once.

A standalone simulator (``orchestrator simulate``) and ``orchestrator run``
run as real processes. The run is killed with SIGKILL (no cleanup of any
kind) at points read from its JSON log on stderr, rerun on the same journal to
completion, and then ``/_simulator/state``, the report and the journal are
checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.report._validate import validate_report_file
from tests.state_backends import StateRef

from ._invariants import check_journal, check_server
from ._processes import (
    SimProcess,
    count,
    engine_env,
    orchestrator_argv,
    run_to_end,
    run_until,
    write_spec,
)

pytestmark = pytest.mark.slow

#: simulated seconds per real second: a 40 s build takes 0.2 s, a 60 s window 0.3 s
SCALE = 200.0
N = 12
SUBMITTED = "orchestrator.vm.submitted"
SUBMITTING = "orchestrator.vm.submitting"
SUCCEEDED = "orchestrator.vm.succeeded"
RECONCILING = "orchestrator.vm.reconciling"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """One simulator process for the module; each test uses its own hostnames."""
    with SimProcess(time_scale=SCALE) as running:
        yield running


@dataclass(frozen=True)
class KillAt:
    """Kill the run once ``event`` was logged ``times`` times (at ``log_level``)."""

    event: str
    times: int
    log_level: str = "info"


SCENARIOS: dict[str, tuple[KillAt, ...]] = {
    # the first build is out, the others queued
    "after-first-submitted": (KillAt(SUBMITTED, 1),),
    # half submitted, some building, none or few finished
    "middle": (KillAt(SUBMITTED, N // 2),),
    # all but the last wave finished (4 in flight at most: the last four were just
    # submitted, a whole build from done; with N - 2 the last two could finish before the
    # kill landed on a loaded machine, and the test found nothing left to resume)
    "near-end": (KillAt(SUCCEEDED, N - 4),),
    # the intent of a POST is journaled and the POST may be on the wire
    "post-on-the-wire": (KillAt(SUBMITTING, 3, "debug"),),
    # killed, rerun, killed again, then rerun to the end
    "twice": (KillAt(SUBMITTED, 2), KillAt(SUBMITTED, 2)),
}


def _kill_and_rerun(
    sim: SimProcess, tmp_path: Path, prefix: str, kills: tuple[KillAt, ...], state: StateRef
) -> list[str]:
    """Run, kill at each point in turn, rerun to the end (a new process each time: for a
    PostgreSQL state, as another machine would); check everything; return keys."""
    spec = tmp_path / "spec.toml"
    keys = write_spec(spec, prefix, N)
    env = engine_env(sim, ORCHESTRATOR_MAX_IN_FLIGHT="4")
    flags = state.cli_args()
    for kill in kills:
        argv = orchestrator_argv(spec, tmp_path, "--log-level", kill.log_level, state=flags)
        killed = run_until(argv, env, count(kill.event, kill.times), tmp_path)
        assert killed.reached, f"the run ended before {kill}: {killed.lines[-5:]}"
        assert killed.returncode == -9
        states = Counter(e.state for e in state.read().entries)
        assert states["finished"] < N, f"killed too late to matter: {states}"
        if kill.event == SUBMITTING:
            assert states["intent"] > 0, f"no POST was on the wire: {states}"
    final = run_to_end(orchestrator_argv(spec, tmp_path, state=flags), env, tmp_path)
    assert final.returncode == 0, final.stderr[-3000:]

    server = sim.state()
    created = Counter(
        vm["hostname"] for vm in server["virtual_machines"] if vm["hostname"] in set(keys)
    )
    assert created == Counter(keys), f"not every VM exactly once: {created}"
    report = validate_report_file(tmp_path / "report.json")
    check_server(report, keys, server, rerun=True)
    check_journal(state.read(), report)
    return keys


@pytest.mark.parametrize("kills", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_sigkill_then_rerun_builds_each_vm_exactly_once(
    kills: tuple[KillAt, ...],
    sim: SimProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    state: StateRef,
) -> None:
    """SIGKILL at a point of the run, rerun: each VM built once, reported once, succeeded."""
    scenario = request.node.callspec.id.split("-", 1)[1]
    prefix = f"{scenario.split('-')[0][:8]}-{len(kills)}{state.backend[0]}"
    _kill_and_rerun(sim, tmp_path, prefix, kills, state)


def test_sigkill_while_posts_are_uncertain(tmp_path: Path, state: StateRef) -> None:
    """Killed while POSTs whose connection broke after acting are uncertain: none built twice."""
    options = {"fault-reset-after": 0.4, "fault-truncated": 0.1}
    flags = state.cli_args()
    with SimProcess(time_scale=SCALE, seed=4, options=options) as sim:
        spec = tmp_path / "spec.toml"
        keys = write_spec(spec, "unc", N)
        env = engine_env(sim, ORCHESTRATOR_MAX_IN_FLIGHT="6")
        argv = orchestrator_argv(spec, tmp_path, state=flags)
        killed = run_until(argv, env, count(RECONCILING, 2), tmp_path)
        assert killed.reached, killed.lines[-5:]
        left = [e for e in state.read().entries if e.state in ("intent", "uncertain")]
        assert left, "no POST was uncertain when the run was killed"

        final = run_to_end(argv, env, tmp_path)
        assert final.returncode == 0, final.stderr[-3000:]
        server = sim.state()
    created = Counter(vm["hostname"] for vm in server["virtual_machines"])
    assert created == Counter(keys), f"not every VM exactly once: {created}"
    assert server["faults"].get("reset_after", 0) > 0
    report = validate_report_file(tmp_path / "report.json")
    check_server(report, keys, server)
    check_journal(state.read(), report)
    adopted = {left_entry.key for left_entry in left}
    assert all(vm.outcome == "succeeded" for vm in report.vms if vm.key in adopted)
