"""The event loop's clock, without anyio's per-call lookup of the backend.

aiohttp ties the engine to asyncio, so on the hot paths anyio's dispatch to
its backend (a lookup on every ``anyio.current_time()``: some 20 calls per VM
between the budget, the scheduler, the in-flight limit and the events) buys
nothing. :func:`loop_time` is what ``anyio.current_time()`` returns under
asyncio, read directly. Everywhere else anyio stays the API.
"""

from __future__ import annotations

import asyncio

__all__ = ["loop_time"]


def loop_time() -> float:
    """The running event loop's monotonic time, in seconds (``anyio.current_time()``)."""
    return asyncio.get_running_loop().time()
