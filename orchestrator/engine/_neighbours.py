"""What other clients of the same token spend, per window, and what to leave them.

The rate budget (:mod:`orchestrator.engine.budget`) is the token's, not the
run's: Terraform, the web console and other scripts spend the same
``X-Ratelimit-Remaining``. :class:`Neighbours` is the budget's model of them,
pure arithmetic on what the budget tells it (no clock, no I/O):

* **What others spent so far in this window.** An answer's ``Remaining`` says
  the server had counted ``Permitted - Remaining`` requests of the window when
  it processed that request. Of those, this run's are at most ``ours``: every
  request it sent in the window, plus every one in flight when the window
  began (each may have been counted in either window), less the 429s (never
  counted). So ``Permitted - Remaining - ours`` is a lower bound of what
  others spent; ``others`` is the highest such bound of the window.
* **What they will spend.** When a window ends, its ``others`` (extrapolated
  to the whole window when this run knows where the window began: a steady
  neighbour keeps spending after the last look) goes into a short history; a
  window looked at for less than half of it only when it shows more than
  expected. Others are expected to
  spend, in the current window, what they spent in the busiest of the last
  :data:`HISTORY` windows; what of it they have not spent yet is left to
  them. A neighbour that spends more than that this window (or any neighbour
  before there is history) is followed by its recent rate: what it spent over
  the last tenth of a window, per second, times the seconds left.
* **Headroom.** On top of that, :meth:`Neighbours.reserve` leaves a margin in
  proportion to what others spend (:data:`HEADROOM` of it) and to how much
  their spend varies from window to window (half of how far the busiest
  window of the history rose above its median), times an adaptive factor:
  it doubles after a window that ran dry (``Remaining`` fell to
  :meth:`dry_level` or below) while others were spending, or in which this
  run got a 429, and decays back towards 1 over windows that went well.
  When others' requests would be refused, this run is the one that slows
  down.

With nobody else on the token, ``others`` stays at zero and the reserve too:
the run spends the whole budget as before.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["HEADROOM", "HISTORY", "Neighbours", "WindowShare"]

#: windows of history others' expected spend is taken from (the busiest of them)
HISTORY = 3
#: headroom left to others, as a fraction of what they are expected to spend
HEADROOM = 0.02
#: the adaptive factor on the headroom: its bounds, growth and decay per window
BOOST_MAX = 16.0
_BOOST_GROWTH = 2.0
_BOOST_DECAY = 0.75
#: a window observed for less than this fraction of its length teaches nothing;
#: one observed for less than the second is extrapolated to its end
_MIN_COVERAGE = 0.5
_FULL_COVERAGE = 1.0
#: others' recent rate is measured over about this fraction of a window
_TREND_SPAN = 0.1


@dataclass(frozen=True, slots=True)
class WindowShare:
    """One finished window: this run's requests the server may have counted, and others'."""

    ours: int
    #: others' requests (a lower bound; extrapolated to the whole window when this run
    #: stopped looking before its end)
    others: int


class Neighbours:
    """The budget's model of other clients of the token (see the module docstring).

    The budget calls :meth:`sent` for every request it grants, :meth:`refused`
    for a 429, :meth:`observed` for every answer counted in the current window,
    and :meth:`new_window` when a window ends; :meth:`reserve` says how many of
    the window's remaining slots to leave to others.
    """

    __slots__ = (
        "_boost",
        "_expected",
        "_history",
        "_last_seen",
        "_limited",
        "_recent",
        "_samples",
        "_spread",
        "_window",
        "others",
        "ours",
        "sent_in_window",
    )

    def __init__(self, window_seconds: float) -> None:
        self._window = window_seconds
        #: this run's requests the server may have counted in the current window
        self.ours = 0
        #: this run's requests sent since the current window began
        self.sent_in_window = 0
        #: others' requests in the current window so far, at least
        self.others = 0
        # (time, others) looks at the window, a few per trend span, for others' rate
        self._samples: deque[tuple[float, int]] = deque()
        self._last_seen: float | None = None  # the latest look at this window
        self._limited = False  # this run got a 429 in the window
        self._history: deque[int] = deque(maxlen=HISTORY)
        # of the history, kept as it changes: its busiest window, and how far that
        # rose above the median (a neighbour that just came or went is not
        # mistaken for a variable one)
        self._expected: int | None = None
        self._spread = 0
        self._recent: deque[WindowShare] = deque(maxlen=HISTORY)
        self._boost = 1.0

    # ------------------------------------------------------------ what happens

    def sent(self) -> None:
        """This run sent a request (it may be counted in the current window)."""
        self.ours += 1
        self.sent_in_window += 1

    def refused(self, *, current: bool) -> None:
        """A request of this run was answered 429 (``current``: in the current window)."""
        if current:
            self.ours = max(0, self.ours - 1)
            self._limited = True

    def observed(self, permitted: int, remaining: int, now: float) -> None:
        """An answer counted in the current window said ``Remaining``."""
        others = permitted - remaining - self.ours
        if others > self.others:
            self.others = others
        self._last_seen = now
        samples, span = self._samples, _TREND_SPAN * self._window
        if not samples or now - samples[-1][0] >= span / 4:
            samples.append((now, self.others))
            while len(samples) > 2 and samples[1][0] <= now - span:
                samples.popleft()

    def new_window(
        self,
        *,
        started: float | None,
        min_remaining: int | None,
        permitted: int | None,
        in_flight: int,
    ) -> None:
        """The current window ended; ``in_flight`` requests of this run may be counted in
        the next one.

        ``started`` is when the window began, on the budget's clock, when the
        window phase is known (None otherwise): what others spent after this
        run's last look is then extrapolated at their rate in the window. A
        window whose start is not known is taken as seen (a window joined late
        was looked at after most of it had been spent).
        """
        seen = self._last_seen
        if seen is not None:
            total: int | None = self.others
            if started is not None:
                coverage = min(1.0, (seen - started) / self._window)
                if coverage >= _FULL_COVERAGE:
                    pass
                elif coverage >= _MIN_COVERAGE:
                    total = max(self.others, math.ceil(self.others / coverage))
                elif self.others <= (self.expected or 0):
                    # seen too briefly to say how much; only more than was expected
                    # teaches something: at least that much (a burst at its start)
                    total = None
            if total is not None:
                history = self._history
                history.append(total)
                self._expected = max(history)
                self._spread = self._expected - sorted(history)[len(history) // 2]
                self._recent.append(WindowShare(max(0, self.ours), total))
        if permitted is not None and seen is not None:
            dry = min_remaining is not None and min_remaining <= self.dry_level(permitted)
            if (dry and self.others >= self.dry_level(permitted)) or self._limited:
                self._boost = min(BOOST_MAX, self._boost * _BOOST_GROWTH)
            else:
                self._boost = max(1.0, self._boost * _BOOST_DECAY)
        self.ours = in_flight
        self.sent_in_window = 0
        self.others = 0
        self._samples.clear()
        self._last_seen = None
        self._limited = False

    # ------------------------------------------------------------ what to leave

    @staticmethod
    def dry_level(permitted: int) -> int:
        """A window whose ``Remaining`` fell this low ran dry (0.5% of P, at least 2)."""
        return max(2, math.ceil(permitted / 200))

    @property
    def expected(self) -> int | None:
        """What others are expected to spend in a whole window (None: no history yet)."""
        return self._expected

    @property
    def boost(self) -> float:
        """The adaptive factor on the headroom (1 after windows that went well)."""
        return self._boost

    @property
    def recent(self) -> tuple[WindowShare, ...]:
        """The last finished windows this run looked at long enough, oldest first."""
        return tuple(self._recent)

    def headroom(self, basis: float) -> int:
        """The margin left beyond what others are expected to spend (``basis`` a window)."""
        if basis <= 0:
            return 0
        return math.ceil(self._boost * (HEADROOM * basis + self._spread / 2))

    @property
    def last_seen(self) -> float | None:
        """When the current window was last looked at (an answer counted in it)."""
        return self._last_seen

    @property
    def beyond_history(self) -> bool:
        """Whether others are followed by their rate in this window, not by the history
        (there is none yet, or they spent more than it says)."""
        expected = self.expected
        return expected is None or self.others > expected + self.headroom(expected)

    def reserve(self, window_end: float | None) -> int:
        """Slots of the current window's remaining budget to leave to others.

        Everything is reckoned from the last look at the window: what others
        spent since then is not in the budget's estimate either.
        """
        expected = self._expected
        so_far = self.others
        if not so_far and not expected:
            return 0  # nobody else on the token (the common case: kept cheap)
        future = 0.0 if expected is None else float(max(0, expected - so_far))
        last, samples = self._last_seen, self._samples
        if self.beyond_history and last is not None and samples and window_end is not None:
            # no history, or more than it says: follow their recent rate
            since, then = samples[0]
            if last - since >= _TREND_SPAN * self._window:
                rate = (so_far - then) / (last - since)
                future = max(future, rate * max(0.0, window_end - last))
        basis = max(float(expected or 0), so_far + future)
        return math.ceil(future) + self.headroom(basis)

    def per_window(self, permitted: int) -> int:
        """What a whole window leaves this run: ``permitted`` less others' expected
        spend and the headroom (at least 1)."""
        expected = self.expected or 0
        return max(1, permitted - expected - self.headroom(expected))
