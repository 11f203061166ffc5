"""The one check of the API's base URL, used by the settings and by the client.

``https://`` only, or plain ``http://`` to a loopback host (``localhost``,
``localhost.``, 127.0.0.0/8, ``::1``): the token must not travel in clear
text. No credentials, query or fragment (a query might carry a secret, and is
never echoed), no spaces or control characters.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

__all__ = ["api_url_problem", "is_loopback", "normalize_api_url"]

#: Longest URL accepted.
_MAX_URL = 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (with or without its final dot) and loopback addresses."""
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as the API's base URL (None: nothing), never echoing it."""
    url = url.strip()
    if len(url) > _MAX_URL or any(not char.isprintable() or char.isspace() for char in url):
        return "must be a URL without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        return "has an invalid port"
    if parts.scheme not in ("http", "https"):
        return "must be an https:// URL (or http:// to a loopback address)"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password (the token goes in KATAPULT_API_KEY)"
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (
            "plain http:// is only allowed to a loopback address (127.0.0.0/8, ::1, "
            "localhost): the token must travel over TLS, so use https:// (TLS and its "
            "certificate checks cannot be turned off)"
        )
    return None


def normalize_api_url(url: str) -> str:
    """``url`` (already checked) stripped, with a trailing slash."""
    parts = urlsplit(url.strip())
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
