"""Lookups as the API expects them: an object with exactly one allowed key.

Each kind of object may be found by a fixed set of keys (an organization by
``id`` or ``sub_domain``, a VM by ``id`` or ``fqdn``, ...). A
:class:`~orchestrator.vm_request.Lookup` that names another key is a
programming error (``ValueError``): the spec loader decides the key. The one
friendly translation: an organization's ``permalink`` is its ``sub_domain``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from orchestrator.vm_request import Lookup

__all__ = ["LOOKUP_KEYS", "LookupKind", "lookup_arg"]

LookupKind = Literal[
    "organization",
    "zone",
    "data_center",
    "package",
    "disk_template",
    "network",
    "virtual_machine",
    "virtual_machine_build",
    "task",
]

#: The keys each kind of object can be looked up by (the API's lookup argument sets).
LOOKUP_KEYS: Mapping[LookupKind, tuple[str, ...]] = {
    "organization": ("id", "sub_domain"),
    "zone": ("id", "permalink"),
    "data_center": ("id", "permalink"),
    "package": ("id", "permalink"),
    "disk_template": ("id", "permalink"),
    "network": ("id", "permalink"),
    "virtual_machine": ("id", "fqdn"),
    "virtual_machine_build": ("id",),
    "task": ("id",),
}

_ALIASES: Mapping[LookupKind, Mapping[str, str]] = {
    "organization": {"permalink": "sub_domain"},
}


def lookup_arg(kind: LookupKind, lookup: Lookup) -> dict[str, str]:
    """The lookup as a one-key argument object (``{"permalink": "uk-lon-01"}``).

    Raises ``ValueError`` when ``kind`` cannot be found by the lookup's key or
    the value is empty.
    """
    key = _ALIASES.get(kind, {}).get(lookup.key, lookup.key)
    allowed = LOOKUP_KEYS[kind]
    if key not in allowed:
        raise ValueError(
            f"a {kind} cannot be looked up by {lookup.key!r} (use {' or '.join(allowed)})"
        )
    if not lookup.value:
        raise ValueError(f"empty {kind} {key} lookup")
    return {key: lookup.value}
