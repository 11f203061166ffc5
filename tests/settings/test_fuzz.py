"""Fuzzing settings: any config file or environment gives Settings or a ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from orchestrator.settings import ENV_VARS, Settings, load_settings

CANARY = "tok-CANARY-5e1d"
_FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)
_KEYS = sorted({key.split(".")[1] for key in ENV_VARS} | {"katapult", "engine", "output"})


def _load_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "c.toml"
        path.write_bytes(data)
        try:
            result: Settings | ConfigError = load_settings(config_file=path, environ={})
        except ConfigError as exc:
            result = exc
    assert isinstance(result, Settings) or str(result)


@_FUZZ
@given(st.binary())
def test_any_config_bytes(data: bytes) -> None:
    """Arbitrary bytes as a config file are Settings or a ConfigError."""
    _load_file(data)


_toml_values = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True).map(lambda f: repr(f).replace("nan", "nan").replace("inf", "inf")),
    st.sampled_from(
        ["true", "false", '"2m"', '"x"', '""', "[]", "{}", '"https://a/"', '"http://b/"']
    ),
    st.text(max_size=10).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
)


@_FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["katapult", "engine", "output", "engin"]),
            st.sampled_from(_KEYS),
            _toml_values,
        ),
        max_size=8,
    )
)
def test_config_shaped_files(entries: list[tuple[str, str, str]]) -> None:
    """Config files made of real section/key names and odd values are Settings or ConfigError."""
    text = "".join(f"[{section}]\n{key} = {value}\n" for section, key, value in entries)
    _load_file(text.encode("utf-8", "surrogatepass"))


@_FUZZ
@given(
    st.dictionaries(
        st.sampled_from(sorted({name for names in ENV_VARS.values() for name in names})),
        st.text(max_size=30).filter(lambda t: "\x00" not in t),
        max_size=8,
    )
)
def test_any_environment_and_the_token_never_leaks(environ: dict[str, str]) -> None:
    """Any environment values give Settings or a ConfigError that never shows the token."""
    environ = {**environ, "KATAPULT_API_KEY": CANARY + environ.get("KATAPULT_API_KEY", "")}
    try:
        result: Settings | ConfigError = load_settings(environ=environ)
    except ConfigError as exc:
        result = exc
    assert CANARY not in (str(result) if isinstance(result, ConfigError) else repr(result))
