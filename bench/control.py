"""The simulators' control APIs, as the benchmarks use them: limits and latency, request
stats, seeding, new gists and their timings."""

from __future__ import annotations

from typing import Any

import httpx

from bench.stack import Stack

Stats = dict[str, Any]
Times = dict[str, float | None]


class Sims:
    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http

    async def _call(self, method: str, url: str, body: Any = None) -> Any:
        response = await self.http.request(method, url, json=body, timeout=300)
        response.raise_for_status()
        return response.json() if response.content else None

    async def configure(self, sim: str, patch: dict[str, Any]) -> None:
        """`sim` is `github` or `pipedrive`; `patch` as PATCH /_sandbox/config takes it."""
        await self._call("PATCH", f"{self.stack.url(sim)}/_sandbox/config", patch)

    async def latency(self, github_ms: float, pipedrive_ms: float) -> None:
        await self.configure("github", {"faults": {"latency_ms": float(github_ms)}})
        await self.configure("pipedrive", {"faults": {"latency_ms": float(pipedrive_ms)}})

    async def stats(self, sim: str) -> Stats:
        result: Stats = await self._call("GET", f"{self.stack.url(sim)}/_sandbox/stats")
        return result

    async def reset_stats(self, *sims: str) -> None:
        for sim in sims or ("github", "pipedrive"):
            await self._call("POST", f"{self.stack.url(sim)}/_sandbox/stats/reset")

    async def seed(self, logins: list[str], gists_per_user: int, *, synced: bool = True) -> Stats:
        body = {"logins": logins, "gists_per_user": gists_per_user, "synced": synced}
        result: Stats = await self._call("POST", f"{self.stack.url('control')}/_bench/seed", body)
        return result

    async def add_github_user(self, login: str) -> None:
        await self._call("POST", f"{self.stack.url('github')}/_sandbox/users", {"login": login})

    async def new_gists(self, logins: list[str]) -> list[str]:
        """One new gist per login (a login may repeat), timed by the simulator."""
        url = f"{self.stack.url('control')}/_bench/gists"
        ids: list[str] = (await self._call("POST", url, {"logins": logins}))["ids"]
        return ids

    async def timings(self, ids: list[str]) -> tuple[Times, Times]:
        """When each gist was made, and when its activity appeared (None: not yet)."""
        url = f"{self.stack.url('control')}/_bench/timings"
        found = await self._call("POST", url, {"ids": ids})
        return found["created"], found["activity"]


def requests(stats: Stats, route: str | None = None, status: str | None = None) -> int:
    """Requests in a stats snapshot, of one route and/or one outcome (status code)."""
    by_route: dict[str, dict[str, int]] = stats["requests"]
    return sum(
        count
        for name, outcomes in by_route.items()
        if route is None or name == route
        for outcome, count in outcomes.items()
        if status is None or outcome == status
    )


def rate_limited(stats: Stats) -> int:
    """Answers that said "rate limited": 429, and GitHub's 403s (the only 403s it sends us)."""
    return requests(stats, status="429") + requests(stats, status="403")
