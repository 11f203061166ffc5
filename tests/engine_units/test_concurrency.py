"""The in-flight limit sized by Little's law, on a fake clock and a real rate budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from orchestrator.engine._concurrency import AdaptiveLimiter
from orchestrator.engine.budget import RateBudget
from orchestrator.engine.events import EventKind, ProvisionEvent

from ._rate_sim import Info
from ._virtual_time import virtual_backend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """The async tests here run on virtual time."""
    return virtual_backend()


@dataclass
class FakeClock:
    """A clock that moves only when told."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


async def told(budget: RateBudget, permitted: int) -> RateBudget:
    """Let one request through ``budget`` and answer it with ``permitted``."""
    await budget.acquire_kind("poll")
    budget.release(None, Info(200, permitted, permitted - 1))
    return budget


def event(kind: EventKind, key: str, at: float) -> ProvisionEvent:
    return ProvisionEvent(kind=kind, key=key, hostname=key, at=at)


def limiter(budget: RateBudget, clock: FakeClock, **kwargs: Any) -> AdaptiveLimiter:
    options: dict[str, Any] = {"cap": None, "expected_seconds": 45.0, "clock": clock}
    options.update(kwargs)
    return AdaptiveLimiter(budget=budget, **options)


async def test_before_the_budget_is_known_the_limit_is_the_initial_one() -> None:
    """Without P the limit stays at its initial value (within the user's cap)."""
    clock = FakeClock()
    assert limiter(RateBudget(window_seconds=60), clock).refresh() == 200
    assert limiter(RateBudget(window_seconds=60), clock, cap=50).refresh() == 50


async def test_the_limit_spends_the_budget_over_the_expected_build_time() -> None:
    """P=1000 per 60 s, two requests a build, 45 s in flight, headroom 1.5: 563 builds."""
    budget = await told(RateBudget(window_seconds=60), 1000)
    in_flight = limiter(budget, FakeClock())
    assert in_flight.refresh() == 563  # ceil(1000 / 60 / 2 * 45 * 1.5)
    assert in_flight.flight_seconds() == 45.0


async def test_measured_times_in_flight_replace_the_expected_one() -> None:
    """Builds seen done 10 s after their 201 shrink the limit to what 10 s needs."""
    budget = await told(RateBudget(window_seconds=60), 1000)
    clock = FakeClock()
    in_flight = limiter(budget, clock)
    for i in range(5):
        in_flight(event("submitted", f"vm-{i}", 100.0 + i))
        in_flight(event("succeeded", f"vm-{i}", 110.0 + i))
    clock.now = 200.0
    assert in_flight.flight_seconds() == pytest.approx(10.0)
    assert in_flight.limit == 125  # ceil(1000 / 60 / 2 * 10 * 1.5)


async def test_builds_slower_than_expected_raise_the_limit_before_any_finishes() -> None:
    """Builds in flight longer than expected make W at least twice their mean age."""
    budget = await told(RateBudget(window_seconds=60), 1000)
    clock = FakeClock()
    in_flight = limiter(budget, clock)
    for i in range(100):
        in_flight(event("submitted", f"vm-{i}", 4.0 + (i % 2) * 2.0))  # at 4 s and 6 s
    clock.now = 105.0  # mean age 100 s
    in_flight(event("building", "vm-0", clock.now))
    assert in_flight.flight_seconds() == pytest.approx(200.0)
    assert in_flight.limit == 2500
    for i in range(100):  # they finish; failures and the like teach no time in flight
        in_flight(event("failed" if i % 2 else "succeeded", f"vm-{i}", 110.0))
    assert in_flight.flight_seconds() == pytest.approx(106.0)  # the even ones, from 4 s


async def test_a_user_cap_and_the_bounds_hold() -> None:
    """The limit never exceeds the user's cap or the ceiling, nor falls below the floor."""
    budget = await told(RateBudget(window_seconds=60), 1000)
    assert limiter(budget, FakeClock(), cap=100).refresh() == 100
    assert limiter(budget, FakeClock(), ceiling=300).refresh() == 300
    slow = await told(RateBudget(window_seconds=60), 2)
    assert limiter(slow, FakeClock(), floor=4).refresh() == 4


async def test_nonsense_settings_are_refused() -> None:
    """A cap below one, a floor above the ceiling, a non-positive time: ValueError."""
    budget = RateBudget(window_seconds=60)
    for kwargs in ({"cap": 0}, {"floor": 10, "ceiling": 5}, {"expected_seconds": 0.0}):
        with pytest.raises(ValueError, match="must"):
            limiter(budget, FakeClock(), **kwargs)


async def test_vms_beyond_the_limit_wait_until_it_grows() -> None:
    """Holders beyond the limit wait; a larger target lets them in without anyone leaving."""
    budget = await told(RateBudget(window_seconds=60), 6)  # 6 per minute: the floor, 4
    clock = FakeClock()
    in_flight = limiter(budget, clock, floor=4)
    assert in_flight.refresh() == 4
    entered: list[int] = []
    release = anyio.Event()

    async def hold(i: int) -> None:
        async with in_flight:
            entered.append(i)
            await release.wait()

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(hold, i)
        await anyio.wait_all_tasks_blocked()
        assert len(entered) == 4
        assert in_flight.borrowed == 4
        for i in range(4):  # four builds in flight for 1000 s: the limit grows
            in_flight(event("submitted", f"vm-{i}", 0.0))
        clock.now = 1000.0
        in_flight(event("building", "vm-0", clock.now))
        await anyio.wait_all_tasks_blocked()
        assert len(entered) == 6
        release.set()
