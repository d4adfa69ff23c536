"""Memory: each service's resident set once steady with few users and with many, and what
one more tracked user costs. RSS does not depend on latency or limits, so to reach the big
point in a minute instead of hours the simulators answer at once and every limit is lifted
(the services' own limiters included); every user still has 2 gists, read and re-published
once, and the cache holds them all."""

from __future__ import annotations

from bench.context import Bench, Running
from bench.figures import Figure, below
from sandbox.launch import SERVICES

SECTION = "Memory (RSS once steady)"
MIB = 1024 * 1024
TARGET_USERS = 10_000
LIMIT_BYTES = 150e6  # the 150 MB
UNLIMITED = 10**9
GITHUB = {
    "limits": {
        "primary_limit": UNLIMITED,
        "secondary_points_limit": UNLIMITED,
        "max_concurrent": 1000,
    }
}
PIPEDRIVE = {
    "limits": {
        "burst_limit": UNLIMITED,
        "search_burst_limit": UNLIMITED,
        "daily_budget": UNLIMITED,
    }
}


def env(users: int) -> dict[str, str]:
    return {
        "GITHUB_REQUESTS_PER_SECOND": "1000",
        "GITHUB_MAX_IN_FLIGHT": "50",
        # One read of everyone takes this long: a first cycle in under half a minute.
        "POLL_INTERVAL_SECONDS": str(max(5.0, users / 400)),
        "PIPEDRIVE_BURST_LIMIT": str(UNLIMITED),
        "PIPEDRIVE_SEARCH_BURST_LIMIT": str(UNLIMITED),
    }


async def resident(bench: Bench, users: int) -> dict[str, int]:
    async with bench.suite(
        f"memory-{users}",
        users=users,
        gists_per_user=2,
        env=env(users),
        github=GITHUB,
        pipedrive=PIPEDRIVE,
        latency=False,
        steady_timeout=900,
    ) as running:
        await exercise(running)
        return {service: running.rss(service) for service in SERVICES}


async def exercise(running: Running) -> None:
    """The gateway holds nothing per user, but answers as big as the user list."""
    for _ in range(20):
        for path in ("/list", "/api/users"):
            (await running.gateway(path)).raise_for_status()


async def run(bench: Bench) -> list[Figure]:
    few, many = bench.options.sizes.memory_users
    small = await resident(bench, few)
    large = await resident(bench, many)
    figures = []
    for service in SERVICES:
        figures.append(
            Figure(SECTION, f"{service} at {few:,} users", "MiB", [small[service] / MIB], "1 run")
        )
    for service in SERVICES:
        target = below(LIMIT_BYTES / MIB, "< 150 MB") if many == TARGET_USERS else None
        figures.append(
            Figure(
                SECTION,
                f"{service} at {many:,} users",
                "MiB",
                [large[service] / MIB],
                "1 run",
                target,
            )
        )
    for service in SERVICES:
        growth = (large[service] - small[service]) / (many - few) / 1024
        figures.append(
            Figure(
                SECTION, f"{service}: growth per user", "KiB", [growth], f"{few:,} → {many:,} users"
            )
        )
    return figures
