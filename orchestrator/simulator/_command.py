"""How to run the simulator as its own process: the command line and its first line.

``orchestrator simulate`` prints :func:`listening_line` once it serves; the
benchmark harness and the process-level tests start it with
:func:`simulate_argv` and read the URL back with :func:`url_from_line`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["LISTENING_PREFIX", "listening_line", "simulate_argv", "url_from_line"]

LISTENING_PREFIX = "listening on "


def listening_line(url: str) -> str:
    """The line ``orchestrator simulate`` prints first: ``listening on URL``."""
    return f"{LISTENING_PREFIX}{url}"


def url_from_line(line: str) -> str | None:
    """The API URL of a ``listening on`` line, or ``None`` for any other line."""
    if not line.startswith(LISTENING_PREFIX):
        return None
    return line.removeprefix(LISTENING_PREFIX).strip()


def simulate_argv(
    *, time_scale: float, seed: int, options: Mapping[str, object] | None = None
) -> list[str]:
    """``python -m orchestrator simulate`` on a free loopback port, plus ``options``.

    ``options`` maps an option name without its dashes (``fault-5xx``) to its
    value; ``True`` stands for a flag.
    """
    argv = [
        sys.executable,
        "-m",
        "orchestrator",
        "simulate",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--time-scale",
        f"{time_scale:g}",
        "--seed",
        str(seed),
    ]
    for name, value in (options or {}).items():
        if value is True:
            argv.append(f"--{name}")
        else:
            text = f"{value:g}" if isinstance(value, float) else str(value)
            argv += [f"--{name}", text]
    return argv
