"""When to poll each build in flight: one heap for all of them.

Every poll spends the same rate budget as a build, so the aim is to see each
build finished with as few polls as possible, without noticing late. The
:class:`DurationModel` learns how long builds take per group (package,
template, data center); the :class:`PollScheduler` polls a build first when it
is expected to be done, then backs off geometrically between ``poll_min`` and
``poll_max`` (sooner when the task's progress says it is nearly done).

The figures that matter: with a p80 estimate, about four builds in five are
done at their first poll, and the rest at the next one or two, so a learned
run averages about 1.25 polls per build (builds of ±12% spread, in the tests).

The model is also told, for each build, whether its first poll found it done,
and nudges its estimate towards the point where that holds for four builds in
five. This keeps it honest when the durations it learns from are only upper
bounds (the time of the poll that saw the build done, rather than the server's
own timestamps): fed its own polling times, a plain quantile would never come
down again.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable
from itertools import count

import anyio
from anyio.lowlevel import checkpoint

from orchestrator.engine._loop import loop_time

__all__ = ["DurationModel", "PollScheduler"]

_INF = math.inf
_EPSILON = 1e-6  # a wake-up this close to its deadline counts as on time


class DurationModel:
    """Learns how long builds take, per group, from the builds that completed.

    :meth:`expected` is a high quantile (``quantile``, p80 by default) of the
    last ``history`` durations of the group, once it has ``min_samples``;
    before that, of the last durations of all groups together; before any,
    ``default_seconds``. A high quantile rather than the mean because a poll
    that comes too early costs a whole extra request, while one that comes a
    little late costs only seconds.

    That quantile is then scaled by a per-group calibration factor, learned
    from :meth:`first_poll` reports (in steps of ``step``, within [1/4, 4]),
    so that a fraction ``quantile`` of first polls find the build done even
    when the observed durations are biased.
    """

    __slots__ = (
        "_all",
        "_cache",
        "_calibration",
        "_default",
        "_floors",
        "_groups",
        "_history",
        "_min_samples",
        "_quantile",
        "_step",
    )

    def __init__(
        self,
        *,
        default_seconds: float,
        quantile: float = 0.8,
        history: int = 50,
        min_samples: int = 3,
        step: float = 0.1,
    ) -> None:
        if not default_seconds > 0:
            raise ValueError("default_seconds must be positive")
        if not 0 < quantile <= 1:
            raise ValueError("quantile must be in (0, 1]")
        if history < 1 or min_samples < 1:
            raise ValueError("history and min_samples must be at least 1")
        if not 0 <= step < 1:
            raise ValueError("step must be in [0, 1)")
        self._default = float(default_seconds)
        self._quantile = quantile
        self._history = history
        self._min_samples = min_samples
        self._step = step
        self._calibration: dict[Hashable, float] = {}
        self._groups: dict[Hashable, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=4 * history)
        # per young group: the longest a build was seen still unfinished
        self._floors: dict[Hashable, float] = {}
        # expected() per group, dropped whenever an observation changes it
        self._cache: dict[Hashable, float] = {}

    def observe(self, group: Hashable, seconds: float) -> None:
        """Record that a build of ``group`` completed ``seconds`` after it was submitted.

        Prefer the server's own account (task ``finished_at - created_at``) to the
        time of the poll that saw it done: the latter only says "by then", and
        would teach the model its own polling times.
        """
        if not seconds >= 0:  # also refuses NaN
            raise ValueError("seconds must not be negative")
        samples = self._groups.get(group)
        if samples is None:
            samples = self._groups[group] = deque(maxlen=self._history)
        samples.append(seconds)
        self._all.append(seconds)
        if len(samples) >= self._min_samples:
            self._floors.pop(group, None)
        self._cache.clear()  # the fallback of every young group changes too

    def unfinished(self, group: Hashable, seconds: float) -> None:
        """Record that a build of ``group`` was still unfinished ``seconds`` after submission.

        Until the group has its own durations, this is all there is to learn
        from builds slower than expected: :meth:`expected` is then never less
        than the longest such time, up to four times what it would be without
        (a build that hangs must not put the others off for ever).
        """
        if self.learned(group) or not seconds > self._floors.get(group, 0.0):
            return
        self._floors[group] = seconds
        self._cache.pop(group, None)

    def expected(self, group: Hashable) -> float:
        """How long a build of ``group`` is expected to take, in seconds (see the class).

        A group not yet learned falls back on all groups' durations (or the
        default), raised to the longest time one of its builds was seen
        unfinished (see :meth:`unfinished`).
        """
        cached = self._cache.get(group)
        if cached is not None:
            return cached
        samples = self._groups.get(group)
        if samples is not None and len(samples) >= self._min_samples:
            value = self._quantile_of(samples)
            value *= self._calibration.get(group, 1.0)
        else:
            value = self._quantile_of(self._all) if self._all else self._default
            value = max(value, min(self._floors.get(group, 0.0), 4.0 * value))
        self._cache[group] = value
        return value

    def fastest(self, group: Hashable) -> float | None:
        """The shortest recent duration of ``group``, or None before it has one."""
        samples = self._groups.get(group)
        return min(samples) if samples else None

    def first_poll(self, group: Hashable, *, done: bool, after: float) -> None:
        """Report whether a first poll ``after`` seconds from submission found the build done.

        A stochastic approximation of the quantile (Robbins-Monro): each miss
        moves the estimate later by ``step * quantile``, each hit earlier by
        ``step * (1 - quantile)``, in log scale. The moves balance exactly
        when a fraction ``quantile`` of first polls are hits, which is the aim.

        Builds report long after their poll was aimed, and meanwhile the
        estimate moves: a report only counts if it says something about the
        *current* estimate ``e`` (a hit at ``after <= e`` is a hit at ``e``
        too, a miss at ``after >= e`` a miss at ``e`` too; within 10% of ``e``
        counts as at ``e``). Without this, the reports of a thousand builds in
        flight would push the estimate far past its mark. Reports about a group
        not yet :meth:`learned` are ignored.
        """
        if not self.learned(group):
            return
        current = self.expected(group)
        near = current / 1.1 <= after <= current * 1.1
        if not near and (after > current if done else after < current):
            return  # says nothing about the current estimate
        q, step = self._quantile, self._step
        factor = math.exp(-step * (1 - q)) if done else math.exp(step * q)
        calibration = self._calibration.get(group, 1.0)
        self._calibration[group] = min(4.0, max(0.25, calibration * factor))
        self._cache.pop(group, None)

    def samples(self, group: Hashable) -> int:
        """How many recent durations of ``group`` the model holds."""
        samples = self._groups.get(group)
        return 0 if samples is None else len(samples)

    def learned(self, group: Hashable) -> bool:
        """Whether :meth:`expected` of ``group`` comes from its own durations."""
        return self.samples(group) >= self._min_samples

    def _quantile_of(self, samples: deque[float]) -> float:
        # Nearest-rank quantile: the smallest sample with at least q of all
        # samples at or below it. With too few samples to resolve it (the rank
        # falls on the largest), the quantile most likely lies beyond them: the
        # largest is extended by the mean spacing of the samples, as the
        # unbiased estimate of a uniform distribution's maximum does. (Three
        # samples' largest is only their p75 on average.)
        ordered = sorted(samples)
        n = len(ordered)
        rank = math.ceil(self._quantile * n)
        value = ordered[max(0, rank - 1)]
        if rank >= n >= 2:
            value += (ordered[-1] - ordered[0]) / (n - 1)
        return value


class _Entry:
    """One build being watched."""

    __slots__ = (
        "aim",
        "followed",
        "group",
        "interval",
        "judge",
        "polls",
        "seq",
        "stretch",
        "submitted_at",
        "unfinished_at",
    )

    def __init__(
        self,
        group: Hashable,
        submitted_at: float,
        *,
        judge: float | None,
        aim: float | None = None,
        stretch: float = 1.0,
        followed: bool = False,
    ) -> None:
        self.group = group
        self.submitted_at = submitted_at
        self.interval: float | None = None  # the last back-off interval, unstretched
        self.polls = 0
        self.seq = -1  # sequence number of its live heap item (-1: not scheduled)
        # when its first poll was aimed (unstretched, from submission), while
        # that is still to be reported to the model as a hit or a miss
        self.judge = judge
        # while its first poll is still to come: where it was aimed (unstretched,
        # from submission), and the stretch it was given (None: not a first poll)
        self.aim = aim
        self.stretch = stretch
        self.followed = followed  # polled closely, to measure its duration
        self.unfinished_at = 0.0  # seconds from submission at the last poll that saw it unfinished


class PollScheduler:
    """Decides when each build in flight is polled next.

    ``add`` schedules the first poll near the build's expected completion (never
    before ``poll_min``); after each poll that saw it unfinished, ``polled``
    schedules the next after a back-off interval that starts at
    ``first_retry`` times the expected duration and grows ``growth``-fold, bounded
    by ``poll_min`` and ``poll_max``. Every interval (the first poll's delay
    included) is multiplied by the :meth:`stretch` factor, which the engine
    raises above 1 when the rate budget runs short.

    **Following.** With ``follow`` > 0 the scheduler measures durations itself
    instead of trusting what :meth:`completed` is told: the first ``follow``
    builds of each group (and one in ``follow_every`` after that) are
    *followed*, polled from ``poll_min`` (or from a little before the fastest
    build learned) at intervals growing with their age (each poll
    ``follow_growth`` times later, at least ``poll_min`` apart), so that the
    poll seeing one done brackets its duration closely; only followed builds
    teach the model durations (the midpoint of that bracket). Every other
    build only reports whether its first poll was a hit or a miss (see
    :meth:`DurationModel.first_poll`), and a poll that finds it unfinished
    teaches a young group that its builds take longer
    (:meth:`DurationModel.unfinished`). A first poll that falls due when the
    group is by then expected to take longer is put off without a request;
    when a group becomes learned, every first poll still to come is aimed
    again, so builds much faster than first assumed are seen done soon. With
    ``follow = 0`` every :meth:`completed` duration is learned as given.

    One task (the engine's poll loop) calls :meth:`wait` and then :meth:`due`.
    Every operation but :meth:`count_due_before` is O(log n) (amortized) in the
    number of builds, and a group's becoming learned costs one pass over them.
    """

    __slots__ = (
        "_adds",
        "_clock",
        "_durations",
        "_entries",
        "_first_retry",
        "_follow",
        "_follow_every",
        "_follow_growth",
        "_following",
        "_growth",
        "_heap",
        "_live",
        "_poll_max",
        "_poll_min",
        "_seq",
        "_sleep_until",
        "_stretch",
        "_stretched",
        "_wake",
        "_wake_at",
    )

    def __init__(
        self,
        *,
        poll_min: float,
        poll_max: float,
        durations: DurationModel,
        clock: Callable[[], float] = loop_time,
        sleep_until: Callable[[float], Awaitable[None]] | None = None,
        growth: float = 1.5,
        first_retry: float = 0.25,
        follow: int = 0,
        follow_every: int = 0,
        follow_growth: float = 1.2,
    ) -> None:
        if not 0 < poll_min <= poll_max:
            raise ValueError("poll_min must be positive and at most poll_max")
        if not growth >= 1 or not first_retry > 0:
            raise ValueError("growth must be at least 1 and first_retry positive")
        if follow < 0 or follow_every < 0 or not follow_growth > 1:
            raise ValueError("follow and follow_every must not be negative, follow_growth > 1")
        self._follow = follow
        self._follow_every = follow_every
        self._follow_growth = follow_growth
        self._adds: Counter[Hashable] = Counter()  # builds added, per group
        self._following: Counter[Hashable] = Counter()  # followed builds watched, per group
        self._poll_min = float(poll_min)
        self._poll_max = float(poll_max)
        self._durations = durations
        self._clock = clock
        self._sleep_until = sleep_until or self._sleep_on_clock
        self._growth = growth
        self._first_retry = first_retry
        self._stretch = 1.0
        self._stretched: list[
            str
        ] = []  # keys whose first poll was stretched, since the last unstretch
        self._entries: dict[str, _Entry] = {}
        # (due, seq, key); items whose seq is no longer their entry's are stale
        self._heap: list[tuple[float, int, str]] = []
        self._live = 0  # heap items that are not stale
        self._seq = count()
        self._wake: anyio.CancelScope | None = None
        self._wake_at = _INF

    # ---------------------------------------------------------------- public

    @property
    def durations(self) -> DurationModel:
        """The duration model this scheduler learns into."""
        return self._durations

    @property
    def stretch_factor(self) -> float:
        """The current factor applied to every interval (see :meth:`stretch`)."""
        return self._stretch

    def add(self, key: str, *, group: Hashable, submitted_at: float) -> float:
        """Watch a build submitted at ``submitted_at``; returns when it is first polled.

        The first poll comes when the build is expected to be done (see
        :class:`DurationModel`), and never sooner than ``poll_min`` after the
        submission. Adding a key again starts it over.
        """
        self.remove(key)
        self._adds[group] += 1
        durations = self._durations
        if self._follows(group):
            self._following[group] += 1
            fastest = durations.fastest(group) if durations.learned(group) else None
            start = self._poll_min if fastest is None else max(self._poll_min, 0.8 * fastest)
            entry = self._entries[key] = _Entry(group, submitted_at, judge=None, followed=True)
            return self._schedule(key, entry, submitted_at + start)
        aim = max(self._poll_min, durations.expected(group))
        judge = self._stretch == 1.0 and durations.learned(group)
        entry = self._entries[key] = _Entry(
            group, submitted_at, judge=aim if judge else None, aim=aim, stretch=self._stretch
        )
        if self._stretch > 1.0:
            self._stretched.append(key)
        return self._schedule(key, entry, submitted_at + aim * self._stretch)

    def poll_soon(self, key: str, *, group: Hashable, delay: float | None = None) -> float:
        """Poll ``key`` again ``delay`` seconds from now (default and minimum ``poll_min``).

        For a poll that is not about the build's progress, e.g. fetching the
        build once its task is done, or watching the VM start. The key keeps
        its back-off state if it is watched, and is watched from now if not.
        Returns the due time.
        """
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(group, self._clock(), judge=None)
        when = self._clock() + max(self._poll_min, delay or 0.0)
        return self._schedule(key, entry, when)

    def polled(
        self, key: str, *, progress: float | None = None, still_pending: bool = True
    ) -> float:
        """Record a poll of ``key`` that saw the build unfinished; returns the next due time.

        The interval grows from ``first_retry`` times the expected duration by
        ``growth`` at each poll, within ``[poll_min, poll_max]``, then is
        stretched. ``progress`` (the fraction done, 0 to 1: the task's
        ``progress`` / 100) shortens it when a linear extrapolation says the
        build ends sooner. With
        ``still_pending=False`` (the poll found the build no longer pending)
        the key is dropped instead, as by :meth:`remove`, and ``inf`` returned.
        Raises ``KeyError`` for a key that is not watched.
        """
        entry = self._entries[key]
        if not still_pending:
            self.remove(key)
            return _INF
        now = self._clock()
        entry.polls += 1
        entry.aim = None
        age = now - entry.submitted_at
        entry.unfinished_at = max(entry.unfinished_at, age)
        if entry.judge is not None:
            self._durations.first_poll(entry.group, done=False, after=entry.judge)
            entry.judge = None
        if entry.followed:
            # Closely, to bracket its duration: each poll a fixed fraction of
            # its age later (never sooner than poll_min), and never stretched.
            step = age * (self._follow_growth - 1)
            interval = min(self._poll_max, max(self._poll_min, step))
            self._unfinished(entry, age)
            return self._schedule(key, entry, now + self._shorten(entry, interval, progress, now))
        # Geometric back-off, bounded: the first retry after a fraction of the
        # expected duration (the build is late, but most late builds are only
        # a little late), each next one growth times longer.
        if entry.interval is None:
            interval = self._first_retry * self._durations.expected(entry.group)
        else:
            interval = entry.interval * self._growth
        interval = min(self._poll_max, max(self._poll_min, interval))
        entry.interval = interval
        interval = self._shorten(entry, interval, progress, now)
        # (only now: the back-off above starts from what was expected before)
        self._unfinished(entry, age)
        return self._schedule(key, entry, now + interval * self._stretch)

    def remove(self, key: str) -> None:
        """Stop watching ``key`` (no error if it is not watched)."""
        self._unschedule(key)
        entry = self._entries.pop(key, None)
        if entry is not None and entry.followed:
            self._following[entry.group] -= 1

    def completed(self, key: str, *, group: Hashable, duration: float) -> None:
        """Say the build was seen done ``duration`` s after submission; stop watching it.

        If no poll saw it unfinished before, its first poll was a hit, and the
        model hears of that too (see :meth:`DurationModel.first_poll`). What
        the model learns as a duration depends on following (see the class):
        without it, ``duration`` as given; with it, only a followed build's
        duration, bracketed by its last poll that saw it unfinished (a build
        not watched is learned as given).
        """
        entry = self._entries.get(key)
        durations = self._durations
        if entry is not None and entry.judge is not None:
            durations.first_poll(entry.group, done=True, after=entry.judge)
        learned = durations.learned(group)
        if entry is None or not self._follow:
            durations.observe(group, duration)
        elif entry.followed:
            # done within (last seen unfinished, seen done]: the midpoint
            low = entry.unfinished_at
            durations.observe(group, duration if entry.polls == 0 else (low + duration) / 2)
        self.remove(key)
        if not learned and durations.learned(group):
            self._reaim(group)

    def stretch(self, factor: float) -> None:
        """Multiply every interval scheduled from now on by ``factor`` (>= 1; 1 undoes it).

        Lowering it also brings forward the first polls still to come that were
        stretched more: once the budget is no longer short, a build is best
        seen done soon (at the end of a run, that is the wall time).
        """
        if not factor >= 1:
            raise ValueError("the stretch factor must be at least 1")
        lowered = factor < self._stretch
        self._stretch = float(factor)
        if lowered and self._stretched:
            # Each key is in the list once per stretched add: amortized O(log n) per add.
            keys, self._stretched = self._stretched, []
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or entry.aim is None or entry.seq < 0:
                    continue
                if entry.stretch > factor:
                    entry.stretch = factor
                    self._aim(key, entry, entry.aim)
                if factor > 1.0:
                    self._stretched.append(key)

    def polls(self, key: str) -> int:
        """How many polls of ``key`` saw it unfinished so far."""
        return self._entries[key].polls

    def due(self, now: float | None = None) -> list[str]:
        """Take every key due at ``now`` (default: the clock's now), earliest first.

        A taken key stays watched but is not scheduled again until
        :meth:`polled` (or :meth:`add`) says when.
        """
        if now is None:
            now = self._clock()
        entries, durations = self._entries, self._durations
        keys: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._heap)
            entry = entries.get(key)
            if entry is None or entry.seq != seq:
                continue
            entry.seq = -1
            self._live -= 1
            if entry.aim is not None:
                # A first poll: if the group is by now expected to take longer
                # than when it was aimed, put it off rather than spend a request.
                aim = max(self._poll_min, durations.expected(entry.group))
                when = entry.submitted_at + aim * entry.stretch
                if aim > entry.aim and when > now + _EPSILON:
                    self._aim(key, entry, aim)
                    continue
            keys.append(key)
        return keys

    def next_due_at(self) -> float | None:
        """When the next poll is due, or ``None`` if nothing is scheduled."""
        heap, entries = self._heap, self._entries
        while heap:
            when, seq, key = heap[0]
            entry = entries.get(key)
            if entry is not None and entry.seq == seq:
                return when
            heapq.heappop(heap)  # stale: its key was removed or rescheduled
        return None

    def count_due_before(self, t: float) -> int:
        """How many scheduled polls fall due before ``t``: O(n), for occasional use.

        E.g. ``budget.poll_reserve = scheduler.count_due_before(window_end)``
        keeps room in the rate budget's window for the polls it will need.
        """
        entries = self._entries
        return sum(
            1
            for when, seq, key in self._heap
            if when < t and (entry := entries.get(key)) is not None and entry.seq == seq
        )

    async def wait(self) -> None:
        """Return once something is due; wakes early when an earlier poll is scheduled.

        Only one task may wait at a time.
        """
        if self._wake is not None:
            raise RuntimeError("another task is already waiting on this scheduler")
        while True:
            when = self.next_due_at()
            if when is not None and when <= self._clock() + _EPSILON:
                await checkpoint()
                return
            with anyio.CancelScope() as scope:
                self._wake, self._wake_at = scope, _INF if when is None else when
                try:
                    if when is None:
                        await anyio.sleep_forever()
                    else:
                        await self._sleep_until(when)
                finally:
                    self._wake, self._wake_at = None, _INF

    def __len__(self) -> int:
        """How many builds are watched (scheduled, or taken by :meth:`due` and not yet polled)."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # --------------------------------------------------------------- helpers

    def _follows(self, group: Hashable) -> bool:
        # Up to `follow` builds of a group at a time until it has `follow`
        # durations (one that hangs does not hold the others up), then one in
        # `follow_every`.
        if not self._follow:
            return False
        durations = self._durations
        if durations.samples(group) < self._follow and self._following[group] < self._follow:
            return True
        return (
            bool(self._follow_every)
            and durations.learned(group)
            and self._adds[group] % self._follow_every == 0
        )

    def _unfinished(self, entry: _Entry, age: float) -> None:
        # Tell the model a build was seen unfinished at `age`. When following,
        # a young group's builds are not expected before the next close poll of
        # one of them (age * follow_growth): until a followed build is seen
        # done, polling younger builds would only find them unfinished too.
        growth = self._follow_growth if self._follow else 1.0
        self._durations.unfinished(entry.group, age * growth)

    def _shorten(self, entry: _Entry, interval: float, progress: float | None, now: float) -> float:
        if progress is not None and progress > 0:
            # Linear extrapolation from the progress so far: if the build should
            # end before the back-off is over, poll when it should end instead.
            done = min(progress, 1.0)
            elapsed = max(0.0, now - entry.submitted_at)
            left = elapsed * (1.0 - done) / done
            interval = min(interval, max(self._poll_min, left))
        return interval

    def _aim(self, key: str, entry: _Entry, aim: float) -> float:
        # (Re)aim a first poll still to come at `aim` seconds after submission.
        entry.aim = aim
        if entry.stretch == 1.0 and self._durations.learned(entry.group):
            entry.judge = aim
        return self._schedule(key, entry, entry.submitted_at + aim * entry.stretch)

    def _reaim(self, group: Hashable) -> None:
        # The group has just learned its durations: aim its first polls anew.
        aim = max(self._poll_min, self._durations.expected(group))
        for key, entry in list(self._entries.items()):
            if entry.group == group and entry.aim is not None and entry.seq >= 0:
                self._aim(key, entry, aim)

    async def _sleep_on_clock(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - self._clock()))

    def _schedule(self, key: str, entry: _Entry, when: float) -> float:
        if entry.seq >= 0:
            self._live -= 1  # its previous heap item becomes stale
        entry.seq = next(self._seq)
        heapq.heappush(self._heap, (when, entry.seq, key))
        self._live += 1
        self._compact()
        if when < self._wake_at and self._wake is not None:
            self._wake.cancel()  # the waiter sleeps past this one: let it look again
        return when

    def _unschedule(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.seq >= 0:
            entry.seq = -1
            self._live -= 1
        self._compact()

    def _compact(self) -> None:
        # Stale items are skipped lazily; rebuild when they outnumber the live
        # ones so that the heap stays O(live) and every operation O(log n).
        heap = self._heap
        if len(heap) > 2 * self._live + 64:
            entries = self._entries
            self._heap = [
                item
                for item in heap
                if (entry := entries.get(item[2])) is not None and entry.seq == item[1]
            ]
            heapq.heapify(self._heap)
