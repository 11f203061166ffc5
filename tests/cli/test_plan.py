"""``orchestrator plan`` in-process: exit 0 (with or without VMs to build), 2, 3 and 1;
``--detailed-exitcode``: 0 nothing to build, 2 VMs to build, 1 any error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import AuthenticationError, Orchestrator, load_settings, make_plan
from orchestrator.cli import main
from orchestrator.engine._ownership import FLEET_KEY, VM_KEY
from orchestrator.report._validate import validate_report_file
from orchestrator.simulator import SimulatorConfig, run_simulator
from orchestrator.spec import parse_spec
from tests.cli._helpers import EXAMPLE_SPEC, ThreadSimulator, write_spec

SetEnv = Callable[[dict[str, str]], None]


def test_plan_simulate_with_vms_to_build_exits_0_or_2_with_detailed_exitcode(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``plan --simulate`` on the example: 5 to build (0; 2 with --detailed-exitcode, as
    Terraform's), an estimate, and no files written."""
    assert main(["plan", "--simulate", "--detailed-exitcode", str(EXAMPLE_SPEC)]) == 2
    capsys.readouterr()
    code = main(["plan", "--simulate", str(EXAMPLE_SPEC)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "Plan: 5 to build, 0 already exist, 0 problem(s)." in out
    assert "To build (5): web-01, web-02, web-03, db-01, db-02" in out
    assert "Estimate:" in out
    assert "In flight: all 5 at once" in out
    assert list(cwd.iterdir()) == []


def test_plan_after_a_run_has_nothing_to_build(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once every VM exists, plan exits 0 (0 with --detailed-exitcode too) and shows them
    up to date; it never builds."""
    setenv(sim.env())
    assert main(["plan", str(EXAMPLE_SPEC), "--detailed-exitcode"]) == 2
    assert sim.hostnames() == []
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["plan", str(EXAMPLE_SPEC), "--detailed-exitcode"]) == 0
    out = capsys.readouterr().out
    assert "Plan: 0 to build, 5 already exist" in out
    assert "Up to date (5): web-01, web-02, web-03, db-01, db-02" in out
    assert len(sim.hostnames()) == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("package", "rock-99"), ("disk_template", "templates/plan9"), ("data_center", "mars-01")],
)
def test_plan_with_a_lookup_naming_nothing_exits_2(
    cwd: Path, capsys: pytest.CaptureFixture[str], field: str, value: str
) -> None:
    """A lookup that names nothing on the API is a problem (2) naming field, value and VMs."""
    write_spec(cwd / "fleet.toml", "lk", count=2, **{field: value})
    code = main(["plan", "--simulate", "fleet.toml"])
    out = capsys.readouterr().out
    assert code == 2
    assert "1 problem(s)" in out
    assert value in out
    assert "lk-01" in out


def test_plan_with_a_wrong_token_exits_3(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token the API refuses is exit 3 with the API's error code, not a traceback."""
    setenv(sim.env(token="wrong"))
    code = main(["plan", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("error: ")
    assert "invalid_api_token" in err


def test_plan_when_the_api_cannot_be_reached_exits_1(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API that cannot be reached (after retries) is exit 1 with the connection error."""
    setenv(
        {
            "KATAPULT_API_URL": "http://127.0.0.1:9/core/v1/",
            "KATAPULT_API_KEY": "some-token-value",
            "ORCHESTRATOR_RETRY_DEADLINE_SECONDS": "0.3",
            "ORCHESTRATOR_LOG_LEVEL": "error",
        }
    )
    code = main(["plan", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot connect" in err


def test_plan_without_a_token_exits_2(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """plan needs a token too (or --simulate): 2 and what to set."""
    assert main(["plan", str(EXAMPLE_SPEC)]) == 2
    assert "KATAPULT_API_KEY" in capsys.readouterr().err


def test_plan_with_a_bad_spec_exits_2(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """plan validates the spec first, like run (2)."""
    (cwd / "bad.yaml").write_text("vms:\n  - hostname: ok-1\n    size: huge\n")
    assert main(["plan", "--simulate", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3" in err
    assert "size" in err


@pytest.mark.anyio
async def test_make_plan_raises_authentication_error_itself() -> None:
    """A library caller of make_plan can ``except AuthenticationError`` for a refused token."""
    spec = parse_spec(
        '[[vms]]\nhostname = "a-1"\norganization = "acme"\npackage = "rock-1"\n'
        'data_center = "uk-lon-01"\n',
        source="inline",
        fmt="toml",
    )
    async with run_simulator(SimulatorConfig()) as sim:
        settings = load_settings(
            overrides={"katapult.api_url": sim.url, "katapult.api_token": "wrong"}, environ={}
        )
        async with Orchestrator(settings) as orch:
            with pytest.raises(AuthenticationError):
                await make_plan(orch.client, spec.vms)


def test_plan_with_a_suspended_organization_reports_a_problem(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A suspended organization is a plan problem (2) naming it, not a refused run (3)."""
    write_spec(cwd / "fleet.toml", "fz", count=1, organization="frozen")
    code = main(["plan", "--simulate", "fleet.toml"])
    out = capsys.readouterr().out
    assert code == 2
    assert "frozen" in out


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"deploy"', '"bob-desktop"', "ssh_keys"),
        ('tags = ["public"]', 'tags = ["no-such-tag"]', "tags"),
        ('organization = "acme"', 'organization = "basic"', "cpu_cores"),
    ],
    ids=["unknown ssh key", "unknown tag", "no flexible resources"],
)
def test_plan_checks_keys_tags_and_flexible_resources(
    cwd: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, field: str
) -> None:
    """plan resolves SSH keys and tags and checks the flexible-resources policy (exit 2)."""
    text = (EXAMPLE_SPEC.parent / "build-from-spec.toml").read_text()
    assert old in text
    (cwd / "fleet.toml").write_text(text.replace(old, new))
    code = main(["plan", "--simulate", "fleet.toml"])
    out = capsys.readouterr().out
    assert code == 2
    assert field in out
    assert "ci-runner-01" in out


def test_plan_of_the_build_from_spec_example_has_no_problem(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example's keys, tags and CPU/memory all resolve: VMs to build (2 with
    --detailed-exitcode)."""
    spec = str(EXAMPLE_SPEC.parent / "build-from-spec.toml")
    code = main(["plan", "--simulate", "--detailed-exitcode", spec])
    out = capsys.readouterr().out
    assert code == 2
    assert "0 problem(s)" in out


def test_plan_shows_each_vms_fate_as_run_decides_it(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a partial run: up to date, held by the trash, another fleet's, to build; with
    fewer VMs in the spec, the fleet's VMs it no longer lists. plan never builds."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--limit", "web-*"]) == 0
    report = validate_report_file(cwd / "report.json")
    ids = {vm.key: vm.virtual_machine.id for vm in report.vms if vm.virtual_machine}
    sim.portal.call(sim.running.state.trash_vm, ids["web-03"])
    foreign = sim.portal.call(lambda: sim.running.state.add_existing_vm("acme", "db-01"))
    record = sim.running.state.vm_by_id(foreign)
    assert record is not None
    record.annotations = [{"key": VM_KEY, "value": "db-01"}, {"key": FLEET_KEY, "value": "x"}]
    capsys.readouterr()
    assert main(["plan", str(EXAMPLE_SPEC), "--detailed-exitcode"]) == 2
    out = capsys.readouterr().out
    assert "Fleet: example" in out
    assert "To build (1): db-02" in out
    assert "Up to date (2): web-01, web-02" in out
    assert "Held by the trash (orchestrator destroy --purge frees it) (1): web-03" in out
    assert "Another fleet's (not touched; name that fleet to adopt it) (1): db-01" in out
    smaller = cwd / "smaller.toml"
    smaller.write_text(EXAMPLE_SPEC.read_text().replace("count = 3", "count = 1"))
    assert main(["plan", str(smaller), "--output", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["removed_from_spec"] == ["web-02"]
    assert plan["fates"] == {"submit": ["db-02"], "ours": ["web-01"], "conflict": ["db-01"]}
    assert sorted(sim.hostnames()) == ["db-01", "web-01", "web-02", "web-03"]
