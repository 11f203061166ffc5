"""The VM list's page size: 200 asked, every reading of the API met, nothing missed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from orchestrator.errors import ApiError, InvalidRequest
from orchestrator.katapult import KatapultClient
from orchestrator.katapult._page_size import KNOWN, WIDE, PageSize
from orchestrator.simulator import SimulatorConfig, run_simulator
from orchestrator.simulator._config import VmListPerPage
from orchestrator.vm_request import Lookup

pytestmark = pytest.mark.anyio

ACME = Lookup("sub_domain", "acme")


def _config(reading: VmListPerPage, **kw: Any) -> SimulatorConfig:
    return dataclasses.replace(SimulatorConfig(seed=3), vm_list_per_page=reading, **kw)


@pytest.mark.parametrize(
    ("reading", "found", "requests"),
    [
        ("max_200", "honoured", 3),
        ("unlimited", "honoured", 3),
        ("capped_100", "capped", 5),
        ("max_100", "refused", 6),  # page 1 refused once, then 5 pages of 100
    ],
)
@pytest.mark.parametrize("large_set", [False, True])
async def test_every_vm_is_listed_once_on_every_reading(
    reading: VmListPerPage, found: str, requests: int, large_set: bool
) -> None:
    """450 VMs: pages of 200 where the API takes them, of the API's size where it caps
    them, of 100 after a refusal; with totals, or as a large set without them (the end is
    then a page shorter than the size the answer states)."""
    threshold = 100 if large_set else 1000
    async with run_simulator(_config(reading, large_set_threshold=threshold)) as sim:
        ids = [sim.state.add_existing_vm("acme", f"x-{i:03d}") for i in range(450)]
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            listed = [vm.id async for vm in client.list_vms(ACME)]
            first_requests = client.requests_total
            again = [vm.id async for vm in client.list_vms(ACME)]
            sizes = client.vm_page_size
    assert listed == ids
    assert again == ids
    assert first_requests == requests
    assert sizes.reading == found
    assert sizes.evidence
    assert sizes.value == (WIDE if found == "honoured" else KNOWN)


async def test_one_page_is_answered_at_the_size_the_api_takes() -> None:
    """vm_list_page: a page of 200 refused is asked at 100 once, and says so; the next
    page is asked at 100 from the start."""
    async with run_simulator(_config("max_100")) as sim:
        for i in range(150):
            sim.state.add_existing_vm("acme", f"x-{i:03d}")
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            first = await client.vm_list_page(ACME)
            second = await client.vm_list_page(ACME, page=2, per_page=first.per_page)
            assert client.requests_total == 3
    assert (first.per_page, len(first.items), first.last) == (KNOWN, 100, False)
    assert (len(second.items), second.last) == (50, True)


async def test_a_refusal_of_another_argument_is_the_lists_own() -> None:
    """The annotation filter refused (400 invalid_argument naming ``annotations``): not
    the page size's; it propagates at once, and the page size is left as it was."""
    async with run_simulator(_config("max_200", annotation_filter="refused_400")) as sim:
        async with KatapultClient(api_url=sim.url, token=sim.config.token) as client:
            with pytest.raises(InvalidRequest) as caught:
                [vm async for vm in client.list_vms(ACME, annotations={"k": "v"})]
            assert client.requests_total == 1
            sizes = client.vm_page_size
    assert caught.value.code == "invalid_argument"
    assert (sizes.value, sizes.reading) == (WIDE, None)


def _refusal(status: int, code: str, detail: object) -> ApiError:
    return ApiError(http_status=status, code=code, description="refused", detail=detail)


@pytest.mark.parametrize(
    ("error", "asked", "may_be"),
    [
        (_refusal(400, "invalid_argument", {"path": ["per_page"]}), WIDE, True),
        (_refusal(400, "invalid_argument", {"argument": {"name": "per_page"}}), WIDE, True),
        (_refusal(400, "invalid_argument", None), WIDE, True),  # names nothing: may be
        (_refusal(422, "validation_error", {"errors": ["too many"]}), WIDE, True),
        (_refusal(400, "invalid_argument", {"path": ["annotations"]}), WIDE, False),
        (_refusal(400, "invalid_argument", {"path": ["per_page"]}), KNOWN, False),
        (_refusal(404, "organization_not_found", None), WIDE, False),
        (_refusal(500, "internal_server_error", None), WIDE, False),
    ],
)
def test_what_may_be_a_refusal_of_the_page_size(error: ApiError, asked: int, may_be: bool) -> None:
    """Only a 400 invalid_argument or 422 validation_error to a page wider than the known
    100, naming per_page or nothing, is asked again at 100."""
    assert PageSize().may_be_refusal(error, asked) is may_be
