"""Reading a spec file: bytes, UTF-8 text, then TOML, YAML or JSON with line numbers.

Every failure becomes a :class:`~orchestrator.errors.SpecError` with one clear
issue (the parser's line where it has one), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import yaml

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec._lines import Locator, NoLines, TomlLines, YamlLines
from orchestrator.spec._model import SpecFormat

__all__ = [
    "EXTENSIONS",
    "MAX_FILE_BYTES",
    "Parsed",
    "decode",
    "format_for_path",
    "parse_text",
    "read_file",
]

#: File extension -> format.
EXTENSIONS: dict[str, SpecFormat] = {
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
}

#: Largest spec file read (a 10,000-entry spec is about 2 MB).
MAX_FILE_BYTES = 64 * 1024 * 1024

_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOML_POSITION_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed document, where its parts are, and problems the parser saw in passing."""

    data: Any
    locator: Locator
    #: duplicate keys (YAML and JSON parsers otherwise keep the last silently)
    issues: tuple[SpecIssue, ...] = ()


def format_for_path(path: str | os.PathLike[str]) -> SpecFormat:
    """The format a file's extension names; :class:`SpecError` for any other extension."""
    shown = os.fspath(path)
    suffix = PurePath(shown).suffix.lower()
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        what = f"extension '{suffix}'" if suffix else "no extension"
        raise SpecError(
            [
                SpecIssue(
                    shown,
                    f"unsupported file {what}: spec files are .toml, .yaml, .yml or .json",
                )
            ]
        )
    return fmt


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes; :class:`SpecError` when it is missing, unreadable or too large."""
    shown = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            # a FIFO or a device would block or never end: never open it
            raise SpecError(
                [SpecIssue(shown, "cannot read the spec file: not a regular file")],
                unreadable=True,
            )
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        issue = SpecIssue(shown, f"cannot read the spec file: {reason}")
        raise SpecError([issue], unreadable=True) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            [SpecIssue(shown, f"the spec file is larger than {MAX_FILE_BYTES // 2**20} MiB")]
        )
    return data


def decode(source: str, data: str | bytes) -> tuple[str, str]:
    """``(text, sha256)`` of the input; :class:`SpecError` if bytes are not UTF-8."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    digest = hashlib.sha256(raw).hexdigest()
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise SpecError(
                [
                    SpecIssue(
                        source,
                        f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                        f"at offset {exc.start})",
                        line=line,
                    )
                ]
            ) from None
    return text.removeprefix("\ufeff"), digest


def _syntax_error(source: str, fmt: SpecFormat, message: str, line: int | None) -> SpecError:
    return SpecError([SpecIssue(source, f"not valid {fmt.upper()}: {message}", line=line)])


def parse_text(source: str, text: str, fmt: SpecFormat) -> Parsed:
    """Parse ``text`` as ``fmt``; :class:`SpecError` with the parser's position on failure."""
    try:
        if fmt == "toml":
            return _parse_toml(source, text)
        if fmt == "yaml":
            return _parse_yaml(source, text)
        return _parse_json(source, text)
    except RecursionError:
        raise _syntax_error(source, fmt, "nested too deeply", None) from None


def _parse_toml(source: str, text: str) -> Parsed:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION_RE.search(message)
        line = int(position.group(1)) if position else None
        if position:
            message = message[: position.start()].rstrip() + f" (column {position.group(2)})"
        raise _syntax_error(source, "toml", message, line) from None
    return Parsed(data, TomlLines(text))


def _parse_yaml(source: str, text: str) -> Parsed:
    try:
        loader = _YamlLoader(text)
    except (ValueError, yaml.YAMLError) as exc:
        # text that cannot even be fed to the parser (lone surrogates)
        raise _syntax_error(source, "yaml", f"unreadable text: {exc}", None) from None
    duplicates: list[SpecIssue] = []
    try:
        node = _compose(loader, source, duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid document"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        if mark is not None:
            problem += f" (column {mark.column + 1})"
        raise _syntax_error(source, "yaml", problem, line) from None
    except yaml.YAMLError as exc:
        raise _syntax_error(source, "yaml", str(exc).splitlines()[0], None) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # the constructor turning a scalar into a value (e.g. a bad timestamp)
        raise _syntax_error(source, "yaml", f"a value cannot be read: {exc}", None) from None
    finally:
        loader.dispose()
    return Parsed(data, YamlLines(node), tuple(duplicates))


#: Deepest YAML nesting accepted (a spec needs 4 levels).
MAX_YAML_DEPTH = 64
_NO_KEY: Any = object()


def _compose(loader: Any, source: str, duplicates: list[SpecIssue]) -> yaml.Node | None:
    """Compose one document's node tree from parser events, without recursion.

    PyYAML's composer recurses once per nesting level, and libyaml's (C)
    version then overflows the C stack on a few thousand nested brackets,
    killing the process. This loop keeps its own stack, caps the depth, and
    reports duplicate mapping keys on the way.
    """
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # document start
    anchors: dict[str, yaml.Node] = {}
    # open collections: [node, pending mapping key, keys seen]
    stack: list[list[Any]] = []
    root: yaml.Node | None = None
    while True:
        event = loader.get_event()
        if isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            frame[0].end_mark = event.end_mark
            if not stack:
                break
            continue
        node, opens = _node_for(loader, event, anchors)
        if stack:
            _attach(stack[-1], node, source, duplicates)
        else:
            root = node
        if opens:
            if len(stack) >= MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested too deeply (more than {MAX_YAML_DEPTH} levels)",
                    event.start_mark,
                )
            stack.append([node, _NO_KEY, set()])
        elif not stack:
            break
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        event = loader.get_event()
        raise yaml.composer.ComposerError(
            "expected a single document in the stream",
            root.start_mark if root is not None else None,
            "but found another document",
            event.start_mark,
        )
    return root


def _node_for(loader: Any, event: Any, anchors: dict[str, yaml.Node]) -> tuple[yaml.Node, bool]:
    """The node an event starts (or an alias names), and whether it opens a collection."""
    start: Any = event.start_mark
    if isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", start
            )
        return anchors[event.anchor], False
    end: Any = event.end_mark
    if event.anchor is not None and event.anchor in anchors:
        first: Any = anchors[event.anchor].start_mark
        raise yaml.composer.ComposerError(
            None,
            None,
            f"found duplicate anchor {event.anchor!r} (first at line {first.line + 1})",
            start,
        )
    tag = event.tag
    node: yaml.Node
    if isinstance(event, yaml.ScalarEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, start, end, style=event.style)
        opens = False
    elif isinstance(event, yaml.SequenceStartEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.SequenceNode, None, event.implicit)
        node = yaml.SequenceNode(tag, [], start, None, flow_style=event.flow_style)
        opens = True
    elif isinstance(event, yaml.MappingStartEvent):
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.MappingNode, None, event.implicit)
        node = yaml.MappingNode(tag, [], start, None, flow_style=event.flow_style)
        opens = True
    else:  # pragma: no cover - the parser only sends these inside a document
        raise yaml.composer.ComposerError(None, None, f"unexpected {type(event).__name__}", start)
    if event.anchor is not None:
        anchors[event.anchor] = node
    return node, opens


def _attach(frame: list[Any], node: yaml.Node, source: str, duplicates: list[SpecIssue]) -> None:
    parent = frame[0]
    if isinstance(parent, yaml.SequenceNode):
        parent.value.append(node)
    elif frame[1] is _NO_KEY:
        frame[1] = node
    else:
        key = frame[1]
        frame[1] = _NO_KEY
        parent.value.append((key, node))
        if isinstance(key, yaml.ScalarNode) and key.tag.endswith(":str"):
            if key.value in frame[2]:
                duplicates.append(
                    SpecIssue(
                        source,
                        f"duplicate key '{key.value}' (the earlier value would be "
                        "silently ignored)",
                        line=key.start_mark.line + 1,
                    )
                )
            frame[2].add(key.value)


def _parse_json(source: str, text: str) -> Parsed:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _syntax_error(source, "json", f"{exc.msg} (column {exc.colno})", exc.lineno) from None
    except ValueError as exc:
        # e.g. an integer with more digits than Python converts
        raise _syntax_error(source, "json", str(exc), None) from None
    issues = tuple(
        SpecIssue(source, f"duplicate key '{key}' (the earlier value would be silently ignored)")
        for key in duplicates
    )
    return Parsed(data, NoLines(), issues)
