"""Durations as people write them: ``90``, ``90s``, ``15m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ``ValueError`` with a readable message."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError("empty duration")
    try:
        value = float(cleaned)
    except ValueError:
        pass
    else:
        if value <= 0:
            raise ValueError(f"duration must be positive, got {text!r}")
        return value
    pos = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(cleaned) or total <= 0:
        raise ValueError(f"not a duration: {text!r} (try 90s, 15m, 1h30m)")
    return total
