"""Settings: defaults, precedence, environment names, validation and error texts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from orchestrator.errors import ConfigError
from orchestrator.settings import (
    DEFAULT_API_URL,
    ENV_VARS,
    EngineSettings,
    KatapultSettings,
    OutputSettings,
    Settings,
    SettingsWarning,
    describe_settings,
    load_settings,
)

CANARY = "tok-CANARY-7f3a9c"


def _config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(**kwargs: Any) -> str:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    return str(info.value)


# ------------------------------------------------------------------------ defaults


def test_defaults() -> None:
    """With no file, environment or flags, every setting has its documented default."""
    settings = load_settings(environ={})
    assert settings.katapult == KatapultSettings(
        api_token=None, api_url=DEFAULT_API_URL, organization=None, data_center=None
    )
    assert settings.engine == EngineSettings(
        rate_window_seconds=60,
        max_in_flight=None,
        max_in_flight_per_data_center=None,
        poll_min_seconds=5,
        poll_max_seconds=60,
        build_timeout_seconds=1200,
        expected_build_seconds=45,
        max_failures=None,
        wait_until_started=False,
        deadline_seconds=None,
        connect_timeout_seconds=10,
        read_timeout_seconds=30,
        retry_deadline_seconds=120,
    )
    assert settings.output == OutputSettings(
        report=Path("report.json"),
        journal=None,
        junit=None,
        metrics=None,
        metrics_mode=0o644,
        inventory=None,
        log_format="console",
        log_level="info",
        progress=True,
    )
    assert settings == Settings()


def test_settings_reads_the_environment_like_any_pydantic_settings_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings() reads the documented variables (not pydantic's nested JSON ones)."""
    monkeypatch.setenv("ORCHESTRATOR_MAX_IN_FLIGHT", "3")
    monkeypatch.setenv("ENGINE", '{"poll_min_seconds": 4}')
    settings = Settings()
    assert settings.engine.max_in_flight == 3
    assert settings.engine.poll_min_seconds == 5
    assert settings.source_of("engine.max_in_flight") == (
        "environment variable ORCHESTRATOR_MAX_IN_FLIGHT"
    )


def test_typed_sections_set_only_the_fields_given(tmp_path: Path) -> None:
    """A section model given in code wins for the fields set in it; the rest still layer."""
    config = _config(tmp_path, "[engine]\npoll_max_seconds = 30\n")
    environ = {"ORCHESTRATOR_MAX_IN_FLIGHT": "9", "ORCHESTRATOR_POLL_MIN_SECONDS": "2"}
    settings = load_settings(
        config_file=config, environ=environ, engine=EngineSettings(poll_min_seconds=1)
    )
    assert (settings.engine.poll_min_seconds, settings.engine.max_in_flight) == (1, 9)
    assert settings.engine.poll_max_seconds == 30
    assert settings.source_of("engine.poll_min_seconds") == "an argument"
    assert settings.source_of("engine.poll_max_seconds") == f"{config}:2"
    flagged = load_settings(
        environ=environ,
        engine=EngineSettings(max_in_flight=4),
        overrides={"engine.max_in_flight": 5},
    )
    assert flagged.engine.max_in_flight == 5
    assert flagged.source_of("engine.max_in_flight") == "the command line"


def test_settings_takes_typed_sections_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings(engine=EngineSettings(...)) merges with the environment, field by field."""
    monkeypatch.setenv("ORCHESTRATOR_POLL_MIN_SECONDS", "2")
    settings = Settings(engine=EngineSettings(max_in_flight=8))
    assert (settings.engine.max_in_flight, settings.engine.poll_min_seconds) == (8, 2)


def test_a_bad_argument_names_the_setting() -> None:
    """A bad value given in code is a ConfigError naming the setting and 'an argument'."""
    with pytest.raises(ConfigError, match=r"^output\.log_level = 'loud' \(from an argument\)"):
        Settings(output={"log_level": "loud"})


def test_unknown_orchestrator_variables_are_warned_about() -> None:
    """An ORCHESTRATOR_* variable that is no setting warns, naming the closest one."""
    environ = {"ORCHESTRATOR_MAX_INFLIGHT": "3", "KATAPULT_OTHER": "x", "ORCHESTRATOR_CONFIG": ""}
    with pytest.warns(SettingsWarning) as record:
        settings = load_settings(environ=environ)
    assert [str(w.message) for w in record] == [
        "environment variable ORCHESTRATOR_MAX_INFLIGHT is not a setting and is ignored "
        "(did you mean ORCHESTRATOR_MAX_IN_FLIGHT?)"
    ]
    assert settings.engine.max_in_flight is None


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an environ argument, load_settings reads os.environ."""
    monkeypatch.setenv("ORCHESTRATOR_MAX_IN_FLIGHT", "7")
    assert load_settings().engine.max_in_flight == 7


@pytest.mark.parametrize(
    ("report", "journal", "expected"),
    [
        ("report.json", None, Path("report.json.journal")),
        ("out/r.json", None, Path("out/r.json.journal")),
        ("report.json", "state/j.db", Path("state/j.db")),
    ],
)
def test_journal_path(report: str, journal: str | None, expected: Path) -> None:
    """The journal sits beside the report unless output.journal names it."""
    overrides = {"output.report": report, "output.journal": journal}
    assert load_settings(overrides=overrides, environ={}).journal_path() == expected


# ---------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("key", "file_line", "section", "env", "override", "read", "values"),
    [
        (
            "engine.max_in_flight",
            "max_in_flight = 10",
            "engine",
            ("ORCHESTRATOR_MAX_IN_FLIGHT", "20"),
            30,
            lambda s: s.engine.max_in_flight,
            (None, 10, 20, 30),
        ),
        (
            "output.report",
            'report = "file.json"',
            "output",
            ("ORCHESTRATOR_REPORT", "env.json"),
            "flag.json",
            lambda s: s.output.report,
            (Path("report.json"), Path("file.json"), Path("env.json"), Path("flag.json")),
        ),
        (
            "katapult.api_url",
            'api_url = "https://file.example/v1/"',
            "katapult",
            ("KATAPULT_API_URL", "https://env.example/v1/"),
            "https://flag.example/v1/",
            lambda s: s.katapult.api_url,
            (
                DEFAULT_API_URL,
                "https://file.example/v1/",
                "https://env.example/v1/",
                "https://flag.example/v1/",
            ),
        ),
    ],
)
def test_precedence_default_file_env_override(
    tmp_path: Path,
    key: str,
    file_line: str,
    section: str,
    env: tuple[str, str],
    override: Any,
    read: Any,
    values: tuple[Any, Any, Any, Any],
) -> None:
    """default < config file < environment < command-line override, with the source kept."""
    config = _config(tmp_path, f"[{section}]\n{file_line}\n")
    environ = dict([env])
    layers: list[tuple[dict[str, Any], str]] = [
        ({}, "default"),
        ({"config_file": config}, f"{config}:2"),
        ({"config_file": config, "environ": environ}, f"environment variable {env[0]}"),
        (
            {"config_file": config, "environ": environ, "overrides": {key: override}},
            "the command line",
        ),
    ]
    for (kwargs, source), expected in zip(layers, values, strict=True):
        kwargs.setdefault("environ", {})
        settings = load_settings(**kwargs)
        assert read(settings) == expected
        assert settings.source_of(key) == source


def test_none_overrides_are_ignored() -> None:
    """An override of None (a flag not given) leaves the lower layers' value."""
    settings = load_settings(
        environ={"ORCHESTRATOR_MAX_IN_FLIGHT": "9"}, overrides={"engine.max_in_flight": None}
    )
    assert settings.engine.max_in_flight == 9


def test_unknown_override_is_a_programming_error() -> None:
    """An override key that is no setting is a ValueError (a bug in the caller)."""
    with pytest.raises(ValueError, match=r"unknown setting 'engine\.nope'"):
        load_settings(environ={}, overrides={"engine.nope": 1})


def test_config_file_from_environment(tmp_path: Path) -> None:
    """ORCHESTRATOR_CONFIG names the config file when none is passed."""
    config = _config(tmp_path, "[engine]\nmax_in_flight = 4\n")
    settings = load_settings(environ={"ORCHESTRATOR_CONFIG": str(config)})
    assert settings.engine.max_in_flight == 4


# ---------------------------------------------------------------- environment names


def test_every_engine_and_output_field_has_its_env_var() -> None:
    """ORCHESTRATOR_<FIELD> exists for every engine and output field, KATAPULT_* for the rest."""
    expected = {
        "katapult.api_token": ("KATAPULT_API_KEY", "KATAPULT_API_TOKEN"),
        "katapult.api_url": ("KATAPULT_API_URL",),
        "katapult.organization": ("KATAPULT_ORGANIZATION",),
        "katapult.data_center": ("KATAPULT_DATA_CENTER",),
    }
    for section, model in (("engine", EngineSettings), ("output", OutputSettings)):
        for name in model.model_fields:
            expected[f"{section}.{name}"] = (f"ORCHESTRATOR_{name.upper()}",)
    assert dict(ENV_VARS) == expected


@pytest.mark.parametrize(
    ("environ", "read", "expected"),
    [
        ({"KATAPULT_API_KEY": "k1"}, lambda s: s.katapult.api_token.get_secret_value(), "k1"),
        ({"KATAPULT_API_TOKEN": "k2"}, lambda s: s.katapult.api_token.get_secret_value(), "k2"),
        (
            {"KATAPULT_API_KEY": "k1", "KATAPULT_API_TOKEN": "k2"},
            lambda s: s.katapult.api_token.get_secret_value(),
            "k1",
        ),
        ({"KATAPULT_API_KEY": "  k3\n"}, lambda s: s.katapult.api_token.get_secret_value(), "k3"),
        ({"KATAPULT_API_KEY": ""}, lambda s: s.katapult.api_token, None),
        ({"KATAPULT_ORGANIZATION": "acme"}, lambda s: s.katapult.organization, "acme"),
        (
            {"KATAPULT_DATA_CENTER": "loc_abcdefgh12345678"},
            lambda s: s.katapult.data_center,
            "loc_abcdefgh12345678",
        ),
        ({"ORCHESTRATOR_RATE_WINDOW_SECONDS": "30"}, lambda s: s.engine.rate_window_seconds, 30.0),
        ({"ORCHESTRATOR_POLL_MAX_SECONDS": "2m"}, lambda s: s.engine.poll_max_seconds, 120.0),
        ({"ORCHESTRATOR_DEADLINE_SECONDS": "1h30m"}, lambda s: s.engine.deadline_seconds, 5400.0),
        ({"ORCHESTRATOR_MAX_FAILURES": "3"}, lambda s: s.engine.max_failures, 3),
        ({"ORCHESTRATOR_MAX_FAILURES": " "}, lambda s: s.engine.max_failures, None),
        ({"ORCHESTRATOR_WAIT_UNTIL_STARTED": "TRUE"}, lambda s: s.engine.wait_until_started, True),
        ({"ORCHESTRATOR_PROGRESS": "0"}, lambda s: s.output.progress, False),
        ({"ORCHESTRATOR_PROGRESS": "no"}, lambda s: s.output.progress, False),
        ({"ORCHESTRATOR_LOG_LEVEL": "DEBUG"}, lambda s: s.output.log_level, "debug"),
        ({"ORCHESTRATOR_LOG_FORMAT": "json"}, lambda s: s.output.log_format, "json"),
        ({"ORCHESTRATOR_JUNIT": "j.xml"}, lambda s: s.output.junit, Path("j.xml")),
        ({"ORCHESTRATOR_METRICS": "m.prom"}, lambda s: s.output.metrics, Path("m.prom")),
        ({"ORCHESTRATOR_INVENTORY": "i.yml"}, lambda s: s.output.inventory, Path("i.yml")),
        ({"ORCHESTRATOR_JOURNAL": "~/j"}, lambda s: s.output.journal, Path("~/j").expanduser()),
        ({"orchestrator_max_in_flight": "3"}, lambda s: s.engine.max_in_flight, 3),
    ],
)
def test_environment_values(environ: dict[str, str], read: Any, expected: Any) -> None:
    """Environment values are parsed (durations, booleans, paths); empty ones are unset."""
    assert read(load_settings(environ=environ)) == expected


# ------------------------------------------------------------------ the API URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.katapult.io/core/v1/", "https://api.katapult.io/core/v1/"),
        ("https://api.example.com/core/v1", "https://api.example.com/core/v1/"),
        ("https://api.example.com", "https://api.example.com/"),
        ("http://127.0.0.1:8080/core/v1/", "http://127.0.0.1:8080/core/v1/"),
        ("http://127.8.9.10/core/v1/", "http://127.8.9.10/core/v1/"),
        ("http://localhost:9/core/v1/", "http://localhost:9/core/v1/"),
        ("http://[::1]:8080/core/v1/", "http://[::1]:8080/core/v1/"),
    ],
)
def test_accepted_api_urls(url: str, expected: str) -> None:
    """https anywhere and http to loopback are accepted; the path gets a trailing slash."""
    assert load_settings(environ={"KATAPULT_API_URL": url}).katapult.api_url == expected


_TLS = (
    "plain http:// is only allowed to a loopback address (127.0.0.0/8, ::1, localhost): the "
    "token must travel over TLS, so use https:// (TLS and its certificate checks cannot be "
    "turned off)"
)


@pytest.mark.parametrize(
    ("url", "shown", "message"),
    [
        ("http://api.katapult.io/core/v1/", "http://api.katapult.io/core/v1/", _TLS),
        ("http://10.0.0.1/", "http://10.0.0.1/", _TLS),
        ("http://localhost.evil.com/", "http://localhost.evil.com/", _TLS),
        (
            "ftp://example.com/",
            "ftp://example.com/",
            "must be an https:// URL (or http:// to a loopback address)",
        ),
        (
            "api.katapult.io",
            "api.katapult.io",
            "must be an https:// URL (or http:// to a loopback address)",
        ),
        ("https:///core/v1/", "https:///core/v1/", "has no host"),
        ("https://example.com:99999/", "https://example.com:99999/", "has an invalid port"),
        (
            "https://user:secret@example.com/",
            "https://***@example.com/",
            "must not contain a user name or password (the token goes in KATAPULT_API_KEY)",
        ),
        (
            "https://example.com/?a=1",
            "https://example.com/?***",
            "must not have a query string or fragment",
        ),
        (
            "https://exa mple.com/",
            "https://exa mple.com/",
            "must be a URL without spaces or control characters",
        ),
    ],
)
def test_rejected_api_urls(url: str, shown: str, message: str) -> None:
    """Non-http(s), hostless, credentialed, or plain-http-to-elsewhere URLs are refused."""
    assert _error(environ={"KATAPULT_API_URL": url}) == (
        f"katapult.api_url = {shown} (from environment variable KATAPULT_API_URL): {message}"
    )


# ------------------------------------------------------------------ error texts


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"ORCHESTRATOR_MAX_IN_FLIGHT": "-1"},
            "engine.max_in_flight = -1 (from environment variable ORCHESTRATOR_MAX_IN_FLIGHT): "
            "must be >= 1",
        ),
        (
            {"ORCHESTRATOR_MAX_IN_FLIGHT": "ten"},
            "engine.max_in_flight = ten (from environment variable ORCHESTRATOR_MAX_IN_FLIGHT): "
            "must be a whole number",
        ),
        (
            {"ORCHESTRATOR_MAX_IN_FLIGHT_PER_DATA_CENTER": "0"},
            "engine.max_in_flight_per_data_center = 0 (from environment variable "
            "ORCHESTRATOR_MAX_IN_FLIGHT_PER_DATA_CENTER): must be >= 1",
        ),
        (
            {"ORCHESTRATOR_MAX_IN_FLIGHT": "99999999999999999999999"},
            "engine.max_in_flight = 99999999999999999999999 (from environment variable "
            "ORCHESTRATOR_MAX_IN_FLIGHT): must be <= 1000000",
        ),
        (
            {"ORCHESTRATOR_BUILD_TIMEOUT_SECONDS": "1e300"},
            "engine.build_timeout_seconds = 1e300 (from environment variable "
            "ORCHESTRATOR_BUILD_TIMEOUT_SECONDS): must be <= 31536000",
        ),
        (
            {"ORCHESTRATOR_BUILD_TIMEOUT_SECONDS": "0"},
            "engine.build_timeout_seconds = 0 (from environment variable "
            "ORCHESTRATOR_BUILD_TIMEOUT_SECONDS): must be > 0",
        ),
        (
            {"ORCHESTRATOR_READ_TIMEOUT_SECONDS": "soon"},
            "engine.read_timeout_seconds = soon (from environment variable "
            "ORCHESTRATOR_READ_TIMEOUT_SECONDS): must be a number of seconds or a duration such "
            "as 90s, 5m, 1h30m",
        ),
        (
            {"ORCHESTRATOR_RATE_WINDOW_SECONDS": "inf"},
            "engine.rate_window_seconds = inf (from environment variable "
            "ORCHESTRATOR_RATE_WINDOW_SECONDS): must be a finite number of seconds",
        ),
        (
            {"ORCHESTRATOR_POLL_MIN_SECONDS": "90"},
            "engine.poll_min_seconds = 90 (from environment variable "
            "ORCHESTRATOR_POLL_MIN_SECONDS): must be <= engine.poll_max_seconds = 60 "
            "(from default)",
        ),
        (
            {"ORCHESTRATOR_WAIT_UNTIL_STARTED": "maybe"},
            "engine.wait_until_started = maybe (from environment variable "
            "ORCHESTRATOR_WAIT_UNTIL_STARTED): must be true or false",
        ),
        (
            {"ORCHESTRATOR_LOG_FORMAT": "xml"},
            "output.log_format = xml (from environment variable ORCHESTRATOR_LOG_FORMAT): "
            "must be 'console' or 'json'",
        ),
        (
            {"ORCHESTRATOR_LOG_LEVEL": "loud"},
            "output.log_level = loud (from environment variable ORCHESTRATOR_LOG_LEVEL): "
            "must be 'debug', 'info', 'warning' or 'error'",
        ),
        (
            {"KATAPULT_ORGANIZATION": "ac me"},
            "katapult.organization = ac me (from environment variable KATAPULT_ORGANIZATION): "
            "'ac me' is not a valid organization sub_domain (letters, digits and '-', at most "
            "63 characters)",
        ),
        (
            {"KATAPULT_DATA_CENTER": "org_abcdefgh12345678"},
            "katapult.data_center = org_abcdefgh12345678 (from environment variable "
            "KATAPULT_DATA_CENTER): 'org_abcdefgh12345678' is an organization id; data_center "
            "needs a data center permalink or an id starting with 'loc_'",
        ),
    ],
)
def test_environment_error_texts(environ: dict[str, str], message: str) -> None:
    """An invalid value names the setting, the value and the environment variable."""
    assert _error(environ=environ) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[engine]\nmax_in_flight = 0\n",
            "engine.max_in_flight = 0 (from {path}:2): must be >= 1",
        ),
        (
            "[engine]\nmax_in_flight = true\n",
            "engine.max_in_flight = True (from {path}:2): must be a whole number, not true/false",
        ),
        (
            '[engine]\npoll_max_seconds = "2s"\n',
            "engine.poll_min_seconds = 5 (from default): must be <= engine.poll_max_seconds = "
            "'2s' (from {path}:2)",
        ),
        (
            "[engine]\npoll_min_seconds = true\n",
            "engine.poll_min_seconds = True (from {path}:2): must be a number of seconds, not "
            "true/false",
        ),
        (
            "[output]\nprogress = 3\n",
            "output.progress = 3 (from {path}:2): must be true or false",
        ),
        (
            '[output]\nreport = ""\n',
            "output.report = '' (from {path}:2): must be a non-empty path",
        ),
        (
            '[output]\njunit = "~no-such-user-xyz/j.xml"\n',
            "output.junit = '~no-such-user-xyz/j.xml' (from {path}:2): starts with '~' but that "
            "home directory is unknown",
        ),
        (
            '[output]\nmetrics = "m\\u0000.prom"\n',
            "output.metrics = 'm\\x00.prom' (from {path}:2): must not contain control characters",
        ),
        (
            "[output]\nreport = 5\n",
            "output.report = 5 (from {path}:2): must be a path",
        ),
        (
            "[katapult]\napi_url = 5\n",
            "katapult.api_url = 5 (from {path}:2): must be a string",
        ),
        (
            "[engin]\nmax_in_flight = 1\n",
            "{path}:1: unknown key 'engin' (did you mean 'engine'?)",
        ),
        (
            "max_in_flight = 1\n",
            "{path}:1: unknown key 'max_in_flight' (did you mean 'engine.max_in_flight' under "
            "[engine]?)",
        ),
        (
            "[engine]\nmax_inflight = 1\n",
            "{path}:2: unknown key 'engine.max_inflight' (did you mean 'max_in_flight'?)",
        ),
        (
            '[engine]\nreport = "r.json"\n',
            "{path}:2: unknown key 'engine.report' (did you mean 'output.report'?)",
        ),
        ("[engine]\nzzz = 1\n", "{path}:2: unknown key 'engine.zzz'"),
        ("engine = 5\n", "{path}:1: 'engine' must be a table ([engine])"),
        (
            "[engine]\nmax_in_flight = 0\n[output]\nlog_level = 'x'\n",
            "2 settings are invalid:\n"
            "  - engine.max_in_flight = 0 (from {path}:2): must be >= 1\n"
            "  - output.log_level = 'x' (from {path}:4): must be 'debug', 'info', 'warning' or "
            "'error'",
        ),
        (
            "[engine\n",
            "{path}:1: invalid TOML: Expected ']' at the end of a table declaration (column 8)",
        ),
        ("a = " + "[" * 5000, "{path}: invalid TOML: nested too deeply"),
    ],
    ids=lambda value: value if len(value) < 40 else value[:37] + "...",
)
def test_config_file_error_texts(tmp_path: Path, text: str, message: str) -> None:
    """Config file errors name the file and line (and the setting, for bad values)."""
    path = _config(tmp_path, text)
    assert _error(config_file=path) == message.format(path=path)


def test_missing_config_file(tmp_path: Path) -> None:
    """A missing config file is a ConfigError naming it."""
    path = tmp_path / "none.toml"
    assert _error(config_file=path) == (
        f"{path}: cannot read the config file: No such file or directory"
    )


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_config_file_that_is_no_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO or a directory as the config file is refused without opening it (never blocks)."""
    path = tmp_path / "c.toml"
    if kind == "fifo":
        os.mkfifo(path)
        reason = "not a regular file"
    else:
        path.mkdir()
        reason = "Is a directory"
    assert _error(config_file=path) == f"{path}: cannot read the config file: {reason}"


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is a ConfigError with the line."""
    path = tmp_path / "c.toml"
    path.write_bytes(b"[engine]\n\xff = 1\n")
    assert _error(config_file=path) == f"{path}:2: the config file is not UTF-8 text"


def test_command_line_errors_name_the_command_line() -> None:
    """A bad override is reported as coming from the command line."""
    assert _error(overrides={"engine.max_in_flight": 0}) == (
        "engine.max_in_flight = 0 (from the command line): must be >= 1"
    )


def test_paths_expand_the_home_directory(tmp_path: Path) -> None:
    """~ in a path setting is expanded."""
    settings = load_settings(environ={}, overrides={"output.report": "~/r.json"})
    assert settings.output.report == Path("~/r.json").expanduser()


# --------------------------------------------------------------------- the token


def test_token_is_a_secret_that_no_rendering_shows(tmp_path: Path) -> None:
    """repr, str, JSON dumps and describe_settings never show the token."""
    settings = load_settings(environ={"KATAPULT_API_KEY": CANARY})
    assert isinstance(settings.katapult.api_token, SecretStr)
    assert settings.katapult.api_token.get_secret_value() == CANARY
    rendered = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(settings.model_dump()),
        repr(describe_settings(settings)),
    ]
    assert all(CANARY not in text for text in rendered)
    assert ("katapult.api_token", "**********", "environment variable KATAPULT_API_KEY") in (
        describe_settings(settings)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        # a token the validator refuses
        {"environ": {"KATAPULT_API_KEY": CANARY + " x"}},
        {"environ": {"KATAPULT_API_KEY": CANARY + "\x00"}},
        {"overrides": {"katapult.api_token": CANARY + "\n\n x"}},
        # a valid token alongside other errors
        {"environ": {"KATAPULT_API_KEY": CANARY, "ORCHESTRATOR_MAX_IN_FLIGHT": "0"}},
        {"environ": {"KATAPULT_API_TOKEN": CANARY, "KATAPULT_API_URL": "http://x/"}},
        # the token in a URL
        {"environ": {"KATAPULT_API_URL": f"https://u:{CANARY}@example.com/"}},
        {"environ": {"KATAPULT_API_URL": f"http://{CANARY}@example.com/"}},
    ],
)
def test_token_never_appears_in_config_errors(kwargs: dict[str, Any]) -> None:
    """ConfigError text (and its chained exceptions) never contain the token."""
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    assert CANARY not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    "text", [f'[katapult]\napi_token = "{CANARY} x"\n', f'[katapult]\napi_token = ["{CANARY}"]\n']
)
def test_token_from_file_never_appears_in_errors(tmp_path: Path, text: str) -> None:
    """A bad token from the config file is reported without its value."""
    message = _error(config_file=_config(tmp_path, text))
    assert CANARY not in message
    assert message.startswith(f"katapult.api_token (from {tmp_path / 'config.toml'}:2): must be")


def test_describe_settings_lists_every_setting_with_its_source(tmp_path: Path) -> None:
    """describe_settings gives (setting, value, source) for every field, unset ones marked."""
    config = _config(tmp_path, "[engine]\nmax_in_flight = 5\n")
    rows = describe_settings(load_settings(config_file=config, environ={}))
    keys = [row[0] for row in rows]
    assert keys == list(ENV_VARS)
    assert ("engine.max_in_flight", "5", f"{config}:2") in rows
    assert ("katapult.api_token", "(unset)", "default") in rows
    assert ("output.report", "report.json", "default") in rows


def test_section_models_never_echo_a_value() -> None:
    """A section model refusing a token raises a ValidationError that does not show it."""
    with pytest.raises(ValidationError) as info:
        KatapultSettings(api_token=CANARY + " x")
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)


def test_token_override_may_be_a_secret() -> None:
    """A token override may already be a SecretStr (the value is kept, still secret)."""
    settings = load_settings(environ={}, overrides={"katapult.api_token": SecretStr(CANARY)})
    assert settings.katapult.api_token is not None
    assert settings.katapult.api_token.get_secret_value() == CANARY


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://localhost.:8080/core/v1/", True),
        ("http://LOCALHOST/core/v1/", True),
        ("http://127.0.0.2/core/v1/", True),
        ("https://api.example.com/core\x7f/v1/", False),
        ("https://api.example.com/core/v1/\x1b[2J", False),
        ("http://example.com/core/v1/", False),
    ],
)
def test_the_settings_and_the_client_judge_an_api_url_alike(url: str, accepted: bool) -> None:
    """One check of the API URL: the settings accept exactly what the client accepts."""
    from orchestrator.katapult import check_api_url

    try:
        check_api_url(url)
        client_accepts = True
    except ConfigError:
        client_accepts = False
    try:
        load_settings(environ={"KATAPULT_API_URL": url})
        settings_accept = True
    except ConfigError:
        settings_accept = False
    assert (client_accepts, settings_accept) == (accepted, accepted)
