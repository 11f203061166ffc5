"""The rate budget's model of other clients of the token: pure arithmetic, no clock."""

from __future__ import annotations

import pytest

from orchestrator.engine._neighbours import BOOST_MAX, HEADROOM, Neighbours, WindowShare

P = 1000
W = 60.0


def window(
    model: Neighbours,
    *,
    others: int,
    ours: int = 0,
    start: float = 0.0,
    seen_at: float | None = None,
    min_remaining: int | None = 100,
    known: bool = True,
) -> None:
    """One window in which this run sent ``ours`` requests and saw ``others`` spent by
    others at ``seen_at`` (by default at its very end); then the window ends."""
    for _ in range(ours):
        model.sent()
    model.observed(P, P - others - model.ours, start + W if seen_at is None else seen_at)
    model.new_window(
        started=start if known else None, min_remaining=min_remaining, permitted=P, in_flight=0
    )


def test_others_are_what_the_server_counted_beyond_this_runs_requests() -> None:
    """Remaining says P - Remaining were counted; this run's may all be among them."""
    model = Neighbours(W)
    for _ in range(30):
        model.sent()
    model.observed(P, 700, 10.0)  # 300 counted, 30 of them possibly ours
    assert (model.ours, model.others) == (30, 270)
    model.observed(P, 720, 11.0)  # an older answer, out of order: teaches nothing new
    assert model.others == 270
    model.refused(current=True)  # a 429 is never counted
    assert model.ours == 29


def test_requests_in_flight_at_a_window_start_count_as_ours_there() -> None:
    """Each may be counted in the new window: others are never overestimated by them."""
    model = Neighbours(W)
    model.new_window(started=None, min_remaining=None, permitted=P, in_flight=12)
    model.observed(P, P - 12, 1.0)
    assert (model.ours, model.others, model.sent_in_window) == (12, 0, 0)


def test_nobody_else_means_nothing_is_reserved() -> None:
    """With the token to itself, the run leaves nothing aside: it spends the whole budget."""
    model = Neighbours(W)
    for start in (0.0, 60.0, 120.0):
        window(model, others=0, ours=900, start=start, min_remaining=0)
    assert model.expected == 0
    assert model.reserve(window_end=200.0) == 0
    assert model.per_window(P) == P


def test_others_expected_spend_is_the_busiest_of_the_last_windows() -> None:
    """The busiest of the last three windows; older ones are forgotten."""
    model = Neighbours(W)
    for k, others in enumerate((900, 400, 600, 500)):
        window(model, others=others, start=k * W)
    assert model.expected == 600
    assert [w.others for w in model.recent] == [400, 600, 500]


def test_what_is_left_to_others_is_their_expected_spend_not_yet_spent_plus_headroom() -> None:
    """Steady at 600 a window, 200 spent so far: 400 more are left to them, plus headroom."""
    model = Neighbours(W)
    for k in range(3):
        window(model, others=600, start=k * W)
    model.observed(P, P - 200, 200.0)
    headroom = model.headroom(600)
    assert headroom == round(HEADROOM * 600)
    assert model.reserve(window_end=240.0) == 400 + headroom
    assert model.per_window(P) == P - 600 - headroom


def test_a_window_seen_only_in_part_is_extrapolated_when_its_start_is_known() -> None:
    """Seen at 75% of it with 300 spent: a steady neighbour spends 400 in the window."""
    model = Neighbours(W)
    window(model, others=300, start=0.0, seen_at=45.0)
    assert model.expected == 400


def test_a_window_seen_too_briefly_teaches_only_more_than_expected() -> None:
    """Seen only in its first third: no guess at the whole window, but what was seen
    when it is more than expected (a burst at the window's start)."""
    model = Neighbours(W)
    window(model, others=0, start=0.0)
    window(model, others=100, start=W, seen_at=W + 20)
    assert model.expected == 100
    window(model, others=50, start=2 * W, seen_at=2 * W + 20)
    assert [w.others for w in model.recent] == [0, 100]


def test_a_window_of_unknown_start_is_taken_as_seen() -> None:
    """Joined late (the phase not learned yet): what was counted is all there is to go on."""
    model = Neighbours(W)
    window(model, others=550, seen_at=5.0, known=False)
    assert model.expected == 550


def test_the_headroom_grows_with_how_much_others_spend_vary() -> None:
    """Half of how far the busiest window rose above the median comes on top; a neighbour
    that just came is not taken for a variable one."""
    steady, varying, arrived = Neighbours(W), Neighbours(W), Neighbours(W)
    for k, others in enumerate((500, 500, 500)):
        window(steady, others=others, start=k * W)
    for k, others in enumerate((300, 500, 420)):
        window(varying, others=others, start=k * W)
    for k, others in enumerate((0, 500, 500)):
        window(arrived, others=others, start=k * W)
    assert steady.headroom(500) == 10
    assert varying.headroom(500) == 10 + 40
    assert arrived.headroom(500) == 10


def test_a_dry_window_with_others_spending_doubles_the_headroom() -> None:
    """Remaining near zero while others spent: their requests may have been refused."""
    model = Neighbours(W)
    window(model, others=500, min_remaining=1)
    assert model.boost == 2.0
    window(model, others=500, start=W, min_remaining=0)
    assert model.boost == 4.0
    assert model.headroom(500) == 40


def test_a_429_doubles_the_headroom_and_good_windows_bring_it_back() -> None:
    """A 429 of this run says the window ran out; windows that went well decay the factor."""
    model = Neighbours(W)
    model.sent()
    model.refused(current=True)
    window(model, others=500)
    assert model.boost == 2.0
    for k in range(1, 10):
        window(model, others=500, start=k * W)
    assert model.boost == 1.0


def test_the_headroom_factor_is_bounded() -> None:
    """However many windows run dry, the factor stops at its bound."""
    model = Neighbours(W)
    for k in range(20):
        window(model, others=500, start=k * W, min_remaining=0)
    assert model.boost == BOOST_MAX


def test_a_dry_window_of_this_run_alone_changes_nothing() -> None:
    """The run spending the whole window itself hurts nobody."""
    model = Neighbours(W)
    window(model, others=0, ours=999, min_remaining=0)
    assert model.boost == 1.0


def test_without_history_others_are_followed_by_their_recent_rate() -> None:
    """10 a second seen over a tenth of a window: 10 a second until the window ends."""
    model = Neighbours(W)
    model.observed(P, P - 100, 0.0)
    assert model.reserve(window_end=W) == model.headroom(100)  # one look: no rate yet
    for t in range(1, 13):
        model.observed(P, P - 100 - 10 * t, float(t))
    rate_left = 10 * (W - 12)
    assert model.reserve(window_end=W) == rate_left + model.headroom(220 + rate_left)


def test_others_spending_beyond_their_history_are_followed_by_their_rate() -> None:
    """History says 200 a window, but 400 are spent by mid-window and rising."""
    model = Neighbours(W)
    for k in range(3):
        window(model, others=200, start=k * W)
    start = 3 * W
    for t in range(31):
        model.observed(P, P - 14 * t, start + t)
    assert model.reserve(window_end=start + W) >= 14 * 29


def test_a_burst_that_matches_the_history_is_not_mistaken_for_a_rate() -> None:
    """500 at the window's start, as in every window: nothing more is expected after it."""
    model = Neighbours(W)
    for k in range(3):
        window(model, others=500, start=k * W)
    start = 3 * W
    model.observed(P, P - 1, start + 0.1)
    model.observed(P, P - 500, start + 1.0)
    for t in range(2, 20):
        model.observed(P, P - 500, start + t)
    assert model.reserve(window_end=start + W) == model.headroom(500)


def test_the_window_share_reads_back() -> None:
    """recent holds this run's requests and others' of each finished window."""
    model = Neighbours(W)
    window(model, others=250, ours=40)
    assert model.recent == (WindowShare(ours=40, others=250),)


@pytest.mark.parametrize("permitted", [1, 10, 1000])
def test_a_whole_window_always_leaves_this_run_at_least_one_request(permitted: int) -> None:
    """However much others spend, the run is never told it has nothing at all."""
    model = Neighbours(W)
    model.observed(permitted, 0, 59.0)
    model.new_window(started=0.0, min_remaining=0, permitted=permitted, in_flight=0)
    assert model.per_window(permitted) == 1
