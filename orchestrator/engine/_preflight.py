"""What ``run`` checks before its first build, with the code ``plan`` uses.

Everything a build needs that can be known before sending is resolved by
:func:`~orchestrator.engine._plan.make_plan` (organization and its state,
package, disk template, data center or zone, network, SSH keys, tags,
flexible resources, quota): any problem is a :class:`SpecError`, one issue per
problem, and nothing is sent. A refused connection at start-up is told apart
from an outage mid-run within seconds (:func:`check_reachable`): the API URL
names a port where nothing listens, so the run stops at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from orchestrator.engine._plan import LookupProblem, Plan, make_plan
from orchestrator.engine._references import Checked
from orchestrator.engine._retry import retry_get
from orchestrator.engine.state.journal import read_journal
from orchestrator.engine.state.location import JournalLike
from orchestrator.errors import (
    ApiConnectError,
    ApiUnreachable,
    Category,
    JournalError,
    OrchestratorError,
    SpecError,
    SpecIssue,
)
from orchestrator.katapult import KatapultClient
from orchestrator.report import ErrorInfo
from orchestrator.vm_request import VmRequest

__all__ = ["START_UP_SECONDS", "RunStopped", "check_reachable", "preflight", "settled_keys"]

#: how long a refused connection at start-up is retried before the run stops
START_UP_SECONDS = 5.0
#: the fields whose problems :class:`Checked` locates by entry
_REFERENCE_FIELDS = frozenset({"ssh_keys", "tags", "cpu_cores", "memory_gb"})
#: hostnames named in one problem's line, at most
_NAMED = 3


async def check_reachable(client: KatapultClient, *, seconds: float = START_UP_SECONDS) -> None:
    """Raise :class:`ApiUnreachable` when no connection to the API can be made for ``seconds``.

    One cheap GET (the data centers), retried while the connection is refused;
    any other answer, even an error, shows that something listens there (and is
    left to the checks that follow, with their own retries).
    """
    try:
        await retry_get(
            client.list_data_centers,
            deadline_seconds=seconds,
            wait_initial=min(0.2, seconds / 10),
            wait_max=1.0,
        )
    except ApiUnreachable:
        raise
    except ApiConnectError as exc:
        parts = urlsplit(client.api_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        reason = _reason(exc)
        raise ApiUnreachable(
            f"cannot connect to the API at {parts.hostname}:{port} ({reason}); "
            "is KATAPULT_API_URL right, and is the API up?"
        ) from None
    except OrchestratorError:
        return


def _reason(exc: ApiConnectError) -> str:
    """``connection refused``, from the OS error behind ``exc`` where there is one."""
    number = getattr(getattr(exc.__cause__, "os_error", None), "errno", None)
    if isinstance(number, int):
        return os.strerror(number).lower()
    return str(exc).rsplit(": ", 1)[-1]


def settled_keys(journal: JournalLike | None, fleet: str | None = None) -> set[str]:
    """The VMs a journal records as built, or as building: no build is sent for them.

    Read without the journal's lock; a journal that is missing or cannot be
    read here settles nothing (the run itself then judges it).
    """
    if journal is None:
        return set()
    try:
        snapshot = read_journal(journal, fleet=fleet)
    except (JournalError, OSError):
        return set()
    return {
        entry.key
        for entry in snapshot.entries
        if (entry.result is not None and entry.result.outcome in ("succeeded", "skipped"))
        or (entry.result is None and (entry.task_id or entry.build_id))
    }


class RunStopped(Exception):
    """Something found before the first build stops the whole run (not the spec's fault)."""

    def __init__(self, category: Category, error: ErrorInfo) -> None:
        super().__init__(error.description or error.code or category)
        self.category = category
        self.error = error


@dataclass(frozen=True, slots=True)
class Preflight:
    """The plan of the VMs to build, and their requests as checked (SSH keys resolved)."""

    plan: Plan
    checked: Checked


async def preflight(
    client: KatapultClient,
    requests: Sequence[VmRequest],
    *,
    spec_path: str,
    deadline_seconds: float,
) -> Preflight:
    """Resolve every lookup of ``requests`` as ``plan`` does; raise :class:`SpecError`
    listing every problem (nothing is sent), or an API error or :class:`RunStopped`
    for what stops the whole run."""
    await check_reachable(client, seconds=min(START_UP_SECONDS, deadline_seconds))
    plan = await make_plan(client, requests, deadline_seconds=deadline_seconds, decide=False)
    for category, error in plan.checked.unreadable.values():
        # an organization's keys, tags or policy that the token may not read (or the
        # API did not answer for): no spec problem, a stop of the whole run
        raise RunStopped(category, error)
    # SSH keys, tags and flexible resources located by entry; the rest as plan has them
    issues = plan.checked.issues(spec_path)
    issues += [
        _issue(spec_path, problem)
        for problem in plan.problems
        if problem.field not in _REFERENCE_FIELDS
    ]
    if issues:
        raise SpecError(issues)
    return Preflight(plan=plan, checked=plan.checked)


def _issue(path: str, problem: LookupProblem) -> SpecIssue:
    hosts = list(problem.hostnames)
    named = ", ".join(hosts[:_NAMED])
    if len(hosts) > _NAMED:
        named += f" and {len(hosts) - _NAMED} more"
    return SpecIssue(
        file=path, message=problem.message, hostname=named or None, field=problem.field
    )
