"""``orchestrator run`` in-process (``main(argv)``): every exit code, its files and messages."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from orchestrator.cli import main
from orchestrator.report import load_report
from orchestrator.report._validate import validate_report_file
from orchestrator.simulator import FaultConfig
from tests.cli._helpers import (
    EXAMPLE_HOSTNAMES,
    EXAMPLE_SPEC,
    ThreadSimulator,
    make_report,
    thread_simulator,
    write_spec,
)

SetEnv = Callable[[dict[str, str]], None]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_builds_the_example_and_writes_every_file(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run`` builds the example (0); report, journal and JUnit are owner-only, the metrics
    file readable by node-exporter (0o644)."""
    setenv(sim.env())
    code = main(["run", str(EXAMPLE_SPEC), "--junit", "junit.xml", "--metrics", "m.prom"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = validate_report_file(cwd / "report.json")
    assert report.summary.total == report.summary.succeeded == 5
    assert sorted(vm.hostname for vm in report.vms) == sorted(EXAMPLE_HOSTNAMES)
    assert "5 succeeded" in out
    assert "report written to report.json" in out
    junit = ElementTree.parse(cwd / "junit.xml")  # noqa: S314 - a file this test made
    cases = junit.getroot().iter("testcase")
    assert sorted(case.get("name") or "" for case in cases) == sorted(EXAMPLE_HOSTNAMES)
    metrics = (cwd / "m.prom").read_text()
    assert 'orchestrator_last_run_vms{fleet="example",outcome="succeeded"} 5.0' in metrics
    for name in ("junit.xml", "report.json.journal"):
        assert _mode(cwd / name) == 0o600, name
    assert _mode(cwd / "m.prom") == 0o644


def test_run_then_rerun_builds_each_vm_once(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run builds every VM (0) with a journal beside the report; a rerun builds nothing
    again: each VM is looked at and found there (skipped/already_exists), on the same
    journal and, for a named fleet, on a new one."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    assert (cwd / "report.json.journal").exists()
    same_journal = ["--report", "again.json", "--journal", "report.json.journal"]
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", *same_journal]) == 0
    assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)
    # the same journal: the API, not the journal, says each VM is there
    again = validate_report_file(cwd / "again.json")
    assert {(vm.outcome, vm.reason) for vm in again.vms} == {("skipped", "already_exists")}
    capsys.readouterr()
    # a new journal, same simulator: every VM exists, so every VM is skipped
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress", "--report", "third.json"]) == 0
    third = validate_report_file(cwd / "third.json")
    assert {vm.outcome for vm in third.vms} == {"skipped"}
    assert {vm.reason for vm in third.vms} == {"already_exists"}
    assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)


def test_run_with_failed_builds_exits_1(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Builds that fail give exit 1, a report naming the category, and a failure table."""
    with thread_simulator(faults=FaultConfig(build_fail_rate=1.0)) as failing:
        setenv(failing.env())
        code = main(["run", str(EXAMPLE_SPEC), "--no-progress"])
    out, _ = capsys.readouterr()
    assert code == 1
    report = validate_report_file(cwd / "report.json")
    assert {vm.category for vm in report.vms} == {"build_failed"}
    assert "Failed or cancelled VMs (5)" in out


def test_run_with_a_wrong_token_exits_3(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token the API refuses stops the whole run (3); every VM still has its row, as auth."""
    setenv(sim.env(token="not-the-token"))
    code = main(["run", str(EXAMPLE_SPEC), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 3, err
    report = validate_report_file(cwd / "report.json")
    assert {vm.category for vm in report.vms} == {"auth"}
    assert "invalid_api_token" in out
    assert sim.hostnames() == []


def test_run_without_a_token_exits_2_and_says_how(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a token or --simulate nothing is sent (2); the message says what to set."""
    code = main(["run", str(EXAMPLE_SPEC)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "KATAPULT_API_KEY" in err
    assert "--simulate" in err
    assert list(cwd.iterdir()) == []


BAD_SPECS = {
    "unknown key": (
        '[[vms]]\nhostname = "a-1"\norganization = "acme"\npackage = "rock-1"\n'
        'data_center = "uk-lon-01"\npackgae = "rock-3"\n',
        ["bad.toml:6", "vms[0]", "(a-1)", "packgae", "unknown key"],
    ),
    "bad hostname": (
        '[defaults]\norganization = "acme"\npackage = "rock-1"\ndata_center = "uk-lon-01"\n'
        '[[vms]]\nhostname = "web_01"\n',
        ["bad.toml:6", "vms[0]", "hostname", "'_'"],
    ),
    "duplicate hostnames": (
        '[defaults]\norganization = "acme"\npackage = "rock-1"\ndata_center = "uk-lon-01"\n'
        '[[vms]]\nhostname = "db-1"\n[[vms]]\nhostname = "DB-1"\n',
        ["bad.toml", "vms[1]", "hostname"],
    ),
    "count not a number": (
        '[defaults]\norganization = "acme"\npackage = "rock-1"\ndata_center = "uk-lon-01"\n'
        '[[vms]]\nhostname = "w-{index}"\ncount = "three"\n',
        ["bad.toml:7", "vms[0]", "count", "integer"],
    ),
    "not TOML": ("[[vms]\nhostname = 1\n", ["bad.toml:1"]),
}


@pytest.mark.parametrize(("text", "expected"), BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_spec_exits_2_naming_file_entry_and_field(
    cwd: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    """A bad spec is refused (2) before anything is sent; the message locates each problem."""
    (cwd / "bad.toml").write_text(text)
    code = main(["run", "--simulate", "bad.toml"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: spec is invalid"), err
    for fragment in expected:
        assert fragment in err
    assert "simulator:" not in err  # refused before the simulator even started
    assert out == ""
    assert sorted(path.name for path in cwd.iterdir()) == ["bad.toml"]


def test_missing_spec_file_exits_2(cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A spec file that does not exist is one message naming it and why (2)."""
    assert main(["run", "--simulate", "nowhere.toml"]) == 2
    assert capsys.readouterr().err == (
        "error: nowhere.toml: cannot read the spec file: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("ORCHESTRATOR_MAX_IN_FLIGHT", "-3", "engine.max_in_flight"),
        ("ORCHESTRATOR_BUDGET_SHARE", "1.5", "engine.budget_share"),
        ("ORCHESTRATOR_POLL_MIN_SECONDS", "soon", "engine.poll_min_seconds"),
        ("ORCHESTRATOR_LOG_FORMAT", "xml", "output.log_format"),
        ("KATAPULT_API_URL", "http://api.example.com/core/v1/", "katapult.api_url"),
    ],
)
def test_bad_environment_value_exits_2_naming_setting_and_source(
    cwd: Path,
    setenv: SetEnv,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    setting: str,
) -> None:
    """A bad environment value is refused (2), naming the setting and the variable."""
    setenv({variable: value})
    code = main(["run", "--simulate", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 2
    assert setting in err
    assert f"environment variable {variable}" in err
    assert list(cwd.iterdir()) == []


def test_unknown_orchestrator_variable_is_a_warning_line(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ORCHESTRATOR_* variable that is no setting gets one warning line; the run goes on."""
    setenv({"ORCHESTRATOR_MAX_INFLIGHT": "3"})
    code = main(["run", "--simulate", "--no-progress", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 0
    assert (
        "warning: environment variable ORCHESTRATOR_MAX_INFLIGHT is not a setting and is "
        "ignored (did you mean ORCHESTRATOR_MAX_IN_FLIGHT?)"
    ) in err


def test_tls_to_a_plain_http_port_fails_at_once_with_one_error_line(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """https:// to a plain-HTTP port: one request, no retry, one ``error:`` line naming the
    cause; every VM is in the report, failed, and nothing was built (exit 1)."""
    env = sim.env()
    setenv({**env, "KATAPULT_API_URL": env["KATAPULT_API_URL"].replace("http://", "https://")})
    code = main(["run", "--no-progress", "--log-level", "debug", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "TLS with the API at 127.0.0.1:" in errors[0]
    assert "retrying" not in err
    report = validate_report_file(cwd / "report.json")
    assert [vm.category for vm in report.vms] == ["network"] * 5
    assert report.summary.requests.total == 1
    assert sim.hostnames() == []


def test_metrics_mode_is_an_option(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--metrics-mode (or ORCHESTRATOR_METRICS_MODE) sets the metrics file's permissions."""
    args = ["run", "--simulate", "--no-progress", "--metrics", "m.prom", str(EXAMPLE_SPEC)]
    assert main([*args, "--metrics-mode", "0600"]) == 0
    assert _mode(cwd / "m.prom") == 0o600
    setenv({"ORCHESTRATOR_METRICS_MODE": "0640"})
    assert main(args) == 0
    assert _mode(cwd / "m.prom") == 0o640
    assert main([*args, "--metrics-mode", "0777"]) == 2
    assert "output.metrics_mode = '0777' (from the command line)" in capsys.readouterr().err


def test_json_logs_keep_stderr_json_with_progress_on(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--log-format json with progress on: every stderr line is JSON (simulator line too)."""
    code = main(["run", "--simulate", "--log-format", "json", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 0
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert events[0]["event"] == "orchestrator.simulator.started"
    assert {e["event"] for e in events} >= {"orchestrator.vm.succeeded"}


def test_bad_config_file_value_exits_2_naming_file_and_line(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value in --config is refused (2), naming the setting, the file and its line."""
    (cwd / "config.toml").write_text('[engine]\nmax_in_flight = 10\npoll_min_seconds = "abc"\n')
    code = main(["run", "--simulate", "--config", "config.toml", str(EXAMPLE_SPEC)])
    err = capsys.readouterr().err
    assert code == 2
    assert "engine.poll_min_seconds" in err
    assert "config.toml:3" in err


def test_flag_beats_environment_beats_config_file(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--report wins over ORCHESTRATOR_REPORT, which wins over the config file's output.report."""
    (cwd / "config.toml").write_text('[output]\nreport = "from-file.json"\njunit = "j.xml"\n')
    setenv({**sim.env(), "ORCHESTRATOR_REPORT": "from-env.json"})
    args = ["run", "--config", "config.toml", str(EXAMPLE_SPEC), "--no-progress"]
    assert main(args) == 0
    assert (cwd / "from-env.json").exists()
    assert (cwd / "j.xml").exists()  # what only the file sets still applies
    assert main([*args, "--report", "from-flag.json"]) == 0
    assert (cwd / "from-flag.json").exists()
    assert not (cwd / "from-file.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--deadline", "5x"], "not a duration"),
        (["--max-in-flight", "0"], "--max-in-flight"),
        (["--budget-share", "0"], "engine.budget_share = '0' (from the command line): must be"),
        (["--budget-share", "half"], "engine.budget_share"),
        (["--log-format", "xml"], "--log-format"),
        (["--journal", "j.db", "--no-journal"], "contradict"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_flags_exit_2(
    cwd: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A bad flag is a usage error (2) saying which."""
    code = main(["run", "--simulate", str(EXAMPLE_SPEC), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(cwd.iterdir()) == []


def test_foreign_journal_exits_2_and_leaves_it_untouched(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --journal that is not a journal is refused (2) and left as it was."""
    (cwd / "notes.txt").write_text("my notes\n")
    code = main(["run", "--simulate", str(EXAMPLE_SPEC), "--journal", "notes.txt"])
    err = capsys.readouterr().err
    assert code == 2
    assert "notes.txt is not an orchestrator journal" in err
    assert "--journal PATH names another journal" in err
    assert (cwd / "notes.txt").read_text() == "my notes\n"


def test_retry_failed_rebuilds_only_what_failed(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """--retry-failed REPORT builds only the VMs that failed in REPORT."""
    write_spec(cwd / "fleet.toml", "rf", count=3)
    with thread_simulator() as sim:
        setenv(sim.env())
        assert main(["run", "fleet.toml", "--no-progress", "--no-journal"]) == 0
        first = load_report(cwd / "report.json")
        # pretend rf-02 failed last night
        data = first.model_copy(
            update={
                "vms": [
                    vm.model_copy(update={"outcome": "failed", "category": "network"})
                    if vm.hostname == "rf-02"
                    else vm
                    for vm in first.vms
                ]
            }
        )
        (cwd / "last.json").write_text(data.model_dump_json())
        code = main(
            ["run", "fleet.toml", "--no-progress", "--no-journal", "--retry-failed", "last.json"]
        )
    assert code == 0
    report = validate_report_file(cwd / "report.json")
    outcomes = {vm.hostname: (vm.outcome, vm.reason) for vm in report.vms}
    assert outcomes["rf-02"] == ("skipped", "already_exists")
    assert outcomes["rf-01"][1] == outcomes["rf-03"][1] == "not_selected"


def test_retry_failed_with_a_missing_report_exits_2(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--retry-failed naming no report is refused (2)."""
    code = main(["run", "--simulate", str(EXAMPLE_SPEC), "--retry-failed", "gone.json"])
    assert code == 2
    assert "gone.json" in capsys.readouterr().err


def test_no_progress_off_a_terminal_prints_no_progress_lines(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --no-progress, stderr holds log lines only."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "progress:" not in err
    assert "orchestrator.vm.succeeded" in err


def test_reports_are_owner_only_even_with_a_permissive_umask(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv
) -> None:
    """The report and the journal are 0600 whatever the umask."""
    setenv(sim.env())
    old = os.umask(0o002)
    try:
        assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    finally:
        os.umask(old)
    assert _mode(cwd / "report.json") == 0o600
    assert _mode(cwd / "report.json.journal") == 0o600


@pytest.mark.parametrize("flag", ["--report", "--journal", "--junit", "--metrics"])
def test_output_in_a_missing_directory_exits_2_before_anything_is_sent(
    cwd: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """A file to write in a directory that does not exist is refused up front (2)."""
    code = main(["run", "--simulate", str(EXAMPLE_SPEC), flag, "missing/out.file"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no directory missing" in err
    assert "simulator:" not in err
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("reasons", "journal", "expected"),
    [
        ([], "j", None),
        (
            ["build_in_progress", "build_in_progress", "not_submitted"],
            "fleet.journal",
            "3 VMs were not finished: 2 still building on Katapult, 1 not submitted. "
            "To finish them, run the same command again: with the journal fleet.journal",
        ),
        (
            ["submission_outcome_unknown", "deadline"],
            None,
            "2 VMs were not finished: 1 submitted with no answer yet (they may exist), "
            "1 stopped for another reason. This run kept no journal",
        ),
    ],
)
def test_unfinished_hint_says_what_to_do(
    cwd: Path, reasons: list[str], journal: str | None, expected: str | None
) -> None:
    """After a stopped run, one sentence counts the unfinished VMs and says how to finish them."""
    from orchestrator.cli._results import _unfinished_hint

    report = make_report(
        cwd / "r.json", {f"h-{i}": "cancelled" for i in range(len(reasons))} | {"ok": "succeeded"}
    )
    vms = [
        vm.model_copy(update={"reason": reasons[i]}) if vm.outcome == "cancelled" else vm
        for i, vm in enumerate(report.vms)
    ]
    hint = _unfinished_hint(
        report.model_copy(update={"vms": vms}), Path(journal) if journal else None
    )
    if expected is None:
        assert hint is None
    else:
        assert hint is not None
        assert hint.startswith(expected)


def test_build_from_spec_example_runs_with_keys_tags_and_flexible_resources(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """specs/build-from-spec.toml: stored keys by name, tags set, CPU/memory: all built."""
    spec = EXAMPLE_SPEC.parent / "build-from-spec.toml"
    assert main(["run", "--simulate", "--no-progress", str(spec)]) == 0
    report = load_report(cwd / "report.json")
    assert {vm.outcome for vm in report.vms} == {"succeeded"}
    tags = {vm.key: vm.tags for vm in report.vms}
    assert tags["ci-runner-01"] == ("ci", "public")
    assert tags["cache-01"] == ("public",)
    validate_report_file(cwd / "report.json")


def test_unknown_ssh_key_exits_2_before_anything_is_sent(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SSH key the organization does not store: exit 2 naming entry and field, nothing built."""
    text = (EXAMPLE_SPEC.parent / "build-from-spec.toml").read_text()
    (cwd / "keys.toml").write_text(text.replace('"deploy"', '"bob-desktop"'))
    setenv(sim.env())
    code = main(["run", "--no-progress", "keys.toml"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: spec is invalid (2 problems)"), err
    assert "keys.toml vms[0] (ci-runner-01) ssh_keys: no SSH key 'bob-desktop'" in err
    assert "(and 3 more VMs of this entry)" in err
    assert "keys.toml vms[1] (cache-01) ssh_keys" in err
    assert out == ""
    assert sim.hostnames() == []
    assert not (cwd / "report.json").exists()


def test_run_with_a_token_refused_for_its_network_exits_3(
    cwd: Path, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``unauthorized_network_for_api_token`` stops the whole run (3), like a bad token."""
    with thread_simulator(
        refused_tokens={"net-token": "unauthorized_network_for_api_token"}
    ) as sim:
        setenv(sim.env(token="net-token"))
        code = main(["run", str(EXAMPLE_SPEC), "--no-progress"])
        out, err = capsys.readouterr()
        assert code == 3, err
        report = validate_report_file(cwd / "report.json")
        assert {vm.category for vm in report.vms} == {"auth"}
        codes = {vm.error.code for vm in report.vms if vm.error is not None}
        assert codes == {"unauthorized_network_for_api_token"}
        assert "0 succeeded" in out
        assert sim.hostnames() == []


def test_run_prune_deletes_the_fleets_vms_the_spec_no_longer_lists(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """web-02 and web-03 leave the spec: a plain run says so and leaves them; --prune --yes
    deletes them (their own report), and nothing else; off a terminal it needs --yes."""
    setenv(sim.env())
    assert main(["run", str(EXAMPLE_SPEC), "--no-progress"]) == 0
    smaller = cwd / "smaller.toml"
    smaller.write_text(EXAMPLE_SPEC.read_text().replace("count = 3", "count = 1"))
    capsys.readouterr()
    assert main(["run", str(smaller), "--no-progress"]) == 0
    out, _ = capsys.readouterr()
    assert "No longer in the spec: 2 VM(s) of this fleet" in out
    assert main(["run", str(smaller), "--no-progress", "--prune"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["run", str(smaller), "--no-progress", "--prune", "--yes"]) == 0
    out, _ = capsys.readouterr()
    pruned = validate_report_file(cwd / "report.prune.json")
    assert pruned.operation == "delete"
    assert {vm.key: vm.reason for vm in pruned.vms} == {"web-02": "deleted", "web-03": "deleted"}
    snapshot = sim.portal.call(sim.running.state.snapshot)
    trashed = {vm["hostname"] for vm in snapshot["virtual_machines"] if vm["in_trash"]}
    assert trashed == {"web-02", "web-03"}
    assert validate_report_file(cwd / "report.json").operation == "build"
