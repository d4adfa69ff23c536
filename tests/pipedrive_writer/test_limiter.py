"""The burst limiter on a fake clock: exact waits, no real sleeping."""

from __future__ import annotations

import asyncio

import pytest

from pipedrive_writer.limiter import Limiter, RollingWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def make(limit: int = 3, search: int = 2, clock: FakeClock | None = None) -> Limiter:
    clock = clock or FakeClock()
    return Limiter(limit, search, 2.0, margin=0.0, clock=clock, sleep=clock.sleep)


def test_window_counts_events_in_the_last_seconds() -> None:
    window = RollingWindow(2, 2.0)
    assert window.wait_time(0.0) == 0.0
    window.add(0.0)
    window.add(0.5)
    assert window.wait_time(1.0) == 1.0
    assert window.wait_time(2.0) == 0.0  # the first left the window
    assert window.used(2.0) == 1


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RollingWindow(0, 2.0)


async def test_requests_under_the_limit_do_not_wait() -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    for _ in range(3):
        assert await limiter.acquire() == 0.0
    assert clock.slept == []


async def test_the_request_over_the_limit_waits_for_the_window() -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    for _ in range(3):
        await limiter.acquire()
        clock.now += 0.5
    # Sent at 100.0, 100.5, 101.0; now 101.5: the fourth may go at 102.0.
    assert await limiter.acquire() == 0.5
    assert clock.now == 102.0


async def test_sustained_rate_never_exceeds_the_limit() -> None:
    clock = FakeClock()
    limiter = make(limit=20, search=10, clock=clock)
    sent: list[float] = []
    for _ in range(100):
        await limiter.acquire()
        sent.append(clock.now)
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 2.0) <= 20
    assert sent[-1] - sent[0] == pytest.approx(8.0)  # 100 requests = 5 windows


async def test_searches_have_their_own_smaller_window_and_count_in_both() -> None:
    clock = FakeClock()
    limiter = make(limit=3, search=2, clock=clock)
    await limiter.acquire(search=True)
    await limiter.acquire(search=True)
    assert limiter.wait_time(search=False, now=clock.now) == 0.0
    assert limiter.wait_time(search=True, now=clock.now) == 2.0
    await limiter.acquire()
    assert limiter.wait_time(search=False, now=clock.now) == 2.0


async def test_pause_stops_everyone_until_the_time_named() -> None:
    clock = FakeClock()
    limiter = make(clock=clock)
    limiter.pause(5.0)
    limiter.pause(1.0)  # a shorter pause never shortens a longer one
    assert await limiter.acquire() == 5.0
    assert clock.now == 105.0


async def test_concurrent_waiters_leave_in_order_within_the_limit() -> None:
    clock = FakeClock()
    limiter = make(limit=2, clock=clock)
    order: list[tuple[int, float]] = []

    async def one(n: int) -> None:
        await limiter.acquire()
        order.append((n, clock.now))

    await asyncio.gather(*(one(n) for n in range(5)))
    assert order == [(0, 100.0), (1, 100.0), (2, 102.0), (3, 102.0), (4, 104.0)]
