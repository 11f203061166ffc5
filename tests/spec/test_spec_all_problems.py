"""An unknown key does not hide an entry's other problems."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import parse_spec


def test_unknown_key_and_bad_hostname_are_both_reported() -> None:
    """A typo'd key and a bad hostname in one entry are reported together."""
    text = (
        '[[vms]]\nhostname = "Bad_Host!"\norganization = "acme"\n'
        'pakage = "rock-1"\ndata_center = "uk-lon-01"\n'
    )
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="fleet.toml", fmt="toml")
    fields = {issue.field for issue in caught.value.issues}
    assert {"pakage", "hostname"} <= fields
    unknown = next(i for i in caught.value.issues if i.field == "pakage")
    assert unknown.line == 4
    assert "did you mean 'package'" in unknown.message


@pytest.mark.parametrize(
    ("bad", "field"),
    [("count = 0", "count"), ("start = -1", "start"), ("data_center = 5", "data_center")],
)
def test_a_bad_field_does_not_hide_the_entrys_other_problems(bad: str, field: str) -> None:
    """count = 0 (or another field of the wrong value) and a bad hostname and a missing
    package in one entry: all three are reported (only the first one was)."""
    text = f'[[vms]]\nhostname = "Web_{{index}}"\norganization = "acme"\n{bad}\n'
    if field != "data_center":
        text += 'data_center = "uk-lon-01"\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="fleet.toml", fmt="toml")
    fields = [issue.field for issue in caught.value.issues]
    assert field in fields
    assert "hostname" in fields
    assert "package" in fields
    # the bad field is reported once, for its value, not also as missing
    assert not [i for i in caught.value.issues if i.field == field and "required" in i.message]
