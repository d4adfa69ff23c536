"""Fault injection: decides, per API request, whether the simulator misbehaves and how."""

from __future__ import annotations

import enum
import random

from sandbox.config import FaultConfig


class Fault(enum.Enum):
    NONE = "none"
    DROP = "drop"
    TIMEOUT = "timeout"
    ERROR = "error"
    RATE_LIMIT = "rate_limit"


class FaultInjector:
    """Seeded, so a test can predict exactly which requests fail."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def draw(self, faults: FaultConfig) -> Fault:
        if faults.seed != self.seed:
            self.reseed(faults.seed)
        if faults.rate_limit_burst > 0:
            faults.rate_limit_burst -= 1
            return Fault.RATE_LIMIT
        # Exactly one draw per request (when no burst is pending) keeps runs reproducible:
        # with shares d, t, e the request drops if r < d, hangs if r < d+t, errors if r < d+t+e.
        roll = self._rng.random()
        if roll < faults.drop_rate:
            return Fault.DROP
        if roll < faults.drop_rate + faults.timeout_rate:
            return Fault.TIMEOUT
        if roll < faults.drop_rate + faults.timeout_rate + faults.error_rate:
            return Fault.ERROR
        return Fault.NONE


def expected_faults(seed: int, count: int, faults: FaultConfig) -> list[Fault]:
    """The faults `count` fresh requests would get; lets tests assert exact numbers."""
    probe = FaultInjector(seed)
    copy = faults.model_copy()
    return [probe.draw(copy) for _ in range(count)]
