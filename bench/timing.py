"""Gists made in the GitHub simulator, timed until their activity exists in Pipedrive's."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.control import Sims, Times
from bench.figures import percentile


async def until(read: Callable[[], Awaitable[float]], at_least: float, *, timeout: float) -> None:
    """Polls `read` until it gives `at_least`."""
    deadline = time.monotonic() + timeout
    while await read() < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still below {at_least:g} after {timeout:g} s")
        await asyncio.sleep(0.1)


async def wait_activities(sims: Sims, ids: list[str], timeout: float) -> Times:
    """Each gist's activity time, once all exist or `timeout` passed (None: still missing)."""
    deadline = time.monotonic() + timeout
    while True:
        _, activity = await sims.timings(ids)
        if all(activity[i] is not None for i in ids) or time.monotonic() > deadline:
            return activity
        await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Propagation:
    delays: list[float]  # seconds, of the gists that arrived
    missing: int  # gists with no activity by the deadline

    def at(self, q: float) -> float:
        return percentile(self.delays, q)


async def propagation(
    sims: Sims, logins: list[str], *, gists: int, seconds: float, timeout: float
) -> Propagation:
    """`gists` new gists of random users at random moments over `seconds` (so they meet the
    poll cycle at every phase), then how long each took to become an activity."""
    rng = random.Random(7)
    ids: list[str] = []
    gap = seconds / gists
    for _ in range(gists):
        ids += await sims.new_gists([rng.choice(logins)])
        await asyncio.sleep(rng.uniform(0.5, 1.5) * gap)
    activity = await wait_activities(sims, ids, timeout)
    created, _ = await sims.timings(ids)
    delays = []
    for gist_id in ids:
        made, done = created[gist_id], activity[gist_id]
        if made is not None and done is not None:
            delays.append(done - made)
    return Propagation(delays, len(ids) - len(delays))
