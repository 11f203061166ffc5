"""The rate budget per window, for the report: what this run sent, what others did.

:class:`WindowLog` sits between the client and the rate budget (it is the
client's ``RequestGate`` and passes every call on to the budget) and keeps,
for each request answered, when it was sent and answered and the rate-limit
headers of the answer, in flat arrays (about 40 bytes a request). At the end of
a run :meth:`WindowLog.windows` cuts them into the server's fixed windows:

* the window boundaries lie in an interval ``(lo, hi]`` (whole windows
  apart) that only what was seen vouches for: the budget's learned phase,
  narrowed by every reset the log shows (an answer whose ``Remaining`` is not
  below that of an answer surely processed before it: a boundary lies between
  the two). The wall clock's whole multiples of the window (where the real
  API's windows are believed to lie) only date the windows, when the resets
  do not contradict them: a belief is not evidence, and a wrong one would put
  this run's own requests among "others";
* a request counts in the window its answer arrived in (boundaries at ``hi``);
* the server's own count of a window (``used``) is ``Permitted`` minus the
  lowest ``Remaining`` of the answers that were surely processed inside it
  (sent after its start and answered before its end, whatever the boundary
  in ``(lo, hi]``), so an answer straddling a boundary never lends its count
  to the wrong window;
* ``others`` is ``used`` minus every request of this run the server may have
  counted there (429s are not counted; a request in flight across a boundary
  counts for both windows): a lower bound, never more than others really sent.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.engine._loop import loop_time
from orchestrator.katapult._gate import RateLimitInfo
from orchestrator.katapult._transport import ApiRequest
from orchestrator.report import BudgetUse, BudgetWindow

__all__ = ["Budget", "WindowLog"]

_NONE = -1  # a header that was absent, in the integer arrays


class Budget(Protocol):
    """What the log needs of the rate budget (:class:`~orchestrator.engine.budget.RateBudget`)."""

    @property
    def window_seconds(self) -> float: ...

    @property
    def window_boundary(self) -> tuple[float, float] | None: ...

    async def acquire(self, request: ApiRequest) -> None: ...

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None: ...


class WindowLog:
    """A ``RequestGate`` that records every answer's rate-limit facts, then defers to
    ``budget``. :meth:`start` begins a new record (one per run)."""

    __slots__ = (
        "_answered",
        "_budget",
        "_clock",
        "_permitted",
        "_remaining",
        "_sent",
        "_sent_at",
        "_status",
    )

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = loop_time) -> None:
        self._budget = budget
        self._clock = clock
        self._sent: dict[int, float] = {}  # id of a request in flight -> when it went
        self._sent_at = array("d")
        self._answered = array("d")
        self._status = array("i")  # 0: no HTTP answer
        self._permitted = array("q")
        self._remaining = array("q")

    def start(self) -> None:
        """Forget what was recorded (a new run begins)."""
        self._sent_at = array("d")
        self._answered = array("d")
        self._status = array("i")
        self._permitted = array("q")
        self._remaining = array("q")

    # ------------------------------------------------------------ RequestGate

    async def acquire(self, request: ApiRequest) -> None:
        """Wait for the budget, then note when the request went."""
        await self._budget.acquire(request)
        self._sent[id(request)] = self._clock()

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
        """Note the answer, then tell the budget."""
        sent = self._sent.pop(id(request), None)
        now = self._clock()
        self._sent_at.append(now if sent is None else sent)
        self._answered.append(now)
        self._status.append(info.status or 0)
        self._permitted.append(_NONE if info.permitted is None else info.permitted)
        self._remaining.append(_NONE if info.remaining is None else info.remaining)
        self._budget.release(request, info)

    # ------------------------------------------------------------ the windows

    def windows(self, *, started_clock: float, started_wall: datetime) -> BudgetUse:
        """Every window in which this run had an answer, oldest first.

        ``started_clock`` and ``started_wall`` are the same moment on the log's
        clock and on the wall clock (UTC), to date the windows.
        """
        width = self._budget.window_seconds
        # the wall clock's whole multiples of the window, on our clock
        aligned = started_clock - (started_wall.timestamp() % width)
        known = _narrowed(self._budget.window_boundary, self._resets(width), width)
        if known is None:
            lo, hi, edge = -math.inf, math.inf, aligned
        else:
            lo, hi = known
            k = math.ceil((lo - aligned) / width)
            inside = aligned + k * width
            edge = inside if inside <= hi else hi
        # where the windows' edges are known only to within a good part of a window (a
        # scaled clock, a loop busy when the budget saw the reset), or not at all, no
        # answer can be put in its window surely: what others used is then not guessed
        precise = hi - lo <= width / 10
        # index -> [requests, 429s, may have been counted, permitted, lowest Remaining]
        rows: dict[int, list[int]] = {}

        def row_of(index: int) -> list[int]:
            row = rows.get(index)
            if row is None:
                row = rows[index] = [0, 0, 0, _NONE, _NONE]
            return row

        for i, answered in enumerate(self._answered):
            sent, status = self._sent_at[i], self._status[i]
            index = math.floor((answered - edge) / width)
            row = row_of(index)
            row[0] += 1
            if status == 429:
                row[1] += 1
            permitted, remaining = self._permitted[i], self._remaining[i]
            if permitted != _NONE:
                row[3] = max(row[3], permitted)
            if status == 429:
                continue
            if not precise:
                continue  # "may have been counted" and the lowest Remaining serve nothing
            # every window whose span (at any boundary in (lo, hi]) meets [sent, answered]
            first = math.floor((sent - hi) / width)
            last = math.floor((answered - lo) / width)
            for k in range(first, last + 1):
                row_of(k)[2] += 1
            surely = sent > hi + index * width and answered <= lo + (index + 1) * width
            if remaining != _NONE and surely:
                row[4] = remaining if row[4] == _NONE else min(row[4], remaining)
        windows = []
        for index in sorted(rows):
            requests, limited, counted, permitted, lowest = rows[index]
            if not requests:
                continue  # touched only by a request in flight across its boundary
            used = None
            if permitted != _NONE and lowest != _NONE:
                used = max(0, permitted - lowest)
            start = started_wall + timedelta(seconds=edge + index * width - started_clock)
            windows.append(
                BudgetWindow(
                    started_at=start,
                    requests=requests,
                    rate_limited=limited,
                    permitted=None if permitted == _NONE else permitted,
                    used=used,
                    others=None if used is None else max(0, used - counted),
                )
            )
        return BudgetUse(window_seconds=width, windows=windows)

    def _resets(self, width: float) -> list[tuple[float, float]]:
        """``(lo, hi)`` for each reset the log shows, shorter than half a window.

        An answer whose ``Remaining`` is not below that of the latest answer
        received before it was sent was processed in a later window (within one,
        the server's count only grows): a boundary lies after that answer was
        sent and before this one was answered.
        """
        sent_at, answered, status = self._sent_at, self._answered, self._status
        permitted, remaining = self._permitted, self._remaining
        usable = [
            i
            for i in range(len(answered))
            if remaining[i] != _NONE and permitted[i] != _NONE and status[i] not in (0, 429)
        ]
        by_answer = sorted(usable, key=answered.__getitem__)
        resets = []
        latest = -1  # of by_answer, the last answered before the request in hand was sent
        for j in sorted(usable, key=sent_at.__getitem__):
            while latest + 1 < len(by_answer) and answered[by_answer[latest + 1]] < sent_at[j]:
                latest += 1
            if latest < 0:
                continue
            i = by_answer[latest]
            if (
                permitted[i] == permitted[j]
                and remaining[j] >= remaining[i]
                and answered[j] - sent_at[i] < width / 2
            ):
                resets.append((sent_at[i], answered[j]))
        return resets


def _narrowed(
    learned: tuple[float, float] | None, resets: list[tuple[float, float]], width: float
) -> tuple[float, float] | None:
    """Where the windows' boundaries lie, ``(lo, hi]`` (and whole windows from there), by
    what the budget learned and the resets seen; None when nothing vouches for any.

    Each interval is moved by whole windows next to the first and intersected
    with it. Should they not meet (the windows are not fixed, or the budget's
    bound was spoilt), the log's resets alone are taken, and if even those
    disagree, nothing is known.
    """
    for start in ([learned] if learned is not None else []) + [None]:
        known = start
        for lo, hi in resets:
            if known is None:
                known = (lo, hi)
                continue
            k = round((hi - known[1]) / width)
            new_lo, new_hi = max(lo - k * width, known[0]), min(hi - k * width, known[1])
            if new_lo > new_hi or (new_lo == new_hi and new_lo == lo - k * width):
                known = None
                break
            known = (new_lo, new_hi)
        else:
            if known is not None:
                return known
    return None
