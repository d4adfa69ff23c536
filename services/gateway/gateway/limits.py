"""Per-client rate limiting, pure logic: a token bucket per client, on an injected clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Each client may make `burst` requests at once, then `per_minute` on average.

    Memory is bounded: past `max_clients`, the client seen least recently is forgotten (it
    comes back with a full bucket, which only ever errs on the generous side).
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("per_minute > 0, burst >= 1 and max_clients >= 1 are required")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until a token is there."""
        now = self.clock()
        # Popped and put back, so the dict's order is least recently seen first.
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            tokens = self.burst
        else:
            tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = _Bucket(tokens, now)
        while len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]
        return wait

    def peek(self, client: str) -> float:
        """What `take` would answer, spending nothing: 0.0 when a token is there."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0.0
        now = self.clock()
        tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """The `Retry-After` value for a wait: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait)))
