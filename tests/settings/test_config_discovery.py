"""The config file is found at ``$XDG_CONFIG_HOME/orchestrator/config.toml`` (else
``~/.config/...``) when none is named; a named one always wins; ``config_file`` says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.settings import discovered_config_file, load_settings


def _config(directory: Path, max_in_flight: int) -> Path:
    path = directory / "orchestrator" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f"[engine]\nmax_in_flight = {max_in_flight}\n", encoding="utf-8")
    return path


def test_xdg_config_home_is_read(tmp_path: Path) -> None:
    """With no --config and no ORCHESTRATOR_CONFIG, the XDG file is read and named."""
    path = _config(tmp_path / "xdg", 7)
    settings = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert settings.engine.max_in_flight == 7
    assert settings.config_file == path
    assert settings.config_file_found_by == "XDG_CONFIG_HOME"
    assert settings.source_of("engine.max_in_flight") == f"{path}:2"


def test_home_dot_config_when_xdg_config_home_is_unset(tmp_path: Path) -> None:
    """Without XDG_CONFIG_HOME (or with a relative one, which XDG says to ignore),
    ``$HOME/.config/orchestrator/config.toml``."""
    path = _config(tmp_path / ".config", 5)
    for environ in ({"HOME": str(tmp_path)}, {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "rel"}):
        settings = load_settings(environ=environ)
        assert (settings.config_file, settings.engine.max_in_flight) == (path, 5)


@pytest.mark.parametrize("how", ["argument", "ORCHESTRATOR_CONFIG"])
def test_a_named_config_file_wins_over_the_xdg_one(tmp_path: Path, how: str) -> None:
    """``config_file=`` (the CLI's --config) or ORCHESTRATOR_CONFIG: the XDG file is not read."""
    _config(tmp_path / "xdg", 7)
    named = _config(tmp_path / "named", 3)
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    if how == "argument":
        settings = load_settings(environ=environ, config_file=named)
        assert settings.config_file_found_by == "given"
    else:
        settings = load_settings(environ={**environ, "ORCHESTRATOR_CONFIG": str(named)})
        assert settings.config_file_found_by == "ORCHESTRATOR_CONFIG"
    assert (settings.config_file, settings.engine.max_in_flight) == (named, 3)


def test_no_config_file_anywhere(tmp_path: Path) -> None:
    """No file at the XDG place (or no HOME at all): defaults, and config_file is None."""
    assert discovered_config_file({"XDG_CONFIG_HOME": str(tmp_path)}) is None
    assert discovered_config_file({}) is None
    settings = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (settings.config_file, settings.config_file_found_by) == (None, None)
    assert settings.engine.max_in_flight is None


def test_a_bad_xdg_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A discovered file is checked like a named one: its problems name it."""
    path = _config(tmp_path, 0)
    path.write_text("[engin]\n", encoding="utf-8")
    from orchestrator.errors import ConfigError

    with pytest.raises(ConfigError, match=str(path)):
        load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)})
