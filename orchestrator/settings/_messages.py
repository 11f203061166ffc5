"""How a bad setting is described: its name, its value (never the token) and its source."""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices
from pydantic_core import ErrorDetails

from orchestrator.settings._sections import SECTIONS
from orchestrator.settings._sources import Origin


def origin(sources: list[Origin], section: str, name: str) -> str | None:
    for source in sources:
        if name in source.values.get(section, {}):
            return source.origin(section, name)
    return None


def _value(sources: list[Origin], section: str, name: str) -> tuple[Any, str]:
    for source in sources:
        values = source.values.get(section, {})
        if name in values:
            return values[name], source.origin(section, name)
    model = SECTIONS.get(section)
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


def describe(errors: list[ErrorDetails], sources: list[Origin]) -> list[str]:
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
    model = SECTIONS.get(section)
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
