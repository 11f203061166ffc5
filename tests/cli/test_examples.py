"""``orchestrator examples [DIR]``: list the example specs, or copy them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main

NAMES = ["build-from-spec.toml", "example.json", "example.toml", "multi-dc.yaml"]


def test_examples_lists_every_spec_file(capsys: pytest.CaptureFixture[str]) -> None:
    """Without DIR: the path of each example spec (0)."""
    assert main(["examples"]) == 0
    paths = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert [path.name for path in paths] == NAMES
    assert all(path.is_file() for path in paths)


def test_examples_copies_them_and_never_overwrites(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With DIR: copied (DIR made); a second time nothing is copied: exit 2, one error line."""
    assert main(["examples", "specs"]) == 0
    assert sorted(path.name for path in (cwd / "specs").iterdir()) == NAMES
    (cwd / "specs" / "example.toml").write_text("# mine\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["examples", "specs"]) == 2
    assert "error: specs: already has build-from-spec.toml" in capsys.readouterr().err
    assert (cwd / "specs" / "example.toml").read_text("utf-8") == "# mine\n"


def test_the_copied_example_runs_against_the_simulator(
    cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``orchestrator examples specs && orchestrator run --simulate specs/example.toml``."""
    assert main(["examples", "specs"]) == 0
    assert main(["run", "--simulate", "specs/example.toml", "--no-progress"]) == 0
    assert "5 succeeded" in capsys.readouterr().out
