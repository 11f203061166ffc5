"""What the engine is asked to build: validated, expanded VM requests.

The spec loader produces these; the engine consumes them. Nothing here knows
about files or HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Lookup", "LookupKey", "VmRequest"]

LookupKey = Literal["id", "permalink", "sub_domain", "fqdn"]


@dataclass(frozen=True, slots=True)
class Lookup:
    """A reference to an API object by exactly one key (``{"permalink": "uk-lon-01"}``)."""

    key: LookupKey
    value: str

    def as_arg(self) -> dict[str, str]:
        """The lookup as the API expects it in a JSON body."""
        return {self.key: self.value}

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class VmRequest:
    """One VM to build. ``key`` is stable across runs (the lower-cased hostname)."""

    key: str
    hostname: str
    organization: Lookup
    package: Lookup
    zone: Lookup | None = None
    data_center: Lookup | None = None
    disk_template: Lookup | None = None
    disk_template_options: Mapping[str, str] = field(default_factory=dict)
    network: Lookup | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    # fields only build_from_spec can carry
    cpu_cores: int | None = None
    memory_gb: int | None = None
    system_disk_gb: int | None = None
    ssh_keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    name: str | None = None
    description: str | None = None
    group: str | None = None
    # where it came from in the spec file
    entry_index: int = 0

    @property
    def uses_spec_xml(self) -> bool:
        """True when a field needs ``build_from_spec`` (the plain ``/build`` lacks it)."""
        return bool(
            self.cpu_cores is not None
            or self.memory_gb is not None
            or self.system_disk_gb is not None
            or self.ssh_keys
            or self.tags
            or self.name is not None
            or self.description is not None
            or self.group is not None
        )

    @property
    def location(self) -> str:
        """The data center or zone, for grouping (per-DC caps, duration learning)."""
        loc = self.data_center or self.zone
        return loc.value if loc else "?"
