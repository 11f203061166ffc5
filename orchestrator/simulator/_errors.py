"""The API's error answers, with the exact codes, texts and statuses.

Texts and statuses of the Katapult errors come from the server's own schema
(``apia-schema-core-v1.json``); those of the framework errors
(``route_not_found``, ``invalid_argument``, ``missing_required_argument``,
``invalid_json_body``, ``unhandled_exception``) from the Apia framework the
API runs on. Every error is sent as ``{"error": {"code", "description",
"detail"}}`` with the ``X-Api-Schema: json-error`` header.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LOOKUP_NOT_FOUND",
    "SimApiError",
    "ambiguous_lookup",
    "api_error",
    "invalid_argument",
    "invalid_json_body",
    "invalid_spec_xml",
    "missing_lookup",
    "missing_required_argument",
    "route_not_found",
    "validation_error",
]

#: code -> (HTTP status, description), for every error the simulator sends.
ERRORS: dict[str, tuple[int, str | None]] = {
    "missing_api_token": (
        400,
        "No API token was provided in the Authorization header. "
        "Ensure a token is provided prefixed with Bearer",
    ),
    "invalid_api_token": (
        403,
        "The API token provided was not valid (it may not exist or have expired)",
    ),
    "unauthorized_network_for_api_token": (
        403,
        "Network is not allowed to access the API with this API token",
    ),
    "rate_limit_reached": (429, "You have reached the rate limit for this type of request"),
    "scope_not_granted": (
        403,
        "The scope required for this endpoint has not been granted to the authenticating identity",
    ),
    "organization_not_found": (
        404,
        "No organization was found matching any of the criteria provided in the arguments",
    ),
    "organization_suspended": (
        403,
        "An organization was found from the arguments provided but it was suspended",
    ),
    "organization_not_activated": (
        403,
        "An organization was found from the arguments provided but it wasn't activated yet",
    ),
    "data_center_not_found": (
        404,
        "No data center was found matching any of the criteria provided in the arguments",
    ),
    "zone_not_found": (
        404,
        "No zone was found matching any of the criteria provided in the arguments",
    ),
    "package_not_found": (
        404,
        "No package was found matching any of the criteria provided in the arguments",
    ),
    "disk_template_not_found": (
        404,
        "No disk template was found matching any of the criteria provided in the arguments",
    ),
    "network_not_found": (
        404,
        "No network was found matching any of the criteria provided in the arguments",
    ),
    "operating_system_not_found": (
        404,
        "No operating system was found matching any of the criteria provided in the arguments",
    ),
    "virtual_machine_not_found": (
        404,
        "No virtual machine was found matching any of the criteria provided in the arguments",
    ),
    "build_not_found": (
        404,
        "No build was found matching any of the criteria provided in the arguments",
    ),
    "task_not_found": (
        404,
        "No task was found matching any of the criteria provided in the arguments",
    ),
    "trash_object_not_found": (
        404,
        "No trash object was found matching any of the criteria provided in the arguments",
    ),
    "object_in_trash": (
        406,
        "The object found is in the trash and therefore cannot be manipulated through the API. "
        "It should be restored in order to run this operation.",
    ),
    "validation_error": (
        422,
        "A validation error occurred with the object that was being created/updated/deleted",
    ),
    "location_required": (422, "A zone or a data_center argument must be provided"),
    "permission_denied": (
        403,
        "The authenticated identity is not permitted to perform this action",
    ),
    "resource_creation_restricted": (
        403,
        "The organization chosen is not permitted to create resources",
    ),
    # a guess (issue 23): the schema lists deletion_restricted (detail.errors) without saying
    # when; the simulator's "delete_running: refuse" reading answers it for a running VM
    "deletion_restricted": (409, "This object cannot be deleted"),
    "invalid_spec_xml": (400, "The spec XML provided is invalid"),
    "service_unavailable": (503, "The service is currently unavailable, please try again later"),
    # Apia framework errors
    "unhandled_exception": (500, None),
    "invalid_json_body": (400, "The JSON body provided with this request is invalid"),
}

#: lookup argument name -> the code of its "not found" error.
LOOKUP_NOT_FOUND: dict[str, str] = {
    "organization": "organization_not_found",
    "data_center": "data_center_not_found",
    "zone": "zone_not_found",
    "package": "package_not_found",
    "disk_template": "disk_template_not_found",
    "network": "network_not_found",
    "virtual_machine": "virtual_machine_not_found",
    "virtual_machine_build": "build_not_found",
    "task": "task_not_found",
    "trash_object": "trash_object_not_found",
    "operating_system": "operating_system_not_found",
}

_ISSUE_DESCRIPTIONS = {
    "invalid_scalar": (
        "The value provided was not of an appropriate type for the scalar that was requested. "
        "For example, you may have passed a string where an integer was required etc..."
    ),
    "parse_error": (
        "The value provided could not be parsed into an appropriate value by the server. "
        "For example, if a date was expected and the value could not be interpretted as such."
    ),
    "missing_lookup_value": (
        "A value for a lookup argument set has not been provided but at least one value "
        "is required."
    ),
    "ambiguous_lookup_values": (
        "More than one value has been provided for a lookup argument set. "
        "Only one option may be provided."
    ),
}


class SimApiError(Exception):
    """An error answer: raise it from a handler and the dispatcher renders it."""

    def __init__(self, status: int, code: str, description: str | None, detail: Any = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.description = description
        self.detail: Any = {} if detail is None else detail

    def body(self) -> dict[str, Any]:
        """The JSON envelope of this error."""
        return {
            "error": {"code": self.code, "description": self.description, "detail": self.detail}
        }


def api_error(code: str, detail: Any = None) -> SimApiError:
    """The error ``code`` with its schema status and description."""
    status, description = ERRORS[code]
    return SimApiError(status, code, description, detail)


def route_not_found(api_path: str, method: str) -> SimApiError:
    """404 for a path/method the API has no route for."""
    return SimApiError(404, "route_not_found", f"No route matches '{api_path}' for {method}", {})


def _argument(endpoint_id: str, path: list[str]) -> dict[str, Any]:
    name = path[-1]
    camel = "".join(part.capitalize() for part in name.split("_"))
    return {
        "id": f"{endpoint_id}/BaseArgumentSet/{camel}Argument",
        "name": name,
        "description": None,
    }


def invalid_argument(
    endpoint_id: str,
    path: list[str],
    issue: str,
    *,
    errors: list[str] | None = None,
    index: int | None = None,
) -> SimApiError:
    """400 ``invalid_argument`` as Apia words it (``detail.issue`` says why)."""
    return SimApiError(
        400,
        "invalid_argument",
        f"The '{'.'.join(path)}' argument is invalid",
        {
            "path": list(path),
            "index": index,
            "issue": issue,
            "issue_description": _ISSUE_DESCRIPTIONS.get(issue),
            "errors": list(errors or []),
            "argument": _argument(endpoint_id, path),
        },
    )


def missing_lookup(endpoint_id: str, name: str) -> SimApiError:
    """400 for a lookup given as ``{}``."""
    return invalid_argument(endpoint_id, [name], "missing_lookup_value")


def ambiguous_lookup(endpoint_id: str, name: str) -> SimApiError:
    """400 for a lookup given more than one key."""
    return invalid_argument(endpoint_id, [name], "ambiguous_lookup_values")


def missing_required_argument(endpoint_id: str, name: str) -> SimApiError:
    """400 for a required argument that is absent or null."""
    arg = _argument(endpoint_id, [name])
    return SimApiError(
        400,
        "missing_required_argument",
        f"The '{name}' argument is required but has not been provided",
        {"path": [name], "argument": {"name": arg["name"], "description": arg["description"]}},
    )


def invalid_json_body(message: str) -> SimApiError:
    """400 for a body that claims to be JSON and is not."""
    return api_error("invalid_json_body", {"details": message})


def invalid_spec_xml(message: str) -> SimApiError:
    """400 for a build spec that is not valid XML (``detail.errors`` is one string)."""
    return api_error("invalid_spec_xml", {"errors": message})


def validation_error(*messages: str) -> SimApiError:
    """422 ``validation_error`` with ``detail.errors``."""
    return api_error("validation_error", {"errors": list(messages)})
