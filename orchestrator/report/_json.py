"""``report.json``: writing it atomically, reading it back, and its JSON Schema."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import ReportError
from orchestrator.report._atomic import atomic_write
from orchestrator.report._model import Report

__all__ = [
    "SCHEMA_VERSION",
    "load_report",
    "report_json_chunks",
    "report_json_schema",
    "report_to_json",
    "write_report",
]

#: The ``schema_version`` this orchestrator writes.
SCHEMA_VERSION = 2

#: The versions it reads (2 only adds optional fields to 1).
READABLE_VERSIONS = (1, 2)

_MAX_LISTED_ERRORS = 10


#: the line of an empty ``vms`` list in the report's JSON, where the rows go
_NO_VMS = '\n  "vms": [],\n'


def report_json_chunks(report: Report) -> Iterator[str]:
    """The text of ``report.json`` in pieces: one per VM, between a head and a tail.

    Joined, exactly :func:`report_to_json`; written piece by piece, a report of
    100,000 VMs never exists whole in memory as text (nor as bytes).
    """
    # fallback: a value pydantic cannot serialize (an odd object in an error detail) as text
    if not report.vms:
        yield report.model_dump_json(indent=2, fallback=str) + "\n"
        return
    frame = report.model_copy(update={"vms": []}).model_dump_json(indent=2, fallback=str)
    head, tail = frame.split(_NO_VMS, 1)
    yield head + '\n  "vms": [\n'
    last = len(report.vms) - 1
    for i, vm in enumerate(report.vms):
        # a row nests two levels deep; JSON strings hold no raw newline to re-indent
        row = vm.model_dump_json(indent=2, fallback=str).replace("\n", "\n    ")
        yield "    " + row + (",\n" if i < last else "\n")
    yield "  ],\n" + tail + "\n"


def report_to_json(report: Report) -> str:
    """``report`` as the text of ``report.json``: indent 2, datetimes ISO-8601 UTC."""
    return "".join(report_json_chunks(report))


def write_report(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``report`` to ``path`` atomically, readable by the owner only (0o600).

    Synchronous and blocking: from async code call it through
    ``anyio.to_thread.run_sync``. Safe to call while handling Ctrl-C: the old
    file stays whole until the new one is complete. Written a VM at a time.
    """
    atomic_write(path, (chunk.encode("utf-8") for chunk in report_json_chunks(report)))


def load_report(path: str | os.PathLike[str]) -> Report:
    """Read a ``report.json`` written by :func:`write_report`.

    Raises :class:`~orchestrator.errors.ReportError` naming the file and the
    problem: missing or unreadable file, bad JSON, an unsupported
    ``schema_version``, or invalid content (naming each bad field).
    """
    where = f"report {os.fspath(path)}"
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ReportError(f"{where}: no such file") from exc
    except IsADirectoryError as exc:
        raise ReportError(f"{where}: is a directory, not a report file") from exc
    except OSError as exc:
        raise ReportError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ReportError(f"{where}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ReportError(f"{where}: not an orchestrator report (expected a JSON object)")
    if "schema_version" not in data:
        raise ReportError(f"{where}: not an orchestrator report (no schema_version)")
    version = data["schema_version"]
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(map(str, READABLE_VERSIONS))
        raise ReportError(
            f"{where}: schema_version {version!r} is not supported "
            f"(this orchestrator reads {readable})"
        )
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:
        raise ReportError(f"{where}: invalid content:\n{_describe(exc, data)}") from exc
    keys = [vm.key for vm in report.vms]
    if len(set(keys)) != len(keys):
        dups = sorted({key for key in keys if keys.count(key) > 1})
        raise ReportError(f"{where}: invalid content: vms: duplicate keys {', '.join(dups)}")
    return report


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """One line per pydantic error: ``vms[3] (web-04).outcome: Input should be ...``."""
    lines = []
    errors = exc.errors(include_url=False, include_input=False)
    for error in errors[:_MAX_LISTED_ERRORS]:
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {_location(error['loc'], data)}: {message}")
    if len(errors) > _MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - _MAX_LISTED_ERRORS} more")
    return "\n".join(lines)


def _location(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """``("vms", 3, "outcome")`` -> ``vms[3] (web-04).outcome``."""
    text = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            hostname = node.get("hostname") if isinstance(node, dict) else None
            if isinstance(hostname, str) and hostname:
                text += f" ({hostname})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"


@functools.cache
def _schema_text() -> str:
    return resources.files("orchestrator.report").joinpath("report.schema.json").read_text("utf-8")


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``report.json``, as shipped in the package.

    Each call returns a fresh copy, free to mutate.
    """
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema
