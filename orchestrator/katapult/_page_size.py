"""How many VMs to ask for per page of the VM list, found out once per client.

An organization of 10,000 VMs takes 100 requests to read whole at
``per_page=100``, the size the real API is known to take (README: "100
works" [seen]). Katapult's API is built on Apia, whose paginated endpoints
validate ``per_page <= maximum_per_page`` with a framework default of 200
(``apia/dsls/endpoint.rb``); whether Katapult's VM list keeps that default is
unconfirmed. So the VM list is asked for :data:`WIDE` VMs a page until the API
says otherwise, and every reading is met:

* **honoured**: pages of 200, half the requests;
* **capped**: the answer's ``pagination.per_page`` (Apia always states it) is
  smaller than asked: the pages are walked by the API's own numbering, which
  is consistent at any size, and the list is complete as before (a page is the
  last by ``total_pages``, or by being shorter than the size the answer
  states, never than the size asked);
* **refused**: a ``400 invalid_argument`` or ``422 validation_error`` to the
  first page asked at 200 (Apia names ``per_page`` in ``detail.path``; a
  refusal that names nothing is taken for the page size's too) is asked again
  at :data:`KNOWN`, once; every later list of the client asks 100. Only when
  100 is answered is it said to be the page size's refusal; a refusal at 100
  is the list's own and propagates.
"""

from __future__ import annotations

from typing import Literal

from orchestrator.errors import ApiError

__all__ = ["KNOWN", "WIDE", "PageSize", "PageSizeReading"]

#: VMs per page the real API is known to take
KNOWN = 100
#: VMs per page asked for until the API refuses or caps it (Apia's default maximum)
WIDE = 200
#: answers of an API that refuses a query argument
_REFUSALS = frozenset({(400, "invalid_argument"), (422, "validation_error")})

PageSizeReading = Literal["honoured", "capped", "refused"]


class PageSize:
    """The VM list's page size for one client, and what the API said of it."""

    __slots__ = ("evidence", "reading", "value")

    def __init__(self, value: int = WIDE) -> None:
        if value < 1:
            raise ValueError("a page size is at least 1")
        self.value = value
        #: what the API said of a page wider than :data:`KNOWN` (None: not asked yet)
        self.reading: PageSizeReading | None = None
        self.evidence: str | None = None

    def may_be_refusal(self, exc: ApiError, asked: int) -> bool:
        """Whether ``exc``, the answer to a first page asked at ``asked``, may be the
        API's refusal of the page size (to be asked again at :data:`KNOWN`)."""
        if asked <= KNOWN or (exc.http_status, exc.code) not in _REFUSALS:
            return False
        named = _named_arguments(exc.detail)
        return not named or "per_page" in named

    def refused(self, exc: ApiError, asked: int) -> None:
        """The first page asked at ``asked`` was refused and answered at :data:`KNOWN`."""
        self.value = KNOWN
        self.reading = "refused"
        self.evidence = (
            f"the VM list refused per_page={asked} ({exc.http_status} {exc.code}) "
            f"and answered per_page={KNOWN}"
        )

    def answered(self, asked: int, stated: int | None, count: int) -> None:
        """A page asked at ``asked`` came with ``count`` items and ``pagination.per_page``
        ``stated``."""
        if asked <= KNOWN or self.reading is not None:
            return
        if stated is not None and stated < asked:
            self.value = max(stated, 1)
            self.reading = "capped"
            self.evidence = f"the VM list answered per_page={stated} when asked for {asked}"
        elif stated == asked or count > KNOWN:
            self.reading = "honoured"
            self.evidence = f"the VM list answered per_page={asked} as asked"


def _named_arguments(detail: object) -> set[str]:
    """The arguments an Apia ``invalid_argument`` detail names (``path``, ``argument``)."""
    if not isinstance(detail, dict):
        return set()
    names: set[str] = set()
    path = detail.get("path")
    if isinstance(path, list):
        names.update(str(part) for part in path)
    argument = detail.get("argument")
    if isinstance(argument, dict) and isinstance(argument.get("name"), str):
        names.add(argument["name"])
    return names
