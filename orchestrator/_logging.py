"""structlog set-up: console lines for people, JSON lines for machines, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog

__all__ = ["REDACTED", "Redactor", "configure_logging"]

REDACTED = "***"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


class Redactor:
    """A structlog processor that replaces every known secret in every value.

    Defence in depth: nothing in the code logs the token on purpose, but a
    library's exception text or a repr could carry it; this processor makes
    sure it never reaches a log line.
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        if self._secrets and not isinstance(value, int | float | bool | type(None)):
            return self._clean(str(value))
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if event_dict[key] is None:
                del event_dict[key]  # absent facts make lines longer, not clearer
            elif key.lower() in ("authorization", "token", "api_token", "api_key"):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


class _Stderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured.

    A live progress display swaps ``sys.stderr`` for a proxy that prints above
    the display; writing through the current ``sys.stderr`` lets log lines take
    that route instead of garbling the live line.
    """

    __slots__ = ("__weakref__",)  # structlog keeps a lock per file in a WeakKeyDictionary

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    *,
    fmt: Literal["console", "json"] = "console",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Send structlog output to ``stream`` (stderr) in ``fmt``, at ``level`` and above.

    Every value of every event passes through a :class:`Redactor` of ``secrets``.
    """
    # _Stderr has the three methods PrintLogger uses of a TextIO
    out = stream if stream is not None else cast("TextIO", _Stderr())
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
