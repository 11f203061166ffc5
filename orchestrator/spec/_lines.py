"""Line numbers for error messages: where a key or list item sits in the source text.

A *path* names a place in the parsed document: ``("vms", 3, "package")`` is the
``package`` key of the fourth ``[[vms]]`` entry; ``("defaults",)`` the defaults
table. Every locator answers the line (1-based) of the deepest part of the path
it can find, or None.

* TOML: ``tomllib`` keeps no positions, so :class:`TomlLines` scans the text
  once for table headers and ``key =`` lines. It is a light scan, not a parser:
  keys inside multi-line strings may confuse it, and then a line is just less
  precise.
* YAML: :class:`YamlLines` walks the node tree that ``yaml`` composes (every
  node has a ``start_mark``).
* JSON: no positions (:class:`NoLines`); syntax errors still carry theirs.
"""

from __future__ import annotations

import re
from typing import Protocol

import yaml

__all__ = ["Locator", "NoLines", "Path", "TomlLines", "YamlLines"]

Path = tuple[str | int, ...]


class Locator(Protocol):
    """Answers the source line of a path in the document."""

    def line(self, path: Path) -> int | None:
        """The 1-based line of the deepest known part of ``path``, or None."""
        ...


class NoLines:
    """A locator that knows no lines (JSON)."""

    def line(self, path: Path) -> int | None:
        """Always None."""
        return None


_HEADER_RE = re.compile(r"\s*(\[\[?)\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(
    r"""\s*((?:[A-Za-z0-9_-]+|"[^"\\]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"\\]*"|'[^']*'))*)\s*="""
)
_PART_RE = re.compile(r""""([^"\\]*)"|'([^']*)'|([A-Za-z0-9_-]+)""")


def _parts(dotted: str) -> list[str]:
    return [a or b or c for a, b, c in _PART_RE.findall(dotted)]


class TomlLines:
    """Line numbers of a TOML document from one scan of its text (done on first use)."""

    __slots__ = ("_lines", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: dict[Path, int] | None = None

    def _scan(self, text: str) -> dict[Path, int]:
        lines: dict[Path, int] = {}
        counters: dict[tuple[str, ...], int] = {}
        context: Path = ()
        in_multiline: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if raw.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER_RE.match(raw)
            if header is not None and raw.lstrip().startswith("["):
                names = _parts(header.group(2))
                context = self._context(names, array=header.group(1) == "[[", counters=counters)
                for end in range(1, len(context) + 1):
                    lines.setdefault(context[:end], number)
                continue
            key = _KEY_RE.match(raw)
            if key is None:
                continue
            path = context
            for part in _parts(key.group(1)):
                path = (*path, part)
                lines.setdefault(path, number)
            rest = raw[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote
                    break
        return lines

    def _context(
        self, names: list[str], *, array: bool, counters: dict[tuple[str, ...], int]
    ) -> Path:
        # Map a header's dotted names onto a path, numbering arrays of tables:
        # the n-th [[vms]] is ("vms", n); [vms.annotations] after it is
        # ("vms", n, "annotations").
        path: list[str | int] = []
        for depth, name in enumerate(names):
            prefix = tuple(names[: depth + 1])
            path.append(name)
            is_last = depth == len(names) - 1
            if is_last and array:
                counters[prefix] = counters.get(prefix, -1) + 1
                path.append(counters[prefix])
            elif prefix in counters:
                path.append(counters[prefix])
        return tuple(path)

    def line(self, path: Path) -> int | None:
        """The line of the deepest part of ``path`` seen in the text."""
        if self._lines is None:
            self._lines = self._scan(self._text)
        for end in range(len(path), 0, -1):
            found = self._lines.get(path[:end])
            if found is not None:
                return found
        return None


class YamlLines:
    """Line numbers of a YAML document from its composed node tree."""

    __slots__ = ("_root",)

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def line(self, path: Path) -> int | None:
        """The line of the deepest part of ``path`` found in the tree."""
        node = self._root
        found: int | None = None
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                        found = key_node.start_mark.line + 1
                        node = value_node
                        break
                else:
                    return found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return found
                node = node.value[part]
                found = node.start_mark.line + 1
            else:
                return found
        return found
