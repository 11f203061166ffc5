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
