"""config.example.toml documents every setting, its default and its environment variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.settings import ENV_VARS, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
_SETTING_LINE = re.compile(r"#\s*([a-z_]+)\s*=\s*(.+)$")


def _blocks() -> dict[str, tuple[int, list[str]]]:
    """dotted key -> (line index of its '# key = value' line, comment lines just above it)."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    found: dict[str, tuple[int, list[str]]] = {}
    section = ""
    for number, line in enumerate(lines):
        header = re.fullmatch(r"\[([a-z]+)\]", line.strip())
        if header:
            section = header.group(1)
            continue
        match = _SETTING_LINE.fullmatch(line.strip())
        if match and section:
            above: list[str] = []
            back = number - 1
            while back >= 0 and lines[back].startswith("#"):
                above.insert(0, lines[back])
                back -= 1
            found[f"{section}.{match.group(1)}"] = (number, above)
    return found


def test_example_loads_as_is_and_gives_the_defaults() -> None:
    """The file as shipped (every value commented out) loads to the defaults (and the
    settings remember that they read it)."""
    loaded = load_settings(config_file=EXAMPLE, environ={})
    assert loaded.model_dump() == Settings().model_dump()
    assert loaded.config_file == EXAMPLE


def test_every_setting_is_documented() -> None:
    """Every field of every settings model has a line, an explanation and its env var(s)."""
    blocks = _blocks()
    assert sorted(blocks) == sorted(ENV_VARS)
    for key, names in ENV_VARS.items():
        _, above = blocks[key]
        assert above, f"{key} has no explanation"
        text = " ".join(above)
        for name in names:
            assert name in text, f"{key}: {name} not mentioned"


def test_uncommented_example_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    """Uncommenting every setting gives a valid file; each non-None default is the one shown."""
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = "\n".join(
        line[2:] if _SETTING_LINE.fullmatch(line.strip()) and line.startswith("# ") else line
        for line in text.splitlines()
    )
    path = tmp_path / "all.toml"
    path.write_text(uncommented, encoding="utf-8")
    settings = load_settings(config_file=path, environ={})
    defaults = Settings()
    for key in ENV_VARS:
        section, field = key.split(".")
        default = getattr(getattr(defaults, section), field)
        if default is not None:
            assert getattr(getattr(settings, section), field) == default, key


@pytest.mark.parametrize("key", sorted(ENV_VARS))
def test_unset_by_default_settings_say_so(key: str) -> None:
    """Settings whose default is unset say '(default: unset' in their explanation."""
    section, field = key.split(".")
    default = getattr(getattr(Settings(), section), field)
    _, above = _blocks()[key]
    if default is None and key != "katapult.api_token":
        assert "default: unset" in " ".join(above)
