"""From a parsed document to :class:`Spec`: validate, merge defaults, expand, check hostnames.

Every problem is collected (with its entry, hostname, field and line) and raised
at once as one :class:`~orchestrator.errors.SpecError`. Defaults apply in this
order, the first that says something winning: the entry, the spec's
``[defaults]``, then :class:`SpecDefaults` from the settings. Tables
(``disk_template_options``, ``annotations``) merge key by key; lists replace. A
location (``zone`` or ``data_center``) is one unit: an entry that names either
drops both from the defaults, and the settings' data center only fills an entry
that has neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec._expand import TemplateError, hostname_problem, parse_template
from orchestrator.spec._lines import Path
from orchestrator.spec._load import Parsed
from orchestrator.spec._model import (
    BOUNDS,
    ENTRY_ONLY_FIELDS,
    LOOKUP_KINDS,
    DefaultsModel,
    EntryModel,
    Spec,
    SpecDefaults,
    SpecFormat,
    parse_lookup,
    show,
    type_noun,
)
from orchestrator.spec._suggest import unknown_key_message
from orchestrator.vm_request import Lookup, VmRequest

__all__ = ["MAX_ISSUES", "MAX_TOTAL_VMS", "build_spec", "fleet_problem"]

#: Issues listed in one SpecError; the rest are counted.
MAX_ISSUES = 100
#: Most VMs one spec may expand to.
MAX_TOTAL_VMS = 100_000

_TOP_KEYS = ("version", "fleet", "defaults", "vms")
#: a fleet's name: what every VM's ``orchestrator.spec`` annotation carries
_FLEET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_NO_LINE = 1 << 62  # issues without a line sort after located ones
_MERGED_TABLES = ("disk_template_options", "annotations")
_LOCATION = ("zone", "data_center")
#: fields only build_from_spec carries (as VmRequest.uses_spec_xml tells)
_SPEC_XML_FIELDS = (
    "cpu_cores",
    "memory_gb",
    "system_disk_gb",
    "ssh_keys",
    "tags",
    "name",
    "description",
    "group",
)
_EXPECTED = {
    "int_type": "an integer",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "bool_type": "a boolean",
}
_HOSTNAME_REQUIRED = "hostname is required (the orchestrator uses it to avoid duplicates)"


@dataclass(slots=True)
class _Collector:
    """Issues found so far, located through the parsed document's locator."""

    source: str
    parsed: Parsed
    items: list[SpecIssue] = field(default_factory=list)

    def add(
        self,
        message: str,
        *,
        path: Path = (),
        entry: int | None = None,
        hostname: str | None = None,
        field: str | None = None,
    ) -> None:
        line = self.parsed.locator.line(path) if path else None
        self.items.append(SpecIssue(self.source, message, entry, hostname, field, line))


@dataclass(slots=True)
class _Entry:
    """An entry that passed its model: merged values, ready to expand."""

    index: int
    hostname: str
    count: int
    start: int
    values: dict[str, Any]
    #: False when something required is missing: check it, but build nothing
    complete: bool = True
    #: keys left out because they had a problem (already reported): not "missing"
    dropped: frozenset[str] = frozenset()


def build_spec(
    parsed: Parsed,
    *,
    source: str,
    sha256: str,
    fmt: SpecFormat,
    defaults: SpecDefaults | None,
) -> Spec:
    """Validate and expand a parsed document; raise :class:`SpecError` listing every issue."""
    issues = _Collector(source, parsed)
    issues.items.extend(parsed.issues)
    data = parsed.data
    vms: list[VmRequest] = []
    fleet: str | None = None
    if data is None:
        issues.add("the spec file is empty: it needs a 'vms' list")
    elif not isinstance(data, Mapping):
        issues.add(f"the spec must be a table with a 'vms' list, not {type_noun(data)}")
    else:
        vms = _build(data, issues, fmt, defaults or SpecDefaults())
        fleet = _fleet(data.get("fleet"), issues)
    if issues.items:
        raise SpecError(_capped(issues.items))
    return Spec(path=source, sha256=sha256, vms=tuple(vms), fleet=fleet)


def fleet_problem(value: object) -> str | None:
    """Why ``value`` cannot name a fleet (None: it can)."""
    if not isinstance(value, str):
        return f"fleet must be a string, not {type_noun(value)}"
    if not _FLEET_RE.fullmatch(value):
        return (
            f"fleet {show(value)} is not a fleet name: 1 to 63 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return None


def _fleet(raw: object, issues: _Collector) -> str | None:
    if raw is None:
        return None
    problem = fleet_problem(raw)
    if problem is not None:
        issues.add(problem, path=("fleet",), field="fleet")
        return None
    assert isinstance(raw, str)
    return raw


def _capped(items: list[SpecIssue]) -> list[SpecIssue]:
    ordered = sorted(
        items,
        key=lambda issue: (
            -1 if issue.entry is None else issue.entry,
            _NO_LINE if issue.line is None else issue.line,
        ),
    )
    if len(ordered) <= MAX_ISSUES:
        return ordered
    hidden = len(ordered) - MAX_ISSUES
    return [
        *ordered[:MAX_ISSUES],
        SpecIssue(ordered[0].file, f"... and {hidden} more problems not listed"),
    ]


def _build(
    data: Mapping[Any, Any], issues: _Collector, fmt: SpecFormat, settings: SpecDefaults
) -> list[VmRequest]:
    for key in data:
        if key not in _TOP_KEYS:
            issues.add(unknown_key_message(key, _TOP_KEYS), path=(str(key),), field=_key_field(key))
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        issues.add(
            f"unsupported version {show(version)}: this orchestrator reads version 1",
            path=("version",),
            field="version",
        )
    base, defaults_ok = _defaults(data.get("defaults"), issues, fmt)
    fallback, fallback_bad = _settings_defaults(settings, issues)
    raw_vms = data.get("vms")
    if raw_vms is None:
        issues.add("the spec has no 'vms': list the VMs to build under 'vms'", field="vms")
        return []
    if not isinstance(raw_vms, list):
        issues.add(f"'vms' must be a list, not {type_noun(raw_vms)}", path=("vms",), field="vms")
        return []
    if not raw_vms:
        issues.add("'vms' is empty: add at least one VM", path=("vms",), field="vms")
        return []
    entries: list[_Entry] = []
    for index, raw in enumerate(raw_vms):
        entry = _entry(index, raw, issues, fmt)
        if entry is None:
            continue
        values = _merge(base, entry.values)
        for name, lookup in fallback.items():
            if name == "data_center" and ("zone" in values or "data_center" in values):
                continue
            values.setdefault(name, lookup)
        entry.complete = defaults_ok and _require(entry, values, issues, fallback_bad)
        entry.values = values
        entries.append(entry)
    total = sum(entry.count for entry in entries)
    if total > MAX_TOTAL_VMS:
        issues.add(
            f"the spec asks for {total} VMs; one spec may hold at most {MAX_TOTAL_VMS}",
            path=("vms",),
            field="vms",
        )
        return []
    return _expand_all(entries, issues)


def _key_field(key: object) -> str:
    return key if isinstance(key, str) else show(key)


def _defaults(raw: Any, issues: _Collector, fmt: SpecFormat) -> tuple[dict[str, Any], bool]:
    if raw is None:
        return {}, True
    if not isinstance(raw, Mapping):
        issues.add(
            f"'defaults' must be a table, not {type_noun(raw)}",
            path=("defaults",),
            field="defaults",
        )
        return {}, False
    model = _validate_model(DefaultsModel, raw, issues, fmt, path=("defaults",), entry=None)
    if model is None:
        return {}, False
    return _set_values(model), True


def _settings_defaults(
    settings: SpecDefaults, issues: _Collector
) -> tuple[dict[str, Lookup], set[str]]:
    found: dict[str, Lookup] = {}
    bad: set[str] = set()
    for name, value, setting in (
        ("organization", settings.organization, "katapult.organization"),
        ("data_center", settings.data_center, "katapult.data_center"),
    ):
        if value is None:
            continue
        try:
            found[name] = parse_lookup(LOOKUP_KINDS[name], value)
        except PydanticCustomError as exc:
            issues.add(f"the {setting} setting is invalid: {exc.message()}", field=name)
            bad.add(name)
    return found, bad


def _entry(index: int, raw: Any, issues: _Collector, fmt: SpecFormat) -> _Entry | None:
    path: Path = ("vms", index)
    if not isinstance(raw, Mapping):
        issues.add(f"each VM must be a table, not {type_noun(raw)}", path=path, entry=index)
        return None
    model = _validate_model(EntryModel, raw, issues, fmt, path=path, entry=index)
    dropped: frozenset[str] = frozenset()
    if model is None:
        model, dropped = _without_bad_fields(raw)
    if not isinstance(model, EntryModel):
        return None
    values = _set_values(model)
    for name in ENTRY_ONLY_FIELDS:
        values.pop(name, None)
    return _Entry(index, model.hostname, model.count, model.start, values, dropped=dropped)


def _without_bad_fields(raw: Mapping[Any, Any]) -> tuple[EntryModel | None, frozenset[str]]:
    """The entry checked again without every key that had a problem (or None), and
    those keys.

    A problem in one field (an unknown key, ``count = 0``, a lookup of the wrong
    type) must not hide the entry's others (a bad hostname, a missing package):
    the issues of the first pass already refuse the spec; this pass only lets
    the checks that follow (hostnames, required fields) add theirs. A bad
    ``count`` or ``start`` counts as 1.
    """
    candidate = {k: v for k, v in raw.items() if k in EntryModel.model_fields}
    for _ in range(len(candidate) + 1):
        dropped = frozenset(str(k) for k in raw.keys() - candidate.keys())
        try:
            return EntryModel.model_validate(candidate), dropped
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors(include_url=False) if e["loc"]}
            if not bad & candidate.keys() or "hostname" in bad:
                return None, dropped
            candidate = {k: v for k, v in candidate.items() if k not in bad}
    return None, frozenset()


def _set_values(model: BaseModel) -> dict[str, Any]:
    # Only what the file said: an explicit null means "not given" (YAML, JSON).
    out: dict[str, Any] = {}
    for name in model.model_fields_set:
        value = getattr(model, name)
        if value is not None:
            out[name] = value
    return out


def _validate_model(
    model: type[DefaultsModel],
    raw: Mapping[Any, Any],
    issues: _Collector,
    fmt: SpecFormat,
    *,
    path: Path,
    entry: int | None,
) -> DefaultsModel | None:
    hostname = raw.get("hostname") if entry is not None else None
    host = hostname if isinstance(hostname, str) else None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field, message = _describe(error, model, fmt, in_defaults=entry is None)
            location = tuple(part for part in error["loc"] if isinstance(part, str | int))
            issues.add(
                message,
                path=(*path, *location),
                entry=entry,
                hostname=host,
                field=field if entry is not None else f"defaults.{field}",
            )
    return None


def _describe(
    error: ErrorDetails, model: type[DefaultsModel], fmt: SpecFormat, *, in_defaults: bool
) -> tuple[str, str]:
    """``(field, message)`` for one pydantic error, in the spec's own words."""
    loc = error["loc"]
    field = _dotted(loc)
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        if len(loc) == 1 and in_defaults and key in ENTRY_ONLY_FIELDS:
            return field, f"'{key}' cannot be in defaults: it belongs on each VM"
        return field, unknown_key_message(key, model.model_fields)
    if loc and loc[-1] == "[key]":
        return field, f"keys must be strings, not {type_noun(value)}"
    if kind == "invalid_key":
        return field, f"keys must be strings, not {type_noun(loc[-1])}"
    if kind == "missing":
        if loc == ("hostname",):
            return field, _HOSTNAME_REQUIRED
        return field, "is required"
    if kind in _EXPECTED:
        message = f"must be {_EXPECTED[kind]}, not {type_noun(value)}"
        if fmt == "yaml" and kind == "string_type" and not isinstance(value, list | dict):
            message += " (quote it in YAML)"
        return field, message
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        name = next((part for part in reversed(loc) if isinstance(part, str)), "")
        low, high = BOUNDS.get(name, (None, None))
        if low is not None:
            return field, f"must be between {low} and {high}, not {show(value)}"
    if kind == "too_long":
        ctx = error.get("ctx") or {}
        return field, f"has too many items: at most {ctx.get('max_length')}"
    return field, error["msg"]


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += f".{part}" if out else part
    return out


def _merge(base: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    if any(name in entry for name in _LOCATION):
        for name in _LOCATION:
            merged.pop(name, None)
    for name, value in entry.items():
        if name in _MERGED_TABLES and name in merged:
            merged[name] = {**merged[name], **value}
        else:
            merged[name] = value
    return merged


def _require(
    entry: _Entry, values: dict[str, Any], issues: _Collector, fallback_bad: set[str]
) -> bool:
    """Report what is missing; True when the entry has everything a VmRequest needs."""
    missing: list[tuple[str, str]] = []
    fallback_bad = fallback_bad | entry.dropped  # said already: not "missing" too
    if "organization" not in values and "organization" not in fallback_bad:
        missing.append(
            (
                "organization",
                "organization is required: set it on the VM, in defaults, "
                "or with KATAPULT_ORGANIZATION",
            )
        )
    if "package" not in values and "package" not in fallback_bad:
        missing.append(("package", "package is required: set it on the VM or in defaults"))
    if not any(name in values for name in _LOCATION) and not fallback_bad & {*_LOCATION}:
        missing.append(
            (
                "data_center",
                "a zone or data_center is required: set one on the VM, in defaults, "
                "or with KATAPULT_DATA_CENTER",
            )
        )
    spec_fields = [name for name in _SPEC_XML_FIELDS if values.get(name) not in (None, [], ())]
    both = all(name in values for name in _LOCATION)
    if both and spec_fields:
        missing.append(
            (
                "zone",
                f"zone and data_center are both set, and {spec_fields[0]} sends this VM "
                "through build_from_spec, whose spec names one of them, not both: "
                "keep only one",
            )
        )
    for name, message in missing:
        issues.add(
            message,
            path=("vms", entry.index),
            entry=entry.index,
            hostname=entry.hostname,
            field=name,
        )
    return "organization" in values and "package" in values and not (both and spec_fields)


def _expand_all(entries: list[_Entry], issues: _Collector) -> list[VmRequest]:
    vms: list[VmRequest] = []
    owner: dict[str, int] = {}
    # (later entry, earlier entry) -> hostnames they share
    clashes: dict[tuple[int, int], list[str]] = {}
    for entry in entries:
        hostnames = _hostnames(entry, issues)
        if hostnames is None:
            continue
        values = entry.values
        options: dict[str, str] = values.pop("disk_template_options", {})
        annotations: dict[str, str] = values.pop("annotations", {})
        ssh_keys = tuple(values.pop("ssh_keys", ()))
        tags = tuple(values.pop("tags", ()))
        for hostname in hostnames:
            first = owner.get(hostname)
            if first is not None:
                clashes.setdefault((entry.index, first), []).append(hostname)
                continue
            owner[hostname] = entry.index
            if not entry.complete:
                continue
            vms.append(
                VmRequest(
                    key=hostname,
                    hostname=hostname,
                    disk_template_options=dict(options),
                    annotations=dict(annotations),
                    ssh_keys=ssh_keys,
                    tags=tags,
                    entry_index=entry.index,
                    **values,
                )
            )
    for (later, earlier), names in clashes.items():
        issues.add(
            _clash_message(later, earlier, names, issues),
            path=("vms", later, "hostname"),
            entry=later,
            hostname=names[0],
            field="hostname",
        )
    return vms


def _clash_message(later: int, earlier: int, names: list[str], issues: _Collector) -> str:
    if later == earlier:
        return f"the hostname template gives {show(names[0])} more than once"
    line = issues.parsed.locator.line(("vms", earlier))
    other = f"vms[{earlier}]" + (f" (line {line})" if line is not None else "")
    if len(names) == 1:
        return f"duplicate hostname {show(names[0])}: {other} has it too"
    return f"duplicate hostnames: {len(names)} of them ({show(names[0])}, ...) are also in {other}"


def _hostnames(entry: _Entry, issues: _Collector) -> list[str] | None:
    where: dict[str, Any] = {
        "entry": entry.index,
        "hostname": entry.hostname,
        "field": "hostname",
        "path": ("vms", entry.index, "hostname"),
    }
    try:
        template = parse_template(entry.hostname)
    except TemplateError as exc:
        issues.add(str(exc), **where)
        return None
    if entry.count > 1 and not template.has_index:
        issues.add(
            f"count is {entry.count} but the hostname has no {{index}} field, so every VM "
            "would get the same hostname (write e.g. 'web-{index:02d}')",
            **where,
        )
        return None
    out: list[str] = []
    for index in range(entry.start, entry.start + entry.count):
        try:
            hostname = template.render(index).lower()
        except (ValueError, OverflowError) as exc:
            issues.add(f"the hostname template fails for index {index}: {exc}", **where)
            return None
        problem = hostname_problem(hostname)
        if problem is not None:
            if template.has_index:
                message = (
                    f"the hostname template gives {show(hostname)} for index {index}, "
                    f"which {problem}"
                )
            else:
                message = f"hostname {show(hostname)} {problem}"
            issues.add(message, **where)
            return None
        out.append(hostname)
    return out
