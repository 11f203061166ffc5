"""The simulator's reading options: on `simulate` and on `run --simulate`, checked and applied."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import orchestrator.simulator as simulator
from orchestrator.cli import main
from orchestrator.cli._simulator_options import simulator_config
from orchestrator.simulator import RunningSimulator, SimulatorConfig
from tests.cli._helpers import EXAMPLE_SPEC, standalone_simulator


def test_readings_map_onto_the_config() -> None:
    """Each option sets its SimulatorConfig field; --pessimistic is the base the others override."""
    none: dict[str, Any] = {
        "hostname_taken_at": None,
        "vm_record_at": None,
        "duplicate_hostnames": None,
        "failed_build_leaves_vm": None,
        "copy_annotations": None,
        "trash_holds_hostname": None,
        "annotations_copied_at": None,
        "annotation_filter": None,
        "xml_without_interface": None,
        "legacy_build_key": None,
        "pessimistic": False,
    }
    assert simulator_config(none).readings() == SimulatorConfig().readings()
    chosen = {**none, "hostname_taken_at": "vm-record", "vm_record_at": (0.2, 0.6)}
    config = simulator_config(chosen, seed=4)
    assert (config.hostname_taken_at, config.vm_record_at, config.seed) == (
        "vm_record",
        (0.2, 0.6),
        4,
    )
    mixed = {**none, "pessimistic": True, "duplicate_hostnames": "refuse", "copy_annotations": True}
    assert simulator_config(mixed).readings() == {
        **SimulatorConfig.pessimistic().readings(),
        "duplicate_hostnames": "refuse",
        "copy_annotations": True,
    }


def test_run_simulate_starts_the_simulator_with_the_readings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --simulate --pessimistic --vm-record-at 0.5` builds against that simulator."""
    started: list[SimulatorConfig] = []
    real = simulator.run_simulator

    @asynccontextmanager
    async def spy(
        config: SimulatorConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[RunningSimulator]:
        assert config is not None
        started.append(config)
        async with real(config, **kwargs) as running:
            yield running

    monkeypatch.setattr(simulator, "run_simulator", spy)
    argv = ["run", "--simulate", str(EXAMPLE_SPEC), "--no-progress", "--pessimistic"]
    code = main([*argv, "--vm-record-at", "0.5", "--no-copy-annotations"])
    assert code == 0, capsys.readouterr().err
    [config] = started
    assert config.readings() == {
        **SimulatorConfig.pessimistic().readings(),
        "vm_record_at": [0.5, 0.5],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pessimistic"], "--pessimistic: only with --simulate"),
        (["--no-copy-annotations"], "--copy-annotations: only with --simulate"),
        (["--simulate", "--vm-record-at", "0.9,0.1"], "need 0 < LO <= HI <= 1"),
        (["--simulate", "--vm-record-at", "soon"], "is not LO or LO,HI"),
        (["--simulate", "--vm-record-at", "0.01"], "vm_record_at must be"),
        (["--simulate", "--hostname-taken-at", "later"], "'later' is not one of"),
    ],
)
def test_bad_reading_options_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A reading option that cannot apply is one error line and exit 2, nothing started."""
    code = main(["run", str(EXAMPLE_SPEC), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert "simulator:" not in err


def test_simulate_serves_the_readings_it_was_given(cwd: Path) -> None:
    """`simulate --pessimistic --duplicate-hostnames refuse` shows its readings in its state."""
    options = ["--pessimistic", "--duplicate-hostnames", "refuse", "--fault-5xx-after", "0.1"]
    options += ["--stop-seconds", "2", "--purge-seconds", "1"]
    with standalone_simulator(*options, cwd=cwd) as sim:
        readings = sim.state()["readings"]
    assert readings == {
        **SimulatorConfig.pessimistic().readings(),
        "duplicate_hostnames": "refuse",
    }


@pytest.mark.parametrize("refusal", ["refused-400", "refused-422"])
def test_a_refused_annotation_filter_is_no_failure_of_the_run(
    cwd: Path, capsys: pytest.CaptureFixture[str], refusal: str
) -> None:
    """`run --simulate --annotation-filter refused-4xx`: exit 0, every VM built, and the
    summary and report.json name the reading found."""
    argv = ["run", "--simulate", str(EXAMPLE_SPEC), "--no-progress", "--report", "r.json"]
    code = main([*argv, "--annotation-filter", refusal])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Readings of the API found: annotation_filter refused" in out
    report = json.loads((cwd / "r.json").read_text("utf-8"))
    assert report["summary"]["succeeded"] == report["summary"]["total"] == 5
    assert report["readings"][0]["name"] == "annotation_filter"
    assert report["readings"][0]["value"] == "refused"
