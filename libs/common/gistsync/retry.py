"""How long to wait before trying again: one policy for every retry in the suite.

Pure: no I/O, no broker, no HTTP client. The broker's delivery path retries a whole message
with it, the Pipedrive client one request, and connecting backs off with `capped`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """Bounded, jittered exponential backoff for transient failures."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): half to all of the
        doubling ceiling, so that many waiters do not come back at the same moment."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def capped(delay: float, *, factor: float = 2.0, cap: float = 5.0) -> float:
    """The next wait of an unbounded retry loop (connecting, subscribing): grows, capped."""
    return min(delay * factor, cap)
