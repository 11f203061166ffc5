"""Every command the README shows in a code block is run (or checked) by a test here.

``test_every_readme_command_is_covered`` fails when the README shows a shell
command that no test below knows: add a test with it. The commands run as a
user types them (through ``bash``, with this environment's ``python`` and
``orchestrator`` first on PATH), in a temporary directory holding ``specs/``
and ``examples/`` (symlinks to the repository's), never in the repository.
Substitutions, each explained where it is made: the real API is the
simulator, and port 8080 is a free port.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import (
    EXAMPLE_HOSTNAMES,
    FAST_ENV,
    WAIT,
    Lines,
    clean_environ,
    thread_simulator,
)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS: list[tuple[str, str]] = re.findall(r"^```(\w*)\n(.*?)^```", README, re.M | re.S)
BIN = Path(sys.executable).parent


def _shell_commands(text: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments dropped, ``&&`` split."""
    joined = re.sub(r"\\\n\s*", "", text)
    commands = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        if not tokens:
            continue
        command = " ".join(shlex.quote(token) for token in tokens)
        commands += [part.strip() for part in command.split(" '&&' ")]
    return commands


SHELL_COMMANDS = [cmd for lang, text in BLOCKS if lang == "sh" for cmd in _shell_commands(text)]


def _block(lang: str, containing: str) -> str:
    matches = [text for kind, text in BLOCKS if kind == lang and containing in text]
    assert len(matches) == 1, f"expected one ```{lang} block with {containing!r} in README.md"
    return matches[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory with the repository's ``specs/`` and ``examples/``."""
    for name in ("specs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = clean_environ(extra or {})
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _orchestrator_args(command: str) -> list[str]:
    """The arguments after ``orchestrator`` in a command line (shell redirections dropped)."""
    tokens = shlex.split(command)
    start = next(i for i, token in enumerate(tokens) if token.endswith("orchestrator"))
    args = []
    for token in tokens[start + 1 :]:
        if token in ("&&", ";", "|") or token.startswith((">", "2>")):
            break
        args.append(token)
    return args


def _parses(args: list[str]) -> None:
    """``orchestrator ARGS`` parses: every option exists and every value is accepted."""
    command = cli.get_command(cli.make_context("orchestrator", [args[0]]), args[0])
    assert command is not None, args
    command.make_context(args[0], args[1:])


# ------------------------------------------------------------------------ coverage

_RUN_AGAINST_SIMULATOR = (
    "KATAPULT_API_URL=http://127.0.0.1:8080/core/v1/ KATAPULT_API_KEY=sim-token "
    "ORCHESTRATOR_RATE_WINDOW_SECONDS=3 ORCHESTRATOR_EXPECTED_BUILD_SECONDS=2 "
    "ORCHESTRATOR_POLL_MIN_SECONDS=0.25 orchestrator run specs/example.toml"
)

_DESTROY_AGAINST_SIMULATOR = (
    "KATAPULT_API_URL=http://127.0.0.1:8080/core/v1/ KATAPULT_API_KEY=sim-token "
    "ORCHESTRATOR_RATE_WINDOW_SECONDS=3 orchestrator destroy --yes --purge specs/example.toml"
)

_FLEET_RUN = (
    "orchestrator run --simulate specs/example.toml --journal fleet.journal "
    "--inventory inventory.yml"
)

#: Every shell command of the README, and the test that runs or checks it.
COVERED = {
    "pip install -e .": "test_pip_install_is_the_editable_install",
    "orchestrator run --simulate specs/example.toml": "test_the_first_command",
    "pip install -e '.[test]'": "test_pip_install_is_the_editable_install",
    "pytest": "test_pytest_is_what_ci_runs",
    "export KATAPULT_API_KEY=...": "test_against_the_real_api_block",
    "export KATAPULT_ORGANIZATION=acme": "test_against_the_real_api_block",
    "orchestrator plan specs/example.toml": "test_against_the_real_api_block",
    "orchestrator run specs/example.toml": "test_against_the_real_api_block",
    "python examples/library.py": "test_library_example_command",
    "orchestrator simulate --port 8080 --time-scale 20": "test_simulator_block",
    _RUN_AGAINST_SIMULATOR: "test_simulator_block",
    _DESTROY_AGAINST_SIMULATOR: "test_simulator_block",
    _FLEET_RUN: "test_fleet_block",
    "ansible-inventory -i inventory.yml --graph": "test_fleet_block",
    "orchestrator plan --simulate specs/example.toml --limit 'db-*' --output json": (
        "test_fleet_block"
    ),
    "orchestrator status fleet.journal --output json": "test_fleet_block",
    "orchestrator report diff report.json report.json --output json": "test_fleet_block",
    "python -m benchmarks": "test_benchmark_commands",
    "python -m benchmarks --quick": "test_benchmark_commands",
    "python -m benchmarks rate-bound-real": "test_benchmark_commands",
    "python -m benchmarks rate-bound-real --build 40 --n 1000": "test_benchmark_commands",
    "python -m benchmarks destroy": "test_benchmark_commands",
    "python -m benchmarks shared-budget": "test_benchmark_commands",
    "eval '$(orchestrator completion bash)'": "test_shell_completion",
    "orchestrator run --simulate specs/example.toml --html run.html": "test_html_block",
    "orchestrator report html report.json -o run.html": "test_html_block",
    "pipx install .": "test_install_block",
    "orchestrator --version": "test_install_block",
    "orchestrator examples specs": "test_install_block",
    "export ORCHESTRATOR_STATE=postgresql://orchestrator@db.example.com:5432/fleets": (
        "test_many_machines_block"
    ),
    "export PGPASSWORD=...": "test_many_machines_block",
    "orchestrator status --fleet example": "test_many_machines_block",
    "orchestrator destroy --yes specs/example.toml": "test_many_machines_block",
}


def test_every_readme_command_is_covered() -> None:
    """Each shell command in a README code block is one this module runs or checks."""
    assert SHELL_COMMANDS, "no ```sh blocks found in README.md"
    unknown = [command for command in SHELL_COMMANDS if command not in COVERED]
    assert not unknown, f"README commands no test runs (add them here): {unknown}"


def test_every_code_block_is_known() -> None:
    """Code blocks are sh (run), cron/ini (parsed), toml/json/python/text (checked elsewhere)."""
    assert {lang for lang, _ in BLOCKS} <= {"sh", "cron", "ini", "toml", "json", "python", "text"}


# --------------------------------------------------------------- the two commands


def test_pip_install_is_the_editable_install() -> None:
    """``pip install -e .`` / ``'.[test]'`` happened: this checkout, with the test extras.

    Not re-run (it would change the environment under the test run); checked instead.
    """
    dist = importlib.metadata.distribution("katapult-orchestrator")
    direct = dist.read_text("direct_url.json")
    if direct is None:
        pytest.skip("orchestrator is not installed with pip (no direct_url.json)")
    info = json.loads(direct)
    assert info.get("dir_info", {}).get("editable") is True, "not an editable install (-e)"
    assert Path(info["url"].removeprefix("file://")).resolve() == ROOT
    extras = [req for req in dist.requires or [] if "extra == 'test'" in req.replace('"', "'")]
    assert extras
    for requirement in extras:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        importlib.metadata.distribution(name)  # raises if the extra is missing


def test_pytest_is_what_ci_runs() -> None:
    """``pytest`` is this very run; ``.ci/run`` installs the test extras and calls it."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in script
    assert re.search(r"^python3 -m pytest$", script, re.M)


def test_the_first_command(workdir: Path) -> None:
    """``orchestrator run --simulate specs/example.toml`` builds the example, writes the report."""
    command = _shell_commands(_block("sh", "pip install -e . && orchestrator run --simulate"))[1]
    result = _bash(command, workdir, _env())
    assert result.returncode == 0, result.stderr
    assert "5 succeeded" in result.stdout
    assert "simulator: http://127.0.0.1:" in result.stderr
    report = validate_report_file(workdir / "report.json")
    assert sorted(vm.hostname for vm in report.vms) == sorted(EXAMPLE_HOSTNAMES)
    assert not (workdir / "report.json.journal").exists()  # a simulated run keeps no journal


# ---------------------------------------------------------------- the real API


def test_against_the_real_api_block(workdir: Path) -> None:
    """The "Against the real API" block, against a simulator whose token is ``...``.

    Substitution: ``KATAPULT_API_URL`` points at a simulator started with
    ``--token ...`` (the README's placeholder), so every line runs as written:
    plan says 0 (the plan was made), run builds them (0) with the journal beside the report.
    """
    commands = _shell_commands(_block("sh", "export KATAPULT_API_KEY"))
    exports = "; ".join(command for command in commands if command.startswith("export "))
    others = [command for command in commands if not command.startswith("export ")]
    with thread_simulator(token="...") as sim:
        env = _env({"KATAPULT_API_URL": sim.url, **FAST_ENV})
        codes = [_bash(f"{exports}; {command}", workdir, env).returncode for command in others]
        assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)
    assert codes == [0, 0]
    validate_report_file(workdir / "report.json")
    assert (workdir / "report.json.journal").exists()


# ------------------------------------------------------------------- the library


def test_library_block_runs(workdir: Path) -> None:
    """The README's Python example runs as shown (against a simulator via the environment)."""
    code = _block("python", "async with Orchestrator(")
    with thread_simulator() as sim:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=workdir,
            env=_env(sim.env()),
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert sorted(sim.hostnames()) == sorted(EXAMPLE_HOSTNAMES)
    assert result.returncode == 0, result.stderr
    assert "succeeded=5" in result.stdout  # print(report.summary)
    assert "ProvisionEvent(kind='succeeded'" in result.stdout  # hooks=[print]
    assert (workdir / "fleet.journal").exists()


def test_library_example_command(workdir: Path) -> None:
    """``python examples/library.py`` starts its own simulator, prints each VM and the summary,
    and writes nothing (no journal, no report)."""
    result = _bash("python examples/library.py", workdir, _env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("simulator listening on http://127.0.0.1:")
    for hostname in EXAMPLE_HOSTNAMES:
        assert any(line.split()[:2] == [hostname, "succeeded"] for line in lines), hostname
    assert "summary: 5 total, 5 succeeded, 0 failed, 0 skipped, 0 cancelled" in result.stdout
    assert "succeeded 5" in lines[-1]  # the hook counted every kind of event
    assert sorted(path.name for path in workdir.iterdir()) == ["examples", "specs"]


# ------------------------------------------------- after the run: inventory, JSON


def test_fleet_block(workdir: Path) -> None:
    """The "After the run" block, in order: the inventory Ansible reads, then each JSON."""
    commands = _shell_commands(_block("sh", "--inventory inventory.yml"))
    results = [_bash(command, workdir, _env({"HOME": str(workdir)})) for command in commands]
    assert [r.returncode for r in results] == [0, 0, 0, 0, 0], [r.stderr for r in results]
    report = validate_report_file(workdir / "report.json")
    graph = results[1].stdout
    for hostname in EXAMPLE_HOSTNAMES:
        assert hostname in graph
    assert "@dc_uk_lon_01:" in graph
    assert "WARNING" not in results[1].stderr
    first = report.vms[0].virtual_machine
    assert first is not None
    assert first.ip_addresses
    assert f"ansible_host: {first.ip_addresses[0]}" in (workdir / "inventory.yml").read_text()
    plan, status, diff = (json.loads(r.stdout) for r in results[2:])
    assert [vm["hostname"] for vm in plan["to_build"]] == ["db-01", "db-02"]
    assert status["counts"]["finished"] == 5
    assert diff["has_new_failures"] is False


# ------------------------------------------------------ running from many machines


def test_many_machines_block(workdir: Path, pg_url: str) -> None:
    """The "Running from many machines" block, in order, in one shell (its exports carry).

    Substitutions: the database is the test's own (``db.example.com:5432/fleets``
    becomes its host, port and name, ``...`` its password) and the real API is a
    simulator process.
    """
    from tests.faults._processes import SimProcess, engine_env

    text = _block("sh", "ORCHESTRATOR_STATE=postgresql://")
    userinfo, where = pg_url.split("://", 1)[1].split("@", 1)
    password = userinfo.split(":", 1)[1]
    script = text.replace("db.example.com:5432/fleets", where).replace(
        "PGPASSWORD=...", f"PGPASSWORD={shlex.quote(password)}"
    )
    with SimProcess(time_scale=100.0, seed=9) as sim:
        env = {**_env(), **engine_env(sim)}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        done = _bash("set -e\n" + script, workdir, env)
        server = sim.state()["virtual_machines"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Fleet example" in done.stdout
    assert "5 succeeded" in done.stdout
    assert password not in done.stdout + done.stderr
    assert sorted(vm["hostname"] for vm in server) == sorted(EXAMPLE_HOSTNAMES)
    assert all(vm["in_trash"] for vm in server)


# ----------------------------------------------------------------- the simulator


@pytest.fixture
def simulate_block(workdir: Path) -> Iterator[tuple[list[str], subprocess.Popen[str]]]:
    """The simulator block's first command running in the background (as in another shell).

    Substitution: port 8080 becomes a free port, so the test never meets a busy 8080.
    """
    port = str(_free_port())
    commands = [c.replace("8080", port) for c in _shell_commands(_block("sh", "simulate --port"))]
    server = subprocess.Popen(
        ["bash", "-c", f"exec {commands[0]}"],
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    try:
        Lines(server.stdout).wait_for(lambda line: line.startswith("listening on "))
        yield commands, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=WAIT)
        server.stdout.close()


def test_simulator_block(
    workdir: Path, simulate_block: tuple[list[str], subprocess.Popen[str]]
) -> None:
    """``orchestrator simulate --port 8080 --time-scale 20``, the run and the destroy (0, 0)."""
    commands, server = simulate_block
    result = _bash(commands[1], workdir, _env())
    assert result.returncode == 0, result.stderr
    assert "5 succeeded" in result.stdout
    destroyed = _bash(commands[2], workdir, _env())
    assert destroyed.returncode == 0, destroyed.stderr
    assert "0 deleted, 5 purged" in destroyed.stdout
    report = validate_report_file(workdir / "destroy-report.json")
    assert {(vm.outcome, vm.reason) for vm in report.vms} == {("succeeded", "purged")}
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=WAIT) == 0


# ------------------------------------------------------------------- benchmarks


def test_benchmark_commands() -> None:
    """``python -m benchmarks [--quick | SCENARIO [--build S --n N]]`` exist (they run minutes)."""
    if not (ROOT / "benchmarks" / "__main__.py").exists():
        pytest.skip("benchmarks/ is not in this checkout yet")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in (
        "--quick",
        "rate-bound-real",
        "destroy",
        "shared-budget",
        "--build",
        "--n N",
        "--repeat",
    ):
        assert option in result.stdout


# ------------------------------------------------------------ cron and systemd


def test_cron_line_is_valid() -> None:
    """The cron line has five time fields and an ``orchestrator run`` whose flags all parse."""
    lines = [
        line
        for line in _block("cron", "orchestrator run").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    for field in fields[:5]:
        assert re.fullmatch(r"[\d*/,-]+", field), field
    args = _orchestrator_args(fields[5])
    assert args[0] == "run"
    assert "--no-progress" in args  # a cron job has no terminal
    _parses(args)


def test_systemd_units_are_valid() -> None:
    """The service and timer parse as INI; ExecStart is an ``orchestrator run`` that parses."""
    units = configparser.ConfigParser(strict=True, interpolation=None)
    units.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    units.read_string(_block("ini", "[Service]"))
    service = units["Service"]
    assert service["Type"] == "oneshot"
    assert int(service["TimeoutStopSec"]) > 0  # SIGTERM gets time to write the report
    exec_start = shlex.split(service["ExecStart"])
    assert Path(exec_start[0]).name == "orchestrator"
    _parses(_orchestrator_args(service["ExecStart"]))
    assert units["Timer"]["OnCalendar"]
    assert units["Install"]["WantedBy"] == "timers.target"


def test_shell_completion(workdir: Path) -> None:
    """The README's completion line installs a bash completion that completes commands."""
    line = _block("sh", "orchestrator completion bash").strip()
    installed = _bash(f"{line} && complete -p orchestrator", workdir, _env())
    assert installed.returncode == 0, installed.stderr
    assert "_orchestrator_completion" in installed.stdout
    env = _env({"COMP_WORDS": "orchestrator ru", "COMP_CWORD": "1"})
    env["_ORCHESTRATOR_COMPLETE"] = "bash_complete"
    completed = _bash("orchestrator", workdir, env)
    assert "plain,run" in completed.stdout.splitlines()
    sourced = _bash("_ORCHESTRATOR_COMPLETE=bash_source orchestrator", workdir, _env())
    assert sourced.stdout == _bash("orchestrator completion bash", workdir, _env()).stdout


# ------------------------------------------------------------- the HTML report


def test_html_block(workdir: Path) -> None:
    """``run --simulate ... --html run.html``, then ``report html report.json -o run.html``:
    each writes the page of the example's run; the README's picture is there."""
    commands = _shell_commands(_block("sh", "orchestrator report html"))
    assert len(commands) == 2
    first = _bash(commands[0], workdir, _env())
    assert first.returncode == 0, first.stderr
    assert "HTML report written to run.html" in first.stdout
    page = (workdir / "run.html").read_text("utf-8")
    assert all(hostname in page for hostname in EXAMPLE_HOSTNAMES)
    (workdir / "run.html").unlink()
    second = _bash(commands[1], workdir, _env())
    assert second.returncode == 0, second.stderr
    assert all(
        hostname in (workdir / "run.html").read_text("utf-8") for hostname in EXAMPLE_HOSTNAMES
    )
    picture = re.search(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", README)
    assert picture is not None, "the README shows no picture of the HTML report"
    assert (ROOT / picture.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_install_block(tmp_path: Path) -> None:
    """The "Installing it for use" block, in an empty directory.

    ``pipx install .`` is not run (it would install beside the test run); what it
    does, building the wheel and installing it into an environment of its own, is
    ``tests/packaging/test_installed_wheel.py``, which runs the other lines with the
    installed wheel. Here they run with this environment's ``orchestrator``.
    """
    commands = _shell_commands(_block("sh", "pipx install ."))
    assert commands[0] == "pipx install ."
    packaging = (ROOT / "tests" / "packaging" / "test_installed_wheel.py").read_text("utf-8")
    assert '"wheel", "--no-deps", "--no-build-isolation"' in packaging
    version = _bash(commands[1], tmp_path, _env())
    assert version.returncode == 0, version.stderr
    assert "(katapult-orchestrator), for the Katapult Core API v1" in version.stdout
    rest = [_bash(command, tmp_path, _env()) for command in commands[2:]]
    assert [result.returncode for result in rest] == [0, 0], [r.stderr for r in rest]
    assert "5 succeeded" in rest[1].stdout
    assert (tmp_path / "specs" / "example.toml").is_file()


def test_help_of_every_readme_command_works() -> None:
    """``orchestrator COMMAND --help`` (which the README points to) works for every command."""
    runner = CliRunner()
    for args in (["--help"], ["run", "--help"], ["plan", "--help"], ["simulate", "--help"],
                 ["status", "--help"], ["report", "diff", "--help"]):  # fmt: skip
        result = runner.invoke(cli, args, prog_name="orchestrator")
        assert result.exit_code == 0, (args, result.output)
        assert "Exit codes:" in result.output or args == ["report", "--help"]


def test_exit_code_table_matches_the_cli() -> None:
    """The README's exit-code table lists exactly the codes the CLI uses."""
    from orchestrator.cli import EXIT_CODES

    section = README.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert codes == set(EXIT_CODES)
