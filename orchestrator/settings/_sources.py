"""Where settings come from: pydantic-settings sources that also say where each value was found.

:class:`~orchestrator.settings.Settings` reads, highest precedence first,

1. :class:`Arguments`: command-line flags (dotted ``overrides`` of
   :func:`~orchestrator.settings.load_settings`), then keyword arguments
   (``Settings(engine=EngineSettings(max_in_flight=10))``: only the fields set
   in a section count, the others still come from below);
2. :class:`SectionEnvironment`: pydantic-settings' ``EnvSettingsSource``, one per
   section, with the documented names (``KATAPULT_*``, ``ORCHESTRATOR_*``);
3. :class:`ConfigFile`: pydantic-settings' ``TomlConfigSettingsSource``, which
   reads the file with precise errors (file and line) and refuses unknown keys.

Each source remembers what it gave (:attr:`Origin.values`) and can name where a
setting came from (:meth:`Origin.origin`), for the messages of
:class:`~orchestrator.errors.ConfigError`.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import AliasChoices, BaseModel
from pydantic_settings import (
    EnvSettingsSource,
    InitSettingsSource,
    TomlConfigSettingsSource,
)

from orchestrator.errors import ConfigError
from orchestrator.spec._lines import TomlLines
from orchestrator.spec._suggest import closest, unknown_key_message

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = [
    "ENV_PREFIXES",
    "Arguments",
    "ConfigFile",
    "Origin",
    "SectionEnvironment",
    "env_names",
    "join_messages",
]

#: Environment variable prefix of each section's fields.
ENV_PREFIXES = {"katapult": "KATAPULT_", "engine": "ORCHESTRATOR_", "output": "ORCHESTRATOR_"}

#: Largest config file read (a config file is a few hundred bytes).
_MAX_CONFIG_BYTES = 16 * 1024 * 1024


def env_names(section: str, field: str, model: type[BaseModel]) -> tuple[str, ...]:
    """The environment variables of one setting, the first one winning."""
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (f"{ENV_PREFIXES[section]}{field.upper()}",)


def join_messages(messages: list[str]) -> str:
    """One message, or ``N settings are invalid:`` and a list."""
    if len(messages) == 1:
        return messages[0]
    return f"{len(messages)} settings are invalid:\n" + "\n".join(f"  - {m}" for m in messages)


class Origin:
    """What a source gave (``{section: {field: value}}``) and where each value came from."""

    values: dict[str, dict[str, Any]]

    def origin(self, section: str, field: str) -> str:
        """Where ``section.field`` came from, for a message."""
        raise NotImplementedError


class Arguments(InitSettingsSource, Origin):
    """Values given in code or on the command line.

    A section given as a model contributes only the fields set in it
    (``model_fields_set``), so the environment and the file still fill the rest.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], values: Mapping[str, Any], label: str
    ) -> None:
        super().__init__(settings_cls, dict(values))
        self.label = label
        self.values = {}

    def __call__(self) -> dict[str, Any]:
        given = {
            name: value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value
            for name, value in super().__call__().items()
        }
        self.values = {k: v for k, v in given.items() if isinstance(v, dict)}
        return given

    def origin(self, section: str, field: str) -> str:
        return self.label


class SectionEnvironment(EnvSettingsSource, Origin):
    """The environment variables of one section (``ORCHESTRATOR_MAX_IN_FLIGHT``, ...).

    pydantic-settings' own source over the section's model, with its prefix and
    the fields' aliases (``KATAPULT_API_KEY`` for ``api_token``); names are
    case-insensitive as pydantic-settings reads them, and blank values are unset.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        section: str,
        model: type[BaseModel],
        environ: Mapping[str, str],
    ) -> None:
        # the section model is read like a settings class: only its fields and config are used
        super().__init__(
            cast("type[BaseSettings]", model),
            case_sensitive=False,
            env_prefix=ENV_PREFIXES[section],
            env_ignore_empty=True,
        )
        self.section = section
        self.model = model
        self.names = {name.lower(): name for name in environ}
        self.env_vars = {name.lower(): value for name, value in environ.items() if value.strip()}
        # an alias stands for its field, so a flag for the same field wins over it
        self._field_of = {
            alias: field
            for field in model.model_fields
            for alias in (field, *env_names(section, field, model))
        }
        self.values = {}

    def __call__(self) -> dict[str, Any]:
        found = {self._field_of.get(key, key): value for key, value in super().__call__().items()}
        self.values = {self.section: found} if found else {}
        return dict(self.values)

    def origin(self, section: str, field: str) -> str:
        for name in env_names(section, field, self.model):
            if name.lower() in self.env_vars:
                return f"environment variable {self.names.get(name.lower(), name)}"
        return "the environment"


class ConfigFile(TomlConfigSettingsSource, Origin):
    """The ``--config`` TOML file, read with errors that name the file and line.

    An unreadable file, a file that is not UTF-8 or not TOML, a section or key
    that is no setting: each is a :class:`ConfigError` (all unknown keys at once,
    with a suggestion).
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        path: str | os.PathLike[str],
        sections: Mapping[str, type[BaseModel]],
    ) -> None:
        self.path = os.fspath(path)
        self.sections = sections
        self.lines = TomlLines("")
        _check_readable(self.path)
        super().__init__(settings_cls, toml_file=Path(self.path))
        self.values = {k: v for k, v in self.toml_data.items() if isinstance(v, dict)}

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        # Any: pydantic-settings types this argument Path in some releases and
        # Path | Traversable in others; ours is always the Path given above
        try:
            with open(file_path, "rb") as handle:
                raw = handle.read(_MAX_CONFIG_BYTES)
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot read the config file: {exc.strerror or type(exc).__name__}"
            ) from None
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise ConfigError(f"{self.path}:{line}: the config file is not UTF-8 text") from None
        data = self._parse(text)
        self.lines = TomlLines(text)
        problems = list(self._problems(data))
        if problems:
            raise ConfigError(join_messages(problems))
        return data

    def _parse(self, text: str) -> dict[str, Any]:
        error: str
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            found = re.search(r"\(at line (\d+), column (\d+)\)", message)
            at = f"{self.path}:{found.group(1)}" if found else self.path
            if found:
                message = message[: found.start()].rstrip() + f" (column {found.group(2)})"
            error = f"{at}: invalid TOML: {message}"
        except RecursionError:
            error = f"{self.path}: invalid TOML: nested too deeply"
        raise ConfigError(error)

    def _problems(self, data: dict[str, Any]) -> Any:
        for section, table in data.items():
            model = self.sections.get(section)
            if model is None:
                yield f"{self._at(section)}: {self._unknown(section, None)}"
            elif not isinstance(table, dict):
                yield f"{self._at(section)}: '{section}' must be a table ([{section}])"
            else:
                for field in table:
                    if field not in model.model_fields:
                        yield f"{self._at(section, field)}: {self._unknown(field, section)}"

    def _at(self, *parts: str) -> str:
        line = self.lines.line(parts)
        return f"{self.path}:{line}" if line is not None else self.path

    def _unknown(self, key: str, section: str | None) -> str:
        if section is None:
            # a setting written outside its table: point at the right table
            for name, model in self.sections.items():
                if key in model.model_fields:
                    return f"unknown key '{key}' (did you mean '{name}.{key}' under [{name}]?)"
            return unknown_key_message(key, self.sections)
        for name, model in self.sections.items():
            if name != section and key in model.model_fields:
                return f"unknown key '{section}.{key}' (did you mean '{name}.{key}'?)"
        suggestion = closest(key, self.sections[section].model_fields)
        text = f"unknown key '{section}.{key}'"
        return text + (f" (did you mean '{suggestion}'?)" if suggestion else "")

    def origin(self, section: str, field: str) -> str:
        return self._at(section, field)


def _check_readable(path: str) -> None:
    """A regular file, or a ConfigError naming ``path`` (a FIFO or device is never opened)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the config file: {exc.strerror or type(exc).__name__}"
        ) from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: cannot read the config file: Is a directory")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: cannot read the config file: not a regular file")
