"""What a ``build_from_spec`` request names in its organization, checked before sending.

Three facts of an organization decide whether such a request can be built as
asked, and none is visible in the spec:

- ``ssh_keys`` name keys **stored** in the organization (``GET
  organizations/_/ssh_keys``), by ``key_...`` id, fingerprint or name; the
  spec XML carries their ids, as Krystal's CLI sends them;
- ``tags`` name the organization's tags (``GET organizations/_/tags``);
- ``cpu_cores`` / ``memory_gb`` need a policy that allows flexible resources
  (``flexible_virtual_machine_resources`` of ``GET
  organizations/_/policy_limits``).

:func:`check_references` reads only what the requests need (nothing for a spec
that uses none of these fields), once per organization, and is what both
``plan`` and ``run`` (before its first POST) use.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from orchestrator.engine._retry import retry_get
from orchestrator.engine._track import error_info
from orchestrator.errors import ApiError, Category, SpecError, SpecIssue, TransportError
from orchestrator.katapult import KatapultClient, SshKey
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import Lookup, VmRequest

__all__ = ["FLEXIBLE_CODE", "Checked", "ReferenceProblem", "check_references"]

T = TypeVar("T")

#: the API's own code for an organization without flexible resources
FLEXIBLE_CODE = "flexible_resources_unavailable_to_organization"


@dataclass(frozen=True, slots=True)
class ReferenceProblem:
    """One request names something its organization does not have, or may not use."""

    request: VmRequest
    field: str
    value: str
    code: str
    message: str

    @property
    def is_spec_problem(self) -> bool:
        """True for an unknown SSH key or tag: the spec is wrong, nothing should be sent."""
        return self.code != FLEXIBLE_CODE

    def issue(self, file: str) -> SpecIssue:
        """The problem as a spec issue (file, entry, hostname, field)."""
        return SpecIssue(
            file=file,
            message=self.message,
            entry=self.request.entry_index,
            hostname=self.request.hostname,
            field=self.field,
        )

    def refusal(self) -> tuple[Category, ErrorInfo]:
        """The problem as a VM's failure: its category and error."""
        category: Category = "permission" if self.code == FLEXIBLE_CODE else "not_found"
        return category, ErrorInfo(code=self.code, description=self.message)


@dataclass(slots=True)
class Checked:
    """The requests with their SSH keys resolved to ids, and what stands in the way.

    ``unreadable`` maps the key of each request whose organization's facts
    could not be read to that error (category and error info).
    """

    requests: list[VmRequest] = field(default_factory=list)
    problems: list[ReferenceProblem] = field(default_factory=list)
    unreadable: dict[str, tuple[Category, ErrorInfo]] = field(default_factory=dict)

    def raise_spec_problems(self, file: str) -> None:
        """Raise :class:`SpecError` for every unknown SSH key or tag (nothing is sent)."""
        issues = self.issues(file, flexible=False)
        if issues:
            raise SpecError(issues)

    def issues(self, file: str, *, flexible: bool = True) -> list[SpecIssue]:
        """Every problem as a spec issue: one per entry and name, however many VMs the
        entry expands to (``flexible``: flexible resources an organization refuses too)."""
        grouped: dict[tuple[int, str, str], list[ReferenceProblem]] = {}
        for problem in self.problems:
            if flexible or problem.is_spec_problem:
                key = (problem.request.entry_index, problem.field, problem.value)
                grouped.setdefault(key, []).append(problem)
        issues = []
        for same in grouped.values():
            issue = same[0].issue(file)
            if len(same) > 1:
                more = f" (and {len(same) - 1} more VMs of this entry)"
                issue = dataclasses.replace(issue, message=issue.message + more)
            issues.append(issue)
        return issues

    def refused(self) -> dict[str, tuple[Category, ErrorInfo]]:
        """Per request key, why it must fail unsent (flexible resources, unreadable facts)."""
        out = dict(self.unreadable)
        for problem in self.problems:
            out.setdefault(problem.request.key, problem.refusal())
        return out


@dataclass(slots=True)
class _OrgFacts:
    ssh_keys: list[SshKey] | None = None
    tags: set[str] | None = None
    flexible: bool | None = None
    error: tuple[Category, ErrorInfo] | None = None


def _needs_flexible(req: VmRequest) -> bool:
    return req.cpu_cores is not None or req.memory_gb is not None


async def check_references(
    client: KatapultClient,
    requests: Sequence[VmRequest],
    *,
    retry: Mapping[str, Any],
) -> Checked:
    """Check every request's SSH keys, tags and flexible resources against its organization.

    ``retry`` are :func:`~orchestrator.engine._retry.retry_get`'s keyword
    arguments. Never raises for the API: an organization whose facts cannot be
    read (a refused token, not found, suspended, a refused listing, an outage
    past the retry deadline) makes its requests that need them ``unreadable``,
    and the run fails them unsent (a refused token stops the run anyway).
    """
    by_org: dict[Lookup, list[VmRequest]] = defaultdict(list)
    for req in requests:
        if req.ssh_keys or req.tags or _needs_flexible(req):
            by_org[req.organization].append(req)
    facts: dict[Lookup, _OrgFacts] = {}

    async def read(org: Lookup, reqs: list[VmRequest]) -> None:
        facts[org] = await _read_facts(client, org, reqs, retry)

    async with anyio.create_task_group() as tg:
        for org, reqs in by_org.items():
            tg.start_soon(read, org, reqs)

    checked = Checked()
    for req in requests:
        org_facts = facts.get(req.organization)
        if org_facts is None:
            checked.requests.append(req)
        elif org_facts.error is not None:
            checked.unreadable[req.key] = org_facts.error
            checked.requests.append(req)
        else:
            checked.requests.append(_check_one(req, org_facts, checked.problems))
    return checked


async def _read_facts(
    client: KatapultClient, org: Lookup, reqs: list[VmRequest], retry: Mapping[str, Any]
) -> _OrgFacts:
    facts = _OrgFacts()

    async def get(call: Callable[[], Awaitable[T]]) -> T:
        return await retry_get(call, **retry)

    try:
        if any(r.ssh_keys for r in reqs):
            facts.ssh_keys = await get(lambda: client.list_ssh_keys(org))
        if any(r.tags for r in reqs):
            facts.tags = {t.name for t in await get(lambda: client.list_tags(org))}
        if any(_needs_flexible(r) for r in reqs):
            policy = await get(lambda: client.get_policy_limits(org))
            facts.flexible = policy.flexible_virtual_machine_resources
    except (ApiError, TransportError) as exc:
        facts.error = (exc.category, error_info(exc))
    return facts


def _check_one(req: VmRequest, facts: _OrgFacts, problems: list[ReferenceProblem]) -> VmRequest:
    org = req.organization.value
    key_ids: list[str] = []
    for ref in req.ssh_keys:
        found = _find_key(facts.ssh_keys or [], ref)
        if isinstance(found, str):
            key_ids.append(found)
            continue
        message = (
            f"no SSH key {ref!r} is stored in organization {org!r} (by id, fingerprint or name)"
            if not found
            else f"{len(found)} SSH keys of organization {org!r} are named {ref!r}: "
            "name it by fingerprint or key_ id"
        )
        problems.append(ReferenceProblem(req, "ssh_keys", ref, "ssh_key_not_found", message))
    for tag in req.tags:
        if facts.tags is not None and tag not in facts.tags:
            problems.append(
                ReferenceProblem(
                    req,
                    "tags",
                    tag,
                    "tag_not_found",
                    f"organization {org!r} has no tag {tag!r}: create it in Katapult first",
                )
            )
    if _needs_flexible(req) and facts.flexible is False:
        name = "cpu_cores" if req.cpu_cores is not None else "memory_gb"
        problems.append(
            ReferenceProblem(
                req,
                name,
                str(getattr(req, name)),
                FLEXIBLE_CODE,
                f"organization {org!r}'s policy does not allow flexible resources: "
                "cpu_cores and memory_gb cannot be set; choose a package instead",
            )
        )
    if req.ssh_keys and len(key_ids) == len(req.ssh_keys):
        return dataclasses.replace(req, ssh_keys=tuple(dict.fromkeys(key_ids)))
    return req


def _find_key(keys: Sequence[SshKey], ref: str) -> str | list[SshKey]:
    """The id of the key ``ref`` names (id, then fingerprint, then name), or the candidates."""
    for attribute in ("id", "fingerprint"):
        for key in keys:
            if getattr(key, attribute) == ref:
                return key.id
    named = [key for key in keys if key.name == ref]
    if len(named) == 1:
        return named[0].id
    return named
