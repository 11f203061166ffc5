"""Logging: the library logs through the standard ``logging`` machinery; the CLI renders it.

Library code gets its loggers from :func:`get_logger`: structlog bound loggers
over the standard logger ``orchestrator`` (structlog's stdlib integration),
whatever structlog's global configuration is. As httpx and hcloud do, the
library is silent unless the application configures logging: the
``orchestrator`` logger has a ``NullHandler``, and a record below the logger's
effective level costs a level check. A record's message reads
``orchestrator.vm.failed hostname=web-01 category=quota run_id=...`` under any
formatter; its structured fields travel with it for structlog's
``ProcessorFormatter``.

:func:`configure_logging` is the CLI's set-up: one handler on ``orchestrator``
that writes console lines for people or JSON lines for machines to stderr,
every value passed through a :class:`Redactor`; stamina's own retry records are
turned off (the engine logs its retries with the run id).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO, cast

import stamina.instrumentation
import structlog

from orchestrator.errors import visible

__all__ = ["LOGGER_NAME", "REDACTED", "Redactor", "configure_logging", "get_logger"]

REDACTED = "***"

#: The standard logger every record of the library goes to.
LOGGER_NAME = "orchestrator"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR

#: Secrets shorter than this are redacted only where they stand alone (a
#: one-character token must not turn every "a" of a log line into "***").
_SHORT_SECRET = 8
#: A secret that reads as a word (letters, maybe joined by - or _) is redacted only
#: where it stands alone, joiners counting as part of the words around it.
_WORD = re.compile(r"[A-Za-z]+(?:[-_][A-Za-z]+)*")
_JOINERS = r"._\-"

logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())


class _Event(dict[str, Any]):
    """A structlog event dict that reads as one line where a formatter wants a string."""

    def __str__(self) -> str:
        fields = " ".join(
            f"{key}={_show(value)}"
            for key, value in self.items()
            if key != "event" and not key.startswith("_") and key != "exc_info"
        )
        return f"{self.get('event', '')} {fields}".rstrip()


def _show(value: Any) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() or c in "='\"" for c in text) else text


def _drop_none(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # absent facts make lines longer, not clearer
    return {key: value for key, value in event_dict.items() if value is not None}


def _to_record(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Hand the event to the standard logger: a readable message that is also the event dict."""
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    if exc_info:
        event_dict["exc_info"] = exc_info
    extra = {"_logger": logger, "_name": method}  # what structlog's ProcessorFormatter reads
    return (_Event(event_dict),), {"extra": extra, "exc_info": exc_info or None}


_LIBRARY_PROCESSORS: list[Any] = [structlog.stdlib.filter_by_level, _drop_none, _to_record]


def get_logger(name: str = LOGGER_NAME, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the standard logger ``name`` (under ``orchestrator``)."""
    return cast(
        "structlog.stdlib.BoundLogger",
        structlog.wrap_logger(
            logging.getLogger(name),
            processors=_LIBRARY_PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
            **initial_values,
        ),
    )


class Redactor:
    """A structlog processor that replaces every known secret in every value.

    Defence in depth: nothing in the code logs the token on purpose, but a
    library's exception text or a repr could carry it; this processor makes
    sure it never reaches a log line. A secret shorter than 8 characters is
    replaced only where it stands alone, not inside words; so is one that is a
    word itself (a token ``succeeded`` leaves ``orchestrator.vm.succeeded`` be).
    """

    __slots__ = ("_anywhere", "_patterns", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        #: random-looking secrets of 8 characters or more: replaced wherever they appear
        self._anywhere = tuple(
            s for s in self._secrets if len(s) >= _SHORT_SECRET and not _WORD.fullmatch(s)
        )
        # a short secret, or one that is a word ("production", "deploy"), only where it
        # stands alone: never inside a longer word, a dotted event name or a hostname
        self._patterns = tuple(
            re.compile(rf"(?<![A-Za-z0-9{_JOINERS}]){re.escape(s)}(?![A-Za-z0-9{_JOINERS}])")
            if _WORD.fullmatch(s)
            else re.compile(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])")
            for s in self._secrets
            if s not in self._anywhere
        )

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._anywhere:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            for pattern in self._patterns:
                value = pattern.sub(REDACTED, value)
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
            if key.startswith("_"):
                continue  # structlog's own bookkeeping (the record)
            if event_dict[key] is None:
                del event_dict[key]
            elif key.lower() in ("authorization", "token", "api_token", "api_key"):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


def _printable(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every text value on one line, shown: a line break or a terminal escape in an API's
    error text or in the user's input cannot forge log lines or drive the terminal."""
    for key, value in event_dict.items():
        if key != "exception" and isinstance(value, str) and not value.isprintable():
            event_dict[key] = visible(value)
    return event_dict


class _Stderr:
    """``sys.stderr`` as it is at each write, not as it was when logging was configured.

    A live progress display swaps ``sys.stderr`` for a proxy that prints above
    the display; writing through the current ``sys.stderr`` lets log lines take
    that route instead of garbling the live line.
    """

    __slots__ = ()

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The CLI's handler (told apart from an application's when configuring again)."""


def configure_logging(
    *,
    fmt: Literal["console", "json"] = "console",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Write the ``orchestrator`` records to ``stream`` (stderr) in ``fmt``, at ``level`` and up.

    Every value of every record passes through a :class:`Redactor` of
    ``secrets``. The records stop there (they do not propagate to the root
    logger), so an application's own handlers do not print them twice.
    """
    out = stream if stream is not None else cast("TextIO", _Stderr())
    renderer: Any
    shown: list[Any] = []
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        shown.append(_printable)  # JSON escapes on its own
    stamp: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *stamp,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            *shown,
            renderer,
        ],
    )
    handler = _Handler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(LOGGER_NAME)
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(_LEVELS.get(level, logging.INFO))
    logger.propagate = False
    # GET retries are logged by the engine, with the run id; stamina's own records
    # (printed through structlog's global configuration) would only repeat them
    stamina.instrumentation.set_on_retry_hooks([])
