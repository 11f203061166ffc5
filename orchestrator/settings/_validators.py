"""The validators and field types of the settings' sections (durations, counts, paths, modes)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

from orchestrator._duration import parse_duration
from orchestrator.engine.state.location import (
    PostgresState,
    StateLocation,
    is_postgres_url,
)

#: Longest text a setting takes.
MAX_TEXT = 1024
#: Largest count (builds in flight, failures) a setting takes.
MAX_COUNT = 1_000_000
#: Longest duration a setting takes: a year.
MAX_SECONDS = 365 * 24 * 3600.0


def err(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting", message.replace("{", "{{").replace("}", "}}"))


# ------------------------------------------------------------------- validators


def _seconds(value: Any) -> Any:
    if isinstance(value, bool):
        raise err("must be a number of seconds, not true/false")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            try:
                return parse_duration(value)
            except ValueError:
                raise err(
                    "must be a number of seconds or a duration such as 90s, 5m, 1h30m"
                ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise err("must be a finite number of seconds")
    return value


def _whole(value: Any) -> Any:
    if isinstance(value, bool):
        raise err("must be a whole number, not true/false")
    return value


def _path(value: Any) -> Any:
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if not isinstance(text, str) or not text.strip():
            raise err("must be a non-empty path")
        if any(not char.isprintable() for char in text):
            raise err("must not contain control characters")
        try:
            return Path(text).expanduser()
        except RuntimeError:
            raise err("starts with '~' but that home directory is unknown") from None
    return value


def _file_mode(value: Any) -> Any:
    if isinstance(value, bool):
        raise err("must be file permissions such as 0644, not true/false")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(char not in "01234567" for char in text):
            raise err("must be file permissions in octal, such as 0644 or 0600")
        return int(text, 8)
    return value


def _owner_read_write(value: int) -> int:
    if not 0 <= value <= 0o666 or value & 0o600 != 0o600:
        raise err("must be permissions from 0600 to 0666 (the owner reads and writes; no x bits)")
    return value


def _share(value: Any) -> Any:
    if isinstance(value, bool):
        raise err("must be a fraction in (0, 1] such as 0.5 (or 50%), not true/false")
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            raise err("must be a fraction in (0, 1] such as 0.5 (or 50%)") from None
        value = number / 100 if percent else number
    if isinstance(value, int | float) and not (math.isfinite(value) and 0 < value <= 1):
        raise err(
            "must be a fraction in (0, 1] such as 0.5 (or 50%): the most of the token's "
            "budget per window this run may use"
        )
    return value


def lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Seconds = Annotated[
    float, BeforeValidator(_seconds), Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)
]
Count = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_COUNT)]
#: a share of the rate budget: a fraction in (0, 1], or a percentage ("50%")
Share = Annotated[float, BeforeValidator(_share), Field(gt=0, le=1, allow_inf_nan=False)]
PathSetting = Annotated[Path, BeforeValidator(_path)]


def _state(value: Any) -> StateLocation:
    if isinstance(value, PostgresState | Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise err("must be a path, or a postgresql:// URL")
    text = value.strip()
    if is_postgres_url(text):
        return PostgresState(text)
    path: Path = _path(text)
    return path


#: a fleet's state: a path (an SQLite journal) or a postgresql:// URL (never shown whole:
#: ``str()`` of a :class:`PostgresState` leaves its password out)
StateSetting = Annotated[StateLocation, PlainValidator(_state), PlainSerializer(str)]
#: file permissions: an octal string ("0644") or a number (0o644 in TOML); owner read+write kept
Mode = Annotated[int, BeforeValidator(_file_mode), AfterValidator(_owner_read_write)]
