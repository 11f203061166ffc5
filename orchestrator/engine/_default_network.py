"""The data center's default network, for an XML build whose spec names no network.

Every recorded and official ``build_from_spec`` sends exactly one
``<NetworkInterface>``, after reading ``GET data_centers/_/default_network``
(the Terraform provider does, before every build). An XML spec without an
interface may come up without an address (unconfirmed: the simulator plays
either reading, ``xml_without_interface``). So a build whose spec names no
network gets an interface on its data center's default network, read once per
data center per run; a spec located by zone has its zone's data center found
from ``GET zones`` (read once per run, only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from orchestrator.vm_request import Lookup, VmRequest

if TYPE_CHECKING:
    from orchestrator.engine._operation import Conductor

__all__ = ["DefaultNetworks"]


class DefaultNetworks:
    """Default network ids by data center, each read once (a failed read is tried again)."""

    def __init__(self, run: Conductor) -> None:
        self._run = run
        self._lock = anyio.Lock()
        self._by_data_center: dict[Lookup, str] = {}
        #: zone (by id and by permalink) -> its data center's id, once ``GET zones`` was read
        self._zones: dict[Lookup, Lookup] | None = None

    async def default_for(self, req: VmRequest) -> str | None:
        """The id of the default network of ``req``'s data center (API errors propagate);
        None for a zone ``GET zones`` does not list (the build's answer will name it)."""
        async with self._lock:  # one read per data center, even for VMs started together
            data_center = req.data_center or await self._data_center_of(req.zone)
            if data_center is None:
                return None
            known = self._by_data_center.get(data_center)
            if known is None:
                run = self._run
                network = await run.retried(lambda: run.api.get_default_network(data_center))
                known = self._by_data_center[data_center] = network.id
            return known

    async def _data_center_of(self, zone: Lookup | None) -> Lookup | None:
        if zone is None:  # pragma: no cover - a VmRequest always has a zone or a data center
            raise ValueError("a VM request names a zone or a data center")
        if self._zones is None:
            run = self._run
            zones = await run.retried(run.api.list_zones)
            found: dict[Lookup, Lookup] = {}
            for z in zones:
                if z.data_center is None:
                    continue
                dc = Lookup("id", z.data_center.id)
                found[Lookup("id", z.id)] = dc
                if z.permalink:
                    found[Lookup("permalink", z.permalink)] = dc
            self._zones = found
        return self._zones.get(zone)
