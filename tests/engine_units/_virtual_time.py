"""A virtual-time asyncio event loop for tests: time jumps instead of passing.

When no callback is ready, the loop does not block until its next timer: it
moves its clock straight to it. Every ``anyio.sleep``, ``move_on_after`` and
``anyio.current_time()`` then runs on virtual time, so a simulated hour takes
milliseconds and results do not depend on the machine's speed. There must be
no real I/O: a loop with nothing ready and no timer raises instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["VirtualTimeLoop", "advance", "run_virtual", "virtual_backend"]

T = TypeVar("T")


async def advance(seconds: float) -> None:
    """Let ``seconds`` of virtual time pass (instant in real time on the virtual loop)."""
    await anyio.sleep(seconds)


class _VirtualSelector(selectors.DefaultSelector):
    """Polls the real selector (the loop's self-pipe) but never waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: every task waits and no timer is set (deadlock)")
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual and jumps to the next timer."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def virtual_backend() -> tuple[str, dict[str, Any]]:
    """The ``anyio_backend`` value that runs a test on virtual time."""
    return ("asyncio", {"loop_factory": VirtualTimeLoop})


def run_virtual(func: Callable[[], Awaitable[T]]) -> T:
    """Run ``func()`` to completion on a fresh virtual-time loop (for sync tests)."""
    return anyio.run(func, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})
