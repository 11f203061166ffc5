"""Spec files: the VMs to build, read from TOML, YAML or JSON and expanded.

::

    version = 1                            # optional
    [defaults]                             # merged into every entry (the entry wins)
    organization = "acme"
    data_center = "uk-lon-01"
    package = "rock-3"

    [[vms]]
    hostname = "web-{index:02d}"           # count expands {index} = start .. start+count-1
    count = 3

:func:`load_spec` reads a file (the format from its extension), :func:`parse_spec`
reads text. Both return a :class:`Spec` of :class:`~orchestrator.vm_request.VmRequest`
or raise :class:`~orchestrator.errors.SpecError` listing every problem at once,
each located by entry, hostname, field and line. :func:`limit_vms` selects VMs
by hostname glob (``--limit``).
"""

from __future__ import annotations

import os

from orchestrator.spec import _load, _validate
from orchestrator.spec._expand import MAX_HOSTNAME_LENGTH, hostname_problem
from orchestrator.spec._limit import limit_vms
from orchestrator.spec._load import EXTENSIONS, format_for_path
from orchestrator.spec._model import MAX_COUNT, Spec, SpecDefaults, SpecFormat
from orchestrator.spec._validate import MAX_ISSUES, MAX_TOTAL_VMS

__all__ = [
    "EXTENSIONS",
    "MAX_COUNT",
    "MAX_HOSTNAME_LENGTH",
    "MAX_ISSUES",
    "MAX_TOTAL_VMS",
    "Spec",
    "SpecDefaults",
    "SpecFormat",
    "format_for_path",
    "hostname_problem",
    "limit_vms",
    "load_spec",
    "parse_spec",
]


def load_spec(path: str | os.PathLike[str], *, defaults: SpecDefaults | None = None) -> Spec:
    """Read, validate and expand the spec file at ``path``.

    The format comes from the extension (``.toml``, ``.yaml``/``.yml``,
    ``.json``). ``defaults`` (from the settings) fill the organization and data
    center an entry and the spec's ``[defaults]`` leave out. Raises
    :class:`~orchestrator.errors.SpecError` for a missing or unreadable file, an
    unknown extension, a syntax error, or any invalid content.

    This reads the file synchronously: from async code, call it in a worker
    thread (``anyio.to_thread.run_sync``).
    """
    fmt = format_for_path(path)
    data = _load.read_file(path)
    return parse_spec(data, source=os.fspath(path), fmt=fmt, defaults=defaults)


def parse_spec(
    text: str | bytes,
    *,
    source: str,
    fmt: SpecFormat,
    defaults: SpecDefaults | None = None,
) -> Spec:
    """Validate and expand spec ``text`` in format ``fmt``; ``source`` names it in issues.

    ``Spec.sha256`` is the hash of the bytes given (of the UTF-8 encoding for text).
    """
    if fmt not in ("toml", "yaml", "json"):
        raise ValueError(f"unknown spec format {fmt!r}: use 'toml', 'yaml' or 'json'")
    text_str, sha256 = _load.decode(source, text)
    parsed = _load.parse_text(source, text_str, fmt)
    return _validate.build_spec(parsed, source=source, sha256=sha256, fmt=fmt, defaults=defaults)
