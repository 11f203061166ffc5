"""Where a fleet's state lives: an SQLite file (a path), or a PostgreSQL database (a URL).

``--state``/``ORCHESTRATOR_STATE``/``[output] state``, ``--journal`` and the
library's ``journal=``/``state=`` all take either. A ``postgresql://`` (or
``postgres://``) URL keeps every fleet's journal and lock in that database, each
fleet under its name; anything else is the path of one fleet's SQLite journal.

The URL may carry a password. It is kept only in :attr:`PostgresState.url`, which
nothing prints: ``str()``, ``repr()`` and every message use :attr:`redacted`.
A URL without a password lets libpq find one as ``psql`` does (``PGPASSWORD``,
``~/.pgpass``, ``PGPASSFILE``, a service file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "JournalLike",
    "PostgresState",
    "StateLocation",
    "is_postgres_url",
    "parse_state",
    "same_state",
]

_SCHEMES: Final = ("postgresql://", "postgres://")
#: query parameters of a libpq URL that hold a secret
_SECRET_PARAMS: Final = frozenset({"password", "sslpassword"})


def is_postgres_url(value: object) -> bool:
    """True when ``value`` is a PostgreSQL URL rather than a path."""
    return isinstance(value, str) and value.lower().startswith(_SCHEMES)


class PostgresState:
    """A PostgreSQL database that keeps fleets' journals and locks (see the module)."""

    __slots__ = ("redacted", "url")

    def __init__(self, url: str) -> None:
        if not is_postgres_url(url):
            raise ValueError("a PostgreSQL state is a postgresql:// URL")
        #: the URL as given, password included: give it to libpq, never print it
        self.url = url
        #: the URL without any password: what messages, logs and reports show
        self.redacted = redact(url)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"PostgresState({self.redacted!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresState) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


#: a fleet's state: the path of its SQLite journal, or a PostgreSQL database
StateLocation = Path | PostgresState
#: what the library and the command line accept for one: a path, a URL, or a state
JournalLike = str | os.PathLike[str] | PostgresState


def redact(url: str) -> str:
    """``url`` without its password (in the user part or the query), anything else kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://…"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_state(value: str | os.PathLike[str] | PostgresState) -> StateLocation:
    """A state location from what the user gave: a URL, or a path."""
    if isinstance(value, PostgresState):
        return value
    if is_postgres_url(value):
        assert isinstance(value, str)
        return PostgresState(value)
    return Path(value)


def same_state(one: JournalLike, other: JournalLike) -> bool:
    """True when ``one`` and ``other`` name the same state."""
    return parse_state(one) == parse_state(other)
