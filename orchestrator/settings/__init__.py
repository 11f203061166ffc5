"""Settings: built-in defaults < config file (TOML) < environment < flags and arguments.

:class:`Settings` is a pydantic-settings ``BaseSettings`` over three sections
(``katapult``, ``engine``, ``output``) that reads, through pydantic-settings'
own sources (see :mod:`orchestrator.settings._sources`), the arguments it is
given, then the environment, then the config file, and remembers where each
value came from. A wrong value raises :class:`~orchestrator.errors.ConfigError`
whose text names the setting and its source::

    engine.max_in_flight = -1 (from environment variable ORCHESTRATOR_MAX_IN_FLIGHT): must be >= 1
    config.toml:3: unknown key 'engin' (did you mean 'engine'?)

From code, sections are typed models, and only the fields you set count::

    Settings(engine=EngineSettings(max_in_flight=10))   # the rest from env, file, defaults
    load_settings(environ={}, engine=EngineSettings(max_in_flight=10))  # ignore os.environ

Environment variables (names as pydantic-settings reads them: case-insensitive;
blank ones count as unset):

* ``KATAPULT_API_KEY`` (or ``KATAPULT_API_TOKEN``; the first wins),
  ``KATAPULT_API_URL``, ``KATAPULT_ORGANIZATION``, ``KATAPULT_DATA_CENTER``;
* ``ORCHESTRATOR_<FIELD>`` for every field of ``[engine]`` and ``[output]``
  (``ORCHESTRATOR_MAX_IN_FLIGHT``, ``ORCHESTRATOR_REPORT``, ...); any other
  ``ORCHESTRATOR_*`` variable is warned about (:class:`SettingsWarning`);
* ``ORCHESTRATOR_CONFIG``: the config file, when none is passed.

With neither, the config file is ``$XDG_CONFIG_HOME/orchestrator/config.toml``
(``~/.config/orchestrator/config.toml`` when ``XDG_CONFIG_HOME`` is unset) when
that file exists, as the XDG Base Directory specification has it; both are
read from the environment given (``environ={}``: none). :attr:`Settings.config_file`
says which file was read.

Durations (``*_seconds``) take a number of seconds or text such as ``90s``,
``5m``, ``1h30m``. Relative paths are relative to the working
directory, and ``~`` is expanded. The API URL must be ``https://``; plain
``http://`` is accepted only to a loopback address, and there is no setting to
turn TLS or its certificate verification off. The token is a ``SecretStr``: no
repr, str, error message or description shows it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from orchestrator.engine.state.location import StateLocation
from orchestrator.errors import ConfigError
from orchestrator.settings._messages import describe, origin
from orchestrator.settings._sections import (
    DEFAULT_API_URL,
    ENV_VARS,
    SECTIONS,
    EngineSettings,
    KatapultSettings,
    OutputSettings,
)
from orchestrator.settings._sources import (
    Arguments,
    ConfigFile,
    Origin,
    SectionEnvironment,
    join_messages,
)
from orchestrator.spec._suggest import closest

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_API_URL",
    "ENV_VARS",
    "EngineSettings",
    "KatapultSettings",
    "OutputSettings",
    "Settings",
    "SettingsWarning",
    "describe_settings",
    "load_settings",
]

#: Names the config file when ``load_settings`` is given none.
CONFIG_ENV_VAR = "ORCHESTRATOR_CONFIG"


def discovered_config_file(environ: Mapping[str, str]) -> Path | None:
    """``$XDG_CONFIG_HOME/orchestrator/config.toml`` (else ``$HOME/.config/...``) if it exists.

    A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG Base Directory
    specification says.
    """
    base = environ.get("XDG_CONFIG_HOME", "").strip()
    if not base or not os.path.isabs(base):
        home = environ.get("HOME", "").strip()
        if not home:
            return None
        base = os.path.join(home, ".config")
    candidate = Path(base, "orchestrator", "config.toml")
    return candidate if candidate.is_file() else None


class SettingsWarning(UserWarning):
    """A setting that is probably a mistake but does not stop the run (an unknown variable)."""


@dataclass
class _Load:
    """What one :class:`Settings` construction reads, and the sources it made."""

    environ: Mapping[str, str] | None = None
    config_file: str | os.PathLike[str] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[Origin] = field(default_factory=list)
    #: the config file read, and how it was found (None: no file)
    used: tuple[Path, str] | None = None


_LOAD: ContextVar[_Load | None] = ContextVar("orchestrator_settings_load", default=None)


@contextmanager
def _loading(load: _Load) -> Iterator[_Load]:
    token = _LOAD.set(load)
    try:
        yield load
    finally:
        _LOAD.reset(token)


class Settings(BaseSettings):
    """Every setting, by section, read like any pydantic-settings class.

    ``Settings()`` reads the environment and the config file named by
    ``ORCHESTRATOR_CONFIG``; keyword arguments win over both
    (``Settings(engine=EngineSettings(max_in_flight=10))``: only the fields set
    in a section count). :func:`load_settings` also takes an explicit config
    file, an environment mapping and command-line flags. A bad value raises
    :class:`ConfigError` naming the setting and its source.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    katapult: KatapultSettings = Field(default_factory=KatapultSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_file: tuple[Path, str] | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        load = _LOAD.get() or _Load()
        problems: list[str] = []
        with _loading(load):
            try:
                super().__init__(**values)
            except ValidationError as exc:
                problems = describe(exc.errors(), load.sources)
        _warn_unknown_variables(load)
        if problems:
            # raised outside the except block so no ValidationError (which may
            # hold input values, the token among them) rides along as __context__
            raise ConfigError(join_messages(problems))
        self._sources = {
            f"{section}.{name}": where
            for section, model in SECTIONS.items()
            for name in model.model_fields
            if (where := origin(load.sources, section, name)) is not None
        }
        self._config_file = load.used

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, arguments, then the environment, then the config file."""
        load = _LOAD.get() or _Load()
        environ = os.environ if load.environ is None else load.environ
        config_file: str | os.PathLike[str] | None = load.config_file
        how = "given"
        if config_file is None and environ.get(CONFIG_ENV_VAR, "").strip():
            config_file, how = environ[CONFIG_ENV_VAR].strip(), CONFIG_ENV_VAR
        if config_file is None:
            config_file, how = discovered_config_file(environ), "XDG_CONFIG_HOME"
        load.used = None if config_file is None else (Path(config_file), how)
        given = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        sources: list[Origin] = [
            Arguments(settings_cls, load.overrides, "the command line"),
            Arguments(settings_cls, given, "an argument"),
        ]
        sources += [
            SectionEnvironment(settings_cls, section, model, environ)
            for section, model in SECTIONS.items()
        ]
        if config_file is not None:
            sources.append(ConfigFile(settings_cls, config_file, SECTIONS))
        load.sources = sources
        return tuple(source for source in sources if isinstance(source, PydanticBaseSettingsSource))

    def given_state(self) -> StateLocation | None:
        """The fleet's state as the settings name it (``output.state``, else
        ``output.journal``), or None when they name none."""
        return self.output.state if self.output.state is not None else self.output.journal

    def journal_path(self) -> StateLocation:
        """The fleet's state: ``output.state``, else ``output.journal``, else
        ``<report>.journal`` beside the report (a path, or a PostgreSQL database)."""
        if self.output.state is not None:
            return self.output.state
        if self.output.journal is not None:
            return self.output.journal
        report = self.output.report
        return report.with_name(report.name + ".journal")

    @property
    def config_file(self) -> Path | None:
        """The config file these settings read (None: none was named or found)."""
        return None if self._config_file is None else self._config_file[0]

    @property
    def config_file_found_by(self) -> str | None:
        """How :attr:`config_file` was chosen: ``given`` (``--config`` or an argument),
        ``ORCHESTRATOR_CONFIG``, or ``XDG_CONFIG_HOME`` (found there); None without one."""
        return None if self._config_file is None else self._config_file[1]

    def source_of(self, key: str) -> str:
        """Where the dotted setting ``key`` came from (``"default"`` if nowhere)."""
        return self._sources.get(key, "default")


# ---------------------------------------------------------------------- loading


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    katapult: KatapultSettings | None = None,
    engine: EngineSettings | None = None,
    output: OutputSettings | None = None,
) -> Settings:
    """Defaults < ``config_file`` (TOML) < ``environ`` < arguments < ``overrides``, validated.

    ``katapult``, ``engine`` and ``output`` are typed sections of which only the
    fields set count (``engine=EngineSettings(max_in_flight=10)``).
    ``overrides`` holds dotted keys from command-line flags
    (``{"engine.max_in_flight": 10}``); None values are ignored, an unknown key
    is a ``ValueError`` (a bug in the caller). ``environ`` defaults to
    ``os.environ``; when ``config_file`` is None, ``ORCHESTRATOR_CONFIG`` in it
    may name one. Raises :class:`ConfigError` naming each bad setting and its
    source; the message never contains the token.
    """
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (overrides or {}).items():
        if key not in ENV_VARS:
            raise ValueError(f"unknown setting {key!r} in overrides")
        if value is not None:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
    sections = {"katapult": katapult, "engine": engine, "output": output}
    load = _Load(environ=environ, config_file=config_file, overrides=nested)
    with _loading(load):
        return Settings(**{name: value for name, value in sections.items() if value is not None})


def _warn_unknown_variables(load: _Load) -> None:
    environ = os.environ if load.environ is None else load.environ
    known = {name.lower() for names in ENV_VARS.values() for name in names}
    known.add(CONFIG_ENV_VAR.lower())
    for name in sorted(environ):
        lowered = name.lower()
        if lowered.startswith("orchestrator_") and lowered not in known:
            suggestion = closest(lowered, known)
            hint = f" (did you mean {suggestion.upper()}?)" if suggestion else ""
            warnings.warn(
                f"environment variable {name} is not a setting and is ignored{hint}",
                SettingsWarning,
                stacklevel=4,
            )


def describe_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """``(setting, value, source)`` for every setting, the token masked, for display."""
    rows: list[tuple[str, str, str]] = []
    for section, model in SECTIONS.items():
        values = getattr(settings, section)
        for name in model.model_fields:
            key = f"{section}.{name}"
            value = getattr(values, name)
            if isinstance(value, SecretStr):
                shown = "**********"
            elif name.endswith("_mode") and isinstance(value, int):
                shown = f"{value:04o}"
            elif value is None:
                shown = "(unset)"
            else:
                shown = str(value)
            rows.append((key, shown, settings.source_of(key)))
    return rows
