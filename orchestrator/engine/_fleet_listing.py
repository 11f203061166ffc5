"""Finding the VMs a run must look at: the fleet's own listing, and what to fall back on.

An organization may hold thousands of VMs that are not the fleet's; reading its
whole VM list (200 VMs a request, 100 where the API refuses more: see
:mod:`orchestrator.katapult._page_size`) costs a twentieth to a tenth of a
minute's budget at 10,000 VMs. The VM list takes an ``annotations[][key]``/``annotations[][value]``
filter, and every build of the fleet carries its identity in the
``orchestrator.spec`` annotation, so the fleet's VMs can be listed alone.
Whether the filter is honoured, and whether the API copies a build's
annotations onto its VM at all, are unconfirmed. So, per run:

* **the filter** is found out once, by one request: the list filtered by an
  annotation value no VM can carry (a random one). Anything listed means the
  filter is ignored. (An empty organization answers nothing either way; both
  readings list the same nothing there, so "honoured" is what is said.) An API
  that refuses the filter's arguments (400/422: ``invalid_argument``,
  ``validation_error``...) has the reading "refused": it is met as "ignored"
  (the fallbacks below), never as the organization's failure, and never asked
  again this run.
* **filter honoured**: the fleet is listed by its identity. Its listing is
  enough for a build only once it is proven that the API copies annotations:
  by the listing itself (a VM in it carries the fleet's annotation), or by any
  VM of the organization carrying an ``orchestrator.spec`` annotation (one
  more filtered request, by the key alone). A hostname of the spec held by a
  VM outside the fleet is then met as the API's refusal of a taken hostname
  (README, "How it avoids duplicates", rule 5). A delete needs every holder of
  a hostname of the spec (another's VM is reported ``not_ours``): the
  hostnames the fleet's listing lacks are looked up as below.
* **filter honoured, and no VM of the organization carries
  ``orchestrator.spec``** (the key-alone request lists none), for a build
  whose journal holds none of the spec's hostnames: the first fleet in the
  organization, or an API that keeps no annotations. Nothing a whole read
  could find would be provably ours then (a VM without annotations and
  without a row of this fleet never is): a hostname held by another VM can
  only end a ``conflict``, and the API's refusal of the taken hostname says
  so as surely as a whole read would (rule 5, as where the copy is proven).
  So nothing more is read (at 10,000 VMs a whole read is 50 requests that
  teach the build nothing). ``plan`` and deletes still find every holder.
* **otherwise** (filter ignored, copying not proven, or a delete's missing
  hostnames): one fqdn lookup per hostname, or the organization's whole list
  read once, whichever costs fewer requests (the list's first page, or the
  filter probe, tells how many VMs the organization holds). An fqdn lookup is
  also the VM's one look (state and annotations): it is not repeated.

The organization is never read whole twice in one run: the addresses at the
end come from the looks, from the fleet's listing, or from one GET per VM
(:mod:`orchestrator.engine._addresses`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio

from orchestrator.engine._ownership import FLEET_KEY
from orchestrator.engine._retry import retry_get
from orchestrator.errors import ApiError, NotFound, TransportError
from orchestrator.katapult import KatapultClient, VirtualMachine, VmPage
from orchestrator.katapult._page_size import PageSize
from orchestrator.vm_request import Lookup

__all__ = ["FilterReading", "FleetFinder", "ListedBy", "OrgListing"]

FilterReading = Literal["honoured", "ignored", "refused"]
#: how an organization's VMs of the spec were found: the fleet's filtered listing,
#: the organization's whole list, one fqdn lookup per hostname, or the fleet's
#: listing and fqdn lookups for the hostnames it lacked
ListedBy = Literal["fleet", "organization", "fqdn", "fleet+fqdn"]

#: VMs a "large set" (the API gives no total past 1,000 VMs) is taken to hold at least
_LARGE_SET_VMS = 1_000
#: fqdn lookups sent at once
_LOOKS_AT_ONCE = 16
#: answers of an API that refuses the filter's arguments (not an organization's fault)
_REFUSED_ARGUMENTS = frozenset(
    {"invalid_argument", "missing_required_argument", "validation_error"}
)

T = TypeVar("T")


@dataclass(slots=True)
class OrgListing:
    """What a run found of one organization's VMs before deciding anything."""

    listed_by: ListedBy
    #: hostname (lower-cased) -> VM id, of the VMs found (see ``complete``)
    existing: dict[str, str] = field(default_factory=dict)
    #: VM id -> the VM as an fqdn lookup showed it (its one look: not repeated)
    looked: dict[str, VirtualMachine] = field(default_factory=dict)
    #: ids of VMs an fqdn lookup found in the trash (``406 object_in_trash`` names the
    #: VM in ``detail.trash_object.object_id``): their look too
    trashed: set[str] = field(default_factory=set)
    #: the organization's whole VM list was read (never again this run)
    whole: bool = False
    #: pages of the organization's whole VM list, when known (an estimate for large sets)
    pages: int | None = None


class FleetFinder:
    """Lists what each organization holds for a run's fleet; finds out the filter once."""

    def __init__(
        self,
        client: KatapultClient,
        *,
        fleet: str | None,
        retry: Mapping[str, Any],
    ) -> None:
        self._client = client
        self._fleet = fleet
        self._retry = dict(retry)
        self._lock = anyio.Lock()
        #: whether the VM list honours its annotation filter (None: not found out yet)
        self.filter: FilterReading | None = None
        self.filter_evidence: str | None = None
        #: a VM carrying an orchestrator annotation was listed: the API copies them
        self.copies: bool | None = None
        self.copies_evidence: str | None = None
        #: organization value -> how its VMs were found
        self.listed_by: dict[str, ListedBy] = {}

    @property
    def page_size(self) -> PageSize:
        """The VM list's page size, and what the API said of a wide one."""
        return self._client.vm_page_size

    async def _get(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_get(call, **self._retry)

    async def _find_out_filter(self, org: Lookup) -> VmPage | None:
        """One request: the list filtered by a value no VM can carry. An API that refuses
        the filter's arguments (400/422) does not honour it: said so, None returned."""
        nonce = f"probe-{secrets.token_hex(8)}"
        try:
            page = await self._get(
                lambda: self._client.vm_list_page(org, per_page=1, annotations={FLEET_KEY: nonce})
            )
        except ApiError as exc:
            if exc.code not in _REFUSED_ARGUMENTS:
                raise
            self.filter = "refused"
            self.filter_evidence = (
                f"the VM list of {org.value} refused the {FLEET_KEY} filter "
                f"({exc.http_status} {exc.code})"
            )
            return None
        if self.filter is None:
            if page.items:
                self.filter = "ignored"
                self.filter_evidence = (
                    f"the VM list of {org.value} filtered by an {FLEET_KEY} value no VM "
                    "carries still listed VMs"
                )
            else:
                self.filter = "honoured"
                self.filter_evidence = (
                    f"the VM list of {org.value} filtered by an {FLEET_KEY} value no VM "
                    "carries listed none"
                )
        return page

    async def list_org(
        self,
        org: Lookup,
        hostnames: Sequence[str],
        *,
        domain: str | None,
        complete: bool,
        likely: Set[str] = frozenset(),
    ) -> OrgListing:
        """What ``org`` holds for ``hostnames`` (lower-cased keys of the spec).

        ``complete``: every VM holding one of them must be found (a delete), not
        only the fleet's. ``likely``: hostnames the fleet's journal says it built
        (each found by a listing costs one more GET, its look; an fqdn lookup is
        the look). Errors of the API propagate (the caller dooms the organization).
        """
        probe: VmPage | None = None
        async with self._lock:
            if self.filter is None:
                probe = await self._find_out_filter(org)
        if self.filter != "honoured":
            listing = await self._fallback(org, hostnames, domain, likely, probe=probe)
        else:
            listing = await self._by_fleet(org, hostnames, domain, likely, complete=complete)
        self.listed_by[org.value] = listing.listed_by
        return listing

    async def _by_fleet(
        self,
        org: Lookup,
        hostnames: Sequence[str],
        domain: str | None,
        likely: Set[str],
        *,
        complete: bool,
    ) -> OrgListing:
        fleet = self._fleet
        existing: dict[str, str] = {}
        if fleet is not None:

            async def fleet_listing() -> dict[str, str]:
                return {
                    vm.hostname.lower(): vm.id
                    async for vm in self._client.list_vms(org, annotations={FLEET_KEY: fleet})
                    if vm.hostname
                }

            existing = await self._get(fleet_listing)
            if existing and self.copies is None:
                self.copies = True
                self.copies_evidence = (
                    f"the VM list of {org.value} filtered by {FLEET_KEY}={fleet} listed "
                    "this fleet's VMs"
                )
        unmarked = False  # no VM of the organization carries any fleet's identity
        if self.copies is None:
            try:
                page: VmPage | None = await self._get(
                    lambda: self._client.vm_list_page(
                        org, per_page=1, annotations={FLEET_KEY: None}
                    )
                )
            except ApiError as exc:
                if exc.code not in _REFUSED_ARGUMENTS:
                    raise
                page = None  # a filter by the key alone refused: nothing proven
            if page is not None and page.items:
                self.copies = True
                self.copies_evidence = (
                    f"the VM list of {org.value} filtered by the key {FLEET_KEY} listed VMs "
                    "carrying it"
                )
            unmarked = page is not None and not page.items
        missing = [h for h in hostnames if h not in existing]
        if self.copies and not (complete and missing):
            return OrgListing("fleet", existing=existing)
        if unmarked and not complete and not existing and not any(h in likely for h in hostnames):
            # the first fleet here, or an API that keeps no annotations, with nothing in
            # the journal: see the module docstring
            return OrgListing("fleet", existing=existing)
        if not self.copies:
            # the filter cannot be trusted to find the fleet: as if there were none
            return await self._fallback(org, hostnames, domain, likely)
        found = await self._fallback(org, missing, domain, likely)
        if found.listed_by == "organization":
            return found  # (the whole list holds the fleet's VMs too)
        found.existing.update(existing)
        found.listed_by = "fleet+fqdn"
        return found

    async def _fallback(
        self,
        org: Lookup,
        hostnames: Sequence[str],
        domain: str | None,
        likely: Set[str],
        *,
        probe: VmPage | None = None,
    ) -> OrgListing:
        """The cheaper of one fqdn lookup per hostname and the organization's whole list.

        ``probe``: an answer that ignored its filter (it tells the organization's size).
        """
        first: VmPage | None = None
        pages = self._pages(probe) if probe is not None else None
        if pages is None:
            first = await self._get(lambda: self._client.vm_list_page(org))
            pages = self._pages(first)
        # fqdn lookups cost one request per hostname, looks included; the whole list
        # its pages plus one look at each VM it finds (those the journal built, likely)
        found = sum(1 for h in hostnames if h in likely)
        if domain is not None and (pages is None or len(hostnames) <= pages + found):
            return await self._by_fqdn(hostnames, domain, pages)
        return await self._whole(org, pages, first)

    def _pages(self, page: VmPage) -> int | None:
        """Pages the organization's whole list takes at the VM list's page size."""
        return _pages_of(page, self._client.vm_page_size.value)

    async def _whole(self, org: Lookup, pages: int | None, first: VmPage | None) -> OrgListing:
        """The organization's whole list (from its second page when ``first`` was read)."""
        existing: dict[str, str] = {}
        start = 1
        if first is not None:
            existing = {vm.hostname.lower(): vm.id for vm in first.items if vm.hostname}
            start = 2
            if first.last:
                return OrgListing("organization", existing=existing, whole=True, pages=1)

        # the rest at the size the first page was answered at (the API's numbering)
        size = first.per_page if first is not None else None

        async def rest() -> dict[str, str]:
            found = dict(existing)
            page, per_page = start, size
            while True:
                answer = await self._client.vm_list_page(org, page=page, per_page=per_page)
                per_page = answer.per_page
                found.update({vm.hostname.lower(): vm.id for vm in answer.items if vm.hostname})
                if answer.last:
                    return found
                page += 1

        found = await self._get(rest)
        return OrgListing("organization", existing=found, whole=True, pages=pages)

    async def _by_fqdn(
        self, hostnames: Sequence[str], domain: str, pages: int | None
    ) -> OrgListing:
        listing = OrgListing("fqdn", pages=pages)
        failed: list[Exception] = []
        limiter = anyio.CapacityLimiter(_LOOKS_AT_ONCE)

        async def look(hostname: str) -> None:
            fqdn = Lookup("fqdn", f"{hostname}.{domain}")
            async with limiter:
                if failed:
                    return
                try:
                    vm = await self._get(lambda: self._client.get_vm(fqdn))
                except NotFound:
                    return
                except (ApiError, TransportError) as exc:
                    # in the trash: as a listing, which does not show the trash (the
                    # journal's rows find a VM of ours there, and its look is this
                    # answer); anything else: raised below
                    if not (isinstance(exc, ApiError) and exc.code == "object_in_trash"):
                        failed.append(exc)
                    elif (trashed := _trashed_id(exc)) is not None:
                        listing.trashed.add(trashed)
                    return
            listing.existing[hostname] = vm.id
            listing.looked[vm.id] = vm

        async with anyio.create_task_group() as tg:
            for hostname in hostnames:
                tg.start_soon(look, hostname)
        if failed:
            raise failed[0]
        return listing


def _trashed_id(exc: ApiError) -> str | None:
    """The VM id a ``406 object_in_trash`` names (``detail.trash_object.object_id``)."""
    detail = exc.detail if isinstance(exc.detail, dict) else {}
    trash = detail.get("trash_object")
    object_id = trash.get("object_id") if isinstance(trash, dict) else None
    return object_id if isinstance(object_id, str) and object_id else None


def _pages_of(page: VmPage, per_page: int) -> int | None:
    """Pages of ``per_page`` the organization's whole list takes (None: unknown)."""
    pagination = page.pagination
    if pagination is None:
        return None
    if pagination.total is not None:
        return max(1, math.ceil(pagination.total / per_page))
    if pagination.large_set:
        return math.ceil(_LARGE_SET_VMS / per_page)
    return None
