"""Every error the orchestrator raises on purpose, in one tree.

::

    OrchestratorError                  root: catch this to catch everything we raise
    ├── ApiError                       the API answered with an error status
    │   ├── AuthenticationError        400 missing_api_token, 403 invalid_api_token
    │   ├── PermissionDenied           403 scope_not_granted, permission_denied,
    │   │                                  organization_suspended / _not_activated, ...
    │   ├── NotFound                   404 *_not_found, route_not_found
    │   ├── InvalidRequest             400 invalid_argument, invalid_json_body, ...; 406
    │   ├── ValidationFailed           422 validation_error, location_required
    │   ├── RateLimited                429 rate_limit_reached (carries retry_after)
    │   ├── ServerError                5xx, JSON or not (502 HTML from a proxy)
    │   └── UnexpectedResponse         a 2xx whose body is not what the API sends
    ├── TransportError                 no usable HTTP answer at all
    │   ├── ApiConnectError            the request surely never reached the server
    │   │   └── ApiUnreachable             it never can: host unknown, TLS refused
    │   ├── ApiTimeout                 no answer in time (maybe sent, maybe not)
    │   └── ConnectionLost             reset or truncated after sending: maybe acted
    ├── ActionError                    a long-running build did not end well
    │   ├── ActionFailed               task/build ended ``failed``
    │   └── ActionTimedOut             no end within build_timeout_seconds
    ├── SpecError                      the spec file is wrong (carries every issue)
    ├── LimitError                     a --limit pattern selects no VM of the spec
    ├── ConfigError                    the settings are wrong
    ├── JournalError                   the journal is locked, corrupt or foreign
    └── ReportError                    a report file to read is missing or not ours

Programming errors stay builtin (``RuntimeError``, ``ValueError``, ``TypeError``).

Every error's text is safe to print: it never contains the API token.
The single table :data:`CATEGORY_BY_CODE` (with :func:`category_for`) maps
API error codes and transport failures to report categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CATEGORY_BY_CODE",
    "ORG_STOPPING_CODES",
    "RUN_STOPPING_CODES",
    "ActionError",
    "ActionFailed",
    "ActionTimedOut",
    "ApiConnectError",
    "ApiError",
    "ApiTimeout",
    "ApiUnreachable",
    "AuthenticationError",
    "Category",
    "ConfigError",
    "ConnectionLost",
    "InvalidRequest",
    "JournalError",
    "LimitError",
    "NoJournal",
    "NotFound",
    "OrchestratorError",
    "PermissionDenied",
    "RateLimited",
    "ReportError",
    "ServerError",
    "SpecError",
    "SpecIssue",
    "TransportError",
    "UnexpectedResponse",
    "ValidationFailed",
    "api_error_for",
    "category_for",
    "visible",
]

Category = Literal[
    "invalid_spec",
    "auth",
    "permission",
    "quota",
    "not_found",
    "validation",
    "conflict",
    "rate_limited",
    "server_error",
    "network",
    "timeout",
    "build_failed",
    "cancelled",
]


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""


# --------------------------------------------------------------------- API errors


class ApiError(OrchestratorError):
    """The API answered with an error status.

    ``code``/``description``/``detail`` come from the ``{"error": {...}}``
    envelope when there was one; ``code`` is ``None`` for a body that was not
    the API's (an HTML page from a proxy, a truncated body).
    """

    def __init__(
        self,
        *,
        http_status: int,
        code: str | None,
        description: str | None = None,
        detail: Any = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.description = description
        self.detail = detail
        self.request_id = request_id
        self.method = method
        self.path = path
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        code = self.code or "no_api_error_code"
        text = f"{where}HTTP {self.http_status} {code}"
        if self.description:
            text += f" - {self.description}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    @property
    def category(self) -> Category:
        """The report category of this error (see :func:`category_for`)."""
        return category_for(self.code, self.http_status)

    @property
    def outcome_uncertain(self) -> bool:
        """True when a POST that got this answer may still have taken effect."""
        return self.http_status >= 500 or self.code is None


class AuthenticationError(ApiError):
    """The token is missing or not valid (the API never answers 401)."""


class PermissionDenied(ApiError):
    """The token may not do this, or the organization may not act now."""


class NotFound(ApiError):
    """An object named by a lookup (or the route) does not exist."""


class InvalidRequest(ApiError):
    """The API refused the request's form (bad argument, bad JSON, bad XML)."""


class ValidationFailed(ApiError):
    """The API refused the request's content (422)."""


class RateLimited(ApiError):
    """429: the token spent its window's budget; ``retry_after`` if the server said."""


class ServerError(ApiError):
    """A 5xx answer, JSON or not: the server may or may not have acted."""


class UnexpectedResponse(ApiError):
    """A success status whose body is not what the API sends."""


# --------------------------------------------------------------- transport errors


class TransportError(OrchestratorError):
    """No usable HTTP answer arrived.

    ``maybe_sent`` tells the engine whether the server may have received (and
    acted on) the request: False only when it surely did not.
    """

    maybe_sent: bool = True

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None):
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method and path else ""
        super().__init__(f"{where}{message}")

    @property
    def category(self) -> Category:
        """``timeout`` for timeouts, ``network`` for the rest."""
        return "network"


class ApiConnectError(TransportError):
    """The connection could not be made: the request surely never arrived."""

    maybe_sent = False


class ApiUnreachable(ApiConnectError):
    """The API URL cannot work: its host name does not resolve, or TLS fails (a
    certificate that does not verify, a port that does not speak TLS).

    Retrying would not help, so nothing retries it: a run stops within seconds.
    """


class ApiTimeout(TransportError):
    """No answer in time. ``maybe_sent`` is False only for a connect timeout."""

    def __init__(
        self,
        message: str,
        *,
        maybe_sent: bool = True,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.maybe_sent = maybe_sent

    @property
    def category(self) -> Category:
        return "timeout"


class ConnectionLost(TransportError):
    """The connection broke after the request was sent: it may have taken effect."""


# ------------------------------------------------------------------ action errors


class ActionError(OrchestratorError):
    """A build (task) did not end well."""


class ActionFailed(ActionError):
    """The task or build ended ``failed``."""


class ActionTimedOut(ActionError):
    """The build did not finish within its timeout."""


# -------------------------------------------------------------------- user input


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem found in a spec file, located as precisely as the format allows."""

    file: str
    message: str
    entry: int | None = None
    hostname: str | None = None
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = visible(self.file)
        if self.line is not None:
            where += f":{self.line}"
        parts = [where]
        if self.entry is not None:
            parts.append(f"vms[{self.entry}]")
        if self.hostname:
            parts.append(f"({visible(self.hostname)})")
        if self.field:
            parts.append(visible(self.field))
        return " ".join(parts) + f": {visible(self.message)}"


def visible(text: str) -> str:
    """``text`` on one line: a character that is not printable (a line break, a terminal
    escape) is shown as an escape, so the user's input cannot forge lines or drive a
    terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class SpecError(OrchestratorError):
    """The spec file is wrong; ``issues`` lists every problem found at once.

    ``unreadable``: the file could not be read (missing, not a regular file), and
    the message is just that.
    """

    def __init__(self, issues: Sequence[SpecIssue], *, unreadable: bool = False) -> None:
        self.issues = tuple(issues)
        if unreadable:
            # the file could not be read at all: nothing was judged, so nothing is "invalid"
            super().__init__("\n".join(str(issue) for issue in self.issues))
            return
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        noun = "problem" if len(self.issues) == 1 else "problems"
        super().__init__(f"spec is invalid ({len(self.issues)} {noun}):\n{lines}")


class LimitError(OrchestratorError):
    """A ``--limit`` pattern matches no VM of the spec (a typo must not select nothing)."""


class ConfigError(OrchestratorError):
    """A setting is wrong; the message names the setting and where it came from."""


class JournalError(OrchestratorError):
    """The journal is locked by another run, corrupt, or belongs to something else."""


class NoJournal(JournalError):
    """There is no journal where one was looked for (no file; no such fleet in the database)."""


class ReportError(OrchestratorError):
    """A report to read (for ``report diff`` or ``--retry-failed``) is missing or invalid."""


# ------------------------------------------------------------- the category table

#: API error code -> report category. The one place this mapping lives.
CATEGORY_BY_CODE: Mapping[str, Category] = {
    # authentication: the token itself (the authenticator's errors, on every endpoint)
    "missing_api_token": "auth",
    "invalid_api_token": "auth",
    "unauthorized_network_for_api_token": "auth",
    "invalid_capabilities_token": "auth",
    # permission: the token or organization may not do this
    "scope_not_granted": "permission",
    "permission_denied": "permission",
    "organization_suspended": "permission",
    "organization_not_activated": "permission",
    "flexible_resources_unavailable_to_organization": "permission",
    "object_in_trash": "conflict",
    "task_queueing_error": "conflict",
    # quota
    "resource_creation_restricted": "quota",
    # lookups that found nothing
    "organization_not_found": "not_found",
    "zone_not_found": "not_found",
    "data_center_not_found": "not_found",
    "package_not_found": "not_found",
    "disk_template_not_found": "not_found",
    "network_not_found": "not_found",
    "operating_system_not_found": "not_found",
    "virtual_machine_not_found": "not_found",
    "virtual_machine_group_not_found": "not_found",
    "gpu_type_not_found": "not_found",
    "task_not_found": "not_found",
    "build_not_found": "not_found",
    "trash_object_not_found": "not_found",
    "route_not_found": "not_found",
    # the API's codes for SSH key and tag lookups; also what the orchestrator
    # reports for a reference it could not resolve before sending
    "ssh_key_not_found": "not_found",
    "tag_not_found": "not_found",
    # the request's content
    "validation_error": "validation",
    "location_required": "validation",
    "invalid_argument": "validation",
    "missing_required_argument": "validation",
    "invalid_json_body": "validation",
    "invalid_spec_xml": "invalid_spec",
    # GUESS: in neither of Krystal's schemas; the real refusal of a taken
    # hostname is unconfirmed (see is_hostname_taken in engine/_runner.py)
    "hostname_taken": "conflict",
    # pacing and the server
    "rate_limit_reached": "rate_limited",
    "service_unavailable": "server_error",
    "unhandled_exception": "server_error",
}

#: API codes after which no request of the run can succeed: the token itself
#: failed (the authenticator's errors) or lacks a scope every build needs.
RUN_STOPPING_CODES: frozenset[str] = frozenset(
    {
        "missing_api_token",
        "invalid_api_token",
        "unauthorized_network_for_api_token",
        "invalid_capabilities_token",
        "scope_not_granted",
    }
)

#: API codes after which no build in the same organization can succeed. Each is
#: about the organization or the identity acting in it, never about one VM:
#: the organization lookup's errors (every endpoint), and the build endpoints'
#: ``permission_denied`` (the identity may not build there) and
#: ``resource_creation_restricted`` (the organization may not create). A
#: ``permission_denied`` from another endpoint (listing SSH keys, tagging a VM)
#: is handled where that request is made, and stops nothing else.
ORG_STOPPING_CODES: frozenset[str] = frozenset(
    {
        "organization_not_found",
        "organization_suspended",
        "organization_not_activated",
        "resource_creation_restricted",
        "permission_denied",
    }
)

_CATEGORY_BY_STATUS: Mapping[int, Category] = {
    400: "validation",
    401: "auth",
    403: "permission",
    404: "not_found",
    406: "conflict",
    409: "conflict",
    422: "validation",
    429: "rate_limited",
}


def category_for(code: str | None, http_status: int | None) -> Category:
    """The report category for an API error code, falling back on the HTTP status."""
    if code is not None and code in CATEGORY_BY_CODE:
        return CATEGORY_BY_CODE[code]
    if http_status is not None:
        if http_status in _CATEGORY_BY_STATUS:
            return _CATEGORY_BY_STATUS[http_status]
        if http_status >= 500:
            return "server_error"
    return "server_error"


_CLASS_BY_CATEGORY: Mapping[Category, type[ApiError]] = {
    "invalid_spec": InvalidRequest,
    "auth": AuthenticationError,
    "permission": PermissionDenied,
    "quota": PermissionDenied,
    "not_found": NotFound,
    "validation": ValidationFailed,
    "conflict": InvalidRequest,
    "rate_limited": RateLimited,
    "server_error": ServerError,
}


def api_error_for(
    *,
    http_status: int,
    code: str | None,
    description: str | None = None,
    detail: Any = None,
    request_id: str | None = None,
    method: str | None = None,
    path: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the most specific :class:`ApiError` subclass for an error answer."""
    if http_status >= 500:
        cls: type[ApiError] = ServerError
    elif http_status == 400 and code not in ("missing_api_token",):
        cls = InvalidRequest
    else:
        cls = _CLASS_BY_CATEGORY.get(category_for(code, http_status), ApiError)
    return cls(
        http_status=http_status,
        code=code,
        description=description,
        detail=detail,
        request_id=request_id,
        method=method,
        path=path,
        retry_after=retry_after,
    )


def detail_messages(detail: Any) -> list[str]:
    """Flatten an error ``detail`` (``errors[]``, ``details``, strings) into messages."""
    if detail is None:
        return []
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, Mapping):
        out: list[str] = []
        for key in ("errors", "details", "issue", "scopes"):
            if key in detail:
                out.extend(detail_messages(detail[key]))
        return out
    if isinstance(detail, Sequence):
        return [m for item in detail for m in detail_messages(item)]
    return [str(detail)]
