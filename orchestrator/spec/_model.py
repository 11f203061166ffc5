"""What a spec file may say (pydantic models, unknown keys rejected) and what loading returns.

The models check each entry's shape and every string that will reach the API:
lookups (permalink, sub_domain or prefixed id, or an explicit one-key table),
free text without control characters and with bounded lengths, and bounded
numbers. Hostnames and ``count`` expansion are checked in ``_validate`` because
they need the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from orchestrator.spec._suggest import unknown_key_message
from orchestrator.vm_request import Lookup, LookupKey, VmRequest

__all__ = [
    "BOUNDS",
    "ENTRY_ONLY_FIELDS",
    "LOOKUP_KINDS",
    "MAX_COUNT",
    "DefaultsModel",
    "EntryModel",
    "LookupKind",
    "Spec",
    "SpecDefaults",
    "SpecFormat",
    "parse_lookup",
    "show",
    "type_noun",
]

SpecFormat = Literal["toml", "yaml", "json"]

#: Most VMs one entry's ``count`` may ask for.
MAX_COUNT = 10_000

#: Inclusive bounds of every integer field: (low, high).
BOUNDS: Mapping[str, tuple[int, int]] = {
    "count": (1, MAX_COUNT),
    "start": (0, 1_000_000_000),
    "cpu_cores": (1, 1024),
    "memory_gb": (1, 65_536),
    "system_disk_gb": (1, 1_048_576),
}

#: Keys an entry may have that ``[defaults]`` may not.
ENTRY_ONLY_FIELDS = ("hostname", "count", "start")


# --------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class SpecDefaults:
    """Values from the settings that fill what a spec leaves out (after its ``[defaults]``).

    ``organization`` is a sub_domain or ``org_`` id (``katapult.organization``);
    ``data_center`` a permalink or ``loc_`` id (``katapult.data_center``), used
    only by entries that name neither a zone nor a data center.
    """

    organization: str | None = None
    data_center: str | None = None


@dataclass(frozen=True, slots=True)
class Spec:
    """A loaded, validated and expanded spec file."""

    #: the path (or ``source``) as given
    path: str
    #: hex SHA-256 of the file's bytes (of the UTF-8 text for text input)
    sha256: str
    #: every VM, expanded, in file order; ``key`` is the lower-cased hostname
    vms: tuple[VmRequest, ...]
    #: the fleet the spec names (``fleet = "..."``); None: unnamed (see ``docs/guarantees.md``)
    fleet: str | None = None

    def by_key(self) -> dict[str, VmRequest]:
        """The VMs by their key (keys are unique within a spec)."""
        return {vm.key: vm for vm in self.vms}


# --------------------------------------------------------------- small helpers


def _err(message: str) -> PydanticCustomError:
    """A validation error whose text is ``message`` exactly (no templating)."""
    return PydanticCustomError("spec", message.replace("{", "{{").replace("}", "}}"))


def show(value: object, limit: int = 80) -> str:
    """A short, printable rendering of a user value for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# C0/C1 control characters, DEL, and lone surrogates (which JSON can smuggle in
# as \ud800 and which would break UTF-8 encoding later).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _text_problem(value: str, *, max_len: int, multiline: bool = False) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > max_len:
        return f"is {len(value)} characters long; at most {max_len} allowed"
    bad = (_CONTROL_MULTILINE_RE if multiline else _CONTROL_RE).search(value)
    if bad is not None:
        return f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}"
    return None


def _text(max_len: int, *, multiline: bool = False) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = _text_problem(value, max_len=max_len, multiline=multiline)
        if problem is not None:
            raise _err(problem)
        return value

    return check


# public-key text as in an authorized_keys line: a key type, then base64
_PUBLIC_KEY_RE = re.compile(
    r"(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-\S+|sk-\S+)\s+AAAA", re.IGNORECASE
)


def _ssh_key_reference(value: str) -> str:
    """An SSH key stored in the organization: its ``key_...`` id, name or fingerprint.

    Krystal's own CLI resolves keys this way and sends their ids; the API has
    no place for public-key text in a spec, so that is refused here with the
    way out.
    """
    if _PUBLIC_KEY_RE.match(value.strip()):
        raise _err(
            "is public-key text; ssh_keys name keys stored in the organization "
            "(by key_... id, name or fingerprint): add the key to the organization "
            "in Katapult first, then name it here"
        )
    problem = _text_problem(value, max_len=255)
    if problem is not None:
        raise _err(problem)
    return value


# ---------------------------------------------------------------------- lookups

_ID_RE = re.compile(r"([a-z]+)_([A-Za-z0-9]{16})")
_SUB_DOMAIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PERMALINK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")

#: id prefix -> what it names, for "that is a data center id" messages
_ID_NOUNS: Mapping[str, str] = {
    "org": "an organization",
    "zone": "a zone",
    "loc": "a data center",
    "vmpkg": "a package",
    "dtpl": "a disk template",
    "netw": "a network",
    "vm": "a virtual machine",
    "vmbuild": "a virtual machine build",
    "task": "a task",
}


@dataclass(frozen=True, slots=True)
class LookupKind:
    """How one lookup field is written: its id prefix and its name key."""

    field: str
    noun: str
    prefix: str
    name_key: LookupKey

    @property
    def article(self) -> str:
        """``a data center``, ``an organization``."""
        return ("an " if self.noun[0] in "aeiou" else "a ") + self.noun

    @property
    def name_pattern(self) -> re.Pattern[str]:
        """The safe character set of a name (sub_domain or permalink)."""
        return _SUB_DOMAIN_RE if self.name_key == "sub_domain" else _PERMALINK_RE

    @property
    def name_rule(self) -> str:
        """The name's rule in words."""
        if self.name_key == "sub_domain":
            return "letters, digits and '-', at most 63 characters"
        return "letters, digits and . _ / -, starting with a letter or digit, at most 128"


LOOKUP_KINDS: Mapping[str, LookupKind] = {
    kind.field: kind
    for kind in (
        LookupKind("organization", "organization", "org", "sub_domain"),
        LookupKind("zone", "zone", "zone", "permalink"),
        LookupKind("data_center", "data center", "loc", "permalink"),
        LookupKind("package", "package", "vmpkg", "permalink"),
        LookupKind("disk_template", "disk template", "dtpl", "permalink"),
        LookupKind("network", "network", "netw", "permalink"),
    )
}


def _lookup_id(kind: LookupKind, value: str) -> Lookup:
    match = _ID_RE.fullmatch(value)
    if match is None:
        raise _err(
            f"{show(value)} is not {kind.article} id: ids are '{kind.prefix}_' "
            "followed by 16 letters or digits"
        )
    if match.group(1) != kind.prefix:
        raise _err(_wrong_prefix(kind, value, match.group(1)))
    return Lookup("id", value)


def _wrong_prefix(kind: LookupKind, value: str, prefix: str) -> str:
    what = _ID_NOUNS.get(prefix, f"a '{prefix}_'")
    return (
        f"{show(value)} is {what} id; {kind.field} needs {kind.article} {kind.name_key} "
        f"or an id starting with '{kind.prefix}_'"
    )


def _lookup_name(kind: LookupKind, value: str) -> Lookup:
    if not kind.name_pattern.fullmatch(value):
        raise _err(f"{show(value)} is not a valid {kind.noun} {kind.name_key} ({kind.name_rule})")
    return Lookup(kind.name_key, value)


#: one Lookup per distinct reference: 100,000 entries naming one package share it
_INTERNED: dict[Lookup, Lookup] = {}


def parse_lookup(kind: LookupKind, value: Any) -> Lookup:
    """Read one lookup value; raise a pydantic custom error with the reason.

    A string is an id when it has the field's id prefix and 16 alphanumerics,
    and a name (permalink or sub_domain) otherwise; a string that is another
    kind's id is an error. A table has exactly one key: ``id`` or the name key.
    Equal references come back as one shared (frozen) :class:`Lookup`.
    """
    lookup = _parse_lookup(kind, value)
    return _INTERNED.setdefault(lookup, lookup)


def _parse_lookup(kind: LookupKind, value: Any) -> Lookup:
    if isinstance(value, str):
        match = _ID_RE.fullmatch(value)
        if match is not None and match.group(1) in _ID_NOUNS:
            if match.group(1) == kind.prefix:
                return Lookup("id", value)
            raise _err(_wrong_prefix(kind, value, match.group(1)))
        if value.startswith(kind.prefix + "_"):
            return _lookup_id(kind, value)
        return _lookup_name(kind, value)
    if isinstance(value, Mapping):
        allowed = ("id", kind.name_key)
        keys = list(value)
        if len(keys) != 1:
            found = ", ".join(show(k) for k in keys) if keys else "none"
            raise _err(
                f"a {kind.field} table needs exactly one of 'id' or '{kind.name_key}' "
                f"(found {found})"
            )
        key = keys[0]
        inner = value[key]
        if key not in allowed:
            raise _err(f"{kind.field} table: {unknown_key_message(key, allowed)}")
        if not isinstance(inner, str):
            raise _err(f"{kind.field}.{key} must be a string, not {type_noun(inner)}")
        return _lookup_id(kind, inner) if key == "id" else _lookup_name(kind, inner)
    raise _err(
        f"must be a string ({kind.name_key} or '{kind.prefix}_' id) or a table "
        f"with 'id' or '{kind.name_key}', not {type_noun(value)}"
    )


def type_noun(value: object) -> str:
    """``a string``, ``an integer``...: what a value is, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------- string tables

_TABLE_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")
_MAX_TABLE_ITEMS = 100


def _string_table(max_value_len: int) -> Callable[[dict[str, Any]], dict[str, str]]:
    """Check a key -> value table; integers and booleans become strings.

    TOML and YAML make ``install_agent = true`` a boolean and ``size = 10`` an
    integer, while the API wants strings: booleans become ``"true"``/``"false"``
    and integers their decimal text. Anything else (floats, lists, dates) is an
    error, because its string form is ambiguous.
    """

    def check(table: dict[str, Any]) -> dict[str, str]:
        if len(table) > _MAX_TABLE_ITEMS:
            raise _err(f"has {len(table)} keys; at most {_MAX_TABLE_ITEMS} allowed")
        out: dict[str, str] = {}
        for key, value in table.items():
            if not _TABLE_KEY_RE.fullmatch(key):
                raise _err(
                    f"key {show(key)} is not allowed: use letters, digits and _ . : / -, "
                    "at most 128 characters"
                )
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int):
                text = str(value)
            elif isinstance(value, str):
                text = value
                problem = (
                    _text_problem(value, max_len=max_value_len, multiline=True) if value else None
                )
                if problem is not None:
                    raise _err(f"value of '{key}' {problem}")
            else:
                raise _err(
                    f"value of '{key}' must be a string, integer or boolean, not {type_noun(value)}"
                )
            out[key] = text
        return out

    return check


OrganizationRef = Annotated[
    Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["organization"]))
]
ZoneRef = Annotated[Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["zone"]))]
DataCenterRef = Annotated[
    Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["data_center"]))
]
PackageRef = Annotated[Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["package"]))]
DiskTemplateRef = Annotated[
    Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["disk_template"]))
]
NetworkRef = Annotated[Lookup, PlainValidator(partial(parse_lookup, LOOKUP_KINDS["network"]))]

_CpuCores = Annotated[int, Field(ge=BOUNDS["cpu_cores"][0], le=BOUNDS["cpu_cores"][1])]
_MemoryGb = Annotated[int, Field(ge=BOUNDS["memory_gb"][0], le=BOUNDS["memory_gb"][1])]
_DiskGb = Annotated[int, Field(ge=BOUNDS["system_disk_gb"][0], le=BOUNDS["system_disk_gb"][1])]
_Count = Annotated[int, Field(ge=BOUNDS["count"][0], le=BOUNDS["count"][1])]
_Start = Annotated[int, Field(ge=BOUNDS["start"][0], le=BOUNDS["start"][1])]

_Name = Annotated[str, AfterValidator(_text(255))]
_Description = Annotated[str, AfterValidator(_text(4096, multiline=True))]
_SshKey = Annotated[str, AfterValidator(_ssh_key_reference)]
_Tag = Annotated[str, AfterValidator(_text(255))]
_Table = Annotated[dict[str, Any], AfterValidator(_string_table(4096))]


# ----------------------------------------------------------------------- models


class DefaultsModel(BaseModel):
    """``[defaults]``: any entry field but hostname/count/start; merged into every entry."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    organization: OrganizationRef | None = None
    zone: ZoneRef | None = None
    data_center: DataCenterRef | None = None
    package: PackageRef | None = None
    disk_template: DiskTemplateRef | None = None
    disk_template_options: _Table | None = None
    network: NetworkRef | None = None
    annotations: _Table | None = None
    cpu_cores: _CpuCores | None = None
    memory_gb: _MemoryGb | None = None
    system_disk_gb: _DiskGb | None = None
    ssh_keys: Annotated[list[_SshKey], Field(max_length=_MAX_TABLE_ITEMS)] | None = None
    tags: Annotated[list[_Tag], Field(max_length=_MAX_TABLE_ITEMS)] | None = None
    name: _Name | None = None
    description: _Description | None = None
    group: _Name | None = None


class EntryModel(DefaultsModel):
    """One ``[[vms]]`` entry: a hostname (or template) and what to build."""

    hostname: str
    count: _Count = 1
    start: _Start = 1
