"""The Katapult Core API client: one ``request()`` seam and typed endpoints over it.

``request()`` is the only place that builds headers, encodes queries, passes
the :class:`~orchestrator.katapult.RequestGate`, counts requests and parses
the ``{"error": {...}}`` envelope into :mod:`orchestrator.errors`. It never
retries: the retry policy belongs to the engine, which knows whether a request
is safe to repeat.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from orchestrator._about import distribution_version
from orchestrator.errors import ApiError, ConfigError, UnexpectedResponse, api_error_for
from orchestrator.katapult._encoding import flatten_params
from orchestrator.katapult._gate import ON_SENT, RateLimitInfo, RequestGate
from orchestrator.katapult._lookups import lookup_arg
from orchestrator.katapult._models import (
    CreatedBuild,
    DataCenter,
    DiskTemplate,
    Network,
    Organization,
    Package,
    Pagination,
    PolicyLimits,
    SshKey,
    Tag,
    Task,
    TaskRef,
    TrashObject,
    VirtualMachine,
    VirtualMachineBuild,
    VirtualMachineSummary,
    Zone,
)
from orchestrator.katapult._page_size import KNOWN as KNOWN_PAGE_SIZE
from orchestrator.katapult._page_size import PageSize
from orchestrator.katapult._transport import (
    AiohttpTransport,
    ApiRequest,
    ApiResponse,
    Timeouts,
    Transport,
)
from orchestrator.katapult._url import api_url_problem, normalize_api_url
from orchestrator.vm_request import Lookup

__all__ = ["DEFAULT_API_URL", "KatapultClient", "VmPage"]

#: The real API's base URL.
DEFAULT_API_URL: Final = "https://api.katapult.io/core/v1/"

_M = TypeVar("_M", bound=BaseModel)
_PATH_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")
_MAX_ERROR_FIELDS = 3


# read once at import: package metadata is file I/O, not for the event loop
_DEFAULT_USER_AGENT: Final = f"orchestrator/{distribution_version()} (+aiohttp)"


def check_api_url(url: str) -> str:
    """Validate the API base URL and return it with a trailing slash.

    Raises :class:`~orchestrator.errors.ConfigError` for anything but
    ``https://`` (or ``http://`` to a loopback host), or a URL carrying
    credentials, a query or a fragment: the same check as the settings'.
    """
    problem = api_url_problem(url)
    if problem is not None:
        raise ConfigError(f"katapult.api_url {problem}")
    return normalize_api_url(url)


class KatapultClient:
    """An async client of the Katapult Core API v1.

    Use as ``async with KatapultClient(api_url=..., token=...) as client:``.
    ``requests_total`` counts every request sent (whatever came of it) and
    ``rate_limited_total`` the 429 answers among them. Closing the client
    closes its transport, also one passed in.
    """

    requests_total: int
    rate_limited_total: int

    def __init__(
        self,
        *,
        api_url: str,
        token: str | SecretStr | None,
        transport: Transport | None = None,
        timeouts: Timeouts | None = None,
        gate: RequestGate | None = None,
        max_connections: int = 32,
        user_agent: str | None = None,
    ) -> None:
        self._api_url = check_api_url(api_url)
        self._token = SecretStr(token) if isinstance(token, str) else token
        if transport is None:
            transport = AiohttpTransport(
                self._api_url, timeouts=timeouts, max_connections=max_connections
            )
        self._transport: Transport = transport
        self._gate = gate
        self._user_agent = user_agent or _DEFAULT_USER_AGENT
        self.requests_total = 0
        self.rate_limited_total = 0
        #: the VM list's page size, found out once (see :mod:`._page_size`)
        self.vm_page_size = PageSize()

    def __repr__(self) -> str:
        return f"KatapultClient(api_url={self._api_url!r})"

    @property
    def api_url(self) -> str:
        """The API base URL (always ending in ``/``)."""
        return self._api_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport (and its connections)."""
        await self._transport.aclose()

    # ------------------------------------------------------------ the seam

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> dict[str, Any]:
        """Send one request and return the JSON object of a 2xx answer.

        ``path`` is relative to the API URL (``tasks/task_abc``) and has no
        query: nested ``params`` are encoded in bracket form. Raises the
        :class:`~orchestrator.errors.ApiError` subclass for the answer's status
        and error code, :class:`~orchestrator.errors.UnexpectedResponse` for a
        2xx that is not a JSON object, and passes on the transport's
        :class:`~orchestrator.errors.TransportError`. Never retries.
        """
        return (await self._call(method, path, params=params, json=json)).data

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> _Answer:
        path = path.lstrip("/")
        if "?" in path or "#" in path:
            raise ValueError("put query arguments in params, not in the path")
        request = ApiRequest(
            method=method.upper(),
            path=path,
            params=tuple(flatten_params(params)) if params else (),
            json=json,
            headers=self._headers(has_body=json is not None),
        )
        response = await self._send(request)
        return _Answer(request, response, self._decode(request, response))

    def _headers(self, *, has_body: bool) -> dict[str, str]:
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return headers

    async def _send(self, request: ApiRequest) -> ApiResponse:
        gate = self._gate
        if gate is not None:
            await gate.acquire(request)
        info = RateLimitInfo(status=None)
        try:
            on_sent = ON_SENT.get()
            if on_sent is not None:
                on_sent()
            self.requests_total += 1
            response = await self._transport.send(request)
            info = RateLimitInfo.from_response(response)
            if response.status == 429:
                self.rate_limited_total += 1
            return response
        finally:
            if gate is not None:
                gate.release(request, info)

    def _decode(self, request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
        status = response.status
        if status >= 400:
            raise self._error(request, response)
        if not 200 <= status < 300:
            raise self._unexpected(request, response, f"unexpected HTTP status {status}")
        data = _loads(response.body)
        if isinstance(data, dict):
            return data
        what = "non-JSON body" if data is _NOT_JSON else "JSON body that is not an object"
        raise self._unexpected(request, response, _describe_body(what, response))

    def _error(self, request: ApiRequest, response: ApiResponse) -> Exception:
        payload = _loads(response.body)
        code: str | None = None
        description: str | None = None
        detail: Any = None
        if isinstance(payload, dict):
            envelope = payload.get("error")
            # the real API wraps errors; the OpenAPI file models them flat: accept both
            fields = envelope if isinstance(envelope, dict) else payload
            if isinstance(fields.get("code"), str) and fields["code"]:
                code = fields["code"]
                raw_description = fields.get("description")
                description = raw_description if isinstance(raw_description, str) else None
                detail = fields.get("detail")
        if code is None:
            what = "non-JSON body" if payload is _NOT_JSON else "JSON body without an error code"
            description = _describe_body(what, response)
        # a server or proxy that echoes the request must not put the token in
        # our exceptions, and from there in reports, journals and logs
        description = self._redact(description)
        detail = self._redact(detail)
        return api_error_for(
            http_status=response.status,
            code=code,
            description=description,
            detail=detail,
            request_id=response.header("x-request-id"),
            method=request.method,
            path="/" + request.path,
            retry_after=RateLimitInfo.from_response(response).retry_after,
        )

    def _redact(self, value: Any) -> Any:
        """``value`` with every occurrence of the token replaced by ``***``."""
        if self._token is None:
            return value
        secret = self._token.get_secret_value()
        if not secret:
            return value
        if isinstance(value, str):
            return value.replace(secret, "***")
        if isinstance(value, dict):
            return {self._redact(k): self._redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        return value

    def _unexpected(
        self, request: ApiRequest, response: ApiResponse, description: str
    ) -> UnexpectedResponse:
        return UnexpectedResponse(
            http_status=response.status,
            code=None,
            description=self._redact(description),
            request_id=response.header("x-request-id"),
            method=request.method,
            path="/" + request.path,
        )

    def _parse(self, model: type[_M], data: Any, answer: _Answer, what: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors(include_url=False, include_input=False)[:_MAX_ERROR_FIELDS]
            )
            raise self._unexpected(
                answer.request,
                answer.response,
                f"{what} does not look like a {model.__name__} ({problems})",
            ) from exc

    async def _get_one(
        self, path: str, key: str, model: type[_M], params: Mapping[str, Any] | None = None
    ) -> _M:
        answer = await self._call("GET", path, params=params)
        return self._parse(model, answer.data.get(key), answer, f"the response's {key!r}")

    async def _pages(
        self,
        path: str,
        key: str,
        model: type[_M],
        params: Mapping[str, Any],
        per_page: int | None,
        sizes: PageSize | None = None,
    ) -> AsyncIterator[_M]:
        """Yield every item of a paginated list, page by page.

        ``sizes``: the list's page size to find out (``per_page`` None: its value).
        """
        if per_page is None:
            per_page = sizes.value if sizes is not None else KNOWN_PAGE_SIZE
        if per_page < 1:
            raise ValueError("per_page must be at least 1")
        page = 1
        while True:
            answer, per_page = await self._page(path, key, params, page, per_page, sizes)
            items = self._items(answer, key)
            pagination = self._pagination(answer)
            if pagination is not None and pagination.current_page not in (None, page):
                raise self._unexpected(
                    answer.request,
                    answer.response,
                    f"the API answered page {pagination.current_page} when asked for page {page}",
                )
            for raw in items:
                yield self._parse(model, raw, answer, f"an item of {key!r}")
            if _is_last_page(pagination, page, len(items), per_page):
                return
            page += 1

    async def _page(
        self,
        path: str,
        key: str,
        params: Mapping[str, Any],
        page: int,
        per_page: int,
        sizes: PageSize | None,
    ) -> tuple[_Answer, int]:
        """One page, and the page size it was answered at: a first page refused as too
        wide is asked again at the known size, once (see :mod:`._page_size`)."""

        def ask(size: int) -> Awaitable[_Answer]:
            return self._call("GET", path, params={**params, "page": page, "per_page": size})

        try:
            answer = await ask(per_page)
        except ApiError as exc:
            if sizes is None or page != 1 or not sizes.may_be_refusal(exc, per_page):
                raise
            answer = await ask(KNOWN_PAGE_SIZE)
            sizes.refused(exc, per_page)
            return answer, KNOWN_PAGE_SIZE
        if sizes is not None:
            pagination = self._pagination(answer)
            items = answer.data.get(key)
            count = len(items) if isinstance(items, list) else 0
            stated = pagination.per_page if pagination is not None else None
            sizes.answered(per_page, stated, count)
        return answer, per_page

    def _pagination(self, answer: _Answer) -> Pagination | None:
        raw = answer.data.get("pagination")
        if raw is None:
            return None
        return self._parse(Pagination, raw, answer, "the response's 'pagination'")

    def _items(self, answer: _Answer, key: str) -> list[Any]:
        items = answer.data.get(key)
        if not isinstance(items, list):
            raise self._unexpected(
                answer.request, answer.response, f"the response has no {key!r} list"
            )
        return items

    # ------------------------------------------------------------ builds

    async def build_vm(
        self,
        *,
        organization: Lookup,
        package: Lookup,
        hostname: str | None = None,
        zone: Lookup | None = None,
        data_center: Lookup | None = None,
        disk_template: Lookup | None = None,
        disk_template_options: Mapping[str, str] | None = None,
        network: Lookup | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> CreatedBuild:
        """``POST organizations/_/virtual_machines/build``: start building one VM.

        Not idempotent: a timeout or 5xx leaves it unknown whether a VM is
        being built. Mappings are sent as ``[{key, value}]`` lists; ``None``
        fields are left out.
        """
        body: dict[str, Any] = {
            "organization": lookup_arg("organization", organization),
            "package": lookup_arg("package", package),
        }
        if zone is not None:
            body["zone"] = lookup_arg("zone", zone)
        if data_center is not None:
            body["data_center"] = lookup_arg("data_center", data_center)
        if disk_template is not None:
            body["disk_template"] = lookup_arg("disk_template", disk_template)
        if disk_template_options:
            body["disk_template_options"] = _key_values(disk_template_options)
        if network is not None:
            body["network"] = lookup_arg("network", network)
        if hostname is not None:
            body["hostname"] = hostname
        if annotations:
            body["annotations"] = _key_values(annotations)
        answer = await self._call("POST", "organizations/_/virtual_machines/build", json=body)
        return self._parse(CreatedBuild, answer.data, answer, "the build response")

    async def build_vm_from_spec(
        self,
        *,
        organization: Lookup,
        xml: str,
        annotations: Mapping[str, str] | None = None,
    ) -> CreatedBuild:
        """``POST organizations/_/virtual_machines/build_from_spec`` with a spec document.

        See :func:`~orchestrator.katapult.build_spec_xml`. Not idempotent.
        ``annotations`` go in the JSON body beside the XML (the XML has no place
        for them), as ``[{key, value}]``.
        """
        body: dict[str, Any] = {
            "organization": lookup_arg("organization", organization),
            "xml": xml,
        }
        if annotations:
            body["annotations"] = _key_values(annotations)
        answer = await self._call(
            "POST", "organizations/_/virtual_machines/build_from_spec", json=body
        )
        return self._parse(CreatedBuild, answer.data, answer, "the build response")

    async def get_task(self, task_id: str) -> Task:
        """``GET tasks/<id>``: a task's status and progress."""
        if _PATH_SAFE_ID.fullmatch(task_id):
            return await self._get_one(f"tasks/{task_id}", "task", Task)
        return await self._get_one("tasks/_", "task", Task, {"task": {"id": task_id}})

    async def get_build(self, build_id: str) -> VirtualMachineBuild:
        """``GET virtual_machines/builds/_``: a build's state and, once it exists, its VM.

        The build is read from ``virtual_machine_build`` or, from an older server
        that answers only the deprecated ``build`` key, from that (as go-katapult does).
        """
        answer = await self._call(
            "GET",
            "virtual_machines/builds/_",
            params={"virtual_machine_build": {"id": build_id}},
        )
        key = "virtual_machine_build" if "virtual_machine_build" in answer.data else "build"
        return self._parse(
            VirtualMachineBuild,
            answer.data.get(key),
            answer,
            "the response's 'virtual_machine_build'",
        )

    # ------------------------------------------------------------ VMs

    async def get_vm(self, lookup: Lookup) -> VirtualMachine:
        """``GET virtual_machines/_`` by ``id`` or ``fqdn``.

        The answer's ``annotations`` (a sibling of ``virtual_machine`` in the
        envelope) become :attr:`VirtualMachine.annotations`.
        """
        answer = await self._call(
            "GET",
            "virtual_machines/_",
            params={"virtual_machine": lookup_arg("virtual_machine", lookup)},
        )
        vm = self._parse(
            VirtualMachine,
            answer.data.get("virtual_machine"),
            answer,
            "the response's 'virtual_machine'",
        )
        pairs = answer.data.get("annotations")
        if isinstance(pairs, list):
            found = {
                str(p["key"]): str(p.get("value", ""))
                for p in pairs
                if isinstance(p, Mapping) and isinstance(p.get("key"), str)
            }
            vm = vm.model_copy(update={"annotations": found})
        return vm

    async def stop_vm(self, vm_id: str) -> TaskRef:
        """``POST virtual_machines/_/stop``: power the VM off (a task)."""
        answer = await self._call(
            "POST",
            "virtual_machines/_/stop",
            json={"virtual_machine": {"id": vm_id}},
        )
        return self._parse(TaskRef, answer.data.get("task"), answer, "the response's 'task'")

    async def delete_vm(self, vm_id: str) -> TrashObject:
        """``DELETE virtual_machines/_``: move the VM to the trash (its hostname stays taken).

        Deleting by id cannot touch another VM, so sending it again is safe:
        a VM already in the trash answers ``406 object_in_trash``, one purged
        ``404 virtual_machine_not_found``.
        """
        answer = await self._call(
            "DELETE",
            "virtual_machines/_",
            json={"virtual_machine": {"id": vm_id}},
        )
        return self._parse(
            TrashObject, answer.data.get("trash_object"), answer, "the response's 'trash_object'"
        )

    async def get_trash_object(self, *, object_id: str) -> TrashObject:
        """``GET trash_objects/_`` by the trashed object's id (404 once purged)."""
        return await self._get_one(
            "trash_objects/_",
            "trash_object",
            TrashObject,
            {"trash_object": {"object_id": object_id}},
        )

    async def purge_trash_object(self, *, object_id: str) -> Task:
        """``DELETE trash_objects/_``: purge a trashed object for good (a task); frees its name."""
        answer = await self._call(
            "DELETE",
            "trash_objects/_",
            json={"trash_object": {"object_id": object_id}},
        )
        return self._parse(Task, answer.data.get("task"), answer, "the response's 'task'")

    async def list_vms(
        self,
        organization: Lookup,
        *,
        per_page: int | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> AsyncIterator[VirtualMachineSummary]:
        """Every VM of the organization, fetching page after page as iterated.

        ``annotations`` filters the list (``annotations[][key]``/``[value]``):
        only VMs carrying every pair (a ``None`` value: the key alone). Whether
        the API honours the filter is unconfirmed: a caller must not take the
        answer for filtered without having found out. ``per_page`` None: the
        page size found out for the VM list (:attr:`vm_page_size`).
        """
        params = _vm_list_params(organization, annotations)
        async for vm in self._pages(
            "organizations/_/virtual_machines",
            "virtual_machines",
            VirtualMachineSummary,
            params,
            per_page,
            self.vm_page_size if per_page is None else None,
        ):
            yield vm

    async def vm_list_page(
        self,
        organization: Lookup,
        *,
        page: int = 1,
        per_page: int | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> VmPage:
        """One page of the organization's VM list (as :meth:`list_vms` filters it).

        ``per_page`` None: the page size found out for the VM list; the page says
        the size it was answered at (ask the next page at the same size).
        """
        sizes = self.vm_page_size if per_page is None else None
        asked = self.vm_page_size.value if per_page is None else per_page
        answer, asked = await self._page(
            "organizations/_/virtual_machines",
            "virtual_machines",
            _vm_list_params(organization, annotations),
            page,
            asked,
            sizes,
        )
        items = [
            self._parse(VirtualMachineSummary, raw, answer, "an item of 'virtual_machines'")
            for raw in self._items(answer, "virtual_machines")
        ]
        pagination = self._pagination(answer)
        last = _is_last_page(pagination, page, len(items), asked)
        return VmPage(items=items, pagination=pagination, last=last, per_page=asked)

    async def get_default_network(self, data_center: Lookup) -> Network:
        """``GET data_centers/_/default_network``: the data center's default network
        (what the Terraform provider reads before every XML build)."""
        return await self._get_one(
            "data_centers/_/default_network",
            "network",
            Network,
            {"data_center": lookup_arg("data_center", data_center)},
        )

    async def set_vm_tags(self, vm: Lookup, tag_names: Sequence[str]) -> VirtualMachine:
        """``PATCH virtual_machines/_``: set the VM's tags to exactly ``tag_names``.

        What the official Terraform provider sends after a build. Idempotent
        (it sets, never adds), so it is safe to repeat. Returns the updated VM,
        whose ``tag_names`` say which tags it has now.
        """
        body = {
            "virtual_machine": lookup_arg("virtual_machine", vm),
            "properties": {"tag_names": list(tag_names)},
        }
        answer = await self._call("PATCH", "virtual_machines/_", json=body)
        return self._parse(
            VirtualMachine,
            answer.data.get("virtual_machine"),
            answer,
            "the response's 'virtual_machine'",
        )

    # ------------------------------------------------------------ organization

    async def get_organization(self, lookup: Lookup) -> Organization:
        """``GET organizations/_``: the organization, with its ``infrastructure_domain``."""
        return await self._get_one(
            "organizations/_",
            "organization",
            Organization,
            {"organization": lookup_arg("organization", lookup)},
        )

    async def get_policy_limits(self, organization: Lookup) -> PolicyLimits:
        """``GET organizations/_/policy_limits``: the organization's quota limits."""
        return await self._get_one(
            "organizations/_/policy_limits",
            "policy_limits",
            PolicyLimits,
            {"organization": lookup_arg("organization", organization)},
        )

    async def list_ssh_keys(self, organization: Lookup, *, per_page: int = 100) -> list[SshKey]:
        """``GET organizations/_/ssh_keys``: the organization's stored SSH keys, every page."""
        params = {"organization": lookup_arg("organization", organization)}
        return [
            k
            async for k in self._pages(
                "organizations/_/ssh_keys", "ssh_keys", SshKey, params, per_page
            )
        ]

    async def list_tags(self, organization: Lookup, *, per_page: int = 100) -> list[Tag]:
        """``GET organizations/_/tags``: the organization's tags, every page."""
        params = {"organization": lookup_arg("organization", organization)}
        return [t async for t in self._pages("organizations/_/tags", "tags", Tag, params, per_page)]

    # ------------------------------------------------------------ catalogue

    async def list_data_centers(self) -> list[DataCenter]:
        """``GET data_centers``."""
        return await self._get_list("data_centers", "data_centers", DataCenter)

    async def list_zones(self) -> list[Zone]:
        """``GET zones``."""
        return await self._get_list("zones", "zones", Zone)

    async def list_packages(self, *, per_page: int = 100) -> list[Package]:
        """``GET virtual_machine_packages``, every page."""
        return [
            p
            async for p in self._pages(
                "virtual_machine_packages", "virtual_machine_packages", Package, {}, per_page
            )
        ]

    async def list_disk_templates(
        self, organization: Lookup, *, include_universal: bool = True, per_page: int = 100
    ) -> list[DiskTemplate]:
        """``GET organizations/_/disk_templates``, every page.

        Universal templates (such as ``templates/ubuntu-22-04``) are included
        by default; the API leaves them out unless asked.
        """
        params = {
            "organization": lookup_arg("organization", organization),
            "include_universal": include_universal,
        }
        return [
            t
            async for t in self._pages(
                "organizations/_/disk_templates", "disk_templates", DiskTemplate, params, per_page
            )
        ]

    async def list_networks(self, organization: Lookup) -> list[Network]:
        """``GET organizations/_/available_networks``: the networks (not virtual networks)."""
        return await self._get_list(
            "organizations/_/available_networks",
            "networks",
            Network,
            {"organization": lookup_arg("organization", organization)},
        )

    async def _get_list(
        self, path: str, key: str, model: type[_M], params: Mapping[str, Any] | None = None
    ) -> list[_M]:
        answer = await self._call("GET", path, params=params)
        return [
            self._parse(model, raw, answer, f"an item of {key!r}")
            for raw in self._items(answer, key)
        ]


# ---------------------------------------------------------------- helpers

_NOT_JSON: Final = object()


@dataclass(frozen=True, slots=True)
class VmPage:
    """One page of a VM list: its VMs, its pagination, and whether it is the last."""

    items: list[VirtualMachineSummary]
    pagination: Pagination | None
    last: bool
    #: the page size it was asked at (the next page is asked at the same)
    per_page: int = 100


def _vm_list_params(
    organization: Lookup, annotations: Mapping[str, str | None] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"organization": lookup_arg("organization", organization)}
    if annotations:
        params["annotations"] = [{"key": k, "value": v} for k, v in annotations.items()]
    return params


@dataclass(frozen=True, slots=True)
class _Answer:
    """A decoded 2xx answer and what it answered."""

    request: ApiRequest
    response: ApiResponse
    data: dict[str, Any]


def _loads(body: bytes) -> Any:
    """The decoded JSON body, or ``_NOT_JSON``."""
    try:
        return jsonlib.loads(body)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _describe_body(what: str, response: ApiResponse) -> str:
    content_type = (response.header("content-type") or "no content type").split(";")[0].strip()
    return f"{what} ({content_type or 'no content type'}, {len(response.body)} bytes)"


def _key_values(mapping: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for key, value in mapping.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.append({"key": str(key), "value": text})
    return out


def _is_last_page(pagination: Pagination | None, page: int, count: int, per_page: int) -> bool:
    """Whether the page just read is the last one.

    No pagination object means an unpaginated answer; an empty page always
    ends the list. Trust ``total_pages`` when the API gives it; for large sets
    it may be ``None``, and then a page shorter than the page size (the one
    the API reports, else the one asked for, at most the known 100) is the last.
    """
    if pagination is None or count == 0:
        return True
    if pagination.total_pages is not None:
        return page >= pagination.total_pages
    # the size the answer states; else the size asked, or the one the API is known to
    # take if smaller (an API that capped a wider page silently does not end the list)
    return count < (pagination.per_page or min(per_page, KNOWN_PAGE_SIZE))
