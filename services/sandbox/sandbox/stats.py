"""Request counters exposed at `GET /_sandbox/stats`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.total = 0
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.tokens_spent = 0
        self.in_flight = 0
        self.max_concurrency_seen = 0

    def enter(self) -> None:
        self.in_flight += 1
        self.max_concurrency_seen = max(self.max_concurrency_seen, self.in_flight)

    def leave(self, route: str, outcome: str) -> None:
        """outcome: the status code as text, or `dropped` / `cancelled` when none was sent."""
        self.in_flight -= 1
        self.total += 1
        self.requests[route][outcome] += 1

    def count(self, route: str, outcome: str) -> int:
        codes = self.requests.get(route)
        return codes.get(outcome, 0) if codes else 0

    def reset(self) -> None:
        # Requests still in flight keep being tracked; only the history goes.
        self.total = 0
        self.requests.clear()
        self.tokens_spent = 0
        self.max_concurrency_seen = self.in_flight

    def snapshot(self, *, with_tokens: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "total": self.total,
            "requests": {route: dict(codes) for route, codes in sorted(self.requests.items())},
            "max_concurrency_seen": self.max_concurrency_seen,
        }
        if with_tokens:
            data["tokens_spent"] = self.tokens_spent
        return data
