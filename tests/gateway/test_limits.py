"""The rate limiter's token buckets, on a fake clock."""

from __future__ import annotations

import pytest

from gateway.limits import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)  # refused: no token spent
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(1.0)


def test_clients_have_their_own_buckets() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(60.0)
    assert limiter.take("b") == 0.0


def test_a_quiet_client_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.take("a")
    limiter.take("a")
    clock.now += 3600
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") > 0


def test_a_clock_going_backwards_gives_nothing_away() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    limiter.take("a")
    clock.now -= 100
    assert limiter.take("a") == pytest.approx(1.0)


def test_memory_is_bounded_by_forgetting_the_least_recent() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=1, burst=1, clock=clock, max_clients=2)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # refused, but seen: b is now the least recent
    limiter.take("c")
    assert len(limiter) == 2
    assert limiter.take("a") > 0  # still remembered
    assert limiter.take("b") == 0.0  # forgotten, back with a full bucket


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(1.0) == "1"
    assert retry_after(1.2) == "2"
    assert retry_after(59.9) == "60"


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(per_minute=1, burst=0)
