"""How many builds to keep in flight: as many as it takes to spend the rate budget.

By Little's law, a pipeline that completes ``λ`` builds per second, each
staying in flight ``W`` seconds, holds ``L = λ·W`` builds on average. The rate
budget allows ``λ = P / window / c`` builds per second (``P`` requests per
window, ``c`` requests per build: its POST and the poll that sees it done),
so keeping fewer than ``λ·W`` in flight leaves budget unspent, and keeping
many more only makes builds wait in line for it. :class:`AdaptiveLimiter`
learns both factors during the run and keeps the limit at ``λ·W·headroom``:

* ``P`` and the window from the rate budget (the server's headers), less
  what other clients of the same token are seen to spend per window;
* ``W`` from the builds themselves (a progress hook sees each one submitted
  and finished): the mean time from the 201 to the final outcome of recent
  builds, but never less than twice the mean age of the builds in flight.
  The latter matters at the start, when builds slower than expected have not
  finished yet: their age is all there is to learn from, and in a steady
  pipeline the mean age is half the time in flight. Before anything is known,
  ``W`` is the expected build time.

The time a VM waits for the budget before its POST is not part of ``W``, so a
limit set too high does not feed on itself. A limit the user sets stays a hard
cap; the chosen one is bounded by ``floor`` and ``ceiling`` (5,000 by default:
at the real API's 1,000 requests a minute, enough for builds of up to about
seven minutes, and a bound on the memory a run without a rate limit, where
Little's law asks for no bound at all, keeps in flight).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from orchestrator.engine._loop import loop_time

if TYPE_CHECKING:
    from orchestrator.engine.budget import RateBudget
    from orchestrator.engine.events import ProvisionEvent

__all__ = ["AdaptiveLimiter", "in_flight_for"]

#: events after which a build is no longer in flight
_FINAL = frozenset({"succeeded", "deleted", "purged", "failed", "cancelled", "skipped"})
#: events that start a build's time in flight (the 201, or a VM found by hostname)
_STARTED = frozenset({"submitted", "adopted"})


def in_flight_for(
    *,
    permitted: int,
    window_seconds: float,
    flight_seconds: float,
    cap: int | None = None,
    requests_per_build: float = 2.0,
    headroom: float = 1.5,
    floor: int = 4,
    ceiling: int = 5_000,
) -> int:
    """The Little's-law number of builds in flight that spends ``permitted`` per window.

    ``λ·W·headroom`` with ``λ = permitted / window_seconds / requests_per_build``
    and ``W = flight_seconds``, within ``[floor, ceiling]`` and at most ``cap``.
    """
    builds_per_second = permitted / window_seconds / requests_per_build
    wanted = builds_per_second * flight_seconds * headroom
    value = min(ceiling, max(floor, math.ceil(wanted - 1e-9)))  # (float noise must not add one)
    return value if cap is None else min(cap, value)


class AdaptiveLimiter:
    """A capacity limiter whose size follows Little's law (see the module docstring).

    Use it as ``async with limiter:`` around a VM's whole life in flight (or
    :meth:`acquire_on_behalf_of` before starting the VM's task, so that VMs
    still to go cost no waiting task, and :meth:`release_on_behalf_of` when
    the VM is done), and pass it the run's :class:`ProvisionEvent` stream (it
    is a progress hook).
    ``cap`` is the user's ``max_in_flight`` (None: no cap but ``ceiling``);
    ``expected_seconds`` the build time assumed until one is measured;
    ``requests_per_build`` the budget a build costs (two when nothing goes
    wrong); ``headroom`` the factor over the Little's-law figure, since an
    idle budget costs wall time while a few builds too many cost nothing.
    """

    __slots__ = (
        "_budget",
        "_cap",
        "_ceiling",
        "_clock",
        "_cost",
        "_expected",
        "_flights",
        "_flights_sum",
        "_floor",
        "_headroom",
        "_limiter",
        "_refreshed_at",
        "_started",
        "_started_sum",
    )

    def __init__(
        self,
        *,
        budget: RateBudget,
        cap: int | None,
        expected_seconds: float,
        clock: Callable[[], float] = loop_time,
        requests_per_build: float = 2.0,
        headroom: float = 1.5,
        floor: int = 4,
        ceiling: int = 5_000,
        history: int = 200,
        initial: int = 200,
    ) -> None:
        if cap is not None and cap < 1:
            raise ValueError("cap must be at least 1")
        if not 1 <= floor <= ceiling:
            raise ValueError("floor must be at least 1 and at most ceiling")
        if not expected_seconds > 0 or not requests_per_build > 0 or not headroom > 0:
            raise ValueError("expected_seconds, requests_per_build and headroom must be positive")
        self._budget = budget
        self._cap = cap
        self._floor = floor
        self._ceiling = ceiling
        self._expected = float(expected_seconds)
        self._clock = clock
        self._cost = requests_per_build
        self._headroom = headroom
        # time in flight of the last `history` builds, and their sum
        self._flights: deque[float] = deque(maxlen=history)
        self._flights_sum = 0.0
        # builds in flight: when each started, and the sum of those times
        self._started: dict[str, float] = {}
        self._started_sum = 0.0
        self._limiter = anyio.CapacityLimiter(self._bounded(initial))
        self._refreshed_at = -math.inf

    # ------------------------------------------------------------------ public

    @property
    def limit(self) -> int:
        """The number of VMs allowed in flight now."""
        return int(self._limiter.total_tokens)

    @property
    def cap(self) -> int | None:
        """The user's hard cap (``max_in_flight``), None when the limit is sized alone."""
        return self._cap

    @property
    def borrowed(self) -> int:
        """How many VMs hold a place now."""
        return self._limiter.borrowed_tokens

    def flight_seconds(self) -> float:
        """The time a build is expected to stay in flight (``W``), in seconds."""
        flights = len(self._flights)
        w = self._flights_sum / flights if flights >= 3 else self._expected
        if self._started:
            mean_age = self._clock() - self._started_sum / len(self._started)
            w = max(w, 2.0 * mean_age)
        return w

    def target(self) -> int | None:
        """The Little's-law limit from what is known now (None while the budget is unknown)."""
        # what the window leaves this run: P, less what other clients of the token spend
        permitted = self._budget.usable_per_window
        if permitted is None:
            return None
        return in_flight_for(
            permitted=permitted,
            window_seconds=self._budget.window_seconds,
            flight_seconds=self.flight_seconds(),
            cap=self._cap,
            requests_per_build=self._cost,
            headroom=self._headroom,
            floor=self._floor,
            ceiling=self._ceiling,
        )

    def refresh(self) -> int:
        """Resize to :meth:`target` now; returns the limit."""
        self._refreshed_at = self._clock()
        target = self.target()
        if target is not None and target != self._limiter.total_tokens:
            self._limiter.total_tokens = target
        return self.limit

    def __call__(self, event: ProvisionEvent, /) -> None:
        """Learn from one of the run's events (a progress hook)."""
        kind = event.kind
        if kind in _STARTED:
            if event.key not in self._started:
                self._started[event.key] = event.at
                self._started_sum += event.at
        elif kind in _FINAL:
            started = self._started.pop(event.key, None)
            if started is None:
                return
            self._started_sum -= started
            if not self._started:
                self._started_sum = 0.0  # no float drift carried over an empty set
            if kind in ("succeeded", "deleted", "purged"):
                if len(self._flights) == self._flights.maxlen:
                    self._flights_sum -= self._flights[0]
                flight = max(0.0, event.at - started)
                self._flights.append(flight)
                self._flights_sum += flight
        # the ages of the builds in flight move with every event, but the limit
        # cannot usefully change faster than a hundredth of a build's time
        now = self._clock()
        if now - self._refreshed_at >= self._expected / 100 or kind in _FINAL:
            self.refresh()

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Wait for a place for ``borrower`` (e.g. a VM whose task is not started yet)."""
        self.refresh()
        await self._limiter.acquire_on_behalf_of(borrower)

    def release_on_behalf_of(self, borrower: object) -> None:
        """Give back ``borrower``'s place."""
        self._limiter.release_on_behalf_of(borrower)

    async def __aenter__(self) -> None:
        self.refresh()
        await self._limiter.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter.release()

    # --------------------------------------------------------------- helpers

    def _bounded(self, value: int) -> int:
        value = min(self._ceiling, max(self._floor, value))
        return value if self._cap is None else min(self._cap, value)
