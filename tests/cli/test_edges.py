"""`orchestrator run` at its edges: broken pipes, unwritable outputs, signals while the
results are written, a journal whose disk fills up (issue 16)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.report._atomic import atomic_write
from orchestrator.report._validate import validate_report_file
from tests.cli._helpers import (
    EXAMPLE_HOSTNAMES,
    EXAMPLE_SPEC,
    WAIT,
    ThreadSimulator,
    clean_environ,
    orchestrator_command,
    thread_simulator,
    write_spec,
)

OUTPUTS = ("--report", "r.json", "--junit", "r.xml", "--metrics", "r.prom")


@pytest.mark.parametrize("closed", ["stdout", "stdout+stderr"])
def test_a_reader_that_goes_away_costs_no_result_file(cwd: Path, closed: str) -> None:
    """`run ... | head -1`: the reader of stdout (and stderr) is gone before the summary;
    every result file is still written and the exit code is the VMs' (0), not 1."""
    popen = subprocess.Popen(
        orchestrator_command("run", "--simulate", str(EXAMPLE_SPEC), *OUTPUTS, "--no-progress"),
        cwd=cwd,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if closed == "stdout+stderr" else subprocess.DEVNULL,
    )
    assert popen.stdout is not None
    popen.stdout.close()  # like `head -1` having exited: every write gets EPIPE
    if popen.stderr is not None:
        popen.stderr.close()
    assert popen.wait(timeout=60) == 0
    report = validate_report_file(cwd / "r.json")
    assert [vm.hostname for vm in report.vms] == EXAMPLE_HOSTNAMES
    assert (cwd / "r.xml").read_text().count("<testcase") == len(EXAMPLE_HOSTNAMES)
    assert "orchestrator_last_run_vms" in (cwd / "r.prom").read_text()


@pytest.fixture
def unwritable(cwd: Path) -> Path:
    """A directory no file can be created in (for root too: sysfs refuses everyone)."""
    if os.geteuid() == 0:
        return Path("/sys")
    directory = cwd / "ro"
    directory.mkdir(mode=0o555)
    return directory


@pytest.mark.parametrize("flag", ["--report", "--junit", "--metrics", "--journal"])
def test_an_unwritable_output_is_refused_before_anything_is_sent(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: Callable[[dict[str, str]], None],
    capsys: pytest.CaptureFixture[str],
    unwritable: Path,
    flag: str,
) -> None:
    """A result path in a directory that cannot be written: exit 2 naming the path, and
    not one VM built (it used to be found only after every VM was built)."""
    write_spec(cwd / "fleet.toml", "ro", count=2)
    setenv(sim.env())
    target = unwritable / "out.file"
    assert main(["run", "fleet.toml", "--no-progress", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err
    assert sim.hostnames() == []


def test_a_write_error_names_the_users_path_not_a_temp_file(unwritable: Path) -> None:
    """What failed is the file the user asked for, never `.report.json.x1y2.tmp`."""
    target = unwritable / "report.json"
    with pytest.raises(OSError, match=r"report\.json") as caught:
        atomic_write(target, b"{}")
    assert caught.value.filename == str(target)
    assert ".tmp" not in str(caught.value)


_SIGNALLED_WRITE = """
import os, signal, sys
import orchestrator.report as report

write = report.write_report

def signalled(result, path):
    # two signals close together while the report is being written
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    write(result, path)

report.write_report = signalled
from orchestrator.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_two_signals_while_the_report_is_written_exit_130_with_a_whole_report(cwd: Path) -> None:
    """SIGTERM and SIGINT land while the report is written: exit 130 (not -15/-2), and the
    report is whole (valid, every VM once); no temp file is left behind."""
    done = subprocess.run(
        [sys.executable, "-c", _SIGNALLED_WRITE, "run", "--simulate", str(EXAMPLE_SPEC)],
        cwd=cwd,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    report = validate_report_file(cwd / "report.json")
    assert [vm.hostname for vm in report.vms] == EXAMPLE_HOSTNAMES
    assert [p.name for p in cwd.iterdir() if p.name.endswith(".tmp")] == []


def _small_files() -> None:
    """In the child: files may grow to 96 KiB at most (EFBIG beyond, like a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))


def test_a_journal_that_cannot_be_written_stops_the_run_with_a_report(
    cwd: Path, sim: ThreadSimulator
) -> None:
    """The journal's disk fills up mid-run (files limited by RLIMIT_FSIZE): no POST goes
    out unrecorded, the report is written with every VM once, exit 1 (not 2, which says
    nothing was submitted), and the error says what happened."""
    hostnames = write_spec(cwd / "fleet.toml", "full", count=60)
    done = subprocess.run(
        orchestrator_command("run", "fleet.toml", "--no-progress"),
        cwd=cwd,
        env=clean_environ(sim.env()),
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
        check=False,
        preexec_fn=_small_files,
    )
    assert done.returncode == 1, done.stderr
    assert "journal" in done.stderr
    assert "a write failed" in done.stderr
    report = validate_report_file(cwd / "report.json")
    assert sorted(vm.hostname for vm in report.vms) == hostnames
    assert report.stopped_because is not None
    assert report.stopped_because.startswith("journal_failed")
    built = sim.hostnames()
    assert built
    assert len(built) == len(set(built))
    by_host = {vm.hostname: vm for vm in report.vms}
    for hostname in built:  # every VM built is accounted for by its row
        vm = by_host[hostname]
        assert vm.outcome in ("succeeded", "cancelled")
        known = vm.build_id or vm.virtual_machine
        assert known or vm.reason == "submission_outcome_unknown", vm


def test_a_journal_is_refused_against_another_api(
    cwd: Path,
    sim: ThreadSimulator,
    setenv: Callable[[dict[str, str]], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A journal written against one API, used against another: exit 2, nothing sent
    there (it used to report every VM succeeded with ids that API never had);
    --journal-rebind says "use it anyway" and binds it to the new API."""
    hostnames = write_spec(cwd / "fleet.toml", "bound", count=2)
    setenv(sim.env())
    assert main(["run", "fleet.toml", "--no-progress"]) == 0
    with thread_simulator() as elsewhere:
        setenv(elsewhere.env())
        capsys.readouterr()
        assert main(["run", "fleet.toml", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"was written against the API at {sim.url}" in err
        assert "--journal-rebind" in err
        assert "names another journal" not in err  # the message has its own hint
        assert elsewhere.hostnames() == []
        assert main(["run", "fleet.toml", "--no-progress", "--journal-rebind"]) == 0
        assert main(["run", "fleet.toml", "--no-progress"]) == 0  # bound to it now
    assert sorted(sim.hostnames()) == hostnames


_REPORT_DIR_GONE = """
import shutil, sys
from pathlib import Path
import orchestrator.report as report

write = report.write_report

def gone(result, path):
    # the report's directory disappears after the run: a real ENOENT
    if Path(path).parent.name == "out":
        shutil.rmtree(Path(path).parent)
    write(result, path)

report.write_report = gone
from orchestrator.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_a_report_that_cannot_be_written_goes_to_the_temp_directory(cwd: Path) -> None:
    """The report's own path fails at the end: the report is written to the temp
    directory instead, the error names both paths, exit 1."""
    (cwd / "out").mkdir()
    (cwd / "tmp").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _REPORT_DIR_GONE,
            "run",
            "--simulate",
            str(EXAMPLE_SPEC),
            "--no-progress",
            "--report",
            "out/report.json",
        ],
        cwd=cwd,
        env=clean_environ({"TMPDIR": str(cwd / "tmp")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot write the report out/report.json" in done.stderr
    (fallback,) = (cwd / "tmp").glob("orchestrator-report-*.json")
    assert f"written to {fallback}" in done.stderr
    report = validate_report_file(fallback)
    assert [vm.hostname for vm in report.vms] == EXAMPLE_HOSTNAMES
    assert f"report written to {fallback}" in done.stdout
