"""Settings: built-in defaults < config file (TOML) < environment < flags and arguments.

:class:`Settings` is a pydantic-settings ``BaseSettings`` over three sections
(``katapult``, ``engine``, ``output``) that reads, through pydantic-settings'
own sources (see :mod:`orchestrator._settings_sources`), the arguments it is
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

import ipaddress
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from orchestrator._duration import parse_duration
from orchestrator._settings_sources import (
    Arguments,
    ConfigFile,
    Origin,
    SectionEnvironment,
    env_names,
    join_messages,
)
from orchestrator.errors import ConfigError
from orchestrator.spec._model import LOOKUP_KINDS, parse_lookup
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

#: The real API.
DEFAULT_API_URL = "https://api.katapult.io/core/v1/"
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


_MAX_TEXT = 1024
#: Largest count (builds in flight, failures) a setting takes.
MAX_COUNT = 1_000_000
#: Longest duration a setting takes: a year.
MAX_SECONDS = 365 * 24 * 3600.0


class SettingsWarning(UserWarning):
    """A setting that is probably a mistake but does not stop the run (an unknown variable)."""


def _err(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message.replace("{", "{{").replace("}", "}}"))


# ------------------------------------------------------------------- validators


def _seconds(value: Any) -> Any:
    if isinstance(value, bool):
        raise _err("must be a number of seconds, not true/false")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            try:
                return parse_duration(value)
            except ValueError:
                raise _err(
                    "must be a number of seconds or a duration such as 90s, 5m, 1h30m"
                ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise _err("must be a finite number of seconds")
    return value


def _whole(value: Any) -> Any:
    if isinstance(value, bool):
        raise _err("must be a whole number, not true/false")
    return value


def _path(value: Any) -> Any:
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise _err("must be a non-empty path")
        if any(not char.isprintable() for char in text):
            raise _err("must not contain control characters")
        try:
            return Path(text).expanduser()
        except RuntimeError:
            raise _err("starts with '~' but that home directory is unknown") from None
    return value


def _file_mode(value: Any) -> Any:
    if isinstance(value, bool):
        raise _err("must be file permissions such as 0644, not true/false")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(char not in "01234567" for char in text):
            raise _err("must be file permissions in octal, such as 0644 or 0600")
        return int(text, 8)
    return value


def _owner_read_write(value: int) -> int:
    if not 0 <= value <= 0o666 or value & 0o600 != 0o600:
        raise _err("must be permissions from 0600 to 0666 (the owner reads and writes; no x bits)")
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_Seconds = Annotated[
    float, BeforeValidator(_seconds), Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)
]
_Count = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_COUNT)]
_Path = Annotated[Path, BeforeValidator(_path)]
#: file permissions: an octal string ("0644") or a number (0o644 in TOML); owner read+write kept
_Mode = Annotated[int, BeforeValidator(_file_mode), AfterValidator(_owner_read_write)]


class _Section(BaseModel):
    # hide_input_in_errors: a ValidationError never echoes a value (the token among them)
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, hide_input_in_errors=True
    )


# ---------------------------------------------------------------------- models


class KatapultSettings(_Section):
    """``[katapult]``: how to reach the API, and defaults for specs."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    #: bearer token (KATAPULT_API_KEY); never shown
    api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("KATAPULT_API_KEY", "KATAPULT_API_TOKEN")
    )
    #: base URL of Core API v1; always ends with "/"
    api_url: str = DEFAULT_API_URL
    #: sub_domain or org_ id used by spec entries that name none
    organization: str | None = None
    #: permalink or loc_ id used by spec entries that name no zone or data center
    data_center: str | None = None

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            return None
        if not isinstance(value, str):
            raise _err("must be a string")
        value = value.strip()
        if not value:
            return None
        if len(value) > _MAX_TEXT or not all("!" <= char <= "~" for char in value):
            # never echo the value: it is (or contains) a secret
            raise _err("must be printable ASCII without spaces (the value is not shown)")
        return value

    @field_validator("api_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        return _check_api_url(value) if isinstance(value, str) else value

    @field_validator("organization", mode="before")
    @classmethod
    def _organization(cls, value: Any) -> Any:
        if isinstance(value, str):
            parse_lookup(LOOKUP_KINDS["organization"], value.strip())
            return value.strip()
        return value

    @field_validator("data_center", mode="before")
    @classmethod
    def _data_center(cls, value: Any) -> Any:
        if isinstance(value, str):
            parse_lookup(LOOKUP_KINDS["data_center"], value.strip())
            return value.strip()
        return value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_api_url(url: str) -> str:
    url = url.strip()
    if len(url) > _MAX_TEXT or any(not char.isprintable() or char.isspace() for char in url):
        raise _err("must be a URL without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _err("must be an https:// URL (or http:// to a loopback address)")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise _err("has an invalid port") from None
    if not parts.hostname:
        raise _err("has no host")
    if parts.username is not None or parts.password is not None:
        raise _err("must not contain a user name or password (the token goes in KATAPULT_API_KEY)")
    if parts.query or parts.fragment:
        raise _err("must not have a query string or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise _err(
            "plain http:// is only allowed to a loopback address (127.0.0.0/8, ::1, "
            "localhost): the token must travel over TLS, so use https:// (TLS and its "
            "certificate checks cannot be turned off)"
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class EngineSettings(_Section):
    """``[engine]``: pacing, concurrency, polling and timeouts of a run."""

    #: length of the API's fixed rate window (60 on the real API)
    rate_window_seconds: _Seconds = 60
    #: cap on builds submitted and not finished (None: as many as it takes to
    #: spend the rate budget, sized from the budget and the build time learned)
    max_in_flight: _Count | None = None
    #: optional cap per data center (or zone)
    max_in_flight_per_data_center: _Count | None = None
    #: lower bound of the adaptive poll interval
    poll_min_seconds: _Seconds = 5
    #: upper bound of the adaptive poll interval
    poll_max_seconds: _Seconds = 60
    #: per VM: give up waiting for its build after this long
    build_timeout_seconds: _Seconds = 1200
    #: first guess of a build's duration, before any build was seen
    expected_build_seconds: _Seconds = 45
    #: stop submitting new builds after this many failures (None: never)
    max_failures: _Count | None = None
    #: also wait for each VM to reach "started" after its build completes
    wait_until_started: bool = False
    #: stop the whole run after this long (None: no deadline)
    deadline_seconds: _Seconds | None = None
    #: TCP/TLS connect timeout of one request
    connect_timeout_seconds: _Seconds = 10
    #: timeout of one request's answer
    read_timeout_seconds: _Seconds = 30
    #: keep retrying one retryable request for at most this long
    retry_deadline_seconds: _Seconds = 120

    @field_validator("wait_until_started", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> Any:
        return _lower(value)

    @model_validator(mode="after")
    def _poll_bounds(self) -> EngineSettings:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise PydanticCustomError("poll_bounds", "poll_min_seconds must be <= poll_max_seconds")
        return self


class OutputSettings(_Section):
    """``[output]``: where results go and how the run talks to the terminal."""

    #: the JSON report
    report: _Path = Path("report.json")
    #: the journal (None: beside the report, "<report>.journal")
    journal: _Path | None = None
    #: also write a JUnit XML file here
    junit: _Path | None = None
    #: also write Prometheus text-format metrics here
    metrics: _Path | None = None
    #: permissions of the metrics file (it holds no secret; node-exporter may run as another user)
    metrics_mode: _Mode = 0o644
    #: also write an Ansible inventory (YAML) of the VMs in place here
    inventory: _Path | None = None
    #: also write the report as one self-contained HTML page here
    html: _Path | None = None
    #: log lines as "console" text or "json" objects
    log_format: Annotated[Literal["console", "json"], BeforeValidator(_lower)] = "console"
    #: least severe log level shown
    log_level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = (
        "info"
    )
    #: show the live progress display
    progress: Annotated[bool, BeforeValidator(_lower)] = True


_SECTIONS: dict[str, type[_Section]] = {
    "katapult": KatapultSettings,
    "engine": EngineSettings,
    "output": OutputSettings,
}

#: dotted setting -> its environment variables, first one winning.
ENV_VARS: Mapping[str, tuple[str, ...]] = {
    f"{section}.{name}": env_names(section, name, model)
    for section, model in _SECTIONS.items()
    for name in model.model_fields
}


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
                problems = _describe(exc.errors(), load.sources)
        _warn_unknown_variables(load)
        if problems:
            # raised outside the except block so no ValidationError (which may
            # hold input values, the token among them) rides along as __context__
            raise ConfigError(join_messages(problems))
        self._sources = {
            f"{section}.{name}": where
            for section, model in _SECTIONS.items()
            for name in model.model_fields
            if (where := _origin(load.sources, section, name)) is not None
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
            for section, model in _SECTIONS.items()
        ]
        if config_file is not None:
            sources.append(ConfigFile(settings_cls, config_file, _SECTIONS))
        load.sources = sources
        return tuple(source for source in sources if isinstance(source, PydanticBaseSettingsSource))

    def journal_path(self) -> Path:
        """The journal: ``output.journal``, else ``<report>.journal`` beside the report."""
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


def _origin(sources: list[Origin], section: str, name: str) -> str | None:
    for source in sources:
        if name in source.values.get(section, {}):
            return source.origin(section, name)
    return None


def _value(sources: list[Origin], section: str, name: str) -> tuple[Any, str]:
    for source in sources:
        values = source.values.get(section, {})
        if name in values:
            return values[name], source.origin(section, name)
    model = _SECTIONS.get(section)
    info = model.model_fields.get(name) if model else None
    return (info.default if info is not None else None), "default"


_SECRET_KEYS = frozenset({"katapult.api_token"})


def _show(key: str, value: Any, source: str) -> str:
    """A setting's value for a message: never the token, credentials cut from URLs."""
    if key in _SECRET_KEYS:
        return ""
    if isinstance(value, str) and key == "katapult.api_url":
        value = re.sub(r"//[^/@]*@", "//***@", value)
        value = re.sub(r"[?#].*", "?***", value)  # a query may carry a key too
    if isinstance(value, str):
        text = value if source.startswith("environment") and value.isprintable() else repr(value)
    else:
        text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" = {text}"


def _setting(key: str, sources: list[Origin]) -> str:
    section, _, name = key.partition(".")
    value, source = _value(sources, section, name)
    return f"{key}{_show(key, value, source)} (from {source})"


def _describe(errors: list[ErrorDetails], sources: list[Origin]) -> list[str]:
    messages = []
    for error in errors:
        if error["type"] == "poll_bounds":
            low, high = "engine.poll_min_seconds", "engine.poll_max_seconds"
            messages.append(f"{_setting(low, sources)}: must be <= {_setting(high, sources)}")
            continue
        loc = [part for part in error["loc"] if isinstance(part, str)]
        if len(loc) >= 2 and loc[1] in _aliases(loc[0]):
            loc[1] = _aliases(loc[0])[loc[1]]
        messages.append(f"{_setting('.'.join(loc[:2]), sources)}: {_message(error)}")
    return messages


def _aliases(section: str) -> dict[str, str]:
    model = _SECTIONS.get(section)
    if model is None:
        return {}
    return {
        alias: name
        for name, info in model.model_fields.items()
        if isinstance(info.validation_alias, AliasChoices)
        for alias in info.validation_alias.choices
        if isinstance(alias, str)
    }


_TYPE_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "path_type": "must be a path",
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "extra_forbidden": "is not a setting",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "greater_than":
        return f"must be > {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}"
    if kind == "less_than_equal":
        limit = ctx.get("le")
        shown = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
        return f"must be <= {shown}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    message = error["msg"]
    return message.removeprefix("Value error, ")


def describe_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """``(setting, value, source)`` for every setting, the token masked, for display."""
    rows: list[tuple[str, str, str]] = []
    for section, model in _SECTIONS.items():
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
