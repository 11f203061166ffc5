"""The config file ``plan`` and ``--log-level debug`` name, and ``orchestrator completion``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.cli._helpers import EXAMPLE_SPEC, clean_environ

#: plan's exit with VMs to build: 4 here, 0 once plan follows Terraform's exit codes
#: (``--detailed-exitcode``); what these tests check is the config file it names
_PLANNED = (0, 4)


def _xdg_config(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = cwd / "xdg" / "orchestrator" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[engine]\nmax_in_flight = 7\n", encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cwd / "xdg"))
    return path


def test_plan_says_which_config_file_it_read(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan names the XDG config file (text and JSON); --log-level debug logs it."""
    path = _xdg_config(cwd, monkeypatch)
    assert main(["plan", "--simulate", str(EXAMPLE_SPEC), "--log-level", "debug"]) in _PLANNED
    out, err = capsys.readouterr()
    assert f"Config file: {path} (found as $XDG_CONFIG_HOME/orchestrator/config.toml)" in out
    assert "orchestrator.config.file" in err
    assert f"path={path}" in err
    assert "found_by=XDG_CONFIG_HOME" in err
    assert main(["plan", "--simulate", str(EXAMPLE_SPEC), "--output", "json"]) in _PLANNED
    assert json.loads(capsys.readouterr().out)["config_file"] == str(path)


def test_plan_without_a_config_file_says_none(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --config, no ORCHESTRATOR_CONFIG, nothing at the XDG place: "Config file: none"."""
    assert main(["plan", "--simulate", str(EXAMPLE_SPEC)]) in _PLANNED
    assert "Config file: none" in capsys.readouterr().out


def test_the_config_flag_wins_over_the_xdg_file(
    cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config FILE`` is the file read and named, even with an XDG file present."""
    _xdg_config(cwd, monkeypatch)
    named = cwd / "mine.toml"
    named.write_text("[engine]\nmax_in_flight = 3\n", encoding="utf-8")
    assert main(["plan", "--simulate", str(EXAMPLE_SPEC), "--config", str(named)]) in _PLANNED
    assert f"Config file: {named}\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _orchestrator_completion orchestrator"),
        ("zsh", "#compdef orchestrator"),
        ("fish", "complete --no-files --command orchestrator"),
    ],
)
def test_completion_prints_the_script_of_each_shell(
    shell: str, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``orchestrator completion SHELL`` prints click's script for SHELL (0)."""
    assert main(["completion", shell]) == 0
    assert marker in capsys.readouterr().out


def test_completion_of_an_unknown_shell_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A shell click has no script for: exit 2, no traceback."""
    assert main(["completion", "tcsh"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_bash_script_completes_commands(cwd: Path) -> None:
    """Sourced in bash, the script completes ``orchestrator re`` to ``report``."""
    bin_dir = Path(sys.executable).parent
    env = clean_environ({"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    script = (
        'eval "$(orchestrator completion bash)" && complete -p orchestrator && '
        "COMP_WORDS=(orchestrator re); COMP_CWORD=1; _orchestrator_completion orchestrator && "
        'echo "words: ${COMPREPLY[*]}"'
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "words: report" in result.stdout
