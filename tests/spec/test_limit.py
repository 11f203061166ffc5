"""``limit_vms``: the ``--limit`` filter shared by ``run``, ``plan`` and ``destroy``."""

from __future__ import annotations

import pytest

from orchestrator import LimitError, limit_vms
from tests.spec._helpers import DEFAULTS, parse

SPEC = parse(
    DEFAULTS
    + """
[[vms]]
hostname = "web-{index:02d}"
count = 3

[[vms]]
hostname = "db-01"

[[vms]]
hostname = "DB-02"
"""
)


def _keys(patterns: list[str]) -> list[str]:
    return [vm.key for vm in limit_vms(SPEC.vms, patterns)]


@pytest.mark.parametrize(
    ("patterns", "keys"),
    [
        ([], ["web-01", "web-02", "web-03", "db-01", "db-02"]),
        (["web-*"], ["web-01", "web-02", "web-03"]),
        (["db-01"], ["db-01"]),
        (["web-0[13]"], ["web-01", "web-03"]),
        (["web-0[!1]"], ["web-02", "web-03"]),
        (["?b-0?"], ["db-01", "db-02"]),
        (["db-*", "web-02"], ["web-02", "db-01", "db-02"]),
        (["db-*,web-02"], ["web-02", "db-01", "db-02"]),
        (["WEB-01", "db-02"], ["web-01", "db-02"]),
        (["*", "web-*"], ["web-01", "web-02", "web-03", "db-01", "db-02"]),
        ([" web-01 , db-01"], ["web-01", "db-01"]),
    ],
)
def test_limit_selects_by_hostname_glob_in_spec_order(patterns: list[str], keys: list[str]) -> None:
    """Globs match the whole lower-cased hostname; repeated and comma-separated patterns add up."""
    assert _keys(patterns) == keys


def test_a_pattern_matches_the_whole_hostname() -> None:
    """``web`` is not a prefix match: it names no VM, which is an error."""
    with pytest.raises(LimitError, match="'web' matches no hostname"):
        _keys(["web"])


def test_every_pattern_that_matches_nothing_is_named_even_when_others_match() -> None:
    """A typo is an error naming each unmatched pattern and a few hostnames of the spec."""
    with pytest.raises(LimitError) as info:
        _keys(["web-*", "wbe-*", "db-9"])
    text = str(info.value)
    assert "'wbe-*', 'db-9' match no hostname" in text
    assert "web-01, web-02, web-03, db-01, db-02" in text


@pytest.mark.parametrize("value", ["", " ", "web-*,", ",db-01", "a,,b"])
def test_an_empty_pattern_is_an_error(value: str) -> None:
    """``--limit ''`` or a stray comma is refused rather than read as 'everything'."""
    with pytest.raises(LimitError, match="empty pattern"):
        _keys([value])


def test_limit_of_an_empty_list_names_the_problem() -> None:
    """With no VMs at all, any pattern matches nothing, and the message says the spec is empty."""
    with pytest.raises(LimitError, match="it has no VMs"):
        limit_vms([], ["*"])
