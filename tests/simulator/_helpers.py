"""Helpers of the simulator tests: a raw HTTP client, a fake clock, fixtures' data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "sim-token"
#: A fake epoch on a window boundary (1_800_000_000 is a multiple of 60).
EPOCH = 1_800_000_000.0


class FakeClock:
    """Simulated time that moves only when told to."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass
class Reply:
    """One HTTP answer: status, headers (lower-cased names) and the parsed JSON body."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.raw)

    @property
    def code(self) -> str:
        """The error code of an error envelope."""
        return str(self.json["error"]["code"])

    @property
    def detail(self) -> Any:
        """The ``detail`` of an error envelope."""
        return self.json["error"]["detail"]


class Api:
    """Raw requests to a simulator (deliberately not the project's client)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None = TOKEN):
        self.session = session
        self.url = url
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        headers.update(extra or {})
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request and read the whole answer."""
        async with self.session.request(
            method,
            self.url + path,
            params=params,
            json=json_body,
            data=data,
            headers=self._headers(headers),
        ) as resp:
            raw = await resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw)

    async def get(self, path: str, **params: str) -> Reply:
        """GET with query arguments (keys may carry brackets through ``**{...}``)."""
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any, **params: str) -> Reply:
        """POST a JSON body."""
        return await self.request("POST", path, json_body=body, params=params or None)


def build_body(hostname: str | None = "web-01", **over: Any) -> dict[str, Any]:
    """A valid ``/build`` body for acme in uk-lon-01, with ``over`` merged in."""
    body: dict[str, Any] = {
        "organization": {"sub_domain": "acme"},
        "data_center": {"permalink": "uk-lon-01"},
        "package": {"permalink": "rock-3"},
        "disk_template": {"permalink": "templates/ubuntu-22-04"},
        "disk_template_options": [{"key": "install_agent", "value": "true"}],
    }
    if hostname is not None:
        body["hostname"] = hostname
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


SPEC_XML = """<?xml version="1.0" encoding="UTF-8"?>
<VirtualMachineSpec><DataCenter by="permalink">uk-lon-01</DataCenter><Resources><Package
by="permalink">rock-3</Package></Resources><DiskTemplate><DiskTemplate
by="permalink">templates/ubuntu-22-04</DiskTemplate><Option
key="install_agent">true</Option></DiskTemplate><Hostname><Hostname>{hostname}</Hostname></Hostname
><Name>{name}</Name><Description>A web server.</Description><AuthorizedKeys><Users
all="yes"></Users><SSHKeys all="yes"></SSHKeys></AuthorizedKeys><Tags><Tag>web</Tag
></Tags></VirtualMachineSpec>"""


def spec_body(hostname: str = "spec-01", name: str = "Spec 01") -> dict[str, Any]:
    """A valid ``/build_from_spec`` body."""
    return {
        "organization": {"sub_domain": "acme"},
        "xml": SPEC_XML.format(hostname=hostname, name=name),
    }


# ------------------------------------------------------------------ recordings


@cache
def recording(name: str) -> list[dict[str, Any]]:
    """The interactions of a recorded cassette."""
    with (FIXTURES / "recordings" / name).open() as fh:
        loaded = yaml.safe_load(fh)
    return list(loaded["interactions"])


def recorded(name: str, index: int) -> tuple[int, dict[str, str], Any]:
    """(status, headers lower-cased, parsed body) of one recorded response."""
    response = recording(name)[index]["response"]
    headers = {k.lower(): v[0] for k, v in response["headers"].items()}
    return int(response["code"]), headers, json.loads(response["body"])


def recorded_request(name: str, index: int) -> Any:
    """The parsed JSON body of one recorded request."""
    return json.loads(recording(name)[index]["request"]["body"])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_diff(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` differs in shape from ``expected`` (key sets, JSON types).

    A null on either side matches anything (the API's fields are nullable);
    lists compare their first items.
    """
    if expected is None or actual is None:
        return []
    if _kind(expected) != _kind(actual):
        return [f"{path}: {_kind(expected)} expected, got {_kind(actual)}"]
    if isinstance(expected, dict):
        out = []
        if set(expected) != set(actual):
            missing = sorted(set(expected) - set(actual))
            extra = sorted(set(actual) - set(expected))
            out.append(f"{path}: missing {missing}, extra {extra}")
        for key in set(expected) & set(actual):
            out.extend(shape_diff(expected[key], actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list) and expected and actual:
        return shape_diff(expected[0], actual[0], f"{path}[0]")
    return []


# ---------------------------------------------------------------------- schemas


@cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document of Core API v1."""
    with (FIXTURES / "openapi-core-v1.json").open() as fh:
        return dict(json.load(fh))


@cache
def apia_errors() -> dict[str, tuple[int, str | None]]:
    """code -> (HTTP status, description), from the server's own schema."""
    with (FIXTURES / "apia-schema-core-v1.json").open() as fh:
        schema = json.load(fh)
    return {
        obj["value"]["code"]: (obj["value"]["http_status"], obj["value"]["description"])
        for obj in schema["objects"]
        if obj["type"] == "error"
    }


def _convert(schema: dict[str, Any], strict: bool, seen: tuple[str, ...]) -> dict[str, Any]:
    components = openapi()["components"]["schemas"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return {}
        return _convert(components[name], strict, (*seen, name))
    if "allOf" in schema and len(schema["allOf"]) == 1:
        out = _convert(schema["allOf"][0], strict, seen)
    elif "allOf" in schema:
        out = {"allOf": [_convert(s, strict, seen) for s in schema["allOf"]]}
    elif "oneOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("anyOf") or []
        out = {"anyOf": [_convert(s, strict, seen) for s in options]}
    elif schema.get("type") == "array":
        out = {"type": "array", "items": _convert(schema.get("items", {}), strict, seen)}
    elif "properties" in schema or schema.get("type") == "object":
        props = {k: _convert(v, strict, seen) for k, v in schema.get("properties", {}).items()}
        out = {"type": "object", "properties": props}
        if schema.get("required"):
            out["required"] = list(schema["required"])
        if strict and props:
            out["additionalProperties"] = False
    else:
        out = {k: schema[k] for k in ("type", "enum", "format") if k in schema}
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def response_schema(path: str, method: str, *, strict: bool) -> dict[str, Any]:
    """The JSON Schema of an operation's success body (``strict``: no unknown keys)."""
    op = openapi()["paths"][path][method]
    status = next(code for code in op["responses"] if code.startswith("2"))
    body = op["responses"][status]["content"]["application/json"]["schema"]
    return _convert(body, strict, ())


def request_schema(path: str, method: str) -> dict[str, Any]:
    """The JSON Schema of an operation's request body (unknown keys refused)."""
    op = openapi()["paths"][path][method]
    return _convert(op["requestBody"]["content"]["application/json"]["schema"], True, ())
