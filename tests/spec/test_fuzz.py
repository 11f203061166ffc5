"""Fuzzing parse_spec: any input gives a Spec or a SpecError, never another exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.spec import Spec, SpecFormat, hostname_problem, parse_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"
FORMATS: list[SpecFormat] = ["toml", "yaml", "json"]
_FIELDS = [
    "version", "defaults", "vms", "hostname", "count", "start", "organization", "zone",
    "data_center", "package", "disk_template", "disk_template_options", "network",
    "annotations", "cpu_cores", "memory_gb", "system_disk_gb", "ssh_keys", "tags", "name",
    "description", "group", "id", "permalink", "sub_domain",
]  # fmt: skip
_FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(text: str | bytes, fmt: SpecFormat) -> Spec | None:
    """Parse; a Spec must hold valid unique keys, a SpecError at least one issue."""
    try:
        spec = parse_spec(text, source="fuzz", fmt=fmt)
    except SpecError as exc:
        error: SpecError | None = exc
    else:
        error = None
    if error is not None:
        assert error.issues
        assert all(issue.message for issue in error.issues)
        assert str(error).startswith("spec is invalid")
        return None
    keys = [vm.key for vm in spec.vms]
    assert len(keys) == len(set(keys))
    assert all(hostname_problem(key) is None for key in keys)
    assert all(vm.organization and vm.package for vm in spec.vms)
    assert all(vm.zone or vm.data_center for vm in spec.vms)
    return spec


@pytest.mark.parametrize("fmt", FORMATS)
@_FUZZ
@given(text=st.text())
def test_any_text(fmt: SpecFormat, text: str) -> None:
    """Arbitrary text in every format is a Spec or a SpecError."""
    _check(text, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@_FUZZ
@given(data=st.binary())
def test_any_bytes(fmt: SpecFormat, data: bytes) -> None:
    """Arbitrary bytes in every format are a Spec or a SpecError."""
    _check(data, fmt)


_TOML_ALPHABET = st.sampled_from(list('[]{}=".,\n #vmsdefaulthostnamecount0123-_{}:') + _FIELDS)


@_FUZZ
@given(parts=st.lists(_TOML_ALPHABET, max_size=60))
def test_toml_shaped_text(parts: list[str]) -> None:
    """Text built from TOML's punctuation and the spec's keys is a Spec or a SpecError."""
    _check("".join(parts), "toml")


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["acme", "uk-lon-01", "rock-1", "web-{index:02d}", "loc_abcdefgh12345678"]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELDS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=8,
)
_entries = st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=6)
_documents = st.fixed_dictionaries(
    {},
    optional={
        "version": _values,
        "defaults": st.one_of(_entries, _values),
        "vms": st.one_of(st.lists(st.one_of(_entries, _values), max_size=4), _values),
    },
)


@_FUZZ
@given(document=_documents)
def test_structured_documents_as_json_and_yaml(document: dict[str, Any]) -> None:
    """Documents shaped like specs (known keys, any values) are a Spec or a SpecError."""
    _check(json.dumps(document), "json")
    _check(yaml.safe_dump(document), "yaml")


@pytest.mark.parametrize("name", ["example.toml", "multi-dc.yaml", "example.json"])
@_FUZZ
@given(data=st.data())
def test_mutated_example_specs(name: str, data: st.DataObject) -> None:
    """The example specs with random edits are a Spec or a SpecError."""
    text = (SPECS / name).read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        insert = data.draw(st.text(alphabet='[]{}"=:-,\n ab1{}_', max_size=4))
        text = text[:at] + insert + text[at + cut :]
    _check(text, "toml" if name.endswith(".toml") else "yaml" if name.endswith(".yaml") else "json")
