"""The example specs in specs/ load and use only the simulator's catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spec import load_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"

# The simulator's seeded catalogue (INTERFACES.md).
CATALOGUE = {
    "organization": {"acme"},
    "data_center": {"uk-lon-01", "nl-ams-01", "us-nyc-01"},
    "zone": {"lon-zone-1", "ams-zone-1", "nyc-zone-1"},
    "package": {"rock-1", "rock-3", "rock-6"},
    "disk_template": {"templates/ubuntu-22-04", "templates/debian-12", "templates/rocky-9"},
    "network": {"uk-lon-01-public", "nl-ams-01-public", "us-nyc-01-public"},
}


def _spec_files() -> list[Path]:
    return sorted(path for path in SPECS.iterdir() if path.suffix in (".toml", ".yaml", ".json"))


def test_the_example_specs_exist() -> None:
    """specs/ holds the documented examples."""
    names = {path.name for path in _spec_files()}
    assert {"example.toml", "multi-dc.yaml", "build-from-spec.toml", "example.json"} <= names


@pytest.mark.parametrize("path", _spec_files(), ids=lambda path: path.name)
def test_example_spec_loads_and_uses_the_catalogue(path: Path) -> None:
    """Every example spec loads, and every lookup names an object of the simulator."""
    spec = load_spec(path)
    assert spec.vms
    for vm in spec.vms:
        for field, names in CATALOGUE.items():
            lookup = getattr(vm, field)
            if lookup is not None:
                assert lookup.key != "id"
                assert lookup.value in names, (vm.key, field, lookup.value)


def test_example_toml_is_small_and_in_london() -> None:
    """specs/example.toml (the README's first command) is ~5 plain-build VMs in uk-lon-01."""
    spec = load_spec(SPECS / "example.toml")
    assert [vm.key for vm in spec.vms] == ["web-01", "web-02", "web-03", "db-01", "db-02"]
    assert {vm.location for vm in spec.vms} == {"uk-lon-01"}
    assert not any(vm.uses_spec_xml for vm in spec.vms)


def test_multi_dc_spans_every_data_center() -> None:
    """specs/multi-dc.yaml places VMs in all three data centers, by data center and by zone."""
    spec = load_spec(SPECS / "multi-dc.yaml")
    assert {vm.location for vm in spec.vms} == {"uk-lon-01", "ams-zone-1", "nyc-zone-1"}
    assert any(vm.zone for vm in spec.vms)
    assert any(vm.data_center for vm in spec.vms)


def test_build_from_spec_example_needs_spec_xml() -> None:
    """specs/build-from-spec.toml sets fields only build_from_spec can carry."""
    spec = load_spec(SPECS / "build-from-spec.toml")
    assert all(vm.uses_spec_xml for vm in spec.vms)
    runner = spec.by_key()["ci-runner-01"]
    assert (runner.cpu_cores, runner.memory_gb, runner.system_disk_gb) == (4, 8, 40)
    assert runner.tags == ("ci", "public")
    assert runner.ssh_keys == ("alice-laptop", "deploy")
    assert runner.disk_template_options == {"install_agent": "true"}
