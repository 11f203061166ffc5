"""The shared rate budget: one gate in front of every request to the API.

The Katapult API gives each token ``P`` requests per fixed window (60 s on the
real API) and reports, on every response, ``X-Ratelimit-Permitted`` (``P``) and
``X-Ratelimit-Remaining``. Builds (POST) and polls (GET) spend the same budget.
:class:`RateBudget` follows the server instead of guessing: it learns ``P``,
tracks what remains in the current server window, learns where the windows
start, and paces requests across the window so that the budget is used nearly
in full without a single 429.

The model, in short (details next to the arithmetic below):

* **Remaining.** Responses come back out of order, so the budget keeps the
  *minimum* ``Remaining`` seen in the current window and subtracts every request
  sent and not yet answered (it may or may not have been counted yet)::

      estimate = min_remaining - in_flight - uncertain

  ``uncertain`` counts answered requests that may have been counted in this
  window without it showing in ``min_remaining`` (a failed request, or a response
  that straddled a window boundary); each is cleared as soon as a response to a
  request sent *after* it arrives, since that response's count includes it.
  A request is only sent while ``estimate - safety > 0``.

* **Window resets.** A request sent after we had seen ``Remaining = m`` was
  processed after the response carrying ``m``; within one window the count only
  grows, so its own ``Remaining`` must be ``< m``. If it is ``>= m``, the window
  was reset in between: that is how resets are detected, and the send/answer
  times bound the boundary, which gives the window phase. Before any reset was
  seen, the window is assumed to last a full window from the first response
  (the latest it can end).

* **Roll-over.** When the estimated window end (plus a margin, 2% of the window
  by default, since the server's clock is not ours) has passed, a new window is
  assumed; exactly one request (a probe) goes first and the rest wait for its
  answer, which tells the truth about the new window. The very first request of
  all is such a probe too, so nothing bursts into a window of unknown state.

* **Pacing.** Requests are spaced at ``time_left / available`` (a GCRA, as in
  aiolimiter), with a small burst allowance: the window's budget is spread
  across the window rather than spent at its start, and demand below that rate
  is never slowed.

* **Priority.** Waiting polls are served before waiting submits, FIFO within a
  kind. A submit additionally leaves :attr:`RateBudget.poll_reserve` slots of
  the window's estimate for polls.

* **429.** Every request pauses until the window is reset (or until
  ``Retry-After``, when the server sends one); then a probe goes first and the
  rest are paced, so there is no storm.

* **Neighbours.** The budget is the token's, not the run's: Terraform, the web
  console and other scripts spend the same ``Remaining``, and a run that took
  all it saw would take what they were about to use, and their requests would
  be refused. So the budget learns, per window, what *others* spend (module
  :mod:`orchestrator.engine._neighbours`, pure arithmetic):

  - what the server counted (``Permitted - Remaining``) less every request of
    this run it may have counted (sent in the window, or in flight when it
    began; 429s excluded) is a lower bound of what others spent so far;
  - at each window's end that figure (extrapolated to the window's end at
    their rate, when the window's start is known) goes into a history of three
    windows; others are expected to spend what the busiest of them did;
  - this run leaves them, in the current window, their expected spend not yet
    spent, or, when there is no history yet or they spend more than it says,
    their recent rate times the time left; plus a headroom of 2% of their
    spend and half of how far their busiest window rose above the median, times
    a factor that doubles after a window that ran dry (``Remaining`` near zero
    while others spent) or brought this run a 429, and decays back to 1 after
    windows that went well. When others would be refused, this run is the one
    that slows down; with nobody else on the token nothing is left aside.

  One request per window always goes, so the run never stalls. While the
  window's phase is not known to a tenth of a window, or while others are
  followed by an extrapolated rate, a run held back by them alone still looks
  at the window now and then (a request every twentieth of a window), so that
  a reset or the rate's end is seen. In a window where others spend and
  nothing is known of them yet, pacing aims at the window's latest end rather
  than a guessed boundary. ``share`` (``engine.budget_share``) caps the run's
  requests per window at that fraction of ``P`` on top of all this, for teams
  that want a hard split. :class:`BudgetStatistics` shows this run's requests
  and others' in the current window and the last ones.

Waiting is cheap: waiters sit in one FIFO per kind and only the head of the
line is ever woken (on a timer, or when a response or a setting changes its
prospects), so an acquire costs O(1) however many wait. Not waiting is cheaper
still: when nobody of equal or higher priority waits and the model grants a
slot now, ``acquire`` takes it and returns without a trip round the event loop
(a caller already cancelled is refused first, before any slot is taken); the
request it guards yields soon enough. Which request gets which slot, and when,
is decided exactly as on the waiting path.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import count
from typing import Literal, Protocol

import anyio
from anyio.lowlevel import checkpoint_if_cancelled

from orchestrator.engine._loop import loop_time
from orchestrator.engine._neighbours import Neighbours, WindowShare

__all__ = [
    "BudgetStatistics",
    "RateBudget",
    "RateLimitInfoLike",
    "RequestKind",
    "RequestLike",
    "WindowShare",
]

RequestKind = Literal["poll", "submit"]
"""What a request does for the engine: ``submit`` (a build POST) or ``poll`` (any other)."""

_INF = math.inf
_EPSILON = 1e-6  # a wake-up this close to its deadline counts as on time
#: held back by what is left to other clients while the window phase is not well
#: known, or while others are followed by a rate, the budget still looks at the
#: window once every this fraction of it
_LOOK_EVERY = 0.05


class RequestLike(Protocol):
    """What the budget needs from a request (``ApiRequest`` has it)."""

    @property
    def method(self) -> str: ...


class RateLimitInfoLike(Protocol):
    """What the budget needs from a response (the client's ``RateLimitInfo`` has it).

    ``status`` is ``None`` when no HTTP answer came back at all; the header
    fields are ``None`` when the response did not carry them.
    """

    @property
    def status(self) -> int | None: ...

    @property
    def permitted(self) -> int | None: ...

    @property
    def remaining(self) -> int | None: ...

    @property
    def retry_after(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    """A snapshot of a :class:`RateBudget`.

    ``remaining_estimate`` is what the budget believes the server still allows in
    the current window, after subtracting the requests in flight (``None`` while
    ``P`` is unknown). ``window_ends_at`` is the latest time the current window
    can end, on the budget's clock (``None`` before the first response).
    ``paused_until`` is set while a 429 pause lasts.

    The neighbour model (other clients of the same token): ``window_requests``
    is how many of this run's requests the server may have counted in the
    current window, ``window_others`` what other clients spent in it so far
    (at least), ``others_expected`` what they are expected to spend in a whole
    window (None: not learned yet), ``others_reserve`` the slots of the current
    window left to them now (their expected spend still to come, plus the
    headroom), ``recent_windows`` the last finished windows (this run's
    requests and others'), ``budget_share`` the cap on this run's share of each
    window (None: no cap).
    """

    permitted: int | None
    remaining_estimate: int | None
    window_ends_at: float | None
    sent: int
    in_flight: int
    rate_limited: int
    paused_until: float | None
    waiting_polls: int
    waiting_submits: int
    window_requests: int = 0
    window_others: int = 0
    others_expected: int | None = None
    others_reserve: int = 0
    recent_windows: tuple[WindowShare, ...] = ()
    budget_share: float | None = None


class _Waiter:
    """One task waiting in line; ``scope`` is set while it sleeps until a time,
    ``future`` while it waits for its turn or for news (whichever wakes it)."""

    __slots__ = ("future", "paced", "scope")

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None
        self.future: asyncio.Future[None] | None = None
        self.paced = False  # sleeping until a pacing time, not waiting for news


class _Ticket:
    """What the budget remembers about one sent request until it is released."""

    __slots__ = ("cover", "floor", "gen", "probe", "sent_at")

    def __init__(
        self, gen: int, floor: int | None, sent_at: float, cover: int, probe: bool
    ) -> None:
        self.gen = gen  # the budget's window generation when sent
        self.floor = floor  # min Remaining seen in that window before sending, if any
        self.sent_at = sent_at
        self.cover = cover  # uncertain-request counter when sent (see _observe)
        self.probe = probe  # sent as the one probe of an unconfirmed window


def _checked_share(share: float | None) -> float | None:
    if share is None:
        return None
    if isinstance(share, bool) or not 0 < share <= 1:
        raise ValueError(f"budget share must be in (0, 1], not {share!r}")
    return float(share)


def _default_sleep_until(clock: Callable[[], float]) -> Callable[[float], Awaitable[None]]:
    async def sleep_until(deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - clock()))

    return sleep_until


class RateBudget:
    """Paces every request of one token so that the server never answers 429.

    It satisfies the client's ``RequestGate`` protocol: call :meth:`acquire`
    before sending a request and :meth:`release` exactly once afterwards, on any
    outcome (with the response's rate-limit headers, or with ``status=None`` when
    nothing came back). :meth:`acquire_kind` / :meth:`release` with
    ``request=None`` do the same without a request object.

    ``window_seconds`` is the server's window length; ``permitted`` a hint for
    ``P`` until a response tells (the first request is a lone probe either way);
    ``safety`` slots of each window are never used (but at least one
    request per window is always allowed); ``burst`` requests may go
    back to back before pacing applies; ``margin`` (default 2% of the window) is
    added to every estimated window end before it is trusted. ``clock`` and
    ``sleep_until`` (sleep until that time on ``clock``) are injectable for
    tests. ``wall_clock`` (e.g. ``time.time``), when given, says the server's
    windows are probably aligned to whole multiples of ``window_seconds`` on
    that clock: before the phase is learned, pacing then aims at the next
    aligned boundary rather than at the latest possible window end, so a run
    that starts mid-window still uses that window's budget (never at the cost
    of a 429: only the spreading changes).

    ``share`` (in (0, 1]; None, the default, is no cap) caps this run's
    requests in each window at that fraction of ``P``, whatever others leave;
    :attr:`budget_share` reads and sets it. Whatever the cap, what other
    clients of the token are expected to spend is left to them (see the
    module docstring).

    ``poll_reserve`` (default 0) is settable at any time: a submit is only
    granted if, after it, at least that many slots remain in the current
    window's estimate for polls. The engine sets it to the number of polls it
    expects to need before the window ends (e.g. the builds due soon).
    """

    __slots__ = (
        "_anonymous",
        "_burst",
        "_charge_floor",
        "_charge_seq",
        "_clock",
        "_confirmed",
        "_gap",
        "_gen",
        "_gen_lo",
        "_in_flight",
        "_margin",
        "_min_remaining",
        "_neighbours",
        "_pace_end",
        "_paused_until",
        "_permitted",
        "_phase_hi",
        "_phase_learned",
        "_phase_lo",
        "_poll_reserve",
        "_polls",
        "_probes",
        "_rate_limited",
        "_recent",
        "_rollover_at",
        "_safety",
        "_sent",
        "_seq",
        "_share",
        "_sleep_until",
        "_submits",
        "_tat",
        "_tickets",
        "_wall_clock",
        "_window",
        "_window_end",
    )

    def __init__(
        self,
        *,
        window_seconds: float,
        permitted: int | None = None,
        safety: int = 1,
        burst: int = 4,
        margin: float | None = None,
        clock: Callable[[], float] = loop_time,
        sleep_until: Callable[[float], Awaitable[None]] | None = None,
        wall_clock: Callable[[], float] | None = None,
        share: float | None = None,
    ) -> None:
        if not window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if permitted is not None and permitted < 1:
            raise ValueError("permitted must be at least 1")
        if safety < 0:
            raise ValueError("safety must not be negative")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._window = float(window_seconds)
        self._margin = 0.02 * self._window if margin is None else float(margin)
        if not 0 <= self._margin < self._window:
            raise ValueError("margin must be in [0, window_seconds)")
        self._permitted = permitted
        self._safety = safety
        self._burst = burst
        self._clock = clock
        self._sleep_until = sleep_until or _default_sleep_until(clock)
        self._wall_clock = wall_clock
        self._poll_reserve = 0
        self._share = _checked_share(share)
        self._neighbours = Neighbours(self._window)

        # --- the server window as we believe it -------------------------------
        self._gen = 0  # bumped at every (detected or assumed) window reset
        self._confirmed = False  # a response from this window has been seen
        self._probes = 0  # probes of this window in flight (at most one)
        self._min_remaining: int | None = None  # min Remaining seen in this window
        self._gen_lo = -_INF  # latest send time of a request counted in this window
        self._recent: deque[tuple[float, int]] = deque()  # (answered at, Remaining) of those
        self._window_end: float | None = None  # latest time this window can end
        self._pace_end = _INF  # when pacing aims to have spent this window's budget
        self._rollover_at = _INF  # when a new window is assumed (end + margin)
        # the window boundaries lie in (phase_lo, phase_hi] + k * window
        self._phase_lo = -_INF
        self._phase_hi = -_INF
        self._phase_learned = False  # from an observed reset, not just a first response
        # uncertain requests: outstanding = charge_seq - charge_floor
        self._charge_seq = 0
        self._charge_floor = 0
        self._in_flight = 0
        self._tat = -_INF  # GCRA theoretical arrival time of the next request
        self._gap = 0.0  # GCRA emission interval, as computed at the last grant
        self._paused_until = -_INF

        # --- bookkeeping ------------------------------------------------------
        self._polls: OrderedDict[int, _Waiter] = OrderedDict()
        self._submits: OrderedDict[int, _Waiter] = OrderedDict()
        self._seq = count()
        self._tickets: dict[int, tuple[RequestLike, deque[_Ticket]]] = {}
        self._anonymous: deque[_Ticket] = deque()
        self._sent = 0
        self._rate_limited = 0

    # ------------------------------------------------------------------ public

    @property
    def poll_reserve(self) -> int:
        """Slots of the current window a submit must leave for polls."""
        return self._poll_reserve

    @poll_reserve.setter
    def poll_reserve(self, value: int) -> None:
        if value < 0:
            raise ValueError("poll_reserve must not be negative")
        self._poll_reserve = value
        self._kick()

    @property
    def budget_share(self) -> float | None:
        """The cap on this run's share of each window's budget (None: no cap)."""
        return self._share

    @budget_share.setter
    def budget_share(self, value: float | None) -> None:
        self._share = _checked_share(value)
        self._kick()

    @property
    def usable_per_window(self) -> int | None:
        """What a whole window leaves this run: ``P`` less what other clients are
        expected to spend (and the headroom left them), within ``budget_share``
        (None while ``P`` is unknown)."""
        permitted = self._permitted
        if permitted is None:
            return None
        usable = self._neighbours.per_window(permitted)
        if self._share is not None:
            usable = min(usable, self._share_cap(permitted))
        return usable

    @property
    def window_seconds(self) -> float:
        """The server's window length this budget assumes."""
        return self._window

    @property
    def permitted(self) -> int | None:
        """``P``, the requests per window the server permits (None until it has said)."""
        return self._permitted

    @property
    def window_boundary(self) -> tuple[float, float] | None:
        """``(lo, hi)`` on the budget's clock: a server window starts in ``(lo, hi]`` (and
        whole windows from there), as learned from an observed reset; None until then."""
        return (self._phase_lo, self._phase_hi) if self._phase_learned else None

    async def acquire(self, request: RequestLike) -> None:
        """Wait until ``request`` may be sent (POST counts as a submit, anything else as a poll)."""
        kind: RequestKind = "submit" if request.method.upper() == "POST" else "poll"
        ticket = await self._acquire(kind)
        entry = self._tickets.get(id(request))
        if entry is None:
            self._tickets[id(request)] = (request, deque((ticket,)))
        else:
            entry[1].append(ticket)

    async def acquire_kind(self, kind: RequestKind) -> None:
        """Wait for a slot of ``kind``; pair it with ``release(None, info)``."""
        self._anonymous.append(await self._acquire(kind))

    def has_capacity(self, kind: RequestKind = "poll") -> bool:
        """Whether an acquire of ``kind`` would be granted right now without waiting."""
        if self._polls or (kind == "submit" and self._submits):
            return False
        now = self._clock()
        self._advance(now)
        return self._ready_at(kind, now) <= now

    def release(self, request: RequestLike | None, info: RateLimitInfoLike) -> None:
        """Account for the answer (or the failure) of a request granted by :meth:`acquire`.

        Call it exactly once per acquire. A release that matches no acquire (e.g.
        after an acquire that was cancelled) is ignored.
        """
        ticket = self._pop_ticket(request)
        if ticket is None:
            return
        now = self._clock()
        self._advance(now)
        before = (self._gen, self._confirmed, self._permitted)
        self._in_flight -= 1
        if ticket.probe and ticket.gen == self._gen:
            self._probes -= 1
        if info.permitted is not None and info.permitted > 0:
            self._permitted = info.permitted
        remaining = info.remaining
        if remaining is not None and self._permitted is not None and remaining > self._permitted:
            # more left than the window allows at all: nonsense, taken as absent
            remaining = None
        if info.status == 429:
            self._rate_limited += 1
            self._on_rate_limited(ticket, info.retry_after, now)
        elif remaining is None:
            # No usable headers (a proxy's 502, a transport error): the request
            # may or may not have been counted, so hold it as uncertain.
            self._charge_seq += 1
            if self._window_end is None and self._permitted is not None:
                # Never a usable Remaining yet: the window this request may have
                # been counted in still ends within a window of now, so pace to
                # that rather than wait for news that may never come.
                self._phase_lo, self._phase_hi = ticket.sent_at - self._window, now
                self._set_window(now)
        else:
            self._on_remaining(ticket, max(0, remaining), now)
        # A head sleeping until its pacing time needs no wake-up for ordinary
        # news (it re-evaluates when it wakes); one waiting for news does.
        self._kick(paced_too=before != (self._gen, self._confirmed, self._permitted))

    def pause_until(self, t: float) -> None:
        """Send nothing before ``t`` (on the budget's clock); used on 429."""
        if t > self._paused_until:
            self._paused_until = t
            self._kick()

    def statistics(self) -> BudgetStatistics:
        """A snapshot of the budget's state."""
        now = self._clock()
        self._advance(now)
        neighbours = self._neighbours
        return BudgetStatistics(
            permitted=self._permitted,
            remaining_estimate=self._estimate(),
            window_ends_at=self._window_end,
            sent=self._sent,
            in_flight=self._in_flight,
            rate_limited=self._rate_limited,
            paused_until=self._paused_until if self._paused_until > now else None,
            waiting_polls=len(self._polls),
            waiting_submits=len(self._submits),
            window_requests=neighbours.ours,
            window_others=neighbours.others,
            others_expected=neighbours.expected,
            others_reserve=neighbours.reserve(self._window_end),
            recent_windows=neighbours.recent,
            budget_share=self._share,
        )

    def __repr__(self) -> str:
        return (
            f"<RateBudget permitted={self._permitted} remaining~{self._estimate()} "
            f"in_flight={self._in_flight} waiting={len(self._polls) + len(self._submits)}>"
        )

    # ---------------------------------------------------------------- waiting

    def _head(self) -> _Waiter | None:
        # Strict priority: the oldest poll, else the oldest submit.
        for queue in (self._polls, self._submits):
            if queue:
                return next(iter(queue.values()))
        return None

    def _kick(self, *, paced_too: bool = True) -> None:
        # Wake the head of the line (only it) so it re-evaluates its prospects.
        head = self._head()
        if head is None:
            return
        if head.future is not None:
            if not head.future.done():
                head.future.set_result(None)
        elif head.scope is not None and (paced_too or not head.paced):
            head.scope.cancel()

    async def _acquire(self, kind: RequestKind) -> _Ticket:
        await checkpoint_if_cancelled()
        queue = self._polls if kind == "poll" else self._submits
        now = self._clock()
        self._advance(now)
        # Fast path: nobody of equal or higher priority waits and a slot is free. The
        # slot is taken without a trip round the event loop (the request that follows
        # yields soon enough): a cancelled caller was refused above, before any slot.
        ahead = queue or (kind == "submit" and self._polls)
        if not ahead and self._ready_at(kind, now) <= now:
            return self._take(now)

        waiter = _Waiter()
        token = next(self._seq)
        queue[token] = waiter
        try:
            deadline = _INF
            while True:
                if self._head() is waiter:
                    now = self._clock()
                    if deadline - _EPSILON <= now < deadline:
                        # Woken a hair early for the deadline slept towards: take
                        # it as reached, for every decision alike (a roll-over
                        # judged not yet due must not let a grant through).
                        now = deadline
                    self._advance(now)
                    deadline = self._ready_at(kind, now)
                    if deadline <= now:
                        del queue[token]
                        ticket = self._take(now)
                        self._kick()  # the next in line takes over the watch
                        return ticket
                else:
                    deadline = _INF
                if deadline == _INF:
                    # No time to sleep until: woken by _kick alone, through a future
                    # (thousands may wait in line; waking one costs no cancellation)
                    waiter.future = asyncio.get_running_loop().create_future()
                    try:
                        await waiter.future
                    finally:
                        waiter.future = None
                    continue
                with anyio.CancelScope() as scope:
                    waiter.scope = scope
                    waiter.paced = deadline < self._rollover_at
                    await self._sleep_until(deadline)
                waiter.scope = None
        except BaseException:
            # Cancelled (or failed) while waiting: leave no trace and no slot taken.
            if queue.pop(token, None) is not None:
                self._kick()
            raise

    # ------------------------------------------------------------- the model

    def _estimate(self) -> int | None:
        # What the server still allows in this window, at worst: the lowest
        # Remaining it reported (or P for a fresh window), minus every request
        # that may have been counted since without showing in that minimum.
        if self._permitted is None:
            return None
        base = self._permitted if self._min_remaining is None else self._min_remaining
        return base - self._in_flight - (self._charge_seq - self._charge_floor)

    def _ready_at(self, kind: RequestKind, now: float) -> float:
        """The earliest time a request of ``kind`` may go (``<= now``: go; inf: wait for news)."""
        if now < self._paused_until:
            return self._paused_until
        if not self._confirmed:
            # A window of unknown state: one probe at a time until one answers.
            if self._probes:
                return self._rollover_at
            estimate = self._estimate()
            if estimate is None:
                return now  # P unknown: the very first request goes alone
        else:
            estimate = self._estimate()
            assert estimate is not None
        available = self._available(estimate, now)
        # A submit must leave poll_reserve slots behind it for polls.
        needed = 1 + (self._poll_reserve if kind == "submit" else 0)
        if available < needed:
            if (
                (not self._phase_known() or self._neighbours.beyond_history)
                and self._confirmed
                and self._in_flight == 0
                and estimate - self._margin_slots() >= needed
            ):
                # Held back only by what is left to others, while the window's
                # edges are not known well or others are followed by a rate
                # (an extrapolation): look now and then (once every _LOOK_EVERY
                # of a window), so that a reset, or the rate's end, is seen.
                seen = self._neighbours.last_seen
                look = now if seen is None else seen + _LOOK_EVERY * self._window
                if look < self._rollover_at:
                    return max(now, look)
            return self._rollover_at  # until a response frees a slot, or the window ends
        if not self._confirmed:
            return now  # the probe is not paced
        # Pacing (GCRA): one request every time_left / available seconds (the
        # interval, recomputed at each grant), with a tolerance of burst - 1
        # intervals so that short bursts go at once.
        return max(now, self._tat - (self._burst - 1) * self._gap)

    def _available(self, estimate: int, now: float) -> int:
        # What this run may still send in the window: the estimate less the
        # safety slots, less what other clients are expected to spend in it (and
        # the headroom left them), within the share's cap. Whatever others
        # take, one request per window still goes, so the run never stalls.
        available = estimate - self._margin_slots()
        neighbours = self._neighbours
        reserve = neighbours.reserve(self._window_end)
        if reserve > 0:
            mine = available - reserve
            if neighbours.sent_in_window == 0:
                mine = max(mine, min(1, available))
            available = mine
        if self._share is not None and self._permitted is not None:
            available = min(available, self._share_cap(self._permitted) - neighbours.ours)
        return available

    def _share_cap(self, permitted: int) -> int:
        assert self._share is not None
        return max(1, math.floor(self._share * permitted + 1e-9))

    def _margin_slots(self) -> int:
        # The safety slots, but never all of P: a budget that can send nothing
        # at all would stall the run for ever.
        permitted = self._permitted or 1
        return min(self._safety, permitted - 1)

    def _interval(self, now: float, available: int) -> float:
        end = self._pace_end
        neighbours = self._neighbours
        if neighbours.others > 0 and neighbours.expected is None and self._window_end is not None:
            # Another client spends this window and nothing is known of it yet:
            # spread over the longest the window may last (not a guessed
            # boundary), so that its rate is learned before this run's share is
            # spent.
            end = self._window_end
        time_left = end - now
        if time_left <= 0 or available <= 0:
            return 0.0  # in the margin after the window's end: nothing left to spread
        return time_left / available

    def _take(self, now: float) -> _Ticket:
        probe = not self._confirmed
        floor = self._min_remaining if self._confirmed else None
        if probe:
            self._probes += 1
        elif (estimate := self._estimate()) is not None:
            # Advance the theoretical arrival time by this request's interval.
            self._gap = self._interval(now, self._available(estimate, now))
            self._tat = max(self._tat, now) + self._gap
        self._in_flight += 1
        self._sent += 1
        self._neighbours.sent()
        return _Ticket(self._gen, floor, now, self._charge_seq, probe)

    def _pop_ticket(self, request: RequestLike | None) -> _Ticket | None:
        if request is not None:
            entry = self._tickets.get(id(request))
            if entry is not None and entry[0] is request:
                tickets = entry[1]
                ticket = tickets.popleft()
                if not tickets:
                    del self._tickets[id(request)]
                return ticket
        return self._anonymous.popleft() if self._anonymous else None

    def _on_remaining(self, ticket: _Ticket, remaining: int, now: float) -> None:
        # Was this request processed after a reset it could not have known of?
        # It was sent after we had seen Remaining = floor; within one window the
        # count only grows, so without a reset its Remaining would be < floor.
        reset_since_sent = ticket.floor is not None and remaining >= ticket.floor
        if ticket.gen == self._gen:
            if reset_since_sent:
                self._reset_detected(ticket, remaining, now)
            else:
                self._observe(ticket, remaining, now)
            self._observe_others(remaining, now)
        elif reset_since_sent:
            # Sent before the latest reset we know of and processed after one:
            # it describes the current window.
            self._observe(ticket, remaining, now)
            self._observe_others(remaining, now)
        else:
            # Sent before the latest reset, processed before or after it: we
            # cannot tell. If its Remaining is not below this window's minimum it
            # is either counted there already or belongs to the old window; if it
            # is below, it may be an uncounted request of this window: hold it as
            # uncertain until a later-sent request's answer covers it.
            base = self._permitted if self._min_remaining is None else self._min_remaining
            if base is None or remaining < base:
                self._charge_seq += 1

    def _observe_others(self, remaining: int, now: float) -> None:
        # What the server counted in this window beyond this run's requests.
        if self._permitted is not None:
            self._neighbours.observed(self._permitted, remaining, now)

    def _end_window(self, in_flight: int) -> None:
        # Before the window's state is forgotten: what others spent in it.
        end = self._window_end
        started = None
        if end is not None and self._phase_known():
            # the window began W before its end, which lies in (lo, hi]: its middle
            started = end - self._window - (self._phase_hi - self._phase_lo) / 2
        self._neighbours.new_window(
            started=started,
            min_remaining=self._min_remaining,
            permitted=self._permitted,
            in_flight=in_flight,
        )

    def _observe(self, ticket: _Ticket, remaining: int, now: float) -> None:
        if self._min_remaining is None or remaining < self._min_remaining:
            self._min_remaining = remaining
        # This request was processed in this window, so the window's end is
        # later than its send time: a lower bound for the next boundary.
        self._gen_lo = max(self._gen_lo, ticket.sent_at)
        recent = self._recent
        recent.append((now, remaining))
        while recent[0][0] < now - self._window:
            recent.popleft()
        # Its count includes every request answered before it was sent, so the
        # uncertain ones charged before then are settled.
        self._charge_floor = max(self._charge_floor, ticket.cover)
        if not self._confirmed and self._permitted is not None:
            # (Without P, e.g. a Remaining header but no Permitted one, the
            # budget stays with one request at a time.)
            self._confirmed = True
            self._tat = now  # a fresh window: pacing starts over
        if self._window_end is None:
            # First response ever. The window it was counted in started within
            # (processed - W, processed] and processed in (sent, now): so it ends
            # at the latest a full window from now.
            self._phase_lo, self._phase_hi = ticket.sent_at - self._window, now
            self._set_window(now)
        if remaining == 0 and not self._phase_learned:
            # Spent to the last slot, and no reset seen yet. Until one is, our
            # windows are only bounds that may straddle the server's, so the
            # next probe could land in this very window. It surely does not if
            # sent a full window after this answer: the window that counted it
            # started before now, so it ends before now + W.
            self._rollover_at = max(self._rollover_at, now + self._window)

    def _reset_detected(self, ticket: _Ticket, remaining: int, now: float) -> None:
        # The boundary lies before now, and after the send time of every
        # request counted in the old window (each was processed before it).
        # Only the upper bound is relied upon: the lower one is spoilt if a
        # response was counted in the old window by mistake (see below).
        # (What others spent in the old window is taken before the phase is
        # narrowed: the old window's start is what was believed until now.)
        # This request and every one still in flight may be counted in the new one.
        self._end_window(self._in_flight + 1)
        self._learn_phase(self._gen_lo, now)
        # A response counted in the old window because its Remaining was below
        # the floor may in fact come from the new one, processed after this
        # request (so with a lower Remaining) yet answered first. Such a one
        # was answered after this request was sent: hold each of those as
        # uncertain until a later-sent request's answer settles it.
        doubtful = 0
        for answered_at, seen in reversed(self._recent):
            if answered_at <= ticket.sent_at:
                break
            doubtful += seen < remaining
        self._gen += 1
        self._confirmed = True
        self._probes = 0
        self._min_remaining = remaining
        self._gen_lo = ticket.sent_at  # processed in the new window, so sent before its end
        self._recent.clear()
        self._charge_floor = self._charge_seq  # old uncertainties concern the old window
        self._charge_seq += doubtful
        self._tat = now
        self._set_window(now)

    def _phase_known(self) -> bool:
        # where the windows start is known to within a tenth of a window
        return self._phase_learned and self._phase_hi - self._phase_lo <= self._window / 10

    def _learn_phase(self, lo: float, hi: float) -> None:
        # Narrow the boundary interval by intersecting it with the previous
        # one, projected by whole windows; if none fits, the windows are not
        # where we thought (or not fixed): trust the newest observation.
        w = self._window
        if self._phase_learned and hi - lo < w / 2 and self._phase_hi - self._phase_lo < w / 2:
            k = round((hi - self._phase_hi) / w)
            new_lo = max(lo, self._phase_lo + k * w)
            new_hi = min(hi, self._phase_hi + k * w)
            if new_lo < new_hi:
                lo, hi = new_lo, new_hi
        self._phase_lo, self._phase_hi = lo, hi
        self._phase_learned = True

    def _set_window(self, t: float) -> None:
        # The current window is the one whose latest possible end is the first
        # boundary (phase_hi + k * W) after t.
        # (The 1e-9 keeps float noise from landing t just short of a boundary
        # it is on, which would make the same window end again.)
        w = self._window
        k = math.floor((t - self._phase_hi) / w + 1e-9) + 1
        self._window_end = self._phase_hi + k * w
        self._rollover_at = self._window_end + self._margin
        self._pace_end = self._window_end
        if self._wall_clock is not None and not self._phase_learned:
            # Until a reset is seen, the window may end much sooner than its
            # latest possible end. If the server is believed to align its
            # windows to the wall clock, pace towards the next aligned boundary
            # instead: if the belief is wrong, the budget is merely spent early
            # (pacing is about spreading, never about staying under the limit).
            wall = self._wall_clock() - self._clock() + t
            aligned = t + ((-wall) % w or w)
            self._pace_end = min(self._pace_end, aligned)

    def _advance(self, now: float) -> None:
        # Past the (latest possible) end of the window, plus the margin: assume
        # the server has reset. The next request is a probe that confirms it.
        if now < self._rollover_at:
            return
        self._end_window(self._in_flight)
        self._gen += 1
        self._confirmed = False
        self._probes = 0
        self._min_remaining = None
        self._gen_lo = -_INF
        self._recent.clear()
        self._charge_floor = self._charge_seq
        self._set_window(now - self._margin)

    def _on_rate_limited(self, ticket: _Ticket, retry_after: float | None, now: float) -> None:
        # A 429 is not counted by the server and carries Remaining = 0: the
        # window it hit is spent. If that is (or may be) the current window,
        # nothing goes until it ends; a Retry-After, when given, rules instead.
        if retry_after is not None and not 0 < retry_after < _INF:
            # "retry at once" (0, a date in the past) after a refusal says nothing
            # about the window; nonsense says nothing either: pace to the window
            retry_after = None
        self._neighbours.refused(current=ticket.gen == self._gen)
        if ticket.gen == self._gen or not self._confirmed:
            self._observe(ticket, 0, now)
            if retry_after is None:
                self.pause_until(self._rollover_at)
        if retry_after is not None:
            # a fixed window resets within one window: a longer wait is a broken
            # header, never a reason to hang the run
            resume = now + min(retry_after, self._window)
            self.pause_until(resume)
            # The server says its window allows us again then: assume a new
            # window from that moment (its first request is a probe).
            self._rollover_at = min(self._rollover_at, resume)
