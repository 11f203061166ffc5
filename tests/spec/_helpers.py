"""Small helpers for spec tests: parse text, list issues as tuples."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec import Spec, SpecDefaults, SpecFormat, parse_spec

#: a [defaults] table that makes any entry with a hostname valid
DEFAULTS = """\
[defaults]
organization = "acme"
data_center = "uk-lon-01"
package = "rock-1"
"""


def parse(text: str, fmt: SpecFormat = "toml", defaults: SpecDefaults | None = None) -> Spec:
    """Parse ``text`` with source ``spec.<fmt>``."""
    return parse_spec(text, source=f"spec.{fmt}", fmt=fmt, defaults=defaults)


def issues(
    text: str, fmt: SpecFormat = "toml", defaults: SpecDefaults | None = None
) -> list[SpecIssue]:
    """The issues parsing ``text`` raises (fails the test if it parses)."""
    with pytest.raises(SpecError) as info:
        parse(text, fmt, defaults)
    return list(info.value.issues)


def one_issue(
    text: str, fmt: SpecFormat = "toml", defaults: SpecDefaults | None = None
) -> SpecIssue:
    """The single issue parsing ``text`` raises."""
    found = issues(text, fmt, defaults)
    assert len(found) == 1, [str(issue) for issue in found]
    return found[0]


def entry(body: str) -> str:
    """A TOML spec: the valid defaults plus one ``[[vms]]`` entry with ``body``."""
    return f"{DEFAULTS}\n[[vms]]\n{body}\n"
