"""After a run: each built VM's IP addresses, from one VM list per organization.

The organization's VM list carries every VM's ``ip_addresses`` and zone, 100 VMs
a page: a fleet of N VMs costs about N/100 requests, not one GET per VM.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping

from orchestrator._logging import get_logger
from orchestrator.engine._retry import retry_get
from orchestrator.errors import ApiError, TransportError
from orchestrator.katapult import KatapultClient, VirtualMachineSummary
from orchestrator.report import VmResult
from orchestrator.vm_request import Lookup

__all__ = ["add_addresses"]

_log = get_logger("orchestrator.engine")


async def add_addresses(
    client: KatapultClient,
    results: list[VmResult],
    organizations: Mapping[str, Lookup],
    *,
    deadline_seconds: float,
    wait_initial: float = 0.2,
    wait_max: float = 10.0,
) -> list[VmResult]:
    """``results``, each VM's addresses and data center filled in (in place; returned).

    ``organizations`` maps a result's key to its organization. Only
    organizations with at least one VM id in ``results`` are listed. A list
    that cannot be read (after GET retries for ``deadline_seconds``) leaves its
    VMs as they were and logs ``orchestrator.addresses.unavailable``: the VMs
    are built, only their addresses are unknown. The list is replaced entry by
    entry, and of each listed VM only what the report needs is kept, so a run
    of many VMs does not hold its results, or its VM list, twice.
    """
    wanted: dict[Lookup, set[str]] = defaultdict(set)
    for result in results:
        org = organizations.get(result.key)
        if result.virtual_machine is not None and org is not None:
            wanted[org].add(result.virtual_machine.id)
    found: dict[str, _Listed] = {}
    for org, ids in wanted.items():
        try:
            found.update(
                await retry_get(
                    functools.partial(_listed, client, org, ids),
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


async def _listed(client: KatapultClient, org: Lookup, ids: set[str]) -> dict[str, _Listed]:
    """The VMs of ``ids`` in the organization's list (every page is read)."""
    return {vm.id: _essentials(vm) async for vm in client.list_vms(org) if vm.id in ids}


def _essentials(vm: VirtualMachineSummary) -> _Listed:
    data_center = vm.zone.data_center if vm.zone is not None else None
    return (
        vm.fqdn,
        [ip.address for ip in vm.ip_addresses if ip.address],
        data_center.permalink if data_center is not None else None,
    )


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
    return result.model_copy(update={"virtual_machine": filled})
