"""Rate-limit windows. Limits and window lengths are passed per call so config can change live."""

from __future__ import annotations

import math
from collections import deque


def whole_seconds(seconds: float) -> int:
    """Headers carry integers; round up so a client that waits that long is never early."""
    return max(1, math.ceil(seconds))


class RollingWindow:
    """Cost-weighted events in a sliding window (Pipedrive bursts, GitHub secondary points)."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0

    def _prune(self, window: float, now: float) -> None:
        while self._events and self._events[0][0] <= now - window:
            _, cost = self._events.popleft()
            self._used -= cost

    def used(self, window: float, now: float) -> int:
        self._prune(window, now)
        return self._used

    def wait_for(self, limit: int, window: float, now: float, cost: int = 1) -> float:
        """Seconds until `cost` more fits under `limit`; 0.0 if it fits now."""
        self._prune(window, now)
        excess = self._used + cost - limit
        if excess <= 0:
            return 0.0
        if cost > limit:
            return window  # never fits; the best advice is a full window
        freed = 0
        for stamp, event_cost in self._events:
            freed += event_cost
            if freed >= excess:
                return stamp + window - now
        return window

    def add(self, now: float, cost: int = 1) -> None:
        self._events.append((now, cost))
        self._used += cost

    def reset_in(self, window: float, now: float) -> float:
        """Seconds until the oldest event leaves the window (a full window when empty)."""
        self._prune(window, now)
        if not self._events:
            return window
        return self._events[0][0] + window - now

    def clear(self) -> None:
        self._events.clear()
        self._used = 0


class FixedWindow:
    """GitHub's primary limit: a budget that resets a fixed time after the window opened."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.used = 0

    def roll(self, window: float, now: float) -> None:
        if self.started is None or now >= self.started + window:
            self.started = now
            self.used = 0

    def reset_at(self, window: float, now: float) -> float:
        self.roll(window, now)
        assert self.started is not None
        return self.started + window
