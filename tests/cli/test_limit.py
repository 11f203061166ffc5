"""``--limit PATTERN`` for ``run`` and ``plan`` against the simulator, and its bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import EXAMPLE_HOSTNAMES, EXAMPLE_SPEC, ThreadSimulator, make_report

SetEnv = Callable[[dict[str, str]], None]


def test_run_with_limit_builds_only_the_matching_vms(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only matching VMs are built; the others are in the report once, skipped/not_selected."""
    setenv(sim.env())
    code = main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "web-0[12]"])
    assert code == 0, capsys.readouterr().err
    assert sorted(sim.hostnames()) == ["web-01", "web-02"]
    report = validate_report_file(cwd / "report.json")
    outcomes = {vm.hostname: (vm.outcome, vm.reason) for vm in report.vms}
    assert sorted(outcomes) == sorted(EXAMPLE_HOSTNAMES)
    assert outcomes["web-01"][0] == outcomes["web-02"][0] == "succeeded"
    for hostname in ("web-03", "db-01", "db-02"):
        assert outcomes[hostname] == ("skipped", "not_selected")


def test_a_later_run_with_another_limit_keeps_what_the_journal_knows(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Limits used one after the other on one journal build each VM once and forget none."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "web-*"]) == 0
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "db-*,web-01"]) == 0
    assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)
    report = validate_report_file(cwd / "report.json")
    outcomes = {vm.hostname: (vm.outcome, vm.reason) for vm in report.vms}
    # web-02/03 were not selected (the journal's old rows are no verdict on them now);
    # web-01 was selected and exists
    assert outcomes["web-02"] == outcomes["web-03"] == ("skipped", "not_selected")
    assert outcomes["web-01"] == ("skipped", "already_exists")
    assert outcomes["db-01"][0] == outcomes["db-02"][0] == "succeeded"
    assert report.removed_from_spec == []


def test_limit_and_retry_failed_select_what_both_select(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --retry-failed too, a VM is built only when it failed and matches the limit."""
    make_report(cwd / "last.json", {"web-01": "failed", "db-01": "failed", "web-02": "succeeded"})
    setenv(sim.env())
    args = ["--no-progress", "--retry-failed", "last.json", "--limit", "web-*"]
    code = main(["run", str(EXAMPLE_SPEC), *args])
    assert code == 0, capsys.readouterr().err
    assert sim.hostnames() == ["web-01"]


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize(
    ("limit", "message"),
    [
        (["nope-*"], "--limit pattern 'nope-*' matches no hostname of the spec"),
        (["web-*", "db-9"], "--limit pattern 'db-9' matches no hostname"),
        ([""], "--limit '': empty pattern"),
        (["web-01,"], "--limit 'web-01,': empty pattern"),
    ],
)
def test_a_limit_that_selects_nothing_is_refused_before_any_request(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: SetEnv,
    capsys: pytest.CaptureFixture[str],
    command: str,
    limit: list[str],
    message: str,
) -> None:
    """A pattern matching no VM (a typo) or an empty one exits 2 naming it; nothing is sent."""
    setenv(sim.env())
    args = [command, str(EXAMPLE_SPEC)]
    for pattern in limit:
        args += ["--limit", pattern]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {EXAMPLE_SPEC}: ")
    assert message in err
    assert "Traceback" not in err
    assert sim.hostnames() == []
    assert not (cwd / "report.json").exists()
    assert sim.portal.call(sim.running.state.snapshot)["requests"]["total"] == 0


def test_plan_with_limit_plans_only_the_matching_vms(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``plan --limit`` counts only the selected VMs, built or not."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "db-01"]) == 0
    capsys.readouterr()
    assert main(["plan", str(EXAMPLE_SPEC), "--limit", "db-*", "--detailed-exitcode"]) == 2
    assert "Plan: 1 to build, 1 already exist" in capsys.readouterr().out
    assert main(["plan", str(EXAMPLE_SPEC), "--limit", "db-01"]) == 0
    assert "Plan: 0 to build, 1 already exist" in capsys.readouterr().out


def test_a_limit_rerun_reports_every_vm_by_what_the_api_holds(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rerun with --limit on the journal of a finished run: the selected VMs, looked at and
    found there, are skipped/already_exists with their ids; the others not_selected. No VM
    is reported built again, and none is built."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    first = {vm.key: vm for vm in validate_report_file(cwd / "report.json").vms}
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "web-0[12]"]) == 0
    second = {vm.key: vm for vm in validate_report_file(cwd / "report.json").vms}
    selected = {"web-01", "web-02"}
    for key, vm in second.items():
        expected = ("skipped", "already_exists" if key in selected else "not_selected")
        assert (vm.outcome, vm.reason) == expected
    for key in selected:
        found, built = second[key].virtual_machine, first[key].virtual_machine
        assert found is not None
        assert built is not None
        assert found.id == built.id
    assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)
