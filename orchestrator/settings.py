"""Settings: built-in defaults < config file (TOML) < environment < command-line overrides.

:func:`load_settings` layers the sources, remembers where each value came from,
and validates once. A wrong value raises :class:`~orchestrator.errors.ConfigError`
whose text names the setting and its source::

    engine.max_in_flight = -1 (from environment variable ORCHESTRATOR_MAX_IN_FLIGHT): must be >= 1
    config.toml:3: unknown key 'engin' (did you mean 'engine'?)

Environment variables (exact, upper-case names; empty ones count as unset):

* ``KATAPULT_API_KEY`` (or ``KATAPULT_API_TOKEN``; the first wins),
  ``KATAPULT_API_URL``, ``KATAPULT_ORGANIZATION``, ``KATAPULT_DATA_CENTER``;
* ``ORCHESTRATOR_<FIELD>`` for every field of ``[engine]`` and ``[output]``
  (``ORCHESTRATOR_MAX_IN_FLIGHT``, ``ORCHESTRATOR_REPORT``, ...);
* ``ORCHESTRATOR_CONFIG``: the config file, when none is passed.

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
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orchestrator._duration import parse_duration
from orchestrator.errors import ConfigError
from orchestrator.spec._lines import TomlLines
from orchestrator.spec._model import LOOKUP_KINDS, parse_lookup
from orchestrator.spec._suggest import closest, unknown_key_message

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_API_URL",
    "ENV_VARS",
    "EngineSettings",
    "KatapultSettings",
    "OutputSettings",
    "Settings",
    "describe_settings",
    "load_settings",
]

#: The real API.
DEFAULT_API_URL = "https://api.katapult.io/core/v1/"
#: Names the config file when ``load_settings`` is given none.
CONFIG_ENV_VAR = "ORCHESTRATOR_CONFIG"

_MAX_TEXT = 1024


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


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, allow_inf_nan=False)]
_Count = Annotated[int, BeforeValidator(_whole), Field(ge=1)]
_Path = Annotated[Path, BeforeValidator(_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ---------------------------------------------------------------------- models


class KatapultSettings(_Section):
    """``[katapult]``: how to reach the API, and defaults for specs."""

    #: bearer token (KATAPULT_API_KEY); never shown
    api_token: SecretStr | None = None
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
    #: cap on builds submitted and not finished
    max_in_flight: _Count = 200
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
    #: log lines as "console" text or "json" objects
    log_format: Annotated[Literal["console", "json"], BeforeValidator(_lower)] = "console"
    #: least severe log level shown
    log_level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = (
        "info"
    )
    #: show the live progress display
    progress: Annotated[bool, BeforeValidator(_lower)] = True


class Settings(BaseSettings):
    """Every setting, by section. Build it with :func:`load_settings`.

    ``Settings()`` alone gives the built-in defaults and reads nothing: the
    config file, environment and overrides are layered by :func:`load_settings`,
    which also remembers each value's source for messages.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    katapult: KatapultSettings = Field(default_factory=KatapultSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what :func:`load_settings` passes: it does the layering itself."""
        return (init_settings,)

    def journal_path(self) -> Path:
        """The journal: ``output.journal``, else ``<report>.journal`` beside the report."""
        if self.output.journal is not None:
            return self.output.journal
        report = self.output.report
        return report.with_name(report.name + ".journal")

    def source_of(self, key: str) -> str:
        """Where the dotted setting ``key`` came from (``"default"`` if nowhere)."""
        return self._sources.get(key, "default")


_SECTIONS: dict[str, type[_Section]] = {
    "katapult": KatapultSettings,
    "engine": EngineSettings,
    "output": OutputSettings,
}


def _env_names() -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {
        "katapult.api_token": ("KATAPULT_API_KEY", "KATAPULT_API_TOKEN"),
        "katapult.api_url": ("KATAPULT_API_URL",),
        "katapult.organization": ("KATAPULT_ORGANIZATION",),
        "katapult.data_center": ("KATAPULT_DATA_CENTER",),
    }
    for section in ("engine", "output"):
        for name in _SECTIONS[section].model_fields:
            names[f"{section}.{name}"] = (f"ORCHESTRATOR_{name.upper()}",)
    return names


#: dotted setting -> its environment variables, first one winning.
ENV_VARS: Mapping[str, tuple[str, ...]] = _env_names()


# ---------------------------------------------------------------------- loading


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < ``config_file`` (TOML) < ``environ`` < ``overrides``, validated.

    ``overrides`` holds dotted keys from command-line flags
    (``{"engine.max_in_flight": 10}``); None values are ignored, an unknown key
    is a ``ValueError`` (a bug in the caller). ``environ`` defaults to
    ``os.environ``; when ``config_file`` is None, ``ORCHESTRATOR_CONFIG`` in it
    may name one. Raises :class:`ConfigError` naming each bad setting and its
    source; the message never contains the token.
    """
    env = os.environ if environ is None else environ
    layered: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    sources: dict[str, str] = {}

    if config_file is None and env.get(CONFIG_ENV_VAR, "").strip():
        config_file = env[CONFIG_ENV_VAR].strip()
    if config_file is not None:
        _read_config(os.fspath(config_file), layered, sources)

    for key, names in ENV_VARS.items():
        for name in names:
            value = env.get(name)
            if value is not None and value.strip():
                section, field = key.split(".", 1)
                layered[section][field] = value
                sources[key] = f"environment variable {name}"
                break

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in ENV_VARS:
            raise ValueError(f"unknown setting {key!r} in overrides")
        section, field = key.split(".", 1)
        layered[section][field] = value
        sources[key] = "the command line"

    messages: list[str] = []
    try:
        settings = Settings.model_validate(layered)
    except ValidationError as exc:
        messages = [_describe_error(error, layered, sources) for error in exc.errors()]
    if messages:
        # raised outside the except block so no ValidationError (which echoes
        # input values, the token among them) rides along as __context__
        raise ConfigError(_join(messages))
    settings._sources = sources
    return settings


def _join(messages: list[str]) -> str:
    if len(messages) == 1:
        return messages[0]
    return f"{len(messages)} settings are invalid:\n" + "\n".join(f"  - {m}" for m in messages)


def _read_config(path: str, layered: dict[str, dict[str, Any]], sources: dict[str, str]) -> None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(16 * 1024 * 1024)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the config file: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: the config file is not UTF-8 text") from None
    error: str | None = None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        at = f"{path}:{found.group(1)}" if found else path
        if found:
            message = message[: found.start()].rstrip() + f" (column {found.group(2)})"
        error = f"{at}: invalid TOML: {message}"
    except RecursionError:
        error = f"{path}: invalid TOML: nested too deeply"
    if error is not None:
        raise ConfigError(error)

    lines = TomlLines(text)

    def locate(*parts: str) -> str:
        line = lines.line(parts)
        return f"{path}:{line}" if line is not None else path

    problems: list[str] = []
    for section, table in data.items():
        model = _SECTIONS.get(section)
        if model is None:
            problems.append(f"{locate(section)}: {_unknown(section, None)}")
            continue
        if not isinstance(table, dict):
            problems.append(f"{locate(section)}: '{section}' must be a table ([{section}])")
            continue
        for field, value in table.items():
            if field not in model.model_fields:
                problems.append(f"{locate(section, field)}: {_unknown(field, section)}")
                continue
            layered[section][field] = value
            sources[f"{section}.{field}"] = locate(section, field)
    if problems:
        raise ConfigError(_join(problems))


def _unknown(key: str, section: str | None) -> str:
    if section is None:
        # a setting written outside its table: point at the right table
        for name, model in _SECTIONS.items():
            if key in model.model_fields:
                return f"unknown key '{key}' (did you mean '{name}.{key}' under [{name}]?)"
        return unknown_key_message(key, _SECTIONS)
    for name, model in _SECTIONS.items():
        if name != section and key in model.model_fields:
            return f"unknown key '{section}.{key}' (did you mean '{name}.{key}'?)"
    suggestion = closest(key, _SECTIONS[section].model_fields)
    text = f"unknown key '{section}.{key}'"
    return text + (f" (did you mean '{suggestion}'?)" if suggestion else "")


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


def _describe_error(
    error: ErrorDetails, layered: dict[str, dict[str, Any]], sources: dict[str, str]
) -> str:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    kind = error["type"]
    if kind == "poll_bounds":
        low, high = "engine.poll_min_seconds", "engine.poll_max_seconds"
        return f"{_setting(low, layered, sources)}: must be <= {_setting(high, layered, sources)}"
    key = ".".join(loc[:2])
    return f"{_setting(key, layered, sources)}: {_message(error)}"


def _setting(key: str, layered: dict[str, dict[str, Any]], sources: dict[str, str]) -> str:
    section, _, field = key.partition(".")
    source = sources.get(key, "default")
    if field in layered.get(section, {}):
        value = layered[section][field]
    else:
        model = _SECTIONS.get(section)
        info = model.model_fields.get(field) if model else None
        value = info.default if info is not None else None
    return f"{key}{_show(key, value, source)} (from {source})"


_TYPE_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
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
        for field in model.model_fields:
            key = f"{section}.{field}"
            value = getattr(values, field)
            if isinstance(value, SecretStr):
                shown = "**********"
            elif value is None:
                shown = "(unset)"
            else:
                shown = str(value)
            rows.append((key, shown, settings.source_of(key)))
    return rows
