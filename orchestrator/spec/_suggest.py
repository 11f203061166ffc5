"""``did you mean ...?``: the closest known key to an unknown one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "unknown_key_message"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word``, or None when nothing is close enough."""
    matches = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key: object, choices: Iterable[str]) -> str:
    """``unknown key 'pakage' (did you mean 'package'?)``."""
    shown = f"'{key}'" if isinstance(key, str) and key.isprintable() and len(key) <= 60 else None
    if shown is None:
        text = repr(key)
        shown = text if len(text) <= 60 else text[:57] + "..."
    message = f"unknown key {shown}"
    if isinstance(key, str):
        suggestion = closest(key, choices)
        if suggestion is not None:
            message += f" (did you mean '{suggestion}'?)"
    return message
