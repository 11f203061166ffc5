"""A fixed-window rate-limited server and a client that sends through a budget.

Shared by the budget tests. The server counts requests per window
``floor((t - phase) / window)``, exactly as the Katapult API is believed to, and
answers 429 (Remaining 0) past ``permitted``. The client waits for the budget,
then spends a random latency on the way in and another on the way back, so
responses come back out of order.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

import anyio

from orchestrator.engine.budget import RateBudget, RequestKind
from orchestrator.katapult._transport import ApiRequest

__all__ = ["NO_ANSWER", "Client", "FixedWindowServer", "Info", "Neighbour"]


@dataclass(frozen=True, slots=True)
class Info:
    """Stands in for the client's ``RateLimitInfo``."""

    status: int | None
    permitted: int | None = None
    remaining: int | None = None
    retry_after: float | None = None


NO_ANSWER = Info(status=None)


@dataclass
class FixedWindowServer:
    """Counts requests per fixed window and refuses those past ``permitted``.

    With ``send_retry_after``, a 429 says how long until the window resets.
    """

    permitted: int
    window: float
    phase: float = 0.0
    send_retry_after: bool = False
    counts: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    refused_at: list[float] = field(default_factory=list)

    def window_of(self, t: float) -> int:
        """Index of the server window that contains ``t``."""
        return math.floor((t - self.phase) / self.window)

    def window_start(self, index: int) -> float:
        """Start time of window ``index``."""
        return self.phase + index * self.window

    def handle(self, now: float) -> Info:
        """Count one request processed at ``now`` and answer with the headers."""
        index = self.window_of(now)
        used = self.counts[index]
        if used >= self.permitted:
            self.rate_limited += 1
            self.refused_at.append(now)
            retry_after = self.window_start(index + 1) - now if self.send_retry_after else None
            return Info(429, self.permitted, 0, retry_after)
        self.counts[index] = used + 1
        return Info(200, self.permitted, self.permitted - used - 1)

    def spend(self, now: float, n: int) -> None:
        """Another client of the same token spends ``n`` requests at ``now``."""
        index = self.window_of(now)
        self.counts[index] = min(self.permitted, self.counts[index] + n)


@dataclass
class Client:
    """Sends requests through ``budget`` to ``server`` with random latencies."""

    budget: RateBudget
    server: FixedWindowServer
    rng: random.Random
    latency: tuple[float, float] = (0.05, 0.5)
    grants: list[tuple[float, RequestKind]] = field(default_factory=list)
    answers: list[tuple[float, Info]] = field(default_factory=list)

    async def request(self, kind: RequestKind = "poll") -> Info:
        """One request, from waiting for the budget to releasing it."""
        request = ApiRequest("POST" if kind == "submit" else "GET", "tasks/task_x")
        await self.budget.acquire(request)
        self.grants.append((anyio.current_time(), kind))
        try:
            await anyio.sleep(self.rng.uniform(*self.latency))
            info = self.server.handle(anyio.current_time())
            await anyio.sleep(self.rng.uniform(*self.latency))
        except BaseException:
            self.budget.release(request, NO_ANSWER)
            raise
        self.budget.release(request, info)
        self.answers.append((anyio.current_time(), info))
        return info

    async def keep_busy(self, until: float, kind: RequestKind = "poll") -> None:
        """Send requests back to back until ``until``."""
        while anyio.current_time() < until:
            await self.request(kind)

    async def saturate(self, workers: int, until: float, kind: RequestKind = "poll") -> None:
        """Run ``workers`` concurrent senders until ``until``."""
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(self.keep_busy, until, kind)


@dataclass
class Neighbour:
    """Another client of the same token, sending straight to ``server`` (no budget).

    Steady: ``share`` of every window as evenly spaced requests. Bursty: ``share``
    of the window as one burst ``delay`` seconds after each window starts.
    """

    server: FixedWindowServer
    share: float
    bursty: bool = False
    delay: float = 0.5
    sent: int = 0
    refused: int = 0

    def _send(self) -> None:
        self.sent += 1
        if self.server.handle(anyio.current_time()).status == 429:
            self.refused += 1

    async def run(self, until: float) -> None:
        """Send until ``until`` (virtual time)."""
        per_window = round(self.share * self.server.permitted)
        window = self.server.window
        if not self.bursty:
            gap = window / per_window
            while anyio.current_time() < until:
                self._send()
                await anyio.sleep(gap)
            return
        while True:
            now = anyio.current_time()
            start = self.server.window_start(self.server.window_of(now) + 1) + self.delay
            if start >= until:
                return
            await anyio.sleep(start - now)
            for _ in range(per_window):
                self._send()
