"""``orchestrator destroy`` in-process (``main(argv)``): confirmation, ownership, purge, codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from orchestrator.engine.state._db import acquire_lock, release_lock
from orchestrator.engine.state.journal import read_journal
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import EXAMPLE_HOSTNAMES, EXAMPLE_SPEC, ThreadSimulator

SetEnv = Callable[[dict[str, str]], None]


def _trashed(sim: ThreadSimulator) -> dict[str, bool]:
    snapshot = sim.portal.call(sim.running.state.snapshot)
    return {vm["hostname"]: vm["in_trash"] for vm in snapshot["virtual_machines"]}


def test_destroy_deletes_what_run_built(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """run, then destroy --yes: every VM in the trash (0), its own report and journal."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["destroy", "--yes", "--no-progress", str(EXAMPLE_SPEC)])
    _, err = capsys.readouterr()
    assert code == 0, err
    report = validate_report_file(cwd / "destroy-report.json")
    assert report.operation == "delete"
    assert {(vm.outcome, vm.reason) for vm in report.vms} == {("succeeded", "deleted")}
    assert "5 of the 5 hostnames selected exist" in err
    # the fleet's one journal: the run's, its deletes' rows kept apart from its builds'
    assert not (cwd / "destroy-report.json.journal").exists()
    snapshot = read_journal(cwd / "report.json.journal")
    assert {e.result.reason for e in snapshot.deletes if e.result} == {"deleted"}
    assert {e.result.outcome for e in snapshot.entries if e.result} == {"succeeded"}
    assert set(_trashed(sim)) == set(EXAMPLE_HOSTNAMES)
    assert all(_trashed(sim).values())
    # the run's report is not overwritten by destroy's
    assert validate_report_file(cwd / "report.json").operation == "build"


def test_destroy_purge_frees_the_names_for_a_new_run(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """destroy --purge: purged (0); the same spec then builds again (0). A named fleet
    needs no journal where the API keeps annotations."""
    setenv(sim.env())
    named = ["--fleet", "example", "--no-progress"]
    assert main(["run", str(EXAMPLE_SPEC), *named, "--no-journal"]) == 0
    assert main(["destroy", "-y", "--purge", *named, str(EXAMPLE_SPEC)]) == 0
    report = validate_report_file(cwd / "destroy-report.json")
    assert {vm.reason for vm in report.vms} == {"purged"}
    assert main(["run", str(EXAMPLE_SPEC), *named, "--no-journal"]) == 0
    capsys.readouterr()


def test_destroy_leaves_a_vm_that_is_not_ours_and_exits_1(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hostname held by another fleet's VM: untouched, reported conflict/not_ours (1)."""
    setenv(sim.env())
    vm_id = sim.portal.call(lambda: sim.running.state.add_existing_vm("acme", "web-01"))
    record = sim.running.state.vm_by_id(vm_id)
    assert record is not None
    record.annotations = [{"key": VM_KEY, "value": "web-01"}, {"key": FLEET_KEY, "value": "x"}]
    argv = ["destroy", "--yes", "--no-progress", "--fleet", "example", str(EXAMPLE_SPEC)]
    assert main(argv) == 1
    report = validate_report_file(cwd / "destroy-report.json")
    by_key = {vm.key: vm for vm in report.vms}
    assert (by_key["web-01"].category, by_key["web-01"].reason) == ("conflict", "not_ours")
    assert {by_key[h].reason for h in EXAMPLE_HOSTNAMES if h != "web-01"} == {"absent"}
    assert _trashed(sim) == {"web-01": False}
    capsys.readouterr()


def test_destroy_without_yes_off_a_terminal_sends_nothing(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """No terminal and no --yes: refused before any request (2)."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    assert main(["destroy", "--no-progress", str(EXAMPLE_SPEC)]) == 2
    _, err = capsys.readouterr()
    assert "--yes" in err
    assert not any(_trashed(sim).values())
    assert not (cwd / "destroy-report.json").exists()


def test_destroy_asks_and_a_no_deletes_nothing(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: SetEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a terminal it lists what exists and asks; answering no deletes nothing (130)."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("click.confirm", lambda *a, **k: False)
    assert main(["destroy", "--no-progress", str(EXAMPLE_SPEC)]) == 130
    _, err = capsys.readouterr()
    assert "web-01" in err
    assert "nothing was deleted" in err
    assert not any(_trashed(sim).values())


def test_destroy_bad_input_is_a_clear_error(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing spec, a --journal that does not exist, or an unnamed fleet with no journal
    (nothing could be proven its own): one error line each (2), nothing sent."""
    setenv(sim.env())
    assert main(["destroy", "--yes", "missing.toml"]) == 2
    assert main(["destroy", "--yes", "--journal", "nope", str(EXAMPLE_SPEC)]) == 2
    assert main(["destroy", "--yes", "--build-journal", "nope", str(EXAMPLE_SPEC)]) == 2
    _, err = capsys.readouterr()
    assert "nope" in err
    unnamed = cwd / "unnamed.toml"
    unnamed.write_text(EXAMPLE_SPEC.read_text().replace('fleet = "example"', ""))
    assert main(["destroy", "--yes", str(unnamed)]) == 2
    _, err = capsys.readouterr()
    assert "names no fleet" in err
    assert "Traceback" not in err
    assert not (cwd / "nope").exists()
    assert not (cwd / "report.json.journal").exists()


def test_destroy_limit_deletes_only_the_matching_hostnames(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit 'web-*': the web VMs are deleted, the others reported not_selected, untouched."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    assert main(["destroy", "-y", "--no-progress", "--limit", "web-*", str(EXAMPLE_SPEC)]) == 0
    report = validate_report_file(cwd / "destroy-report.json")
    reasons = {vm.key: vm.reason for vm in report.vms}
    assert reasons == {
        "web-01": "deleted",
        "web-02": "deleted",
        "web-03": "deleted",
        "db-01": "not_selected",
        "db-02": "not_selected",
    }
    trashed = _trashed(sim)
    assert [h for h, t in sorted(trashed.items()) if t] == ["web-01", "web-02", "web-03"]
    assert main(["destroy", "-y", "--limit", "nomatch-*", str(EXAMPLE_SPEC)]) == 2
    capsys.readouterr()


def test_destroy_during_a_run_of_the_fleet_is_refused(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run of the fleet holds its journal's lock (as a run in another process does):
    destroy is refused (2), naming the run, and deletes nothing."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    capsys.readouterr()
    holder = {"pid": 4242, "run_id": "the-nightly-run", "started_at": "2026-12-07T02:00:00"}
    fd, _ = acquire_lock(cwd / "report.json.journal", holder=holder)
    try:
        code = main(["destroy", "--yes", "--no-progress", str(EXAMPLE_SPEC)])
    finally:
        release_lock(fd)
    _, err = capsys.readouterr()
    assert code == 2
    assert "the-nightly-run" in err
    assert "pid 4242" in err
    assert not any(_trashed(sim).values())
    assert main(["destroy", "--yes", "--no-progress", str(EXAMPLE_SPEC)]) == 0
    assert all(_trashed(sim).values())


def test_destroys_preview_is_destroys_own_decision(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: SetEnv,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a terminal, destroy shows what it would do with each VM (the same decision as
    the delete itself) before asking; answering no deletes nothing."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "web-*"]) == 0
    vm_id = sim.portal.call(lambda: sim.running.state.add_existing_vm("acme", "db-01"))
    record = sim.running.state.vm_by_id(vm_id)
    assert record is not None
    record.annotations = [{"key": VM_KEY, "value": "db-01"}, {"key": FLEET_KEY, "value": "x"}]
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []

    def confirm(text: str, **_: object) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr("click.confirm", confirm)
    capsys.readouterr()
    assert main(["destroy", "--no-progress", str(EXAMPLE_SPEC)]) == 130
    _, err = capsys.readouterr()
    assert "To delete (3): web-01, web-02, web-03" in err
    assert "Not this fleet's: left untouched (1): db-01" in err
    assert "Absent (1): db-02" in err
    assert asked == ["Delete (to the trash) these 3?"]
    assert not any(_trashed(sim).values())


def test_run_and_destroy_take_a_budget_share(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--budget-share caps both commands' share of the token's budget; a share outside
    (0, 1] is refused (2) naming the setting, before anything is sent."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--budget-share", "0.5"]) == 0
    capsys.readouterr()
    code = main(["destroy", "-y", "--no-progress", "--budget-share", "2", str(EXAMPLE_SPEC)])
    assert code == 2
    assert "engine.budget_share = '2' (from the command line)" in capsys.readouterr().err
    assert not any(_trashed(sim).values())
    code = main(["destroy", "-y", "--no-progress", "--budget-share", "50%", str(EXAMPLE_SPEC)])
    assert code == 0, capsys.readouterr().err
    assert all(_trashed(sim).values())
