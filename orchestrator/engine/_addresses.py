"""After a run: each built VM's IP addresses, from the fleet's VM list (or what is cheaper).

A VM the run looked at (every VM found for a hostname is looked at once) has its
addresses already; the others (built in this run) are read, per organization,
as its :class:`AddressSource` says: the VM list filtered by the fleet's
identity (100 VMs a page: a fleet of N VMs costs about N/100 requests), the
organization's whole list (only where the run has not read it whole already,
and only when that is cheaper than the next), or one GET per VM.
"""

from __future__ import annotations

import functools
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from orchestrator._logging import get_logger
from orchestrator.engine._compact import compact
from orchestrator.engine._ownership import FLEET_KEY
from orchestrator.engine._retry import retry_get
from orchestrator.errors import ApiError, NotFound, TransportError
from orchestrator.katapult import KatapultClient, VirtualMachine, VirtualMachineSummary
from orchestrator.report import VmResult
from orchestrator.vm_request import Lookup

__all__ = ["AddressSource", "add_addresses"]

_log = get_logger("orchestrator.engine")
#: GETs of single VMs sent at once
_LOOKS_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class AddressSource:
    """Where an organization's missing addresses may be read from.

    ``fleet``: the fleet's identity, when its filtered listing can be trusted
    (the filter honoured, annotations copied); ``whole_read``: the run read the
    organization's whole list already (never again); ``pages``: the pages that
    whole list takes, when known.
    """

    fleet: str | None = None
    whole_read: bool = False
    pages: int | None = None


#: without a source: the organization's whole list, as runs before issue 23 read it
_WHOLE_LIST = AddressSource()


async def add_addresses(
    client: KatapultClient,
    results: list[VmResult],
    organizations: Mapping[str, Lookup],
    *,
    deadline_seconds: float,
    wait_initial: float = 0.2,
    wait_max: float = 10.0,
    sources: Mapping[Lookup, AddressSource] | None = None,
) -> list[VmResult]:
    """``results``, each VM's addresses and data center filled in (in place; returned).

    ``organizations`` maps a result's key to its organization; ``sources``
    says how each organization's VMs may be read (default: its whole list).
    Only VMs without addresses are sought, and only organizations with such a
    VM are read. A list
    that cannot be read (after GET retries for ``deadline_seconds``) leaves its
    VMs as they were and logs ``orchestrator.addresses.unavailable``: the VMs
    are built, only their addresses are unknown. The list is replaced entry by
    entry, and of each listed VM only what the report needs is kept, so a run
    of many VMs does not hold its results, or its VM list, twice.
    """
    wanted: dict[Lookup, set[str]] = defaultdict(set)
    for result in results:
        org = organizations.get(result.key)
        ref = result.virtual_machine
        if ref is not None and org is not None and not ref.ip_addresses:
            wanted[org].add(ref.id)
    found: dict[str, _Listed] = {}
    for org, ids in wanted.items():
        source = (sources or {}).get(org, _WHOLE_LIST)
        try:
            found.update(
                await retry_get(
                    functools.partial(_read, client, org, ids, source),
                    deadline_seconds=deadline_seconds,
                    wait_initial=wait_initial,
                    wait_max=wait_max,
                )
            )
        except (ApiError, TransportError) as exc:
            _log.warning(
                "orchestrator.addresses.unavailable",
                organization=org.value,
                vms=len(ids),
                error=str(exc),
            )
    for i, result in enumerate(results):
        results[i] = _with_addresses(result, found)
    return results


#: what the report takes from a listed VM: its fqdn, addresses and data center permalink
_Listed = tuple[str | None, list[str], str | None]


async def _read(
    client: KatapultClient, org: Lookup, ids: set[str], source: AddressSource
) -> dict[str, _Listed]:
    """The VMs of ``ids``, read as ``source`` says."""
    if source.fleet is not None:
        filtered = {FLEET_KEY: source.fleet}
        return {
            vm.id: _essentials(vm)
            async for vm in client.list_vms(org, annotations=filtered)
            if vm.id in ids
        }
    if not source.whole_read and (source.pages is None or source.pages <= len(ids)):
        return {vm.id: _essentials(vm) async for vm in client.list_vms(org) if vm.id in ids}
    return await _looked_at(client, ids)


async def _looked_at(client: KatapultClient, ids: set[str]) -> dict[str, _Listed]:
    """One GET per VM (a VM gone since is left out)."""
    found: dict[str, _Listed] = {}
    failed: list[ApiError | TransportError] = []
    limiter = anyio.CapacityLimiter(_LOOKS_AT_ONCE)

    async def look(vm_id: str) -> None:
        async with limiter:
            if failed:
                return
            try:
                vm = await client.get_vm(Lookup("id", vm_id))
            except NotFound:
                return
            except (ApiError, TransportError) as exc:
                if not (isinstance(exc, ApiError) and exc.code == "object_in_trash"):
                    failed.append(exc)  # (raised below, not as a group: retried as one GET)
                return
        found[vm_id] = _essentials(vm)

    async with anyio.create_task_group() as tg:
        for vm_id in ids:
            tg.start_soon(look, vm_id)
    if failed:
        raise failed[0]
    return found


def _essentials(vm: VirtualMachineSummary | VirtualMachine) -> _Listed:
    data_center = vm.zone.data_center if vm.zone is not None else None
    return (
        vm.fqdn,
        [ip.address for ip in vm.ip_addresses if ip.address],
        _word(data_center.permalink if data_center is not None else None),
    )


def _word(text: str | None) -> str | None:
    """``text``, one copy for all the VMs that name it (a data center's permalink)."""
    return None if text is None else sys.intern(text)


def _with_addresses(result: VmResult, found: Mapping[str, _Listed]) -> VmResult:
    ref = result.virtual_machine
    listed = found.get(ref.id) if ref is not None else None
    if ref is None or listed is None:
        return result
    fqdn, addresses, data_center = listed
    filled = ref.model_copy(
        update={
            "fqdn": ref.fqdn or fqdn,
            "ip_addresses": addresses,
            "data_center": data_center or ref.data_center,
        }
    )
    return compact(result.model_copy(update={"virtual_machine": filled}))
