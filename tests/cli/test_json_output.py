"""``--output json`` of ``plan``, ``status`` and ``report diff``: documented keys, same exits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from orchestrator.report import load_report
from tests.cli._helpers import (
    EXAMPLE_HOSTNAMES,
    EXAMPLE_SPEC,
    ThreadSimulator,
    make_report,
    write_spec,
)

SetEnv = Callable[[dict[str, str]], None]

PLAN_KEYS = [
    "kind",
    "format_version",
    "summary",
    "has_changes",
    "has_errors",
    "to_build",
    "existing",
    "problems",
    "estimate",
    "requests_spent",
    "fleet",
    "fates",
    "drift",
    "removed_from_spec",
    "readings",
]
STATUS_KEYS = ["kind", "format_version", "journal", "counts", "runs", "vms", "fleet", "deletes"]
STATUS_VM_KEYS = [
    "key",
    "hostname",
    "state",
    "outcome",
    "attempts",
    "task_id",
    "build_id",
    "vm_id",
    "submitted_at",
    "updated_at",
    "last_error",
    "note",
    "result",
]
DIFF_KEYS = [
    "kind",
    "format_version",
    "old",
    "new",
    "summary",
    "has_new_failures",
    "newly_failed",
    "fixed",
    "still_failing",
    "missing",
    "added",
]


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """stdout as one JSON object (fails the test if it is anything else)."""
    out = capsys.readouterr().out
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_plan_json_lists_what_to_build_and_what_exists(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan --output json has the documented keys; --detailed-exitcode still says 2, then 0."""
    setenv(sim.env())
    assert main(["plan", str(EXAMPLE_SPEC), "--output", "json", "--detailed-exitcode"]) == 2
    plan = _json(capsys)
    assert list(plan) == [*PLAN_KEYS, "config_file"]  # the config file read comes last
    assert (plan["kind"], plan["format_version"]) == ("plan", 1)
    assert plan["readings"]["annotation_filter"] == "honoured"
    assert [r["name"] for r in plan["readings"]["found"]] == [
        "annotation_filter",
        "vm_list_page_size",
    ]
    assert plan["readings"]["found"][0]["value"] == "honoured"
    assert plan["readings"]["found"][0]["evidence"]
    assert set(plan["readings"]["listed_by"]) == {"acme"}
    assert plan["summary"] == {"to_build": 5, "existing": 0, "problems": 0}
    assert (plan["has_changes"], plan["has_errors"]) == (True, False)
    assert [vm["hostname"] for vm in plan["to_build"]] == EXAMPLE_HOSTNAMES
    assert list(plan["to_build"][0]) == ["key", "hostname", "organization", "entry"]
    assert list(plan["estimate"]) == ["requests", "seconds", "permitted", "window_seconds"]
    assert plan["requests_spent"] > 0
    assert plan["config_file"] is None
    # run's checks (what this plan spent), 2 per VM, 2 for the organization, 1 page
    assert plan["estimate"]["requests"] == plan["requests_spent"] + 2 * 5 + 2 + 1

    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "db-*"]) == 0
    capsys.readouterr()
    report = load_report(cwd / "report.json")
    ids = {vm.hostname: vm.virtual_machine.id for vm in report.vms if vm.virtual_machine}
    assert main(["plan", str(EXAMPLE_SPEC), "--output", "json", "--limit", "db-*"]) == 0
    plan = _json(capsys)
    assert plan["to_build"] == []
    assert [(vm["hostname"], vm["virtual_machine_id"]) for vm in plan["existing"]] == [
        ("db-01", ids["db-01"]),
        ("db-02", ids["db-02"]),
    ]


def test_plan_json_names_each_problem(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lookup naming nothing is a problem in the JSON (exit 2), with its field, value and VMs."""
    write_spec(cwd / "fleet.toml", "lk", count=2, package="rock-99")
    assert main(["plan", "--simulate", "fleet.toml", "--output", "json"]) == 2
    plan = _json(capsys)
    assert plan["has_errors"] is True
    assert plan["problems"] == [
        {
            "field": "package",
            "value": "rock-99",
            "message": "no package 'rock-99'",
            "hostnames": ["lk-01", "lk-02"],
        }
    ]


def test_plan_json_prints_nothing_when_the_api_cannot_be_read(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable API: exit 1, the error on stderr, and stdout empty (no half object)."""
    setenv(
        {
            "KATAPULT_API_URL": "http://127.0.0.1:9/core/v1/",
            "KATAPULT_API_KEY": "k",
            "ORCHESTRATOR_RETRY_DEADLINE_SECONDS": "0.5",
        }
    )
    assert main(["plan", str(EXAMPLE_SPEC), "--output", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: cannot connect to the API at 127.0.0.1:9 (connection refused)" in err


def test_status_json_has_every_vm_with_its_report_row(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """status --output json lists every run and VM; a finished VM's result is its report row."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["status", "report.json.journal", "--output", "json"]) == 0
    status = _json(capsys)
    assert list(status) == STATUS_KEYS
    assert (status["kind"], status["format_version"]) == ("status", 1)
    assert status["journal"] == "report.json.journal"
    assert status["counts"] == {
        "total": 5,
        "pending": 0,
        "intent": 0,
        "submitted": 0,
        "uncertain": 0,
        "finished": 5,
    }
    assert len(status["runs"]) == 1
    assert list(status["runs"][0]) == ["run_id", "spec_sha256", "started_at", "finished_at", "pid"]
    assert status["runs"][0]["finished_at"].endswith("Z")
    report = json.loads((cwd / "report.json").read_text())
    rows = {vm["key"]: vm for vm in report["vms"]}
    assert sorted(vm["hostname"] for vm in status["vms"]) == sorted(EXAMPLE_HOSTNAMES)
    for vm in status["vms"]:
        assert list(vm) == STATUS_VM_KEYS
        assert (vm["state"], vm["outcome"]) == ("finished", "succeeded")
        row = rows[vm["key"]]
        assert vm["vm_id"] == row["virtual_machine"]["id"]
        assert vm["build_id"] == row["build_id"]
        # the journal keeps the row as the VM finished: addresses come after the run
        assert vm["result"] == {
            **row,
            "virtual_machine": {**row["virtual_machine"], "ip_addresses": [], "data_center": None},
        }


def test_status_json_with_many_vms_lists_every_one(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text view shows 50 rows; the JSON always has every VM."""
    hostnames = write_spec(cwd / "big.toml", "many", count=55)
    setenv(sim.env())
    assert main(["run", "big.toml", "--no-progress", "--log-level", "warning"]) == 0
    capsys.readouterr()
    assert main(["status", "report.json.journal", "--output", "json"]) == 0
    assert sorted(vm["hostname"] for vm in _json(capsys)["vms"]) == sorted(hostnames)


def test_report_diff_json_lists_each_change(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """report diff --output json: new failures as report rows, keys missing and added; exit 1."""
    old = {"a": "succeeded", "b": "failed", "c": "failed", "gone": "failed"}
    new = {"a": "failed", "b": "succeeded", "c": "cancelled", "d": "failed"}
    make_report(cwd / "old.json", old)
    make_report(cwd / "new.json", new)
    assert main(["report", "diff", "old.json", "new.json", "--output", "json"]) == 1
    diff = _json(capsys)
    assert list(diff) == DIFF_KEYS
    assert (diff["kind"], diff["format_version"]) == ("report_diff", 1)
    assert list(diff["old"]) == ["path", "run_id", "finished_at", "total"]
    assert (diff["old"]["path"], diff["new"]["total"]) == ("old.json", 4)
    assert diff["summary"] == {
        "newly_failed": 2,
        "fixed": 1,
        "still_failing": 1,
        "missing": 1,
        "added": 1,
    }
    assert diff["has_new_failures"] is True
    new_rows = {vm["key"]: vm for vm in json.loads((cwd / "new.json").read_text())["vms"]}
    assert diff["newly_failed"] == [new_rows["a"], new_rows["d"]]
    assert diff["fixed"] == [new_rows["b"]]
    assert diff["still_failing"] == [new_rows["c"]]
    assert (diff["missing"], diff["added"]) == (["gone"], ["d"])


def test_report_diff_json_of_equal_reports_exits_0(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing newly failed: exit 0 and empty lists."""
    make_report(cwd / "r.json", {"a": "succeeded"})
    assert main(["report", "diff", "r.json", "r.json", "--output", "json"]) == 0
    diff = _json(capsys)
    assert diff["has_new_failures"] is False
    assert diff["newly_failed"] == diff["fixed"] == diff["missing"] == diff["added"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["status", "nothing.journal", "--output", "json"],
        ["report", "diff", "nothing.json", "nothing.json", "--output", "json"],
        ["plan", "--simulate", "nothing.toml", "--output", "json"],
    ],
    ids=["status", "diff", "plan"],
)
def test_json_output_of_bad_input_is_an_error_on_stderr_only(
    cwd: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """A missing file is exit 2 with one error line on stderr and nothing on stdout."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert "nothing." in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "command", [["plan", "x.toml"], ["status", "j"], ["report", "diff", "a", "b"]]
)
def test_an_unknown_output_format_is_a_usage_error(
    cwd: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """--output yaml is refused (2) naming the choices."""
    assert main([*command, "--output", "yaml"]) == 2
    err = capsys.readouterr().err
    assert "'yaml' is not one of 'text', 'json'" in err
