"""Making untrusted text (API error descriptions, details) safe to print or embed."""

from __future__ import annotations

import re

__all__ = ["for_terminal", "for_xml"]

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/F).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_xml(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by a visible escape."""
    return _XML_ILLEGAL.sub(lambda m: _escape(m.group()), text)


def for_terminal(text: str, limit: int | None = None) -> str:
    """One line of printable text: whitespace runs collapsed, control characters
    (terminal escape sequences included) made visible, cut at ``limit`` characters."""
    line = " ".join(text.split())
    line = "".join(c if c.isprintable() else _escape(c) for c in line)
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 1, 0)] + "…"
    return line
