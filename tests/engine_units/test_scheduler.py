"""The poll scheduler and the build duration model, on a fake clock."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from orchestrator.engine.scheduler import DurationModel, PollScheduler

from ._virtual_time import advance, virtual_backend


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """The async tests here run on virtual time."""
    return virtual_backend()


@dataclass
class FakeClock:
    """A clock that moves only when told."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def scheduler(
    clock: FakeClock | None = None, *, default: float = 40.0, **kwargs: Any
) -> PollScheduler:
    return PollScheduler(
        poll_min=2.0,
        poll_max=30.0,
        durations=DurationModel(default_seconds=default),
        clock=clock or FakeClock(),
        **kwargs,
    )


# ---------------------------------------------------------------- the model


def test_the_model_falls_back_from_group_to_all_groups_to_the_default() -> None:
    """A group's own quantile once it has enough samples, else all groups', else the default."""
    model = DurationModel(default_seconds=40.0, min_samples=3)
    assert model.expected("rock-1") == 40.0
    model.observe("rock-1", 10.0)
    assert model.expected("rock-3") == 10.0
    for seconds in (20.0, 30.0, 40.0, 50.0):
        model.observe("rock-1", seconds)
    assert model.learned("rock-1")
    assert not model.learned("rock-3")
    assert model.expected("rock-1") == 40.0  # p80 of 10..50 (nearest rank)
    model.observe("rock-3", 100.0)
    assert model.expected("rock-3") == 50.0  # p80 of all six
    assert model.samples("rock-3") == 1


def test_the_model_forgets_old_durations() -> None:
    """Only the last ``history`` durations of a group count."""
    model = DurationModel(default_seconds=40.0, history=5)
    for _ in range(5):
        model.observe("g", 100.0)
    for _ in range(5):
        model.observe("g", 10.0)
    assert model.expected("g") == 10.0


@pytest.mark.parametrize(
    ("hits", "direction"),
    [([False] * 5, 1), ([True] * 5, -1), ([True, True, True, True, False] * 4, 0)],
)
def test_first_poll_reports_move_the_estimate_towards_the_quantile(
    hits: list[bool], direction: int
) -> None:
    """Misses move the first poll later, hits earlier; four hits to a miss balance at p80."""
    model = DurationModel(default_seconds=40.0)
    for _ in range(5):
        model.observe("g", 60.0)
    before = model.expected("g")
    for done in hits:
        model.first_poll("g", done=done, after=model.expected("g"))
    after = model.expected("g")
    if direction:
        assert (after - before) * direction > 0
    else:
        assert after == pytest.approx(before)


def test_first_poll_reports_that_say_nothing_are_ignored() -> None:
    """A hit later than the estimate, a miss sooner, or news of a young group, change nothing."""
    model = DurationModel(default_seconds=40.0)
    model.first_poll("young", done=False, after=40.0)
    assert model.expected("young") == 40.0
    for _ in range(5):
        model.observe("g", 60.0)
    model.first_poll("g", done=True, after=120.0)
    model.first_poll("g", done=False, after=30.0)
    assert model.expected("g") == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_seconds": 0},
        {"default_seconds": 40, "quantile": 0},
        {"default_seconds": 40, "history": 0},
        {"default_seconds": 40, "step": 1},
    ],
)
def test_the_model_refuses_nonsense_settings(kwargs: dict[str, Any]) -> None:
    """Settings that cannot work raise ValueError."""
    with pytest.raises(ValueError, match="must"):
        DurationModel(**kwargs)


def test_the_model_refuses_negative_durations() -> None:
    """A duration below zero (or NaN) is a bug in the caller."""
    with pytest.raises(ValueError, match="negative"):
        DurationModel(default_seconds=40).observe("g", math.nan)


# ------------------------------------------------------------ the scheduler


def test_the_first_poll_comes_at_the_expected_completion() -> None:
    """A new build is first polled when its group is expected to be done."""
    clock = FakeClock(100.0)
    polls = scheduler(clock, default=40.0)
    assert polls.add("web-01", group="rock-1", submitted_at=100.0) == 140.0
    assert polls.next_due_at() == 140.0
    assert polls.due(139.9) == []
    assert polls.due(140.0) == ["web-01"]
    assert polls.next_due_at() is None
    assert len(polls) == 1  # taken, not forgotten


def test_the_first_poll_is_never_sooner_than_poll_min() -> None:
    """Even when builds are expected to be instant, the first poll waits ``poll_min``."""
    polls = scheduler(default=0.5)
    assert polls.add("a", group="g", submitted_at=0.0) == 2.0


def test_learning_a_group_moves_its_first_poll() -> None:
    """Each group's first polls follow its own durations once it has a few."""
    clock = FakeClock()
    polls = scheduler(clock, default=40.0)
    for i in range(3):
        polls.add(f"old-{i}", group="rocky", submitted_at=0.0)
        polls.completed(f"old-{i}", group="rocky", duration=90.0)
    for _ in range(3):
        polls.durations.observe("debian", 20.0)
    assert polls.add("new", group="rocky", submitted_at=0.0) == 90.0
    assert polls.add("other", group="debian", submitted_at=0.0) == 20.0


def test_back_off_grows_and_stays_within_poll_min_and_poll_max() -> None:
    """Polls that find a build unfinished space out geometrically, between poll_min and poll_max."""
    clock = FakeClock()
    polls = scheduler(clock, default=40.0)
    polls.add("a", group="g", submitted_at=0.0)
    intervals = []
    for _ in range(8):
        clock.now = polls.next_due_at() or 0.0
        assert polls.due() == ["a"]
        intervals.append(polls.polled("a") - clock.now)
    assert intervals[0] == 10.0  # a quarter of the expected duration
    assert intervals[1] == 15.0  # then 1.5 times longer each time
    assert all(2.0 <= i <= 30.0 for i in intervals)
    assert intervals[-1] == 30.0
    assert polls.polls("a") == 8


def test_progress_shortens_the_wait_when_nearly_done() -> None:
    """A build 90% done after 90 s is polled again about 10 s later, not after the back-off."""
    clock = FakeClock(0.0)
    polls = scheduler(clock, default=40.0)
    polls.add("a", group="g", submitted_at=0.0)
    clock.now = 40.0
    polls.due()
    assert polls.polled("a", progress=0.1) == 50.0  # far from done: the back-off rules
    clock.now = 90.0
    polls.due()
    assert polls.polled("a", progress=0.9) == pytest.approx(100.0)
    clock.now = 100.0
    polls.due()
    assert polls.polled("a", progress=1.0) == 102.0  # done but not reported so: poll_min


def test_stretch_scales_every_later_interval() -> None:
    """With the budget short, a stretch factor of 2 doubles first polls and back-offs alike."""
    clock = FakeClock()
    polls = scheduler(clock, default=40.0)
    polls.stretch(2.0)
    assert polls.stretch_factor == 2.0
    assert polls.add("a", group="g", submitted_at=0.0) == 80.0
    clock.now = 80.0
    polls.due()
    assert polls.polled("a") == 100.0
    polls.stretch(1.0)
    clock.now = 100.0
    polls.due()
    assert polls.polled("a") == 115.0
    with pytest.raises(ValueError, match="at least 1"):
        polls.stretch(0.5)


def test_poll_soon_polls_again_without_touching_the_back_off() -> None:
    """``poll_soon`` schedules a poll ``poll_min`` from now; unknown keys start being watched."""
    clock = FakeClock(10.0)
    polls = scheduler(clock)
    assert polls.poll_soon("vm", group="g") == 12.0
    assert polls.poll_soon("vm", group="g", delay=5.0) == 15.0
    assert polls.due(20.0) == ["vm"]
    assert "vm" in polls


def test_removed_and_finished_keys_are_not_polled() -> None:
    """remove, completed and a poll that found the build gone all drop the key."""
    polls = scheduler()
    for key in ("a", "b", "c", "d"):
        polls.add(key, group="g", submitted_at=0.0)
    polls.remove("a")
    polls.completed("b", group="g", duration=33.0)
    polls.due(40.0)
    assert polls.polled("c", still_pending=False) == math.inf
    polls.remove("nothing")  # no error
    assert list(polls.due(1e9)) == []
    assert len(polls) == 1  # "d", taken by due() and not polled yet
    assert polls.durations.samples("g") == 1
    with pytest.raises(KeyError):
        polls.polled("a")


def test_due_takes_keys_earliest_first_and_re_adding_starts_over() -> None:
    """``due`` returns the keys in due order; adding a key again replaces its schedule."""
    polls = scheduler(default=40.0)
    polls.add("late", group="g", submitted_at=30.0)
    polls.add("early", group="g", submitted_at=0.0)
    polls.add("middle", group="g", submitted_at=10.0)
    polls.add("early", group="g", submitted_at=20.0)  # re-added: now due at 60
    assert polls.due(100.0) == ["middle", "early", "late"]


def test_count_due_before_counts_only_live_schedules() -> None:
    """The polls due before a time, as the engine's poll reserve wants them."""
    polls = scheduler(default=40.0)
    for i in range(5):
        polls.add(f"vm-{i}", group="g", submitted_at=float(i * 10))  # due 40, 50, ... 80
    polls.remove("vm-0")
    polls.add("vm-1", group="g", submitted_at=100.0)  # rescheduled to 140
    assert polls.count_due_before(75.0) == 2  # vm-2 (60) and vm-3 (70)
    assert polls.count_due_before(1000.0) == 4


def test_ten_thousand_builds_stay_cheap() -> None:
    """10,000 keys with heavy rescheduling come out in order, and the heap holds no backlog."""
    rng = random.Random(1)
    clock = FakeClock()
    polls = scheduler(clock)
    for i in range(10_000):
        polls.add(f"vm-{i}", group=i % 7, submitted_at=rng.uniform(0, 600))
    for _ in range(5):  # every key rescheduled five times, and a tenth removed
        for i in range(10_000):
            key = f"vm-{i}"
            if key in polls:
                if rng.random() < 0.02:
                    polls.remove(key)
                else:
                    polls.add(key, group=i % 7, submitted_at=rng.uniform(0, 600))
    live = len(polls)
    assert len(polls._heap) <= 2 * live + 64
    taken: list[tuple[float, str]] = []
    clock.now = 0.0
    while (when := polls.next_due_at()) is not None:
        clock.now = when
        taken.extend((clock.now, key) for key in polls.due())
    assert len(taken) == live
    assert [t for t, _ in taken] == sorted(t for t, _ in taken)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_min": 10.0, "poll_max": 5.0}, "poll_min"),
        ({"poll_min": 0.0, "poll_max": 5.0}, "poll_min"),
        ({"poll_min": 1.0, "poll_max": 5.0, "growth": 0.5}, "growth"),
        ({"poll_min": 1.0, "poll_max": 5.0, "first_retry": 0.0}, "first_retry"),
    ],
)
def test_nonsense_scheduler_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """Bounds and back-off factors that cannot work raise ValueError."""
    with pytest.raises(ValueError, match=message):
        PollScheduler(durations=DurationModel(default_seconds=40), **kwargs)


# ------------------------------------------------------------------- waiting


@pytest.mark.anyio
async def test_wait_returns_when_the_first_poll_is_due() -> None:
    """``wait`` sleeps until the earliest due time, on the scheduler's clock."""
    polls = PollScheduler(poll_min=2, poll_max=30, durations=DurationModel(default_seconds=40))
    start = anyio.current_time()
    polls.add("a", group="g", submitted_at=start)
    await polls.wait()
    assert anyio.current_time() == pytest.approx(start + 40)
    assert polls.due() == ["a"]


@pytest.mark.anyio
async def test_wait_wakes_early_for_an_earlier_poll() -> None:
    """A key added while waiting that is due sooner ends the wait at its own due time."""
    polls = PollScheduler(poll_min=2, poll_max=30, durations=DurationModel(default_seconds=100))
    start = anyio.current_time()
    polls.add("far", group="g", submitted_at=start)
    woke = anyio.Event()
    woke_at: list[float] = []

    async def poll_loop() -> None:
        await polls.wait()
        woke_at.append(anyio.current_time())
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll_loop)
        await advance(1)
        polls.durations.observe("fast", 4.0)
        polls.add("near", group="fast", submitted_at=anyio.current_time())
        await woke.wait()
    assert woke_at == [pytest.approx(start + 5)]
    assert polls.due() == ["near"]


@pytest.mark.anyio
async def test_wait_on_an_empty_scheduler_waits_for_the_first_add() -> None:
    """With nothing scheduled, ``wait`` sleeps until something is added and due."""
    polls = PollScheduler(poll_min=2, poll_max=30, durations=DurationModel(default_seconds=10))
    done = anyio.Event()

    async def poll_loop() -> None:
        await polls.wait()
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll_loop)
        await advance(60)
        assert not done.is_set()
        polls.add("a", group="g", submitted_at=anyio.current_time() - 10)  # already due
        await done.wait()


@pytest.mark.anyio
async def test_only_one_task_may_wait() -> None:
    """A second concurrent waiter is a programming error."""
    polls = PollScheduler(poll_min=2, poll_max=30, durations=DurationModel(default_seconds=10))
    async with anyio.create_task_group() as tg:
        tg.start_soon(polls.wait)
        await advance(1)
        with pytest.raises(RuntimeError, match="already waiting"):
            await polls.wait()
        tg.cancel_scope.cancel()


# -------------------------------------------------------------- a whole run


@dataclass
class Outcome:
    """What a simulated run measured over the builds after the warm-up."""

    polls_per_build: float
    late_seconds: float
    polls: dict[str, int] = field(default_factory=dict)


def simulate(
    *,
    builds: int = 1500,
    warm_up: int = 200,
    default: float = 40.0,
    report_poll_time: bool = False,
    progress: bool = False,
    seed: int = 1,
    means: dict[str, float] | None = None,
    spread: float = 0.12,
    quantile: float = 0.8,
    **options: Any,
) -> Outcome:
    """Builds of three groups (30, 45 and 90 s, ±12%) submitted two a second, polled when due.

    ``report_poll_time`` makes the run report the time of the poll that saw a
    build done as its duration (an upper bound), as an engine without the
    server's timestamps would. ``means`` and ``spread`` (a normal one's
    standard deviation) change the groups; ``options`` go to the scheduler.
    """
    rng = random.Random(seed)
    clock = FakeClock()
    polls = PollScheduler(
        poll_min=2.0,
        poll_max=30.0,
        durations=DurationModel(default_seconds=default, quantile=quantile),
        clock=clock,
        **options,
    )
    means = means or {"rock-1": 30.0, "rock-3": 45.0, "rock-6": 90.0}
    truth: dict[str, tuple[str, float, float]] = {}
    count: dict[str, int] = {}
    late: dict[str, float] = {}
    finished: list[str] = []
    submitted = 0
    while len(finished) < builds:
        next_submit = submitted / 2.0 if submitted < builds else math.inf
        next_poll = polls.next_due_at()
        if next_poll is None or next_submit <= next_poll:
            clock.now = next_submit
            group = rng.choice(list(means))
            key = f"vm-{submitted}"
            duration = max(5.0, rng.gauss(means[group], spread * means[group]))
            truth[key] = (group, clock.now, duration)
            count[key] = 0
            polls.add(key, group=group, submitted_at=clock.now)
            submitted += 1
            continue
        clock.now = next_poll
        for key in polls.due():
            group, started, duration = truth[key]
            count[key] += 1
            elapsed = clock.now - started
            if elapsed >= duration:
                polls.completed(
                    key, group=group, duration=elapsed if report_poll_time else duration
                )
                late[key] = elapsed - duration
                finished.append(key)
            else:
                polls.polled(key, progress=elapsed / duration if progress else None)
    measured = finished[warm_up:]
    return Outcome(
        polls_per_build=statistics.mean(count[key] for key in measured),
        late_seconds=statistics.mean(late[key] for key in measured),
        polls=count,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"progress": True},
        {"default": 5.0},
        {"report_poll_time": True},
        {"report_poll_time": True, "default": 5.0},
    ],
)
def test_a_learned_run_needs_few_polls_per_build(kwargs: dict[str, Any]) -> None:
    """Once the model has learned, builds average at most 1.5 polls, seen done within ~15 s."""
    outcome = simulate(**kwargs)
    assert outcome.polls_per_build <= 1.5
    assert outcome.late_seconds <= 15.0


#: the scheduler as the engine sets it up
ENGINE_OPTIONS: dict[str, Any] = {
    "quantile": 0.95,
    "follow": 3,
    "follow_every": 100,
    "first_retry": 0.1,
    "report_poll_time": True,
}


@pytest.mark.parametrize("mean", [10.0, 45.0, 120.0])
def test_following_learns_builds_much_faster_or_slower_than_expected(mean: float) -> None:
    """With the default at 45 s, builds of 10 s or 120 s are seen done soon, at ~1 poll each."""
    outcome = simulate(default=45.0, means={"g": mean}, spread=0.15, **ENGINE_OPTIONS)
    assert outcome.polls_per_build <= 1.1
    # first polls aim at the p95, some 25% past the mean at this spread; poll_min is 2 s
    assert outcome.late_seconds <= 0.4 * mean + 2.0


# -------------------------------------------------------------- following


def test_followed_builds_are_polled_closely_and_teach_their_duration() -> None:
    """The first builds of a group are polled from poll_min, each poll a fifth later in age."""
    clock = FakeClock()
    polls = scheduler(clock, follow=1)
    assert polls.add("a", group="g", submitted_at=0.0) == 2.0  # poll_min, not 40
    assert polls.add("b", group="g", submitted_at=0.0) == 40.0  # only the first is followed
    ages = []
    while clock.now < 20.0:
        clock.now = polls.next_due_at() or 0.0
        assert polls.due() == ["a"]
        ages.append(polls.polled("a") - clock.now)
    assert ages[:3] == [2.0, 2.0, 2.0]  # never closer than poll_min
    assert ages[-1] == pytest.approx(0.2 * clock.now)
    seen_done = clock.now = polls.next_due_at() or 0.0
    last_unfinished = seen_done / 1.2
    polls.completed("a", group="g", duration=seen_done)
    polls.completed("b", group="g", duration=99.0)  # not followed: teaches no duration
    assert polls.durations.samples("g") == 1
    assert polls.durations.fastest("g") == pytest.approx((last_unfinished + seen_done) / 2)


def test_a_young_group_puts_off_first_polls_while_its_followed_build_runs() -> None:
    """No other build of a group is polled while a build older than it is seen still running."""
    clock = FakeClock()
    polls = PollScheduler(
        poll_min=2.0,
        poll_max=30.0,
        durations=DurationModel(default_seconds=40.0, min_samples=1),
        clock=clock,
        follow=1,
    )
    polls.add("followed", group="g", submitted_at=0.0)
    polls.add("other", group="g", submitted_at=1.0)  # aimed at 41 s
    while clock.now < 100.0:
        clock.now = polls.next_due_at() or 0.0
        due = polls.due()  # "other" falls due, and is put off
        assert "other" not in due
        if due:
            polls.polled("followed")
    while "followed" not in polls.due():
        clock.now = polls.next_due_at() or 0.0
    polls.completed("followed", group="g", duration=clock.now)
    assert polls.durations.learned("g")
    # learned: the other build is aimed at the duration measured, which has passed
    assert polls.next_due_at() == pytest.approx(1.0 + polls.durations.expected("g"))
    assert polls.due() == ["other"]


def test_learning_brings_first_polls_forward() -> None:
    """Builds far faster than the default are polled as soon as the group is learned."""
    clock = FakeClock()
    polls = PollScheduler(
        poll_min=2.0,
        poll_max=30.0,
        durations=DurationModel(default_seconds=40.0, min_samples=1),
        clock=clock,
        follow=1,
    )
    polls.add("followed", group="g", submitted_at=0.0)
    assert polls.add("other", group="g", submitted_at=0.5) == 40.5
    clock.now = 2.0
    assert polls.due() == ["followed"]
    polls.polled("followed")
    clock.now = 4.0
    assert polls.due() == ["followed"]
    polls.completed("followed", group="g", duration=4.0)
    assert polls.durations.expected("g") == 3.0  # done between 2 s and 4 s
    assert polls.next_due_at() == 3.5
    assert polls.due() == ["other"]


def test_lowering_the_stretch_brings_stretched_first_polls_forward() -> None:
    """First polls put off while the budget was short come back once it is not."""
    polls = scheduler(default=40.0)
    polls.stretch(1.3)
    assert polls.add("a", group="g", submitted_at=0.0) == 52.0
    polls.stretch(1.3)  # unchanged: nothing moves
    assert polls.next_due_at() == 52.0
    polls.stretch(1.0)
    assert polls.next_due_at() == 40.0


def test_few_samples_extend_the_quantile_beyond_the_largest() -> None:
    """With three samples the p95 lies beyond their largest, by their mean spacing."""
    model = DurationModel(default_seconds=40.0, quantile=0.95)
    for seconds in (90.0, 100.0, 120.0):
        model.observe("g", seconds)
    assert model.expected("g") == 135.0


def test_builds_seen_unfinished_raise_a_young_groups_estimate_only() -> None:
    """A build still running at 70 s makes a young group expect 70 s; a learned one ignores it."""
    model = DurationModel(default_seconds=40.0, min_samples=1)
    model.unfinished("young", 70.0)
    model.unfinished("young", 50.0)
    assert model.expected("young") == 70.0
    model.observe("old", 30.0)
    model.unfinished("old", 70.0)
    assert model.expected("old") == 30.0


def test_a_hung_followed_build_does_not_keep_its_group_young() -> None:
    """While a followed build hangs, others are followed until the group has its durations."""
    clock = FakeClock()
    polls = scheduler(clock, follow=2)
    assert polls.add("hangs", group="g", submitted_at=0.0) == 2.0
    assert polls.add("done", group="g", submitted_at=0.0) == 2.0
    assert polls.add("plain", group="g", submitted_at=0.0) == 40.0  # two followed at a time
    clock.now = 2.0
    polls.due()
    polls.completed("done", group="g", duration=2.0)
    assert polls.add("next", group="g", submitted_at=2.0) == 4.0  # followed in its place


def test_a_hung_build_puts_a_young_groups_polls_off_four_times_at_most() -> None:
    """The time a young group's builds were seen unfinished raises its estimate up to 4x."""
    model = DurationModel(default_seconds=40.0)
    model.unfinished("g", 1000.0)
    assert model.expected("g") == 160.0
