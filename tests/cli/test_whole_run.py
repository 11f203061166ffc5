"""A whole-run problem is one ``error:`` line, the right exit code, and nothing built (issue 24)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from orchestrator.cli import main
from orchestrator.report._validate import validate_report_file
from orchestrator.simulator import FaultConfig
from tests.cli._helpers import FAST_ENV, ThreadSimulator, thread_simulator, write_spec

SetEnv = Callable[[dict[str, str]], None]

#: one field of the spec that names nothing (or something no build may use), and what is said
UNKNOWABLE_AFTER_SENDING = {
    "package": ({"package": "rock-99"}, "package: no package 'rock-99'"),
    "disk template": (
        {"disk_template": "templates/beos-5"},
        "disk_template: no disk template 'templates/beos-5'",
    ),
    "data center": ({"data_center": "mars-01"}, "data_center: no data center 'mars-01'"),
    "network": ({"network": "nowhere-public"}, "network: no network 'nowhere-public'"),
    "organization": ({"organization": "nobody"}, "organization:"),
    "suspended organization": ({"organization": "frozen"}, "organization:"),
    "organization not activated": ({"organization": "newco"}, "organization:"),
}


@pytest.mark.parametrize(
    ("fields", "said"), UNKNOWABLE_AFTER_SENDING.values(), ids=UNKNOWABLE_AFTER_SENDING.keys()
)
def test_a_lookup_that_names_nothing_is_refused_before_the_first_build(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: SetEnv,
    capsys: pytest.CaptureFixture[str],
    fields: dict[str, str],
    said: str,
) -> None:
    """run checks every lookup as plan does: exit 2, one line naming file, VMs and field."""
    write_spec(cwd / "fleet.toml", "web", 3, **fields)
    setenv(sim.env())
    code = main(["run", "fleet.toml", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith("error: spec is invalid (1 problem):"), err
    assert f"fleet.toml (web-01, web-02, web-03) {said}" in err
    assert out == ""
    assert sim.hostnames() == []
    assert not (cwd / "report.json").exists()


def test_run_and_plan_find_the_same_problems(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every problem plan finds, run refuses at once, each on its own line (quota included)."""
    (cwd / "fleet.toml").write_text(
        '[defaults]\norganization = "acme"\ndata_center = "uk-lon-01"\n'
        'package = "rock-1"\ndisk_template = "templates/ubuntu-22-04"\n'
        '[[vms]]\nhostname = "web-{index:02d}"\ncount = 2\npackage = "rock-99"\n'
        '[[vms]]\nhostname = "db-01"\nzone = "mars-zone-9"\ndata_center = "uk-lon-01"\n'
        '[[vms]]\nhostname = "ci-01"\ntags = ["no-such-tag"]\n'
    )
    setenv(sim.env())
    assert main(["plan", "fleet.toml"]) == 2
    capsys.readouterr()
    assert main(["run", "fleet.toml", "--no-progress"]) == 2
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == "error: spec is invalid (3 problems):"
    assert any("(web-01, web-02) package: no package 'rock-99'" in line for line in lines)
    assert any("(db-01) zone: no zone 'mars-zone-9'" in line for line in lines)
    assert any(
        "(ci-01) tags: organization 'acme' has no tag 'no-such-tag'" in line for line in lines
    )
    assert sim.hostnames() == []


def test_a_wrong_token_is_one_error_line_and_exit_3(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused token: one error: line saying what to do, no line per VM, every VM reported."""
    hostnames = write_spec(cwd / "fleet.toml", "web", 60)
    setenv(sim.env(token="not-the-token"))
    code = main(["run", "fleet.toml", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 3, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "invalid_api_token" in errors[0]
    assert "KATAPULT_API_KEY" in errors[0]
    assert "orchestrator.vm.failed" not in err
    assert len(err.splitlines()) <= 2, err
    assert "Not submitted (60): auth (invalid_api_token)" in out
    assert "web-01" not in out
    report = validate_report_file(cwd / "report.json")
    assert [vm.hostname for vm in report.vms] == hostnames
    assert {(vm.outcome, vm.category, vm.reason) for vm in report.vms} == {
        ("failed", "auth", "not_submitted")
    }
    assert sim.hostnames() == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_refused_connection_at_start_up_is_one_error_line_naming_host_and_port(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens at the API's port: the run stops at once, one error: line, every VM
    reported not submitted, exit 1; no internal class name is the only explanation."""
    hostnames = write_spec(cwd / "fleet.toml", "web", 5)
    port = _closed_port()
    setenv({"KATAPULT_API_URL": f"http://127.0.0.1:{port}/core/v1/", "KATAPULT_API_KEY": "x"})
    setenv(FAST_ENV)
    code = main(["run", "fleet.toml", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot connect to the API at 127.0.0.1:{port} (connection refused); "
        "is KATAPULT_API_URL right, and is the API up?"
    ]
    report = json.loads((cwd / "report.json").read_text())
    assert [vm["hostname"] for vm in report["vms"]] == hostnames
    assert {(vm["category"], vm["reason"]) for vm in report["vms"]} == {
        ("network", "not_submitted")
    }
    assert "Not submitted (5): network" in out


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def test_a_spec_error_in_a_scheduled_run_still_leaves_a_failing_verdict(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last night green, tonight a bad spec: the metrics say the run failed (exit 2) and
    when, keep when it last succeeded; the JUnit file has a failing case naming the problem."""
    write_spec(cwd / "web.toml", "web", 2)
    outputs = ["--metrics", "web.prom", "--junit", "web.xml", "--no-progress"]
    assert main(["run", "--simulate", "web.toml", *outputs]) == 0
    green = _samples(cwd / "web.prom")
    fleet = (("fleet", "web"),)
    succeeded_at = green[("orchestrator_last_success_timestamp_seconds", fleet)]
    assert green[("orchestrator_last_run_success", fleet)] == 1
    write_spec(cwd / "web.toml", "web", 2, package="rock-99")
    capsys.readouterr()
    assert main(["run", "--simulate", "web.toml", *outputs]) == 2
    red = _samples(cwd / "web.prom")
    assert red[("orchestrator_last_run_success", fleet)] == 0
    assert red[("orchestrator_last_run_exit_code", fleet)] == 2
    assert red[("orchestrator_last_success_timestamp_seconds", fleet)] == succeeded_at
    assert red[("orchestrator_last_run_timestamp_seconds", fleet)] >= succeeded_at
    suite = ElementTree.parse(cwd / "web.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("web", "1", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert "no package 'rock-99'" in (failure.text or "")


def test_a_refused_token_leaves_a_verdict_with_exit_code_3(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused token: metrics with exit code 3 and success 0, the JUnit suite named after
    the fleet with every VM a failing case."""
    write_spec(cwd / "db.toml", "db", 3)
    setenv(sim.env(token="not-the-token"))
    code = main(["run", "db.toml", "--no-progress", "--metrics", "db.prom", "--junit", "db.xml"])
    assert code == 3
    samples = _samples(cwd / "db.prom")
    fleet = (("fleet", "db"),)
    assert samples[("orchestrator_last_run_exit_code", fleet)] == 3
    assert samples[("orchestrator_last_run_success", fleet)] == 0
    assert ("orchestrator_last_success_timestamp_seconds", fleet) not in samples
    suite = ElementTree.parse(cwd / "db.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert (suite.get("name"), suite.get("failures")) == ("db", "3")


def test_two_fleets_share_a_textfile_directory(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every sample carries the fleet: two fleets' files in one directory never collide."""
    for name in ("web", "db"):
        write_spec(cwd / f"{name}.toml", name, 1)
        assert (
            main(
                ["run", "--simulate", f"{name}.toml", "--no-progress", "--metrics", f"{name}.prom"]
            )
            == 0
        )
    fleets = {
        dict(labels).get("fleet")
        for name in ("web", "db")
        for (_, labels) in _samples(cwd / f"{name}.prom")
    }
    assert fleets == {"web", "db"}


def test_the_deadline_warning_is_a_json_line_on_stderr(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --log-format json the deadline's warning is one JSON line on stderr, like every
    log line; stdout holds only the summary (it was printed there in structlog's format)."""
    write_spec(cwd / "web.toml", "web", 2)
    args = ["run", "--simulate", "web.toml", "--no-progress", "--log-format", "json"]
    assert main([*args, "--deadline", "1s"]) == 1
    out, err = capsys.readouterr()
    assert "orchestrator.run.deadline" not in out
    lines = [line for line in err.splitlines() if not line.startswith(("error:", "warning:"))]
    events = [json.loads(line) for line in lines]
    deadline = [e for e in events if e["event"] == "orchestrator.run.deadline"]
    assert [e["level"] for e in deadline] == ["warning"]


def test_a_file_name_cannot_forge_lines_or_drive_the_terminal(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec file named with a line break and a terminal escape: the error line shows
    them as escapes; stderr has one line per problem, none forged."""
    name = "web\nerror: forged\x1b[2J.toml"
    (cwd / name).write_text('[[vms]]\nhostname = "web_01"\norganization = "acme"\n')
    assert main(["run", "--simulate", name]) == 2
    _, err = capsys.readouterr()
    assert "\x1b" not in err
    assert "\\x1b[2J" in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == err.splitlines()[:1]
    assert "\nerror: forged" not in err


def test_an_api_that_never_answers_before_the_first_build_is_exit_1_not_3(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every request refused 429 until the retries give up, before anything is built: one
    error line, exit 1, every VM not submitted; no word of the token (it is not refused)."""
    write_spec(cwd / "fleet.toml", "web", 3)
    faults = FaultConfig(burst_429_every=1, burst_429_length=1_000_000)
    with thread_simulator(faults=faults) as refusing:
        setenv({**refusing.env(), "ORCHESTRATOR_RETRY_DEADLINE_SECONDS": "0.5"})
        code = main(["run", "fleet.toml", "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "rate_limit" in errors[0] or "rate limit" in errors[0]
    assert "KATAPULT_API_KEY" not in errors[0]
    report = json.loads((cwd / "report.json").read_text())
    assert {(vm["category"], vm["reason"]) for vm in report["vms"]} == {
        ("rate_limited", "not_submitted")
    }


@pytest.mark.parametrize("command", ["plan", "run"])
def test_keys_the_token_may_not_read_are_exit_3_for_plan_and_run(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The token lacks the scope to list SSH keys the spec names: plan and run both stop
    with one error line saying so, exit 3 (plan listed it as a spec problem, exit 2)."""
    from orchestrator.errors import PermissionDenied
    from orchestrator.katapult import KatapultClient

    async def refused(self: KatapultClient, *args: object, **kwargs: object) -> None:
        raise PermissionDenied(
            http_status=403,
            code="scope_not_granted",
            description="The API token does not have the scopes required",
            detail={"scopes": ["ssh_keys"]},
        )

    monkeypatch.setattr(KatapultClient, "list_ssh_keys", refused)
    write_spec(cwd / "fleet.toml", "web", 2)
    with (cwd / "fleet.toml").open("a") as spec:
        spec.write('ssh_keys = ["deploy"]\n')
    code = main(
        [command, "--simulate", "fleet.toml", "--no-progress"][: 3 if command == "plan" else 4]
    )
    _, err = capsys.readouterr()
    assert code == 3, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "scope_not_granted" in errors[0]
    assert "ssh_keys" in errors[0]


def test_a_bad_setting_still_leaves_a_verdict_where_the_environment_says(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """ORCHESTRATOR_METRICS/_JUNIT name the files and another setting is wrong: the run
    stops (exit 2) and still writes its failing verdict there."""
    write_spec(cwd / "web.toml", "web", 1)
    setenv(
        {
            "ORCHESTRATOR_METRICS": "web.prom",
            "ORCHESTRATOR_JUNIT": "web.xml",
            "ORCHESTRATOR_MAX_IN_FLIGHT": "-3",
        }
    )
    assert main(["run", "--simulate", "web.toml"]) == 2
    assert "engine.max_in_flight = -3" in capsys.readouterr().err
    samples = _samples(cwd / "web.prom")
    assert samples[("orchestrator_last_run_exit_code", (("fleet", "web"),))] == 2
    assert "engine.max_in_flight" in (cwd / "web.xml").read_text()
