"""The wheel, installed (not editable) into a virtual environment of its own, works
outside this repository: ``--version``, ``examples`` and ``run --simulate``.

No network: the wheel is built without build isolation (hatchling is a test
dependency) and installed with ``--no-deps``; its dependencies are the ones this
environment already has, reached through a ``.pth`` file. That directory's own
``.pth`` files (this checkout's editable install among them) are not run, so
``import orchestrator`` finds the installed wheel, which the test checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from orchestrator import __version__
from tests.cli._helpers import EXAMPLE_HOSTNAMES, clean_environ

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = clean_environ()
    env.pop("PYTHONPATH", None)  # the installed wheel, not a checkout named there
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh virtual environment with the wheel installed."""
    wheels = tmp_path_factory.mktemp("wheels")
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--wheel-dir", wheels, ROOT, cwd=wheels,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("katapult_orchestrator-*.whl")
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / "bin"
    python = bin_dir / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=env_dir)
    purelib = Path(site.stdout.strip())
    (purelib / "_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        wheel, cwd=env_dir,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return bin_dir


def test_the_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    """``import orchestrator`` in that environment is the wheel's copy, not this checkout."""
    where = _run(installed / "python", "-c", "import orchestrator; print(orchestrator.__file__)",
                 cwd=tmp_path)  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.parent)


def test_version_names_the_distribution_and_the_api(installed: Path, tmp_path: Path) -> None:
    """``orchestrator --version``: the version, katapult-orchestrator, the API it targets."""
    result = _run(installed / "orchestrator", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"orchestrator {__version__} (katapult-orchestrator), for the Katapult Core API v1\n"
    )


def test_the_examples_run_against_the_simulator(installed: Path, tmp_path: Path) -> None:
    """``orchestrator examples specs && orchestrator run --simulate specs/example.toml`` in an
    empty directory builds the example; ``report html`` makes its page."""
    copied = _run(installed / "orchestrator", "examples", "specs", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    names = sorted(path.name for path in (tmp_path / "specs").iterdir())
    assert names == ["build-from-spec.toml", "example.json", "example.toml", "multi-dc.yaml"]
    run = _run(installed / "orchestrator", "run", "--simulate", "specs/example.toml",
               "--no-progress", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "5 succeeded" in run.stdout
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert sorted(vm["hostname"] for vm in report["vms"]) == sorted(EXAMPLE_HOSTNAMES)
    page = _run(installed / "orchestrator", "report", "html", "report.json", "-o", "run.html",
                cwd=tmp_path)  # fmt: skip
    assert page.returncode == 0, page.stderr
    assert "example.toml" in (tmp_path / "run.html").read_text("utf-8")
