"""Hostnames: the RFC 1123 label check and ``count`` expansion of hostname templates.

A template is a hostname with ``{index}`` fields, written with Python's format
syntax (``web-{index:02d}``). Only the ``index`` field exists; format specs are
allowed, conversions (``!r``), attribute access and nested fields are not, and
widths are capped so a template cannot ask for a gigabyte of padding.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

__all__ = [
    "MAX_HOSTNAME_LENGTH",
    "HostnameTemplate",
    "TemplateError",
    "hostname_problem",
    "parse_template",
]

#: The longest hostname (one DNS label) the API accepts.
MAX_HOSTNAME_LENGTH = 63

_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_BAD_CHAR_RE = re.compile(r"[^a-z0-9-]")
_DIGITS_RE = re.compile(r"\d+")


class TemplateError(ValueError):
    """A hostname template that cannot be expanded; the text says why."""


def hostname_problem(hostname: str) -> str | None:
    """Why ``hostname`` (already lower-cased) is not an RFC 1123 label, or None if it is."""
    if not hostname:
        return "is empty"
    if len(hostname) > MAX_HOSTNAME_LENGTH:
        return f"is {len(hostname)} characters long; hostnames are at most {MAX_HOSTNAME_LENGTH}"
    if _LABEL_RE.fullmatch(hostname):
        return None
    bad = _BAD_CHAR_RE.search(hostname)
    if bad is not None:
        char = bad.group()
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        return f"contains {shown}: only a-z, 0-9 and '-' are allowed"
    return "must not start or end with '-'"


@dataclass(frozen=True, slots=True)
class HostnameTemplate:
    """A parsed hostname: literal text with zero or more ``{index}`` fields."""

    text: str
    #: (literal, format spec or None when the piece has no field)
    pieces: tuple[tuple[str, str | None], ...]

    @property
    def has_index(self) -> bool:
        """True when the hostname changes with the index."""
        return any(spec is not None for _, spec in self.pieces)

    def render(self, index: int) -> str:
        """The hostname for ``index`` (not yet lower-cased or checked)."""
        if len(self.pieces) == 1 and self.pieces[0][1] is None:
            return self.pieces[0][0]
        out: list[str] = []
        for literal, spec in self.pieces:
            out.append(literal)
            if spec is not None:
                out.append(format(index, spec))
        return "".join(out)


def parse_template(text: str) -> HostnameTemplate:
    """Parse a hostname (template or plain); raise :class:`TemplateError` with the reason."""
    if "{" not in text and "}" not in text:
        return HostnameTemplate(text, ((text, None),))
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"hostname template is malformed: {exc}") from None
    pieces: list[tuple[str, str | None]] = []
    for literal, field_name, spec, conversion in parsed:
        if field_name is None:
            pieces.append((literal, None))
            continue
        if field_name != "index":
            shown = "{}" if not field_name else f"'{field_name}'"
            raise TemplateError(f"hostname template uses field {shown}; only {{index}} is allowed")
        if conversion is not None:
            raise TemplateError(
                f"hostname template uses the conversion '!{conversion}'; "
                "only a format spec such as {index:02d} is allowed"
            )
        spec = spec or ""
        if "{" in spec or "}" in spec:
            raise TemplateError("hostname template has a nested field in a format spec")
        for digits in _DIGITS_RE.findall(spec):
            if int(digits) > MAX_HOSTNAME_LENGTH:
                raise TemplateError(
                    f"hostname template format spec ':{spec}' asks for {int(digits)} "
                    f"characters; hostnames are at most {MAX_HOSTNAME_LENGTH}"
                )
        try:
            format(1, spec)
        except ValueError as exc:
            raise TemplateError(
                f"hostname template format spec ':{spec}' is invalid: {exc}"
            ) from None
        pieces.append((literal, spec))
    return HostnameTemplate(text, tuple(pieces))
