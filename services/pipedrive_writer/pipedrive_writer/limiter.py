"""Client-side burst limiting, so Pipedrive rarely has to answer 429.

Pipedrive counts requests per API token in a rolling 2-second window (20 on Lite), and
searches again in a window of their own (10 per 2 s on every plan). `Limiter.acquire` waits
until a request fits every window it counts in; `pause` stops everyone after a 429 until the
time the server named. The clock and the sleep are injected so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RollingWindow:
    """At most `limit` events in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a window needs a limit of at least 1 and a positive length")
        self.limit = limit
        self.window = window
        self._stamps: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits; 0.0 when it fits now."""
        self._prune(now)
        if len(self._stamps) < self.limit:
            return 0.0
        return self._stamps[len(self._stamps) - self.limit] + self.window - now

    def add(self, now: float) -> None:
        self._stamps.append(now)

    def used(self, now: float) -> int:
        self._prune(now)
        return len(self._stamps)


class Limiter:
    def __init__(
        self,
        limit: int,
        search_limit: int,
        window: float = 2.0,
        *,
        margin: float = 0.1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # The server starts its window when a request arrives, a little after we send it:
        # a margin keeps a request sent just on time from landing inside the old window.
        self.all = RollingWindow(limit, window + margin)
        self.search = RollingWindow(search_limit, window + margin)
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        # One waiter at a time: requests leave in the order they asked.
        self._lock = asyncio.Lock()

    def wait_time(self, *, search: bool, now: float) -> float:
        windows = (self.all, self.search) if search else (self.all,)
        waits = [window.wait_time(now) for window in windows]
        return max([self._paused_until - now, *waits, 0.0])

    async def acquire(self, *, search: bool = False) -> float:
        """Wait until one request may go, count it, and return how long it waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                delay = self.wait_time(search=search, now=now)
                if delay <= 0:
                    self.all.add(now)
                    if search:
                        self.search.add(now)
                    return waited
                await self._sleep(delay)
                waited += delay

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` (the server said so); never shortens a longer pause."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
