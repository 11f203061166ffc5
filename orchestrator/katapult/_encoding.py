"""Query-string encoding as the Katapult API reads it: bracket-nested pairs.

``{"organization": {"sub_domain": "acme"}, "page": 2}`` becomes
``[("organization[sub_domain]", "acme"), ("page", "2")]``; lists use empty
brackets (``annotations[][key]=k``), booleans are ``true``/``false`` and
``None`` values are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["flatten_params"]


def flatten_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten nested mappings and lists into ``(name, value)`` query pairs, in order."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten(str(key), value, pairs)
    return pairs


def _flatten(name: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{name}[{key}]", item, out)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        for item in value:
            _flatten(f"{name}[]", item, out)
    else:
        out.append((name, _scalar(name, value)))


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(f"query argument {name!r} cannot be a {type(value).__name__}")
