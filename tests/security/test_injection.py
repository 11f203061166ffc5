"""Spec strings that reach the API cannot smuggle extra arguments, paths or XML.

Two layers: the spec loader refuses hostnames and lookups with characters that
mean something in a URL, a query or a path; and the client encodes whatever
it is given so that each value stays one value (bracket-nested query pairs,
JSON bodies, escaped XML, ids in the path only when they are plain ids).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import anyio
import pytest
from anyio.abc import SocketStream

from orchestrator.errors import OrchestratorError, SpecError
from orchestrator.katapult import (
    ApiRequest,
    ApiResponse,
    KatapultClient,
    MockTransport,
    build_spec_xml,
)
from orchestrator.katapult._encoding import flatten_params
from orchestrator.spec import parse_spec
from orchestrator.vm_request import Lookup

SMUGGLERS = [
    "web&x=1",
    "web=1",
    "web[0]",
    "web]",
    "web\nx",
    "web\r\nX-Header: 1",
    "web x",
    "web?x=1",
    "web#x",
    "web%26x",
    "web/x",
    "web\\x",
    "web;x",
    "web\x00",
    "web.example.com",
    "web\u2028x",
]
BASE = {
    "organization": "acme",
    "data_center": "uk-lon-01",
    "package": "rock-1",
    "disk_template": "templates/ubuntu-22-04",
}


GOOD = {
    "organization": "acme",
    "data_center": "uk-lon-01",
    "zone": "lon-zone-1",
    "package": "rock-1",
    "disk_template": "templates/ubuntu-22-04",
    "network": "uk-lon-01-public",
}


def _spec(**entry: Any) -> str:
    merged = {**BASE, **entry}
    if "zone" in entry:
        del merged["data_center"]  # a zone replaces the data center
    return json.dumps({"vms": [merged]})


def _refused(**entry: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(**entry), source="spec.json", fmt="json")
    return caught.value


@pytest.mark.parametrize("field", GOOD)
def test_plain_values_pass_where_smugglers_are_refused(field: str) -> None:
    """The control: a plain value in each field the tests below break is accepted."""
    spec = parse_spec(_spec(hostname="web-01", **{field: GOOD[field]}), source="s", fmt="json")
    assert [vm.hostname for vm in spec.vms] == ["web-01"]


@pytest.mark.parametrize("hostname", SMUGGLERS)
def test_spec_refuses_hostnames_that_could_smuggle_arguments(hostname: str) -> None:
    """A hostname with a URL, query, header or path character is refused, naming the field."""
    error = _refused(hostname=hostname)
    assert any(issue.field == "hostname" for issue in error.issues)


@pytest.mark.parametrize("hostname", ["web-{index}&x=1", "web-{index}\n", "{index}?a=b"])
def test_spec_refuses_hostname_templates_that_expand_to_smugglers(hostname: str) -> None:
    """A template whose expansions are not plain hostnames is refused too."""
    _refused(hostname=hostname, count=2)


LOOKUP_SMUGGLERS = [
    "uk-lon-01?x=1",
    "uk-lon-01&x=1",
    "uk-lon-01=1",
    "uk-lon-01[x]",
    "uk-lon-01#x",
    "uk-lon-01\nx",
    "uk lon",
    "uk-lon-01%26x",
    "uk-lon-01;x",
]


@pytest.mark.parametrize("value", LOOKUP_SMUGGLERS)
@pytest.mark.parametrize(
    "field", ["organization", "data_center", "zone", "package", "disk_template", "network"]
)
def test_spec_refuses_lookups_that_could_smuggle_arguments(field: str, value: str) -> None:
    """A permalink, sub_domain or id with a query/URL character is refused in every lookup."""
    error = _refused(hostname="web-01", **{field: value})
    assert any(issue.field == field for issue in error.issues), error


@pytest.mark.parametrize("key", ["id", "permalink"])
@pytest.mark.parametrize("value", ["vmpkg_x&y=1", "rock-1?x=1", "rock-1#x", "rock[1]"])
def test_spec_refuses_smugglers_in_explicit_lookup_tables(key: str, value: str) -> None:
    """``{ id = ... }`` / ``{ permalink = ... }`` tables are held to the same rules."""
    error = _refused(hostname="web-01", package={key: value})
    assert any(issue.field == "package" for issue in error.issues), error


@pytest.mark.parametrize("key", ["a&b", "a=b", "a[b]", "a b", "a\nb", "a?b"])
def test_spec_refuses_option_keys_that_could_smuggle_arguments(key: str) -> None:
    """disk_template_options keys are plain names (their values travel in a JSON body)."""
    _refused(hostname="web-01", disk_template_options={key: "x"})


def test_flatten_params_keeps_a_hostile_value_one_value() -> None:
    """A permalink full of query syntax flattens to exactly one pair, unchanged."""
    value = "a&b=c[d]#e?f=g\n"
    assert flatten_params({"organization": {"sub_domain": value}, "page": 2}) == [
        ("organization[sub_domain]", value),
        ("page", "2"),
    ]


@asynccontextmanager
async def _recording_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that records each request line and answers 404."""
    targets: list[str] = []

    async def serve(stream: SocketStream) -> None:
        async with stream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            targets.append(head.split(b"\r\n", 1)[0].decode().split(" ")[1])
            body = b'{"error":{"code":"organization_not_found","description":"x","detail":{}}}'
            await stream.send(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield f"http://127.0.0.1:{port}/core/v1/", targets
        finally:
            tg.cancel_scope.cancel()


HOSTILE_VALUES = ["a&b=c", "a#frag", "a[b]=c", "a\nb", "a b+c", "%26", "é", "a;b", "a/../../x"]


@pytest.mark.anyio
async def test_client_sends_hostile_lookup_values_as_one_query_value() -> None:
    """On the wire, each hostile value is one percent-encoded value of one argument."""
    async with _recording_server() as (url, targets):
        async with KatapultClient(api_url=url, token="t") as client:
            for value in HOSTILE_VALUES:
                with pytest.raises(OrchestratorError):
                    await client.get_organization(Lookup("sub_domain", value))
    assert len(targets) == len(HOSTILE_VALUES)
    for value, target in zip(HOSTILE_VALUES, targets, strict=True):
        parts = urlsplit(target)
        assert parts.path == "/core/v1/organizations/_"
        assert parts.fragment == ""
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        assert pairs == [("organization[sub_domain]", value)], target


@pytest.mark.anyio
async def test_ids_reach_the_path_only_when_plain() -> None:
    """A plain task id goes in the path; anything else goes in the query, never the path."""
    seen: list[ApiRequest] = []

    def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        body = {"task": {"id": "task_x", "name": "n", "status": "completed", "progress": 100}}
        return ApiResponse(
            status=200, headers={"content-type": "application/json"}, body=json.dumps(body).encode()
        )

    async with KatapultClient(
        api_url="https://api.example.test/core/v1/", token="t", transport=MockTransport(handler)
    ) as client:
        await client.get_task("task_abc123")
        await client.get_task("../../organizations/_?x=1")
        with pytest.raises(OrchestratorError):  # the handler answers tasks only
            await client.get_build("vmbuild_x/../../y")
    assert seen[0].path == "tasks/task_abc123"
    assert seen[1].path == "tasks/_"
    assert ("task[id]", "../../organizations/_?x=1") in seen[1].params
    assert seen[2].path == "virtual_machines/builds/_"


@pytest.mark.anyio
async def test_build_sends_the_hostname_in_the_json_body_only() -> None:
    """The build POST carries every spec string in its JSON body; the query is empty."""
    seen: list[ApiRequest] = []

    def handler(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return ApiResponse(status=500, headers={}, body=b"")

    async with KatapultClient(
        api_url="https://api.example.test/core/v1/", token="t", transport=MockTransport(handler)
    ) as client:
        with pytest.raises(OrchestratorError):
            await client.build_vm(
                organization=Lookup("sub_domain", "acme"),
                package=Lookup("permalink", "rock-1&x=1"),
                hostname="web-01&x=1",
                disk_template_options={"a&b": "c=d"},
            )
    (request,) = seen
    assert request.params == ()
    assert request.json["hostname"] == "web-01&x=1"
    assert request.json["package"] == {"permalink": "rock-1&x=1"}
    assert request.json["disk_template_options"] == [{"key": "a&b", "value": "c=d"}]


def test_spec_xml_escapes_every_user_string() -> None:
    """Names, descriptions and tags with XML syntax stay text: no element can be injected."""
    evil = "</Name><Hostname>evil</Hostname><Name>"
    xml = build_spec_xml(
        hostname="web-01",
        package=Lookup("permalink", "rock-1"),
        data_center=Lookup("permalink", "uk-lon-01"),
        name=evil,
        description="a & b <c> ]]> \"d\" 'e'",
        tags=['x"y', "<t/>"],
        group="g&h",
    )
    root = ElementTree.fromstring(xml)  # noqa: S314 - our own output
    assert [e.text for e in root.iter("Hostname") if e.text] == ["web-01"]
    assert root.findtext("Name") == evil
    assert root.findtext("Description") == "a & b <c> ]]> \"d\" 'e'"
    assert [t.text for t in root.iter("Tag")] == ['x"y', "<t/>"]
    assert root.findtext("Group") == "g&h"
