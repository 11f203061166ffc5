"""Another client of the same token: the neighbour of the ``shared-budget`` scenario.

A token's rate budget is rarely one run's alone: Terraform, the web console and
other scripts spend the same ``X-Ratelimit-Remaining``. :class:`Neighbour`
plays one of them against the simulator, over real HTTP with the same token,
and counts how many of its requests were refused (429):

* **steady**: ``share`` of every window's budget as evenly spaced GETs (each on
  its own schedule, however long the answers take);
* **bursty**: ``share`` of the budget as one burst at the start of each window,
  sent ``parallelism`` at a time (what ``terraform apply -parallelism=10``
  does). It first finds where the windows start the way any client can: it
  sends a GET every fiftieth of a window until ``Remaining`` rises (a reset).

It neither reads nor follows the rate-limit headers otherwise: it is the kind
of client a run must leave room for.
"""

from __future__ import annotations

import math
import time

import aiohttp
import anyio

from benchmarks._engine import TOKEN

__all__ = ["Neighbour"]

#: the bursty neighbour's first look for a window reset: a GET every this fraction of a window
_TRICKLE = 1 / 50
#: a burst starts this fraction of a window after the window's start (clock skew, latency)
_AFTER_START = 0.03


class Neighbour:
    """``async with Neighbour(...)``: sends in the background until the block ends.

    ``window`` is in real seconds; ``permitted`` the token's budget per window.
    """

    def __init__(
        self,
        url: str,
        *,
        permitted: int,
        window: float,
        share: float,
        bursty: bool = False,
        parallelism: int = 10,
    ) -> None:
        self.url = url.rstrip("/") + "/zones"
        self.per_window = max(1, round(share * permitted))
        self.window = window
        self.share = share
        self.bursty = bursty
        self.parallelism = parallelism
        self.sent = 0
        self.refused = 0
        self.failed = 0  # no answer, or an answer other than 200/429
        self._session: aiohttp.ClientSession | None = None
        self._scope: anyio.CancelScope | None = None
        self._done = anyio.Event()
        self._last: tuple[float, int] | None = None  # (answered at, Remaining)
        self._reset_at: float | None = None  # a window started at about this time

    @property
    def refused_share(self) -> float:
        """The fraction of its requests answered 429."""
        return self.refused / self.sent if self.sent else 0.0

    async def __aenter__(self) -> Neighbour:
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._scope is not None:
            self._scope.cancel()
        await self._tg.__aexit__(None, None, None)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        with anyio.CancelScope() as scope:
            self._scope = scope
            async with anyio.create_task_group() as tg:
                if self.bursty:
                    await self._bursts(tg)
                else:
                    await self._steady(tg)

    async def _get(self) -> None:
        assert self._session is not None
        self.sent += 1
        sent_at = time.monotonic()
        try:
            async with self._session.get(self.url) as resp:
                await resp.read()
                status = resp.status
                remaining = resp.headers.get("X-Ratelimit-Remaining")
        except (aiohttp.ClientError, OSError):
            self.failed += 1
            return
        if status == 429:
            self.refused += 1
        elif status != 200:
            self.failed += 1
        if remaining is not None and remaining.isdigit():
            now = time.monotonic()
            last = self._last
            if last is not None and int(remaining) > last[1] and sent_at > last[0]:
                self._reset_at = sent_at  # sent after an answer of the old window
            self._last = (now, int(remaining))

    async def _steady(self, tg: anyio.abc.TaskGroup) -> None:
        gap = self.window / self.per_window
        start = time.monotonic()
        for k in range(10**9):
            delay = start + k * gap - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(self._get)

    async def _bursts(self, tg: anyio.abc.TaskGroup) -> None:
        while self._reset_at is None:
            tg.start_soon(self._get)
            await anyio.sleep(self.window * _TRICKLE)
        reset = self._reset_at
        while True:
            now = time.monotonic()
            k = math.floor((now - reset) / self.window) + 1
            await anyio.sleep(reset + k * self.window + self.window * _AFTER_START - now)
            left = self.per_window

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await self._get()

            async with anyio.create_task_group() as burst:
                for _ in range(self.parallelism):
                    burst.start_soon(worker)
