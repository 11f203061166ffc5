"""Request arguments the way the API (the Apia framework) reads them.

Query args use Rack's bracket nesting (``organization[sub_domain]=acme``,
``annotations[][key]=k``); a JSON body (only with ``Content-Type:
application/json``) is deep-merged over them, the body winning; a path segment
standing for a lookup (``/tasks/:task``) fills the lookup's first key (``id``)
only when neither the query nor the body gives that argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.simulator._errors import (
    ambiguous_lookup,
    invalid_argument,
    invalid_json_body,
    missing_lookup,
    missing_required_argument,
)

__all__ = ["Args", "deep_merge", "parse_json_body", "parse_query"]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"^-?\d+$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def parse_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest bracketed query pairs into dicts and lists, as Rack does."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        parts = [match.group(1), *_BRACKET.findall(match.group(2))] if match else [key]
        _assign(out, parts, value)
    return out


def _assign(target: dict[str, Any], parts: list[str], value: Any) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        target[head] = value
        return
    if rest[0] == "":
        items = target.get(head)
        if not isinstance(items, list):
            items = target[head] = []
        if len(rest) == 1:
            items.append(value)
            return
        sub = rest[1:]
        last = items[-1] if items else None
        if isinstance(last, dict) and sub[0] not in last:
            _assign(last, sub, value)
        else:
            fresh: dict[str, Any] = {}
            _assign(fresh, sub, value)
            items.append(fresh)
        return
    child = target.get(head)
    if not isinstance(child, dict):
        child = target[head] = {}
    _assign(child, rest, value)


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over`` recursively (dicts merge, anything else is replaced)."""
    for key, value in over.items():
        mine = base.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            deep_merge(mine, value)
        else:
            base[key] = value
    return base


def parse_json_body(content_type: str, body: bytes) -> dict[str, Any]:
    """The JSON body as Apia reads it: only for JSON content, non-objects as ``{}``."""
    if not content_type.startswith("application/json") or not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_json_body(str(exc)) from exc
    return parsed if isinstance(parsed, dict) else {}


class Args:
    """The merged arguments of one request, read per endpoint argument."""

    __slots__ = ("_endpoint_id", "_route", "_values")

    def __init__(
        self, values: dict[str, Any], route_values: Mapping[str, str], endpoint_id: str
    ) -> None:
        self._values = values
        self._route = route_values
        self._endpoint_id = endpoint_id

    def _raw(self, name: str) -> tuple[bool, Any]:
        if name in self._values:
            return True, self._values[name]
        if name in self._route:
            return True, {"id": self._route[name]}
        return False, None

    @property
    def endpoint_id(self) -> str:
        """The schema id of the endpoint these arguments are for (named in errors)."""
        return self._endpoint_id

    def raw(self, name: str) -> Any:
        """The argument as sent (``None`` when absent): for nested argument sets."""
        return self._values.get(name)

    def lookup(
        self, name: str, keys: tuple[str, ...], *, required: bool
    ) -> tuple[str, str | None] | None:
        """The lookup ``name`` as ``(key, value)``; ``None`` when absent and optional.

        ``value`` is ``None`` when the only key given was null: nothing can match.
        """
        present, raw = self._raw(name)
        if not present or raw is None:
            if required:
                raise missing_required_argument(self._endpoint_id, name)
            return None
        if not isinstance(raw, dict):
            raise invalid_argument(self._endpoint_id, [name], "object_expected")
        source: dict[str, str | None] = {}
        for key in keys:
            if key in raw:
                value = raw[key]
                source[key] = None if value is None else self._scalar_string([name, key], value)
        if not source:
            raise missing_lookup(self._endpoint_id, name)
        given = [(k, v) for k, v in source.items() if v is not None]
        if len(given) > 1:
            raise ambiguous_lookup(self._endpoint_id, name)
        if given:
            return given[0]
        return next(iter(source)), None

    def string(self, name: str, *, required: bool = False) -> str | None:
        """A string argument (numbers are accepted and turned into text)."""
        present, raw = self._raw(name)
        if not present or raw is None:
            if required:
                raise missing_required_argument(self._endpoint_id, name)
            return None
        return self._scalar_string([name], raw)

    def integer(self, name: str, default: int) -> int:
        """An integer argument (query strings of digits are integers)."""
        present, raw = self._raw(name)
        if not present or raw is None:
            return default
        if isinstance(raw, bool):
            raise invalid_argument(self._endpoint_id, [name], "invalid_scalar")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and _INTEGER.match(raw.strip()):
            return int(raw.strip())
        raise invalid_argument(self._endpoint_id, [name], "invalid_scalar")

    def boolean(self, name: str, default: bool) -> bool:
        """A boolean argument (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""
        present, raw = self._raw(name)
        if not present or raw is None:
            return default
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise invalid_argument(self._endpoint_id, [name], "invalid_scalar")

    def key_values(self, name: str) -> list[dict[str, str | None]]:
        """An array of ``{key, value}`` (annotations, disk template options)."""
        present, raw = self._raw(name)
        if not present or raw is None:
            return []
        if not isinstance(raw, list):
            raise invalid_argument(self._endpoint_id, [name], "array_expected")
        out: list[dict[str, str | None]] = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise invalid_argument(self._endpoint_id, [name], "object_expected", index=index)
            key = item.get("key")
            if key is None:
                raise missing_required_argument(self._endpoint_id, "key")
            value = item.get("value")
            out.append(
                {
                    "key": self._scalar_string([name, "key"], key),
                    "value": None if value is None else self._scalar_string([name, "value"], value),
                }
            )
        return out

    def _scalar_string(self, path: list[str], raw: Any) -> str:
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise invalid_argument(self._endpoint_id, path, "invalid_scalar")
        return str(raw)
