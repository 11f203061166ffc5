"""Pure pieces: bracket query args, merging, routing, the spec XML."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.simulator._args import deep_merge, parse_query
from orchestrator.simulator._errors import SimApiError
from orchestrator.simulator._routes import match
from orchestrator.simulator._xmlspec import parse_spec_xml, render_spec_xml

from ._helpers import recorded_request


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("page", "2")], {"page": "2"}),
        ([("organization[sub_domain]", "acme")], {"organization": {"sub_domain": "acme"}}),
        ([("a[b][c]", "1"), ("a[b][d]", "2")], {"a": {"b": {"c": "1", "d": "2"}}}),
        ([("tags[]", "x"), ("tags[]", "y")], {"tags": ["x", "y"]}),
        (
            [
                ("annotations[][key]", "k1"),
                ("annotations[][value]", "v1"),
                ("annotations[][key]", "k2"),
            ],
            {"annotations": [{"key": "k1", "value": "v1"}, {"key": "k2"}]},
        ),
        ([("weird]", "1")], {"weird]": "1"}),
    ],
)
def test_query_args_nest_like_rack(pairs: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    """Bracketed query keys nest into objects and arrays."""
    assert parse_query(pairs) == expected


def test_deep_merge_lets_the_body_win() -> None:
    """Objects merge key by key; other values from the body replace the query's."""
    query = {"organization": {"id": "org_x"}, "hostname": "q", "page": "1"}
    body = {"organization": {"sub_domain": "acme"}, "hostname": "b"}
    assert deep_merge(query, body) == {
        "organization": {"id": "org_x", "sub_domain": "acme"},
        "hostname": "b",
        "page": "1",
    }


@pytest.mark.parametrize(
    ("method", "path", "route", "values"),
    [
        ("GET", "tasks/task_1", "tasks/:task", {"task": "task_1"}),
        (
            "GET",
            "virtual_machines/builds/_",
            "virtual_machines/builds/:virtual_machine_build",
            {"virtual_machine_build": "_"},
        ),
        (
            "GET",
            "virtual_machines/vm_1",
            "virtual_machines/:virtual_machine",
            {"virtual_machine": "vm_1"},
        ),
        (
            "POST",
            "organizations/org_1/virtual_machines/build",
            "organizations/:organization/virtual_machines/build",
            {"organization": "org_1"},
        ),
        ("GET", "/zones/", "zones", {}),
    ],
)
def test_routes_match_like_apia(method: str, path: str, route: str, values: dict[str, str]) -> None:
    """A literal segment beats a parameter; parameters capture their segment."""
    found = match(method, path)
    assert found is not None
    assert (found[0].path, found[1]) == (route, values)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "virtual_machines/builds"),
        ("POST", "tasks/task_1"),
        ("GET", ""),
        ("GET", "zones/extra"),
    ],
)
def test_unknown_routes(method: str, path: str) -> None:
    """No route for unknown paths or methods (a literal segment never falls back)."""
    assert match(method, path) is None


def test_recorded_spec_xml_is_read() -> None:
    """The recorded build_from_spec XML yields its location, package, template and hostname."""
    spec = parse_spec_xml(recorded_request("vm-get-by-fqdn.yaml", 6)["xml"])
    assert spec.data_center == ("permalink", "uk-lon-01")
    assert spec.package == ("permalink", "rock-3")
    assert spec.disk_template == ("permalink", "templates/ubuntu-18-04")
    assert spec.disk_template_options == [("install_agent", "true")]
    assert spec.networks == [("id", "netw_gVRkZdSKczfNg34P")]
    assert spec.hostname == "tf-acc-test-data-source-by-fqdn-7hko0CYF0ufh-host"
    assert spec.name == "tf-acc-test-data-source-by-fqdn-7hko0CYF0ufh"
    assert spec.description == "A web server."
    assert spec.group == "vmgrp_DORhxhGkxQL0axST"
    assert spec.tags == ["public", "web"]


def test_rendered_spec_reads_back() -> None:
    """The normalized spec a build shows is itself a valid spec with the same content."""
    xml = render_spec_xml(
        data_center_id="loc_1",
        zone_id="zone_1",
        package_permalink="rock-3",
        cpu_cores=2,
        memory_in_gb=4,
        disk_template_permalink="templates/debian-12",
        disk_template_options=[("a", "<b>")],
        network_id="netw_1",
        hostname="h",
        name="N & M",
        description=None,
        tags=["t"],
    )
    spec = parse_spec_xml(xml)
    assert (spec.data_center, spec.zone, spec.package) == (
        ("id", "loc_1"),
        ("id", "zone_1"),
        ("permalink", "rock-3"),
    )
    assert (spec.cpu_cores, spec.memory_in_gb, spec.name, spec.tags) == (2, 4, "N & M", ["t"])
    assert spec.disk_template_options == [("a", "<b>")]


@pytest.mark.parametrize(
    "xml",
    [
        "not xml",
        "<VirtualMachineSpec><Resources><CPUCores>two</CPUCores></Resources></VirtualMachineSpec>",
        "<VirtualMachineSpec><Resources><Memory>0</Memory></Resources></VirtualMachineSpec>",
        "<VirtualMachineSpec><DataCenter> </DataCenter></VirtualMachineSpec>",
        "<VirtualMachineSpec><DiskTemplate><Option>x</Option></DiskTemplate></VirtualMachineSpec>",
    ],
)
def test_bad_spec_xml_is_invalid_spec_xml(xml: str) -> None:
    """Malformed or meaningless specs raise 400 invalid_spec_xml with a string of errors."""
    with pytest.raises(SimApiError) as caught:
        parse_spec_xml(xml)
    assert (caught.value.status, caught.value.code) == (400, "invalid_spec_xml")
    assert isinstance(caught.value.detail["errors"], str)
