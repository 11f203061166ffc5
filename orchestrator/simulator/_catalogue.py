"""The seeded catalogue: organizations, locations, packages, templates, networks.

Names and permalinks are the ones INTERFACES.md fixes; ids are
``<prefix>_<16 alphanumerics>`` derived from the seed, so one seed always
gives the same ids (and a different seed different ones).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Literal, TypeVar

_T = TypeVar("_T")

__all__ = [
    "Catalogue",
    "Country",
    "DataCenter",
    "DiskTemplate",
    "Network",
    "OrgStatus",
    "Organization",
    "Package",
    "SshKey",
    "Tag",
    "Zone",
    "build_catalogue",
    "make_id",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Simulated creation time of the seeded objects (2020-11-19, like the recordings' org).
CATALOGUE_CREATED_AT = 1605785692

OrgStatus = Literal["active", "suspended", "not_activated"]


def make_id(seed: int, prefix: str, key: str | int) -> str:
    """A deterministic ``<prefix>_<16 alphanumerics>`` id for ``key`` under ``seed``."""
    digest = hashlib.blake2b(f"{seed}/{prefix}/{key}".encode(), digest_size=16).digest()
    return prefix + "_" + "".join([_ALPHABET[byte % 62] for byte in digest])


@dataclass(frozen=True, slots=True)
class Country:
    """A country, as nested in data centers and organizations."""

    id: str
    name: str
    iso_code2: str
    iso_code3: str
    time_zone: str
    eu: bool


@dataclass(frozen=True, slots=True)
class DataCenter:
    """A data center (ids ``loc_...``)."""

    id: str
    name: str
    permalink: str
    country: Country
    ip_prefix: int  # second octet of the addresses handed out here


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone inside a data center."""

    id: str
    name: str
    permalink: str
    data_center: DataCenter


@dataclass(frozen=True, slots=True)
class Package:
    """A virtual machine package (``vmpkg_...``)."""

    id: str
    name: str
    permalink: str
    cpu_cores: int
    memory_in_gb: int
    storage_in_gb: int
    group_id: str


@dataclass(frozen=True, slots=True)
class DiskTemplate:
    """A disk template (``dtpl_...``); the seeded ones are universal."""

    id: str
    name: str
    permalink: str
    description: str
    universal: bool
    version_id: str
    os_id: str
    os_name: str
    size_in_gb: int


@dataclass(frozen=True, slots=True)
class Network:
    """A public network of a data center (``netw_...``)."""

    id: str
    name: str
    permalink: str
    data_center: DataCenter


@dataclass(frozen=True, slots=True)
class Organization:
    """An organization, whether it may act, and whether its policy allows flexible resources."""

    id: str
    name: str
    sub_domain: str
    infrastructure_domain: str
    status: OrgStatus
    uuid: str
    country: Country
    currency_id: str
    flexible_resources: bool = True


@dataclass(frozen=True, slots=True)
class SshKey:
    """An SSH key stored in an organization (``key_...``)."""

    id: str
    name: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag of an organization (``tag_...``)."""

    id: str
    name: str
    color: str
    created_at: int


def tag_id(org_id: str, name: str) -> str:
    """The id of the tag ``name`` of an organization (stable, derived from both)."""
    return make_id(0, "tag", f"{org_id}/{name}")


@dataclass(frozen=True)
class Catalogue:
    """Every seeded object, indexed by id and by permalink/sub_domain."""

    seed: int
    organizations: tuple[Organization, ...]
    data_centers: tuple[DataCenter, ...]
    zones: tuple[Zone, ...]
    packages: tuple[Package, ...]
    disk_templates: tuple[DiskTemplate, ...]
    networks: tuple[Network, ...]
    #: organization id -> its stored SSH keys / its tags
    ssh_keys: dict[str, tuple[SshKey, ...]] = field(default_factory=dict)
    tags: dict[str, tuple[Tag, ...]] = field(default_factory=dict)
    _orgs: dict[tuple[str, str], Organization] = field(init=False, repr=False, compare=False)
    _dcs: dict[tuple[str, str], DataCenter] = field(init=False, repr=False, compare=False)
    _zones: dict[tuple[str, str], Zone] = field(init=False, repr=False, compare=False)
    _packages: dict[tuple[str, str], Package] = field(init=False, repr=False, compare=False)
    _templates: dict[tuple[str, str], DiskTemplate] = field(init=False, repr=False, compare=False)
    _networks: dict[tuple[str, str], Network] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "_orgs", _index(self.organizations, "sub_domain"))
        put(self, "_dcs", _index(self.data_centers, "permalink"))
        put(self, "_zones", _index(self.zones, "permalink"))
        put(self, "_packages", _index(self.packages, "permalink"))
        put(self, "_templates", _index(self.disk_templates, "permalink"))
        put(self, "_networks", _index(self.networks, "permalink"))
        domains = {("domain", o.infrastructure_domain): o for o in self.organizations}
        self._orgs.update(domains)

    def org_by(self, key: str, value: str) -> Organization | None:
        """The organization whose ``key`` (``id`` or ``sub_domain``) is ``value``."""
        return self._orgs.get((key, value)) if key != "domain" else None

    def org_by_domain(self, domain: str) -> Organization | None:
        """The organization whose infrastructure domain is ``domain``."""
        return self._orgs.get(("domain", domain))

    def data_center_by(self, key: str, value: str) -> DataCenter | None:
        """The data center found by ``id`` or ``permalink``."""
        return self._dcs.get((key, value))

    def zone_by(self, key: str, value: str) -> Zone | None:
        """The zone found by ``id`` or ``permalink``."""
        return self._zones.get((key, value))

    def package_by(self, key: str, value: str) -> Package | None:
        """The package found by ``id`` or ``permalink``."""
        return self._packages.get((key, value))

    def disk_template_by(self, key: str, value: str) -> DiskTemplate | None:
        """The disk template found by ``id`` or ``permalink``."""
        return self._templates.get((key, value))

    def network_by(self, key: str, value: str) -> Network | None:
        """The network found by ``id`` or ``permalink``."""
        return self._networks.get((key, value))

    def ssh_keys_of(self, org: Organization) -> tuple[SshKey, ...]:
        """The SSH keys stored in ``org``."""
        return self.ssh_keys.get(org.id, ())

    def tags_of(self, org: Organization) -> tuple[Tag, ...]:
        """The tags of ``org``."""
        return self.tags.get(org.id, ())

    def zones_of(self, data_center: DataCenter) -> list[Zone]:
        """The zones of a data center, in catalogue order."""
        return [z for z in self.zones if z.data_center.id == data_center.id]

    def default_network(self, data_center: DataCenter) -> Network:
        """The public network of a data center."""
        return next(n for n in self.networks if n.data_center.id == data_center.id)


def _index(items: tuple[_T, ...], alt: str) -> dict[tuple[str, str], _T]:
    index: dict[tuple[str, str], _T] = {}
    for item in items:
        index[("id", getattr(item, "id"))] = item  # noqa: B009 - generic over dataclasses
        index[(alt, getattr(item, alt))] = item
    return index


def build_catalogue(seed: int) -> Catalogue:
    """The catalogue of INTERFACES.md with ids derived from ``seed``."""

    def mk(prefix: str, key: str) -> str:
        return make_id(seed, prefix, key)

    gb = Country(mk("ctry", "GB"), "United Kingdom", "GB", "GBR", "Europe/London", False)
    nl = Country(mk("ctry", "NL"), "Netherlands", "NL", "NLD", "Europe/Amsterdam", True)
    us = Country(mk("ctry", "US"), "United States", "US", "USA", "America/New_York", False)
    dcs = (
        DataCenter(mk("loc", "uk-lon-01"), "London", "uk-lon-01", gb, 64),
        DataCenter(mk("loc", "nl-ams-01"), "Amsterdam", "nl-ams-01", nl, 65),
        DataCenter(mk("loc", "us-nyc-01"), "New York", "us-nyc-01", us, 66),
    )
    zones = tuple(
        Zone(mk("zone", perma), name, perma, dc)
        for (perma, name), dc in zip(
            (("lon-zone-1", "LON-1"), ("ams-zone-1", "AMS-1"), ("nyc-zone-1", "NYC-1")),
            dcs,
            strict=True,
        )
    )
    group = mk("vmpkgrp", "standard")
    packages = (
        Package(mk("vmpkg", "rock-1"), "ROCK-1", "rock-1", 1, 1, 10, group),
        Package(mk("vmpkg", "rock-3"), "ROCK-3", "rock-3", 1, 3, 25, group),
        Package(mk("vmpkg", "rock-6"), "ROCK-6", "rock-6", 2, 6, 50, group),
    )
    templates = tuple(
        DiskTemplate(
            id=mk("dtpl", perma),
            name=name,
            permalink=perma,
            description=f"A clean installation of {name}",
            universal=True,
            version_id=mk("dtplver", perma),
            os_id=mk("os", os_name),
            os_name=os_name,
            size_in_gb=10,
        )
        for perma, name, os_name in (
            ("templates/ubuntu-22-04", "Ubuntu 22.04", "Ubuntu"),
            ("templates/debian-12", "Debian 12", "Debian"),
            ("templates/rocky-9", "Rocky Linux 9", "Rocky Linux"),
        )
    )
    networks = tuple(
        Network(
            mk("netw", f"{dc.permalink}-public"), "Public Network", f"{dc.permalink}-public", dc
        )
        for dc in dcs
    )
    currency = mk("cur", "GBP")
    # `basic` is active but its policy has no flexible resources (CPU/memory
    # without a package's), like most real organizations
    org_table: tuple[tuple[str, str, OrgStatus, bool], ...] = (
        ("acme", "Acme Corporation", "active", True),
        ("frozen", "Frozen Ltd", "suspended", True),
        ("newco", "NewCo Ltd", "not_activated", True),
        ("basic", "Basic Ltd", "active", False),
    )
    orgs = tuple(
        Organization(
            id=mk("org", sub),
            name=name,
            sub_domain=sub,
            infrastructure_domain=f"{sub}.katapult.cloud",
            status=status,
            uuid=_uuid_for(seed, sub),
            country=gb,
            currency_id=currency,
            flexible_resources=flexible,
        )
        for sub, name, status, flexible in org_table
    )
    by_sub = {o.sub_domain: o for o in orgs}
    key_table = {"acme": ("alice-laptop", "deploy"), "basic": ("ops",)}
    tag_table = {"acme": ("web", "db", "public", "ci"), "basic": ("web",)}
    ssh_keys = {
        by_sub[sub].id: tuple(
            SshKey(mk("key", f"{sub}/{name}"), name, _fingerprint(seed, f"{sub}/{name}"))
            for name in names
        )
        for sub, names in key_table.items()
    }
    colors = ("pastel_orange", "pink", "blue", "green")
    tags = {
        by_sub[sub].id: tuple(
            Tag(tag_id(by_sub[sub].id, name), name, colors[i % 4], CATALOGUE_CREATED_AT)
            for i, name in enumerate(names)
        )
        for sub, names in tag_table.items()
    }
    return Catalogue(
        seed=seed,
        organizations=orgs,
        data_centers=dcs,
        zones=zones,
        packages=packages,
        disk_templates=templates,
        networks=networks,
        ssh_keys=ssh_keys,
        tags=tags,
    )


def _fingerprint(seed: int, key: str) -> str:
    """A deterministic ``SHA256:...`` fingerprint, shaped like OpenSSH's."""
    digest = hashlib.sha256(f"{seed}/sshkey/{key}".encode()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _uuid_for(seed: int, key: str) -> str:
    h = hashlib.blake2b(f"{seed}/uuid/{key}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
