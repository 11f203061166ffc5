"""The budget per window the report shows: this run's requests, others', the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.engine._windows import WindowLog
from orchestrator.katapult._gate import RateLimitInfo
from orchestrator.katapult._transport import ApiRequest

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeBudget:
    """A budget that grants at once and whose windows start at 0 + k * 60 on the clock."""

    window_seconds = 60.0

    def __init__(self, boundary: tuple[float, float] | None = (0.0, 0.0)) -> None:
        self.window_boundary = boundary
        self.released: list[RateLimitInfo] = []

    async def acquire(self, request: ApiRequest) -> None:
        return None

    def release(self, request: ApiRequest, info: RateLimitInfo) -> None:
        self.released.append(info)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _request(
    log: WindowLog, clock: Clock, sent: float, answered: float, info: RateLimitInfo
) -> None:
    clock.now = sent
    request = ApiRequest("GET", "tasks/x")
    await log.acquire(request)
    clock.now = answered
    log.release(request, info)


async def test_requests_others_and_limit_per_window() -> None:
    """Window 0: 3 of ours, the server counted 5 (2 others'); window 1: a 429, not counted."""
    budget, clock = FakeBudget(), Clock()
    log = WindowLog(budget, clock=clock)
    for i, remaining in enumerate((99, 97, 95)):  # others spent one between each of ours
        await _request(log, clock, 10.0 + i, 10.5 + i, RateLimitInfo(200, 100, remaining))
    await _request(log, clock, 61.0, 61.2, RateLimitInfo(200, 100, 99))
    await _request(log, clock, 62.0, 62.1, RateLimitInfo(429, 100, 0))
    use = log.windows(started_clock=0.0, started_wall=START)
    assert use.window_seconds == 60.0
    first, second = use.windows
    assert (first.started_at, second.started_at) == (START, START + timedelta(seconds=60))
    assert (first.requests, first.rate_limited, first.permitted) == (3, 0, 100)
    assert (first.used, first.others) == (5, 2)
    assert (second.requests, second.rate_limited, second.used, second.others) == (2, 1, 1, 0)
    assert len(budget.released) == 5  # every answer reached the budget


async def test_an_answer_straddling_a_boundary_lends_no_count() -> None:
    """Sent before the boundary, answered after: counted among ours in both windows, so
    its Remaining never makes "others" of the window it may not belong to."""
    budget, clock = FakeBudget(), Clock()
    log = WindowLog(budget, clock=clock)
    await _request(log, clock, 50.0, 51.0, RateLimitInfo(200, 100, 99))
    await _request(log, clock, 59.9, 60.3, RateLimitInfo(200, 100, 98))  # old window's count
    await _request(log, clock, 61.0, 61.5, RateLimitInfo(200, 100, 99))
    first, second = log.windows(started_clock=0.0, started_wall=START).windows
    assert (first.requests, first.used, first.others) == (1, 1, 0)
    assert (second.requests, second.used, second.others) == (2, 1, 0)


async def test_unknown_headers_leave_used_and_others_unknown() -> None:
    """No rate-limit headers (or no answer): the window counts the request, the rest is None."""
    log = WindowLog(FakeBudget(), clock=(clock := Clock()))
    await _request(log, clock, 1.0, 2.0, RateLimitInfo(None))
    (window,) = log.windows(started_clock=0.0, started_wall=START).windows
    assert (window.requests, window.permitted, window.used, window.others) == (1, None, None, None)


async def test_without_a_learned_phase_windows_follow_the_wall_clock() -> None:
    """Before the budget saw a reset, windows start at whole minutes of the wall clock."""
    log = WindowLog(FakeBudget(boundary=None), clock=(clock := Clock()))
    await _request(log, clock, 1.0, 2.0, RateLimitInfo(200, 100, 99))
    started = START + timedelta(seconds=20)  # the run began 20 s into a minute
    (window,) = log.windows(started_clock=0.0, started_wall=started).windows
    assert window.started_at == START
    # a belief, not evidence: what the server counted is not claimed on it
    assert (window.requests, window.used, window.others) == (1, None, None)


async def test_resets_overrule_a_wrong_belief_in_the_wall_clock() -> None:
    """The server's windows start at 0 + k * 60 on the clock, the wall clock's minutes at
    50 + k * 60: the reset the answers show places the windows, and none of this run's
    own requests is taken for another client's (the CI failure of stop 29: 16 "others"
    of a run alone on its token)."""
    log = WindowLog(FakeBudget(boundary=None), clock=(clock := Clock()))
    sends = ((10.0, 99), (20.0, 98), (30.0, 97), (40.0, 96), (45.0, 95), (56.0, 94))
    for sent, remaining in sends:
        await _request(log, clock, sent, sent + 0.5, RateLimitInfo(200, 100, remaining))
    for sent, remaining in ((61.0, 99), (70.0, 98)):
        await _request(log, clock, sent, sent + 0.5, RateLimitInfo(200, 100, remaining))
    started = START + timedelta(seconds=10)  # the clock's 0 is 10 s into a wall minute
    windows = log.windows(started_clock=0.0, started_wall=started).windows
    assert [w.requests for w in windows] == [6, 2]
    assert [w.used for w in windows] == [5, 2]
    assert [w.others for w in windows] == [0, 0]


async def test_windows_that_are_not_fixed_leave_used_unknown() -> None:
    """Resets that no fixed window explains (5 s apart, then 35 s): nothing vouches for
    any boundary, so neither the server's count nor others' is claimed."""
    log = WindowLog(FakeBudget(boundary=None), clock=(clock := Clock()))
    for sent, remaining in ((1.0, 98), (4.0, 97), (6.0, 99), (40.0, 90), (41.0, 99)):
        await _request(log, clock, sent, sent + 0.5, RateLimitInfo(200, 100, remaining))
    windows = log.windows(started_clock=0.0, started_wall=START).windows
    assert sum(w.requests for w in windows) == 5
    assert all((w.used, w.others) == (None, None) for w in windows)


async def test_start_forgets_the_previous_run() -> None:
    """A new run's log holds only its own answers."""
    log = WindowLog(FakeBudget(), clock=(clock := Clock()))
    await _request(log, clock, 1.0, 2.0, RateLimitInfo(200, 100, 99))
    log.start()
    assert log.windows(started_clock=0.0, started_wall=START).windows == []
