"""``--state postgresql://...``: a fleet run from many machines, as real processes.

The simulator and ``orchestrator`` run as processes of their own, against the
session's real PostgreSQL server (a database per test). Two URLs that spell
the same database differently stand for two machines.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.engine.state.journal import read_journal
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import clean_environ, orchestrator_command, run_orchestrator
from tests.faults._processes import SimProcess, engine_env, write_spec

pytestmark = pytest.mark.slow

#: simulated seconds per real second: a 40 s build takes 1 s (runs overlap for sure)
SCALE = 40.0


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _without_password(url: str) -> str:
    """The same database through ``localhost`` and no password: "another machine" whose
    password comes from PGPASSWORD."""
    scheme, rest = url.split("://", 1)
    userinfo, hostpart = rest.split("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}@{hostpart.replace('127.0.0.1', 'localhost', 1)}"


def _created(sim: SimProcess, keys: list[str]) -> Counter[str]:
    return Counter(
        vm["hostname"] for vm in sim.state()["virtual_machines"] if vm["hostname"] in set(keys)
    )


def test_two_machines_started_together_one_is_refused_naming_the_other(
    pg_url: str, tmp_path: Path
) -> None:
    """Two runs of one fleet, on two URLs of one database, started together: one runs, the
    other is refused at once (exit 2, naming host, pid, run and since when) and sends
    nothing; every VM is built exactly once."""
    with SimProcess(time_scale=SCALE, seed=3) as sim:
        spec = tmp_path / "spec.toml"
        keys = write_spec(spec, "two", 6)
        env = engine_env(sim, ORCHESTRATOR_MAX_IN_FLIGHT="2")
        urls = [pg_url, _without_password(pg_url)]
        processes = []
        for i, url in enumerate(urls):
            out = tmp_path / f"m{i}"
            out.mkdir()
            argv = orchestrator_command(
                "run", str(spec), "--state", url, "--fleet", "twin", "--no-progress",
                "--report", str(out / "report.json"),
            )  # fmt: skip
            machine_env = {**env, "PGPASSWORD": _password(pg_url)} if i else env
            processes.append(
                subprocess.Popen(
                    argv,
                    env=machine_env,
                    cwd=out,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
        created = _created(sim, keys)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [r[2][-2000:] for r in results]
    refused = next(err for code, _, err in results if code == 2)
    assert "is being run or destroyed by another process" in refused
    for part in ("host ", "pid ", "run ", "since "):
        assert part in refused
    assert created == Counter(keys), f"not every VM exactly once: {created}"


def test_the_password_appears_nowhere(pg_url: str, tmp_path: Path) -> None:
    """With the password in the URL: not in stdout, stderr (debug JSON logs), the report,
    the JUnit file, the metrics or --help; nor in the error of a refused password."""
    secret = _password(pg_url)
    with SimProcess(time_scale=SCALE * 5, seed=4) as sim:
        spec = tmp_path / "spec.toml"
        write_spec(spec, "sec", 3)
        env = {**engine_env(sim), "ORCHESTRATOR_STATE": pg_url}
        args = ["--fleet", "sec", "--no-progress", "--log-level", "debug", "--log-format", "json"]
        outputs = ["--junit", "run.xml", "--metrics", "run.prom"]
        done = run_orchestrator("run", str(spec), *args, *outputs, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        helped = run_orchestrator("run", "--help", cwd=tmp_path, env=env)
        bad = pg_url.replace(f":{secret}@", ":wrong-password@")
        refused = run_orchestrator(
            "run", str(spec), "--state", bad, *args, cwd=tmp_path, env=engine_env(sim)
        )
        status = run_orchestrator("status", "--fleet", "sec", cwd=tmp_path, env=env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "password authentication failed" in refused.stderr
    assert status.returncode == 0, status.stderr
    texts = [done.stdout, done.stderr, helped.stdout, refused.stdout, refused.stderr]
    texts += [status.stdout, status.stderr]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file() and p.suffix != ".toml"]
    for text in texts:
        assert secret not in text
        assert "wrong-password" not in text


def test_a_url_without_password_reads_pgpassword_or_pgpass(pg_url: str, tmp_path: Path) -> None:
    """libpq finds the password as psql does: PGPASSWORD, or a .pgpass file (PGPASSFILE)."""
    secret = _password(pg_url)
    bare = _without_password(pg_url)
    host, port_db = bare.split("@", 1)[1].split(":", 1)
    port, database = port_db.split("/", 1)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{host}:{port}:{database}:orchestrator:{secret}\n")
    pgpass.chmod(0o600)
    with SimProcess(time_scale=SCALE * 5, seed=5) as sim:
        spec = tmp_path / "spec.toml"
        keys = write_spec(spec, "pgp", 2)
        base = {**engine_env(sim), "ORCHESTRATOR_STATE": bare}
        args = ["--fleet", "pgp", "--no-progress"]
        first = run_orchestrator(
            "run", str(spec), *args, cwd=tmp_path, env={**base, "PGPASSWORD": secret}
        )
        second = run_orchestrator(
            "run", str(spec), *args, cwd=tmp_path, env={**base, "PGPASSFILE": str(pgpass)}
        )
        created = _created(sim, keys)
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    report = validate_report_file(tmp_path / "report.json")
    assert {(vm.outcome, vm.reason) for vm in report.vms} == {("skipped", "already_exists")}
    assert created == Counter(keys)


def test_status_plan_and_destroy_take_the_state(pg_url: str, tmp_path: Path) -> None:
    """run, status, plan and destroy all take --state: plan sees the fleet up to date,
    destroy deletes this fleet's VMs and leaves another fleet's of the same hostnames."""
    with SimProcess(time_scale=SCALE * 5, seed=6) as sim:
        env = engine_env(sim)
        ours = tmp_path / "ours"
        theirs = tmp_path / "theirs"
        for folder in (ours, theirs):
            folder.mkdir()
        spec = tmp_path / "spec.toml"
        keys = write_spec(spec, "sta", 3)
        state = ["--state", pg_url]
        other = write_spec(tmp_path / "other.toml", "oth", 2)
        built = run_orchestrator(
            "run", str(spec), *state, "--fleet", "ours", "--no-progress", cwd=ours, env=env
        )
        # another team's fleet in the same database: other VMs, its own name
        elsewhere = run_orchestrator(
            "run", str(tmp_path / "other.toml"), *state, "--fleet", "theirs", "--no-progress",
            cwd=theirs, env=env,
        )  # fmt: skip
        status = run_orchestrator("status", *state, "--fleet", "ours", cwd=ours, env=env)
        plan = run_orchestrator(
            "plan", str(spec), *state, "--fleet", "ours", "--output", "json", cwd=ours, env=env
        )
        # destroy of fleet "theirs" with our spec: our hostnames, their name: nothing deleted
        wrong = run_orchestrator(
            "destroy", str(spec), *state, "--fleet", "theirs", "--yes", "--no-progress",
            cwd=theirs, env=env,
        )  # fmt: skip
        gone = run_orchestrator(
            "destroy", str(spec), *state, "--fleet", "ours", "--yes", "--no-progress",
            cwd=ours, env=env,
        )  # fmt: skip
        server = sim.state()["virtual_machines"]
    for done in (built, elsewhere, status, gone):
        assert done.returncode == 0, done.stderr[-2000:]
    assert "fleet 'ours'" in status.stdout
    assert "3 succeeded" in status.stdout
    assert plan.returncode == 0, plan.stderr[-2000:]
    summary = json.loads(plan.stdout)["summary"]
    assert (summary["to_build"], summary["existing"]) == (0, 3)
    assert wrong.returncode == 1, wrong.stderr[-2000:]
    trashed = {vm["hostname"]: vm["in_trash"] for vm in server}
    assert all(trashed[k] for k in keys)
    assert not any(trashed[k] for k in other)
    snapshot = read_journal(pg_url, fleet="ours")
    assert {e.result.reason for e in snapshot.deletes if e.result} == {"deleted"}


def test_an_unnamed_fleet_or_an_unreachable_database_is_one_error_and_nothing_sent(
    pg_url: str, tmp_path: Path
) -> None:
    """No fleet name, or a database nobody answers at: exit 2, one error line, no request
    of a build sent."""
    with SimProcess(time_scale=SCALE * 5, seed=8) as sim:
        spec = tmp_path / "spec.toml"
        write_spec(spec, "err", 2)
        env = engine_env(sim)
        unnamed = run_orchestrator("run", str(spec), "--state", pg_url, cwd=tmp_path, env=env)
        closed = "postgresql://orchestrator:pw@127.0.0.1:9/none"
        unreachable = run_orchestrator(
            "run", str(spec), "--state", closed, "--fleet", "x", cwd=tmp_path, env=env
        )
        created = sim.state()["virtual_machines"]
    assert unnamed.returncode == 2
    assert "name it" in unnamed.stderr
    assert unreachable.returncode == 2, unreachable.stderr[-2000:]
    errors = [line for line in unreachable.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, unreachable.stderr
    assert "cannot connect to the state database" in errors[0]
    assert ":pw@" not in unreachable.stderr
    assert created == []


def test_clean_environ_drops_the_state_variable() -> None:
    """(The helpers' own guarantee these tests lean on: no ORCHESTRATOR_STATE leaks in.)"""
    assert "ORCHESTRATOR_STATE" not in clean_environ()
