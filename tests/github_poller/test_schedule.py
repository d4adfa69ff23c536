"""The schedule on a fake clock: who is polled when, how often, how many at once."""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import pairwise

import pytest

from github_poller.schedule import (
    BUDGET_SHARE,
    Outcome,
    Pacer,
    Schedule,
    effective_interval,
    primary_rate,
)

Start = tuple[float, str]


def make(
    users: int = 0,
    *,
    interval: float = 5.0,
    rate: float = 15.0,
    max_in_flight: int = 8,
    failure_backoff_max: float = 60.0,
) -> Schedule:
    schedule = Schedule(
        interval=interval,
        rate=rate,
        max_in_flight=max_in_flight,
        failure_backoff_max=failure_backoff_max,
    )
    for n in range(users):
        schedule.add(f"u{n}", 0.0)
    return schedule


class Driver:
    """Drives a schedule the way the poller does, on a fake clock: starts whatever `take`
    gives, finishes each poll `duration` later, sleeps until `wake_at` or the next finish."""

    def __init__(
        self,
        schedule: Schedule,
        *,
        duration: float = 0.0,
        outcome: Callable[[str], Outcome] = lambda key: Outcome.OK,
        lateness: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.schedule = schedule
        self.duration = duration
        self.outcome = outcome
        self.lateness = lateness  # how late each wake-up comes (a busy event loop)
        self.now = 0.0
        self.starts: list[Start] = []
        self.running: list[tuple[float, str]] = []
        self.most_in_flight = 0

    def run_until(self, until: float) -> list[Start]:
        """Runs until the clock reaches `until`; returns the starts of this run."""
        first = len(self.starts)
        while True:
            while self.running and self.running[0][0] <= self.now:
                done, finished = heapq.heappop(self.running)
                self.schedule.finished(finished, done, self.outcome(finished))
            key = self.schedule.take(self.now)
            if key is not None:
                assert key not in {k for _, k in self.running}, "a user's polls overlapped"
                self.starts.append((self.now, key))
                heapq.heappush(self.running, (self.now + self.duration, key))
                self.most_in_flight = max(self.most_in_flight, len(self.running))
                continue
            wakes = [self.schedule.wake_at(self.now)]
            wakes += [self.running[0][0]] if self.running else []
            upcoming = [wake for wake in wakes if wake is not None]
            following = min(upcoming, default=until)
            if following >= until:
                self.now = until
                return self.starts[first:]
            self.now = max(self.now, following + self.lateness())


def per_user(starts: list[Start]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for at, key in starts:
        times[key].append(at)
    return times


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(times)]


def test_ten_users_every_five_seconds_evenly_spread() -> None:
    driver = Driver(make(10))
    starts = driver.run_until(49.9)
    assert Counter(key for _, key in starts) == {f"u{n}": 10 for n in range(10)}
    for times in per_user(starts).values():
        assert gaps(times) == pytest.approx([5.0] * 9)
    # One start every 0.5 s, never two together.
    assert gaps([at for at, _ in starts]) == pytest.approx([0.5] * 99)
    assert driver.schedule.effective_interval(0.0) == 5.0


def test_two_hundred_users_stretch_to_the_budget() -> None:
    schedule = make(200, rate=15.0)
    paced = 15.0 * BUDGET_SHARE  # 14.55 polls a second: 97% of the budget
    assert schedule.effective_interval(0.0) == pytest.approx(200 / paced)
    assert schedule.effective_interval(0.0) == pytest.approx(13.746, abs=1e-3)
    starts = Driver(schedule).run_until(3 * 200 / paced - 0.01)
    assert Counter(key for _, key in starts) == {f"u{n}": 3 for n in range(200)}
    for times in per_user(starts).values():
        assert gaps(times) == pytest.approx([200 / paced] * 2)
    assert gaps([at for at, _ in starts]) == pytest.approx([1 / paced] * 599)


def most_in_any_window(times: list[float], window: float) -> int:
    """The most starts in any `window` seconds, as a rolling-window limit counts them."""
    ordered = sorted(times)
    return max(bisect_left(ordered, at + window) - i for i, at in enumerate(ordered))


def test_a_thousand_users_keep_headroom_under_the_secondary_limit() -> None:
    # One token, 900 points a minute. Wake-ups come up to one gap late (a busy loop), which
    # at exactly 15 a second put 901 requests in some minute: a 429.
    late = random.Random(7)
    schedule = make(1000, rate=15.0)
    driver = Driver(schedule, duration=0.1, lateness=lambda: late.uniform(0.0, 1 / 15))
    starts = driver.run_until(200.0)
    assert schedule.effective_interval(0.0) == pytest.approx(1000 / 14.55)
    most = most_in_any_window([at for at, _ in starts], 60.0)
    assert most <= 60 * 15.0 * BUDGET_SHARE + 1 == 874
    assert len(starts) >= 200 * 14.5  # and the headroom costs no more than the 3%


def test_effective_interval_rule() -> None:
    assert effective_interval(75, 5.0, 15.0) == 5.0
    assert effective_interval(76, 5.0, 15.0) == pytest.approx(76 / 15)
    assert effective_interval(0, 5.0, 15.0) == 5.0


def test_a_new_user_is_polled_at_once_then_with_the_others() -> None:
    schedule = make(10)
    driver = Driver(schedule)
    driver.run_until(12.3)
    schedule.add("new", 12.3)
    assert not schedule.add("new", 12.4)  # known: nothing changes
    starts = driver.run_until(12.3 + 50 - 0.01)
    # The next free slot: 12.0 was the last start, now 11 users share 5 s.
    assert starts[0][1] == "new"
    assert starts[0][0] == pytest.approx(12.0 + 5 / 11)
    counts = Counter(key for _, key in starts)
    assert set(counts.values()) == {10}
    assert len(counts) == 11
    for times in per_user(starts).values():
        assert gaps(times) == pytest.approx([5.0] * 9)


def test_a_removed_user_is_not_polled_again() -> None:
    schedule = make(10)
    driver = Driver(schedule)
    driver.run_until(10.2)
    for n in range(5):
        schedule.remove(f"u{n}")
    assert "u0" not in schedule
    assert len(schedule) == 5
    starts = driver.run_until(40.2)
    assert {key for _, key in starts} == {f"u{n}" for n in range(5, 10)}
    for times in per_user(starts).values():
        assert gaps(times) == pytest.approx([5.0] * (len(times) - 1))  # still every 5 s...
    assert gaps([at for at, _ in starts][5:]) == pytest.approx([1.0] * (len(starts) - 6))


def test_pause_stops_every_start_then_the_rotation_resumes_in_order() -> None:
    schedule = make(10)
    driver = Driver(schedule)
    before = driver.run_until(10.2)
    schedule.pause_until(30.0)
    during = driver.run_until(29.99)
    assert during == []
    after = driver.run_until(30.0 + 50 - 0.01)
    assert after[0][0] == pytest.approx(30.0)
    # Whoever was next before the pause goes first after it.
    order = [key for _, key in before + after]
    assert order[len(before) : len(before) + 10] == [f"u{(n + 1) % 10}" for n in range(10)]
    assert set(Counter(key for _, key in after).values()) == {10}


def test_rate_limited_user_keeps_its_turn() -> None:
    schedule = make(3)
    assert schedule.take(0.0) == "u0"
    schedule.pause_until(100.0)
    schedule.finished("u0", 0.1, Outcome.RETRY)
    assert schedule.take(99.0) is None
    assert schedule.wake_at(99.0) == 100.0
    assert schedule.take(100.0) == "u0"


def test_a_poll_asked_for_now_and_rate_limited_goes_right_after_the_pause() -> None:
    schedule = make(1, interval=3600.0)
    assert schedule.take(0.0) == "u0"
    schedule.finished("u0", 0.1, Outcome.OK)
    schedule.expedite("u0", 10.0)  # /fetch
    assert schedule.take(10.0) == "u0"
    schedule.pause_until(70.0)
    schedule.finished("u0", 10.1, Outcome.RETRY)
    assert schedule.wake_at(10.1) == 70.0  # not an hour after the last start
    assert schedule.take(70.0) == "u0"
    schedule.finished("u0", 70.1, Outcome.OK)
    assert schedule.wake_at(70.1) == pytest.approx(3670.0)  # then back in the rotation


def test_concurrency_is_bounded_and_no_user_overlaps_itself() -> None:
    schedule = make(20, interval=1.0, rate=100.0, max_in_flight=4)
    driver = Driver(schedule, duration=0.35)
    starts = driver.run_until(20.0)
    assert driver.most_in_flight == 4
    # 4 polls at once lasting 0.35 s: at most 4 / 0.35 polls a second, shared fairly.
    counts = Counter(key for _, key in starts)
    assert len(counts) == 20
    assert max(counts.values()) - min(counts.values()) <= 1


def test_a_slow_user_is_skipped_until_its_poll_ends() -> None:
    schedule = make(2, interval=1.0, rate=100.0)
    assert schedule.take(0.0) == "u0"
    assert schedule.take(0.5) == "u1"
    # u0 is due again at 1.0 but still running: nothing starts.
    assert schedule.take(1.5) is None
    assert schedule.wake_at(1.5) is None  # both running: wait until one finishes
    schedule.finished("u0", 2.2, Outcome.OK)
    assert schedule.wake_at(2.2) == 1.0  # overdue since 1.0: it starts at once
    assert schedule.take(2.2) == "u0"


def test_failing_user_backs_off_exponentially_up_to_the_cap() -> None:
    schedule = make(2, interval=5.0, failure_backoff_max=30.0)
    driver = Driver(schedule, outcome=lambda key: Outcome.FAILED if key == "u1" else Outcome.OK)
    starts = driver.run_until(100.0)
    times = per_user(starts)
    assert gaps(times["u1"]) == pytest.approx([10.0, 20.0, 30.0, 30.0])
    assert gaps(times["u0"]) == pytest.approx([5.0] * 19)


def test_a_success_ends_the_backoff() -> None:
    schedule = make(1, interval=5.0)
    outcomes = iter([Outcome.FAILED, Outcome.FAILED, Outcome.OK, Outcome.OK, Outcome.OK])
    starts = Driver(schedule, outcome=lambda key: next(outcomes)).run_until(40.01)
    assert gaps([at for at, _ in starts]) == pytest.approx([10.0, 20.0, 5.0, 5.0])


def test_primary_budget_slows_the_cycle_when_answers_spend_it() -> None:
    schedule = make(10, interval=5.0, rate=15.0)
    schedule.set_primary(remaining=100, reset_at=100.0)  # 1 request a second until the reset
    assert schedule.effective_interval(0.0) == 5.0  # no answer seen yet: only 304s are free
    for _ in range(50):
        schedule.observe(costly=True)
    assert schedule.costly_share == pytest.approx(1.0, abs=0.01)
    # 1 request a second, of which the schedule plans 97%.
    assert schedule.effective_interval(0.0) == pytest.approx(10.0 / BUDGET_SHARE, rel=0.01)
    for _ in range(50):
        schedule.observe(costly=False)
    assert schedule.effective_interval(0.0) == 5.0  # 304s dominate again
    assert schedule.effective_interval(100.0) == 5.0  # the window has reset


def test_primary_rate() -> None:
    assert primary_rate(remaining=3600, reset_in=3600.0, costly_share=0.5) == 2.0
    assert primary_rate(remaining=3600, reset_in=3600.0, costly_share=0.0) is None
    assert primary_rate(remaining=10, reset_in=-1.0, costly_share=1.0) is None


def test_expedited_users_go_as_fast_as_the_budget_allows() -> None:
    schedule = make(10, interval=5.0, rate=10.0)
    driver = Driver(schedule)
    driver.run_until(5.01)  # one cycle: u0..u9, then u0 again at 5.0
    for n in range(10):
        schedule.expedite(f"u{n}", 5.01)
    starts = driver.run_until(6.5)
    paced = 10.0 * BUDGET_SHARE
    assert [key for _, key in starts][:10] == [f"u{n}" for n in range(10)]
    assert [at for at, _ in starts][:10] == pytest.approx([5.0 + n / paced for n in range(1, 11)])


def test_an_expedited_user_does_not_wait_behind_the_rotation() -> None:
    # A poll of one partition expedites some users only; they go before those merely due.
    schedule = make(3, interval=300.0, rate=10.0)
    assert schedule.take(0.0) == "u0"
    schedule.finished("u0", 0.05, Outcome.OK)
    schedule.expedite("u2", 0.1)
    assert schedule.take(0.2) == "u2"  # not after u1, which is due only 100 s after u0
    assert schedule.take(0.3) is None


def test_expedite_during_a_poll_polls_again_after_it() -> None:
    schedule = make(1)
    assert schedule.take(0.0) == "u0"
    schedule.expedite("u0", 0.1)
    assert schedule.take(0.1) is None  # still running
    schedule.finished("u0", 0.3, Outcome.OK)
    assert schedule.take(0.3) == "u0"  # due again at once, not 5 s after the last start


def test_pacer_spaces_requests_first_come_first_served() -> None:
    pacer = Pacer(rate=10.0)
    assert pacer.reserve(0.0) == 0.0
    assert pacer.reserve(0.0) == pytest.approx(0.1)
    assert pacer.reserve(0.05) == pytest.approx(0.15)
    assert pacer.reserve(1.0) == 0.0  # idle long enough: no wait
