"""Fixtures of the CLI tests: a clean environment, a temporary working directory,
the ``orchestrator`` logger restored after each in-process run, and simulators."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import stamina.instrumentation

from tests.cli._helpers import ThreadSimulator, thread_simulator


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """aiohttp needs asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No KATAPULT_* or ORCHESTRATOR_* variable of the developer's shell leaks in, nor
    their ``~/.config/orchestrator/config.toml`` (XDG_CONFIG_HOME is an empty directory)."""
    import os

    for name in list(os.environ):
        if name.startswith(("KATAPULT_", "ORCHESTRATOR_")) or name == "COLUMNS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own empty working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """An in-process run gives the ``orchestrator`` logger a handler; take it away after."""
    logger = logging.getLogger("orchestrator")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    stamina.instrumentation.set_on_retry_hooks(None)  # the CLI turned stamina's own off


@pytest.fixture
def setenv(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Set several environment variables for the test."""

    def apply(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.fixture
def sim() -> Iterator[ThreadSimulator]:
    """A fresh simulator in a thread, at the tests' time scale."""
    with thread_simulator() as running:
        yield running
